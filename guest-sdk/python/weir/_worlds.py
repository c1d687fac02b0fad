"""The worlds componentize-py exports, made from an operator class: the flat batches of the
contract decoded into `Record`s, the answers encoded back, exceptions turned into the
contract's errors. Only used inside a component (the bindings come from `_host.WIT`)."""

import json

from . import _host
from . import EVENT_TIME, PROCESSING_TIME, UNCHANGED, InvalidConfig, InvalidInput, Record, Timer, Window, _bytes, _dumps, _SameValue


def _types():
    return _host.WIT["types"]


def _error(types, e):
    """The contract's error for an exception raised by the operator."""
    if isinstance(e, InvalidInput):
        return types.Error_InvalidInput(str(e))
    if isinstance(e, InvalidConfig):
        return types.Error_InvalidConfig(str(e))
    return types.Error_Other(f"{type(e).__name__}: {e}")


def records(batch):
    """The records of a flat batch, in order."""
    data, ends, stamps, flags = batch.data, batch.ends, batch.timestamps, batch.flags
    headers = {}
    for h in batch.headers:
        headers.setdefault(h.index, []).append((h.name, h.value))
    out = []
    start = 0
    for i in range(len(flags)):
        f = flags[i]
        key_end, value_end = ends[2 * i], ends[2 * i + 1]
        out.append(
            Record(
                data[key_end:value_end],
                data[start:key_end] if f & 1 else None,
                stamps[i] if f & 2 else None,
                headers.get(i),
            )
        )
        start = value_end
    return out


class _Builder:
    """A flat batch being written record by record."""

    def __init__(self):
        self.data = bytearray()
        self.ends = []
        self.stamps = []
        self.flags = bytearray()
        self.headers = []

    def add(self, key, value, timestamp, headers=(), same=False):
        if key is not None:
            self.data += key
        self.ends.append(len(self.data))
        if value:
            self.data += value
        self.ends.append(len(self.data))
        self.stamps.append(timestamp if timestamp is not None else 0)
        self.flags.append((key is not None) | ((timestamp is not None) << 1) | (same << 2))
        if headers:
            i = len(self.flags) - 1
            self.headers.extend(_types().Header(i, n, bytes(v)) for n, v in headers)

    def add_record(self, rec):
        if not isinstance(rec, Record):
            raise TypeError(f"an operator must answer weir.Record, not {type(rec).__name__}")
        self.add(rec.key, rec.value, rec.timestamp, rec.headers)

    def batch(self, types):
        return types.Batch(bytes(self.data), self.ends, self.stamps, bytes(self.flags), self.headers)


def _world(cls, methods):
    """A `WitWorld` class with `init` and `methods`, which reach the operator `cls` opened."""
    holder = {}

    def init(self, config):
        Err = _host.Err
        types = _types()
        try:
            op = cls()
            op.open(json.loads(config) if config else {})
        except Exception as e:
            if isinstance(e, InvalidConfig):
                raise Err(types.Error_InvalidConfig(str(e)))
            raise Err(types.Error_InvalidConfig(f"{type(e).__name__}: {e}"))
        holder["op"] = op

    body = {"init": init}
    for name, make in methods.items():
        body[name] = make(holder)
    return type("WitWorld", (), body)


def map_world(cls):
    """The `map` world of a `weir.Map` class."""

    def make(holder):
        def map(self, batch):
            types = _types()
            op = holder["op"]
            out, same, failed = _Builder(), bytearray(), []
            for i, rec in enumerate(records(batch)):
                try:
                    r = op.map(rec)
                except Exception as e:
                    failed.append(types.Failure(i, _error(types, e)))
                    same.append(0)
                    continue
                if r is UNCHANGED:
                    same.append(1)
                    continue
                same.append(0)
                if isinstance(r, _SameValue):
                    out.add(r.key, b"", r.timestamp, same=True)
                else:
                    try:
                        out.add_record(r)
                    except Exception as e:
                        failed.append(types.Failure(i, _error(types, e)))
            return types.Mapped(out.batch(types), bytes(same), failed)

        return map

    return _world(cls, {"map": make})


def filter_world(cls):
    """The `filter` world of a `weir.Filter` class."""

    def make(holder):
        def filter(self, batch):
            types = _types()
            op = holder["op"]
            keep, failed = bytearray(), []
            for i, rec in enumerate(records(batch)):
                try:
                    keep.append(1 if op.filter(rec) else 0)
                except Exception as e:
                    keep.append(0)
                    failed.append(types.Failure(i, _error(types, e)))
            return types.Filtered(bytes(keep), failed)

        return filter

    return _world(cls, {"filter": make})


