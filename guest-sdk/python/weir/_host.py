"""Where the SDK's calls go: weir's host interfaces inside a component (`WasmHost`), or the
in-memory host of `weir.testing` on CPython. `current` is the one in use."""

import importlib

#: The WIT interfaces the world being built imports, and componentize-py's result types.
#: Imported here, at module load: componentize-py runs the app's imports when it builds the
#: component and snapshots them; a module imported later, in a call, is not found. On
#: CPython (tests) there are none.
WIT = {}
for _name in ("types", "log", "context", "output", "state", "timers"):
    try:
        WIT[_name] = importlib.import_module(f"wit_world.imports.{_name}")
    except ImportError:
        pass
try:
    from componentize_py_types import Err, Ok
except ImportError:
    Err = Ok = None


class WasmHost:
    """The host's WIT imports, as componentize-py binds them for the world being built. An
    interface the world does not import (state in a `map`, say) raises a clear error."""

    def _mod(self, name):
        m = WIT.get(name)
        if m is None:
            raise RuntimeError(f"weir: `{name}` is not available to this kind of operator (only to process operators)")
        return m

    def value_get(self, name):
        return self._mod("state").value_get(name)

    def value_set(self, name, value):
        self._mod("state").value_set(name, value)

    def value_clear(self, name):
        self._mod("state").value_clear(name)

    def list_get(self, name):
        return self._mod("state").list_get(name)

    def list_add(self, name, value):
        self._mod("state").list_add(name, value)

    def list_update(self, name, values):
        self._mod("state").list_update(name, values)

    def list_clear(self, name):
        self._mod("state").list_clear(name)

    def map_get(self, name, key):
        return self._mod("state").map_get(name, key)

    def map_put(self, name, key, value):
        self._mod("state").map_put(name, key, value)

    def map_remove(self, name, key):
        self._mod("state").map_remove(name, key)

    def map_contains(self, name, key):
        return self._mod("state").map_contains(name, key)

    def map_entries(self, name):
        return self._mod("state").map_entries(name)

    def map_clear(self, name):
        self._mod("state").map_clear(name)

    def emit(self, output, rec):
        types = self._mod("types")
        r = types.Record(rec.key, rec.value, rec.timestamp, rec.headers)
        if output is None:
            self._mod("output").emit(r)
        else:
            self._mod("output").emit_to(output, r)

    def current_key(self):
        return self._mod("context").current_key()

    def current_watermark(self):
        return self._mod("context").current_watermark()

    def current_processing_time(self):
        return self._mod("context").current_processing_time()

    def subtask_index(self):
        return self._mod("context").subtask_index()

    def timer(self, domain, register, timestamp):
        t = self._mod("timers")
        if domain == "event-time":
            (t.register_event_time if register else t.delete_event_time)(timestamp)
        else:
            (t.register_processing_time if register else t.delete_processing_time)(timestamp)

    def log(self, level, message):
        log = self._mod("log")
        log.log(getattr(log.Level, level.upper()), message)


current = WasmHost()
