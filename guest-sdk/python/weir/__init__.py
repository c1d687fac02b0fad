"""weir's Python SDK: operators for weir written in Python, built into WebAssembly
components with componentize-py.

An operator is a class with the methods of its kind; the component's entry module turns it
into the world componentize-py exports::

    import weir

    class Detect(weir.Process):
        def open(self, config):
            self.fails = weir.ListState("fails")

        def process(self, rec):
            event = rec.json()
            ...
            weir.emit(weir.Record.from_json({"type": "security_alert"}))

    # app.py, the module componentize-py builds:
    WitWorld = weir.process_world(Detect)

Records arrive decoded (`Record.key`, `.value`, `.timestamp`, `.headers`); state is typed
JSON (`ValueState`, `ListState`, `MapState`), as the Rust SDK stores it, so a plugin can be
rewritten in another language and hot-loaded over the state of the old one. Raising
`InvalidInput` (or any exception) from `map`, `filter`, `flat_map`, `select_key` or
`process` sends that record to the job's dead-letter output with the message as its reason;
raising `InvalidConfig` from `open` stops the job before it starts, naming the reason.

`weir.testing` runs operators on CPython without weir and without Wasm.
"""

import json as _json

from . import _host

__all__ = [
    "Record", "Timer", "EVENT_TIME", "PROCESSING_TIME", "InvalidInput", "InvalidConfig",
    "Map", "Filter", "FlatMap", "KeySelector", "Process", "Aggregate", "WindowProcess", "Window",
    "UNCHANGED", "same_value",
    "ValueState", "ListState", "MapState", "emit", "emit_to", "current_key",
    "current_watermark", "current_processing_time", "subtask_index",
    "register_event_timer", "delete_event_timer", "register_processing_timer",
    "delete_processing_timer", "log", "map_world", "filter_world", "flat_map_world",
    "key_selector_world", "process_world", "aggregate_world", "window_process_world",
]

#: The two clocks of `Timer.domain`.
EVENT_TIME = "event-time"
PROCESSING_TIME = "processing-time"


def _bytes(b):
    """Bytes of a key or value given as bytes or text (None stays None)."""
    if b is None or isinstance(b, bytes):
        return b
    if isinstance(b, str):
        return b.encode()
    if isinstance(b, (bytearray, memoryview)):
        return bytes(b)
    raise TypeError(f"expected bytes or str, got {type(b).__name__}")


def _dumps(v):
    """Compact JSON, as serde_json writes it (non-ASCII kept as UTF-8)."""
    return _json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


class Record:
    """One record of a stream: `value` (bytes, JSON unless the job says otherwise), `key`
    (bytes or None), `timestamp` (event time in epoch ms, or None) and `headers` (a list of
    `(name, bytes)`)."""

    __slots__ = ("key", "value", "timestamp", "headers")

    def __init__(self, value=b"", key=None, timestamp=None, headers=None):
        self.value = _bytes(value)
        self.key = _bytes(key)
        self.timestamp = timestamp
        self.headers = list(headers) if headers else []

    @classmethod
    def from_json(cls, obj, key=None, timestamp=None, headers=None):
        """A record whose value is `obj` as compact JSON. Without a timestamp, an emitted
        record takes the event time of the record (or timer) being processed."""
        return cls(_dumps(obj), key, timestamp, headers)

    def json(self):
        """The value read as JSON; a value that is not JSON raises `InvalidInput`."""
        try:
            return _json.loads(self.value)
        except ValueError as e:
            raise InvalidInput(f"not JSON: {e}") from None

    def text(self):
        """The value as UTF-8 text."""
        try:
            return self.value.decode()
        except UnicodeDecodeError as e:
            raise InvalidInput(f"not UTF-8: {e}") from None

    def header(self, name):
        """The value of the first header called `name`, or None."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def __eq__(self, other):
        return isinstance(other, Record) and all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self):
        return f"Record(value={self.value!r}, key={self.key!r}, timestamp={self.timestamp!r}, headers={self.headers!r})"


class Timer:
    """A timer that fired: `timestamp` (epoch ms) and `domain` (`EVENT_TIME` or
    `PROCESSING_TIME`)."""

    __slots__ = ("timestamp", "domain")

    def __init__(self, timestamp, domain):
        self.timestamp = timestamp
        self.domain = domain

    def __eq__(self, other):
        return isinstance(other, Timer) and (self.timestamp, self.domain) == (other.timestamp, other.domain)

    def __repr__(self):
        return f"Timer({self.timestamp}, {self.domain!r})"


class InvalidInput(Exception):
    """The record is malformed for this operator: it goes to the dead-letter output with this
    message as its reason, and the job goes on."""


class InvalidConfig(Exception):
    """Raised by `open`: the operator's `config` is not acceptable; the job does not start."""


class _Unchanged:
    def __repr__(self):
        return "weir.UNCHANGED"


#: What `Map.map` returns for a record that goes on as it came (nothing crosses back).
UNCHANGED = _Unchanged()


class _SameValue:
    __slots__ = ("key", "timestamp")

    def __init__(self, key, timestamp):
        self.key = _bytes(key)
        self.timestamp = timestamp


def same_value(key=None, timestamp=None):
    """What `Map.map` returns for a record that keeps its value and headers and takes this key
    and event time: only the key and the time cross back to the host."""
    return _SameValue(key, timestamp)


class Operator:
    """What every operator has: `open(config)`, called once per parallel subtask before any
    record with the operator's `config` from the job file (a dict)."""

    def open(self, config):
        pass