def flat_map_world(cls):
    """The `flat-map` world of a `weir.FlatMap` class."""

    def make(holder):
        def flat_map(self, batch):
            types = _types()
            op = holder["op"]
            out, counts, failed = _Builder(), [], []
            for i, rec in enumerate(records(batch)):
                try:
                    rs = list(op.flat_map(rec) or ())
                    for r in rs:
                        if not isinstance(r, Record):
                            raise TypeError(f"flat_map must yield weir.Record, not {type(r).__name__}")
                except Exception as e:
                    counts.append(0)
                    failed.append(types.Failure(i, _error(types, e)))
                    continue
                for r in rs:
                    out.add_record(r)
                counts.append(len(rs))
            return types.FlatMapped(out.batch(types), counts, failed)

        return flat_map

    return _world(cls, {"flat_map": make})


def key_selector_world(cls):
    """The `key-selector` world of a `weir.KeySelector` class."""
    def make(holder):
        def select_key(self, batch):
            types = _types()
            op = holder["op"]
            data, ends, failed = bytearray(), [], []
            for i, rec in enumerate(records(batch)):
                try:
                    data += _bytes(op.select_key(rec))
                except Exception as e:
                    failed.append(types.Failure(i, _error(types, e)))
                ends.append(len(data))
            return types.Keys(bytes(data), ends, failed)

        return select_key

    return _world(cls, {"select_key": make})


def process_world(cls):
    """The `process` world of a `weir.Process` class."""

    def make_process(holder):
        def process(self, batch):
            types, Err = _types(), _host.Err
            ok = _host.Ok(None)
            op = holder["op"]
            enter = _host.WIT["context"].enter
            results = []
            for i, rec in enumerate(records(batch)):
                if not enter(i):
                    break
                try:
                    op.process(rec)
                    results.append(ok)
                except Exception as e:
                    results.append(Err(_error(types, e)))
            return results

        return process

    def make_on_timer(holder):
        def on_timer(self, fired):
            Err = _host.Err
            types = _types()
            op = holder["op"]
            for t in fired:
                domain = EVENT_TIME if t.domain == types.TimeDomain.EVENT_TIME else PROCESSING_TIME
                try:
                    op.on_timer(Timer(t.timestamp, domain))
                except Exception as e:
                    raise Err(_error(types, e))

        return on_timer

    return _world(cls, {"process": make_process, "on_timer": make_on_timer})


def _record(r):
    """A `weir.Record` of the contract's `record` (aggregate and window-process calls)."""
    return Record(r.value, r.key, r.timestamp, r.headers)


def _result(call):
    """Runs `call`; its value, or the contract's error raised as componentize-py's `Err`."""
    try:
        return call()
    except Exception as e:
        raise _host.Err(_error(_types(), e))


def aggregate_world(cls):
    """The `aggregate` world of a `weir.Aggregate` class (accumulators stored as JSON)."""

    def make_create(holder):
        def create_accumulator(self):
            return _dumps(holder["op"].create_accumulator())

        return create_accumulator

    def make_add(holder):
        def add(self, accumulator, batch):
            def go():
                op = holder["op"]
                acc = json.loads(accumulator)
                for r in batch:
                    acc = op.add(acc, _record(r))
                return _dumps(acc)

            return _result(go)

        return add

    def make_merge(holder):
        def merge(self, a, b):
            return _result(lambda: _dumps(holder["op"].merge(json.loads(a), json.loads(b))))

        return merge

    def make_get_result(holder):
        def get_result(self, accumulator):
            def go():
                out = holder["op"].get_result(json.loads(accumulator))
                if not isinstance(out, dict):
                    raise TypeError(f"get_result must answer a dict (its fields join the result row), not {type(out).__name__}")
                return _dumps(out)

            return _result(go)

        return get_result

    return _world(
        cls, {"create_accumulator": make_create, "add": make_add, "merge": make_merge, "get_result": make_get_result}
    )


def window_process_world(cls):
    """The `window-process` world of a `weir.WindowProcess` class."""

    def make(holder):
        def process_window(self, window, elements):
            return _result(lambda: holder["op"].process_window(Window(window.start, window.end), [_record(r) for r in elements]))

        return process_window

    return _world(cls, {"process_window": make})
