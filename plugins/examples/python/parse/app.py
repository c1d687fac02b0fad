# The component's entry: componentize-py exports this module's `WitWorld`.
import weir
from parse import Parse

WitWorld = weir.map_world(Parse)
