# The component's entry: componentize-py exports this module's `WitWorld`.
import weir
from detect import Detect

WitWorld = weir.process_world(Detect)
