"""Runs operators on CPython, without weir and without Wasm, with what weir's host gives
them: keyed state per key, timers fired by the watermark or a simulated processing-time
clock in time order, side outputs and log lines. The same abilities as the Rust SDK's
`weir_sdk::testing`::

    from weir.testing import ProcessHarness

    h = ProcessHarness(Detect, {"threshold": 5})
    h.process("u1", weir.Record.from_json({...}))
    h.advance_watermark(60_000)
    assert [r.json() for r in h.take_output()] == [...]
"""

import json

from . import EVENT_TIME, PROCESSING_TIME, UNCHANGED, Record, Timer, Window, _bytes, _host, _SameValue

MIN_WATERMARK = -(2**63)


class TestHost:
    """The in-memory host: state by (key, name), timers, outputs, logs."""

    def __init__(self):
        self.key = None
        self.watermark = MIN_WATERMARK
        self.processing_time = 0
        self.subtask = 0
        self.values = {}
        self.lists = {}
        self.maps = {}
        self.timers = set()
        self.outputs = {}
        self.logs = []
        self.current_ts = None

    def _k(self, name):
        if self.key is None:
            raise RuntimeError("weir: keyed state outside a keyed operator (no current key)")
        return (self.key, name)

    # state
    def value_get(self, name):
        return self.values.get(self._k(name))

    def value_set(self, name, value):
        self.values[self._k(name)] = bytes(value)

    def value_clear(self, name):
        self.values.pop(self._k(name), None)

    def list_get(self, name):
        return list(self.lists.get(self._k(name), []))

    def list_add(self, name, value):
        self.lists.setdefault(self._k(name), []).append(bytes(value))

    def list_update(self, name, values):
        if values:
            self.lists[self._k(name)] = [bytes(v) for v in values]
        else:
            self.lists.pop(self._k(name), None)

    def list_clear(self, name):
        self.lists.pop(self._k(name), None)

    def map_get(self, name, key):
        return self.maps.get(self._k(name), {}).get(key)

    def map_put(self, name, key, value):
        self.maps.setdefault(self._k(name), {})[key] = bytes(value)

    def map_remove(self, name, key):
        self.maps.get(self._k(name), {}).pop(key, None)

    def map_contains(self, name, key):
        return key in self.maps.get(self._k(name), {})

    def map_entries(self, name):
        return sorted(self.maps.get(self._k(name), {}).items())

    def map_clear(self, name):
        self.maps.pop(self._k(name), None)

    # output
    def emit(self, output, rec):
        if output is not None and not _side_output_name(output):
            raise ValueError(f"side output name `{output}` must be lowercase kebab or snake case")
        if rec.timestamp is None and self.current_ts is not None:
            rec = Record(rec.value, rec.key, self.current_ts, rec.headers)
        self.outputs.setdefault(output, []).append(rec)

    # context
    def current_key(self):
        return self.key

    def current_watermark(self):
        return self.watermark

    def current_processing_time(self):
        return self.processing_time

    def subtask_index(self):
        return self.subtask

    def timer(self, domain, register, timestamp):
        if self.key is None:
            raise RuntimeError("weir: timers outside a keyed operator (no current key)")
        t = (0 if domain == EVENT_TIME else 1, int(timestamp), self.key)
        if register:
            self.timers.add(t)
        else:
            self.timers.discard(t)

    def log(self, level, message):
        self.logs.append((level, message))


def _side_output_name(name):
    return bool(name) and all(c.islower() or c.isdigit() or c in "-_" for c in name) and name[0].isalpha()


class _Harness:
    def __init__(self, cls, config=None):
        self.host = TestHost()
        _host.current = self.host
        self.op = cls()
        self.op.open(json.loads(json.dumps(config or {})))

    def _use(self):
        _host.current = self.host

    def take_output(self):
        """The records emitted to the main output so far (and forgets them)."""
        return self.host.outputs.pop(None, [])

    def take_side_output(self, name):
        """The records emitted to side output `name` so far (and forgets them)."""
        return self.host.outputs.pop(name, [])

    def logs(self):
        """The `(level, message)` lines logged so far."""
        return list(self.host.logs)


