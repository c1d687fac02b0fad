# The component's entry: componentize-py exports this module's `WitWorld`.
import weir
from {{module}} import {{class}}

WitWorld = weir.process_world({{class}})
