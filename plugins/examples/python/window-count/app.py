# The component's entry: componentize-py exports this module's `WitWorld`.
import weir
from window_count import WindowCount

WitWorld = weir.aggregate_world(WindowCount)