class ProcessHarness(_Harness):
    """A keyed process operator on an in-memory host. `cls` is a `weir.Process` class."""

    def process(self, key, rec):
        """Processes `rec` under `key` (bytes or text), with that key's state in scope."""
        self._use()
        self.host.key = _bytes(key)
        self.host.current_ts = rec.timestamp
        self.op.process(rec)

    def advance_watermark(self, watermark):
        """Moves the watermark to `watermark`, firing due event-time timers in time order."""
        self._use()
        self.host.watermark = max(self.host.watermark, watermark)
        self._fire(0, watermark)

    def advance_processing_time(self, now):
        """Moves the simulated processing-time clock, firing due processing-time timers."""
        self._use()
        self.host.processing_time = max(self.host.processing_time, now)
        self._fire(1, now)

    def _fire(self, domain, upto):
        while True:
            due = sorted(t for t in self.host.timers if t[0] == domain and t[1] <= upto)
            if not due:
                return
            t = due[0]
            self.host.timers.discard(t)
            self.host.key, self.host.current_ts = t[2], t[1]
            self.op.on_timer(Timer(t[1], EVENT_TIME if domain == 0 else PROCESSING_TIME))

    def pending_timers(self):
        """The timers not yet fired, as sorted `(domain, timestamp, key)`."""
        return sorted((EVENT_TIME if d == 0 else PROCESSING_TIME, ts, k) for d, ts, k in self.host.timers)

    def state(self, key):
        """What `key` holds: `{name: value}` for value and list states, `{name: {map key: value}}`
        for map states, read as JSON."""
        key = _bytes(key)
        out = {n: json.loads(v) for (k, n), v in self.host.values.items() if k == key}
        out.update({n: [json.loads(v) for v in vs] for (k, n), vs in self.host.lists.items() if k == key})
        out.update({n: {mk: json.loads(v) for mk, v in m.items()} for (k, n), m in self.host.maps.items() if k == key})
        return out


def _each(h, records, call):
    out = []
    h._use()
    for rec in records:
        h.host.current_ts = rec.timestamp
        try:
            out.append(call(rec))
        except Exception as e:
            out.append(e)
    return out


def run_map(cls, config, records):
    """Opens a `weir.Map` and maps `records`; one answer per record: the `Record` it becomes
    (the input itself when the operator answered `UNCHANGED`, its value with the new key and
    time for `same_value`), or the exception it raised (a dead letter in weir)."""
    h = _Harness(cls, config)

    def one(rec):
        r = h.op.map(rec)
        if r is UNCHANGED:
            return rec
        if isinstance(r, _SameValue):
            return Record(rec.value, r.key, r.timestamp, rec.headers)
        if not isinstance(r, Record):
            raise TypeError(f"an operator must answer weir.Record, not {type(r).__name__}")
        return r

    return _each(h, records, one)


def run_filter(cls, config, records):
    """Opens a `weir.Filter`; one answer per record: True (kept), False, or the exception."""
    h = _Harness(cls, config)
    return _each(h, records, lambda rec: bool(h.op.filter(rec)))


def run_flat_map(cls, config, records):
    """Opens a `weir.FlatMap`; one answer per record: the list of records, or the exception."""
    h = _Harness(cls, config)
    return _each(h, records, lambda rec: list(h.op.flat_map(rec) or ()))


def run_select_key(cls, config, records):
    """Opens a `weir.KeySelector`; one answer per record: the key bytes, or the exception."""
    h = _Harness(cls, config)
    return _each(h, records, lambda rec: _bytes(h.op.select_key(rec)))


def run_aggregate(cls, config, records, split=None):
    """Opens a `weir.Aggregate`, adds `records` to a fresh accumulator and answers
    `get_result`. With `split = i`, the first `i` and the rest go to two accumulators that are
    then merged (as session windows merge). Accumulators pass through JSON, as in weir."""
    h = _Harness(cls, config)

    def fold(recs):
        acc = json.loads(json.dumps(h.op.create_accumulator()))
        for r in recs:
            acc = json.loads(json.dumps(h.op.add(acc, r)))
        return acc

    acc = fold(records) if split is None else json.loads(json.dumps(h.op.merge(fold(records[:split]), fold(records[split:]))))
    return h.op.get_result(acc)


def run_window_process(cls, config, window, records, key=None):
    """Opens a `weir.WindowProcess` and fires one window (`(start, end)` or a `weir.Window`)
    of `key` with `records`; answers the records it emitted."""
    h = _Harness(cls, config)
    h.host.key = _bytes(key)
    h.host.current_ts = (window.end if isinstance(window, Window) else window[1]) - 1
    w = window if isinstance(window, Window) else Window(*window)
    h.op.process_window(w, list(records))
    return h.take_output()