class Map(Operator):
    """One record in, one out (Flink's MapFunction). `map(rec)` returns a `Record`,
    `UNCHANGED` or `same_value(key, timestamp)`."""

    def map(self, rec):
        raise NotImplementedError


class Filter(Operator):
    """Keeps the records for which `filter(rec)` is true (Flink's FilterFunction)."""

    def filter(self, rec):
        raise NotImplementedError


class FlatMap(Operator):
    """Zero or more records per record (Flink's FlatMapFunction): `flat_map(rec)` returns (or
    yields) records."""

    def flat_map(self, rec):
        raise NotImplementedError


class KeySelector(Operator):
    """A key per record (Flink's KeySelector): `select_key(rec)` returns bytes or text."""

    def select_key(self, rec):
        raise NotImplementedError


class Window:
    """A window of a window operator: `start` (inclusive) and `end` (exclusive), epoch ms."""

    __slots__ = ("start", "end")

    def __init__(self, start, end):
        self.start = start
        self.end = end

    def __eq__(self, other):
        return isinstance(other, Window) and (self.start, self.end) == (other.start, other.end)

    def __repr__(self):
        return f"Window({self.start}, {self.end})"


class Aggregate(Operator):
    """An incremental window aggregate (Flink's AggregateFunction). The accumulator is any
    value `json` writes (weir stores it between calls); `get_result` answers a dict whose
    fields join the window's result row."""

    def create_accumulator(self):
        raise NotImplementedError

    def add(self, acc, rec):
        """The accumulator with `rec` added (records of one key and window)."""
        raise NotImplementedError

    def merge(self, a, b):
        """Two accumulators as one (session windows merge)."""
        raise NotImplementedError

    def get_result(self, acc):
        raise NotImplementedError


class WindowProcess(Operator):
    """Sees all elements of a window when it fires (Flink's ProcessWindowFunction):
    `process_window(window, elements)` emits its rows with `weir.emit`."""

    def process_window(self, window, elements):
        raise NotImplementedError


class Process(Operator):
    """A keyed process function (Flink's KeyedProcessFunction): `process(rec)` for each
    record with its key's state in scope, `on_timer(timer)` for each timer that fires."""

    def process(self, rec):
        raise NotImplementedError

    def on_timer(self, timer):
        pass


# --- keyed state, typed as JSON ------------------------------------------------------------


class ValueState:
    """One value per key (Flink's ValueState), stored as JSON."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def get(self, default=None):
        b = _host.current.value_get(self.name)
        return default if b is None else _json.loads(b)

    def set(self, value):
        _host.current.value_set(self.name, _dumps(value))

    def clear(self):
        _host.current.value_clear(self.name)


class ListState:
    """A list per key (Flink's ListState), each element stored as JSON."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def get(self):
        return [_json.loads(b) for b in _host.current.list_get(self.name)]

    def add(self, value):
        _host.current.list_add(self.name, _dumps(value))

    def update(self, values):
        _host.current.list_update(self.name, [_dumps(v) for v in values])

    def clear(self):
        _host.current.list_clear(self.name)


class MapState:
    """A map per key (Flink's MapState): keys are text or bytes, values JSON."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def get(self, key, default=None):
        b = _host.current.map_get(self.name, _bytes(key))
        return default if b is None else _json.loads(b)

    def put(self, key, value):
        _host.current.map_put(self.name, _bytes(key), _dumps(value))

    def remove(self, key):
        _host.current.map_remove(self.name, _bytes(key))

    def contains(self, key):
        return _host.current.map_contains(self.name, _bytes(key))

    def items(self):
        """`(key bytes, value)` pairs ordered by key bytes."""
        return [(k, _json.loads(v)) for k, v in _host.current.map_entries(self.name)]

    def clear(self):
        _host.current.map_clear(self.name)


# --- output, context, timers, logging -------------------------------------------------------


def emit(rec):
    """Emits a record to the operator's main output."""
    _host.current.emit(None, rec)


def emit_to(output, rec):
    """Emits a record to side output `output` (lowercase kebab or snake case)."""
    _host.current.emit(output, rec)


def current_key():
    """The key of the record or timer being processed (bytes), or None."""
    return _host.current.current_key()


def current_watermark():
    """The operator's event-time watermark in epoch ms as the record arrived."""
    return _host.current.current_watermark()


def current_processing_time():
    """The host's processing-time clock in epoch ms."""
    return _host.current.current_processing_time()


def subtask_index():
    """This parallel subtask's index, from 0."""
    return _host.current.subtask_index()


def register_event_timer(timestamp):
    """Calls `on_timer` when the watermark reaches `timestamp` (epoch ms)."""
    _host.current.timer(EVENT_TIME, True, timestamp)


def delete_event_timer(timestamp):
    _host.current.timer(EVENT_TIME, False, timestamp)


def register_processing_timer(timestamp):
    """Calls `on_timer` when processing time reaches `timestamp` (epoch ms)."""
    _host.current.timer(PROCESSING_TIME, True, timestamp)


def delete_processing_timer(timestamp):
    _host.current.timer(PROCESSING_TIME, False, timestamp)


class _Log:
    """`weir.log.info("...")`: lines to the host, tagged with the operator's name."""

    def trace(self, message):
        _host.current.log("trace", str(message))

    def debug(self, message):
        _host.current.log("debug", str(message))

    def info(self, message):
        _host.current.log("info", str(message))

    def warn(self, message):
        _host.current.log("warn", str(message))

    def error(self, message):
        _host.current.log("error", str(message))


log = _Log()

from ._worlds import (  # noqa: E402
    aggregate_world,
    filter_world,
    flat_map_world,
    key_selector_world,
    map_world,
    process_world,
    window_process_world,
)
