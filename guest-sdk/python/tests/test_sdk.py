"""The Python SDK on CPython: typed state, timers, side outputs through `weir.testing`, and
the world adapters encoding and decoding the contract's flat batches (against stand-ins for
componentize-py's bindings, with the contract's field order)."""

import enum
import types as pytypes
from dataclasses import dataclass
from typing import Any

import pytest

import weir
from weir import _host, _worlds
from weir.testing import ProcessHarness, run_filter, run_flat_map, run_map, run_select_key


class Counter(weir.Process):
    def open(self, config):
        self.count = weir.ValueState("count")
        self.seen = weir.ListState("seen")
        self.by_action = weir.MapState("by_action")
        self.every = config.get("every", 10)

    def process(self, rec):
        e = rec.json()
        n = self.count.get(0) + 1
        self.count.set(n)
        self.seen.add(e["n"])
        self.by_action.put(e["action"], self.by_action.get(e["action"], 0) + 1)
        weir.register_event_timer(rec.timestamp + self.every)
        if e["action"] == "odd":
            weir.emit_to("odd-ones", weir.Record.from_json(e))

    def on_timer(self, timer):
        weir.emit(weir.Record.from_json({"key": weir.current_key().decode(), "count": self.count.get(), "at": timer.timestamp}))
        weir.log.info(f"fired {timer.timestamp}")


def ev(n, action="even", ts=None):
    return weir.Record.from_json({"n": n, "action": action}, timestamp=ts if ts is not None else n)


def test_state_is_per_key_and_typed():
    h = ProcessHarness(Counter, {"every": 10})
    h.process("a", ev(1, "odd"))
    h.process("a", ev(2))
    h.process("b", ev(3, "odd"))
    assert h.state("a") == {"count": 2, "seen": [1, 2], "by_action": {b"odd": 1, b"even": 1}}
    assert h.state("b") == {"count": 1, "seen": [3], "by_action": {b"odd": 1}}
    assert [r.json()["n"] for r in h.take_side_output("odd-ones")] == [1, 3]
    assert h.take_output() == []


def test_timers_fire_in_time_order_with_their_key_at_the_watermark():
    h = ProcessHarness(Counter, {"every": 10})
    h.process("b", ev(5))
    h.process("a", ev(1))
    h.process("a", ev(1))  # the same timer again: one timer
    assert h.pending_timers() == [("event-time", 11, b"a"), ("event-time", 15, b"b")]
    h.advance_watermark(12)
    assert [r.json() for r in h.take_output()] == [{"key": "a", "count": 2, "at": 11}]
    h.advance_watermark(100)
    out = h.take_output()
    assert [r.json() for r in out] == [{"key": "b", "count": 1, "at": 15}]
    assert out[0].timestamp == 15, "a record without a time takes the timer's"
    assert h.logs() == [("info", "fired 11"), ("info", "fired 15")]
    assert h.pending_timers() == []


class Clock(weir.Process):
    def process(self, rec):
        weir.register_processing_timer(weir.current_processing_time() + 1000)

    def on_timer(self, timer):
        weir.emit(weir.Record(b"tick", timestamp=timer.timestamp))
        assert timer.domain == weir.PROCESSING_TIME


def test_processing_time_is_simulated():
    h = ProcessHarness(Clock)
    h.advance_processing_time(500)
    h.process("k", weir.Record(b"x"))
    h.advance_processing_time(1499)
    assert h.take_output() == []
    h.advance_processing_time(1500)
    assert [r.timestamp for r in h.take_output()] == [1500]


class Upper(weir.Map):
    def map(self, rec):
        if rec.value == b"same":
            return weir.UNCHANGED
        if rec.value == b"bad":
            raise weir.InvalidInput("bad record")
        if rec.value == b"stamp":
            return weir.same_value(key="k", timestamp=7)
        return weir.Record(rec.value.upper(), rec.key, rec.timestamp, rec.headers)


def test_stateless_runners_answer_per_record():
    out = run_map(Upper, {}, [weir.Record(b"ab", key=b"k"), weir.Record(b"same"), weir.Record(b"bad"), weir.Record(b"stamp")])
    assert out[0] == weir.Record(b"AB", key=b"k")
    assert out[1] == weir.Record(b"same")
    assert isinstance(out[2], weir.InvalidInput) and str(out[2]) == "bad record"
    assert out[3] == weir.Record(b"stamp", key=b"k", timestamp=7)
    assert run_filter(type("F", (weir.Filter,), {"filter": lambda s, r: r.value > b"b"}), {}, [weir.Record(b"a"), weir.Record(b"c")]) == [False, True]
    fm = type("W", (weir.FlatMap,), {"flat_map": lambda s, r: (weir.Record(w) for w in r.value.split())})
    assert run_flat_map(fm, {}, [weir.Record(b"a b"), weir.Record(b"")]) == [[weir.Record(b"a"), weir.Record(b"b")], []]
    ks = type("K", (weir.KeySelector,), {"select_key": lambda s, r: r.json()["user"]})
    out = run_select_key(ks, {}, [weir.Record.from_json({"user": "u\u00e9"}), weir.Record(b"{")])
    assert out[0] == "u\u00e9".encode() and isinstance(out[1], weir.InvalidInput)


def test_state_outside_a_keyed_operator_is_refused():
    class Stateful(weir.Map):
        def map(self, rec):
            weir.ValueState("x").get()

    [err] = run_map(Stateful, {}, [weir.Record(b"x")])
    assert "no current key" in str(err)


def test_records_read_and_write_json_and_text():
    r = weir.Record.from_json({"a": "\u00e9", "b": [1, 2]}, key="k")
    assert r.value == '{"a":"\u00e9","b":[1,2]}'.encode() and r.key == b"k"
    with pytest.raises(weir.InvalidInput, match="not JSON"):
        weir.Record(b"{").json()
    with pytest.raises(weir.InvalidInput, match="not UTF-8"):
        weir.Record(b"\xff").text()
    assert weir.Record(b"x", headers=[("h", b"1"), ("h", b"2")]).header("h") == b"1"


# --- the world adapters against stand-ins for the bindings ---------------------------------


def _bindings():
    """Stand-ins for componentize-py's `wit_world.imports.types`, field for field."""
    t = pytypes.SimpleNamespace()

    def rec(name, *fields):
        setattr(t, name, dataclass(type(name, (), {"__annotations__": {f: Any for f in fields}})))

    rec("Record", "key", "value", "timestamp", "headers")
    rec("Header", "index", "name", "value")
    rec("Batch", "data", "ends", "timestamps", "flags", "headers")
    rec("Failure", "index", "error")
    rec("Mapped", "out", "same", "failed")
    rec("Filtered", "keep", "failed")
    rec("FlatMapped", "out", "counts", "failed")
    rec("Keys", "data", "ends", "failed")
    rec("Timer", "timestamp", "domain")
    for e in ("InvalidInput", "InvalidConfig", "Other"):
        rec(f"Error_{e}", "value")
    t.TimeDomain = enum.Enum("TimeDomain", ["EVENT_TIME", "PROCESSING_TIME"])
    return t


@pytest.fixture
def wit(monkeypatch):
    t = _bindings()

    class Err(Exception):
        def __init__(self, value):
            self.value = value

    ok = pytypes.SimpleNamespace
    monkeypatch.setattr(_host, "WIT", {"types": t, "context": pytypes.SimpleNamespace(enter=lambda i: i < 2)})
    monkeypatch.setattr(_host, "Err", Err)
    monkeypatch.setattr(_host, "Ok", lambda v: ok(ok=v))
    return t


def batch(t, recs):
    """A flat batch of `(key, value, timestamp, headers)`, laid out as the host lays it out."""
    data, ends, stamps, flags, headers = bytearray(), [], [], bytearray(), []
    for i, (k, v, ts, hs) in enumerate(recs):
        data += k or b""
        ends.append(len(data))
        data += v
        ends.append(len(data))
        stamps.append(ts or 0)
        flags.append((k is not None) | ((ts is not None) << 1))
        headers += [t.Header(i, n, hv) for n, hv in hs]
    return t.Batch(bytes(data), ends, stamps, bytes(flags), headers)


def test_batches_decode_into_records(wit):
    b = batch(wit, [(b"k1", b"v1", 5, [("h", b"x")]), (None, b"v2", None, []), (b"", b"", 7, [])])
    assert _worlds.records(b) == [
        weir.Record(b"v1", b"k1", 5, [("h", b"x")]),
        weir.Record(b"v2"),
        weir.Record(b"", b"", 7),
    ]


def test_map_answers_as_the_contract_says(wit):
    world = weir.map_world(Upper)()
    world.init("{}")
    b = batch(wit, [(b"k", b"ab", 1, [("h", b"x")]), (None, b"same", None, []), (None, b"bad", None, []), (None, b"stamp", None, [])])
    m = world.map(b)
    assert m.same == bytes([0, 1, 0, 0])
    assert [(f.index, f.error) for f in m.failed] == [(2, wit.Error_InvalidInput("bad record"))]
    # Two records cross back: `AB` in full, `stamp` as key and time only (flag bit 2).
    assert _worlds.records(m.out) == [weir.Record(b"AB", b"k", 1, [("h", b"x")]), weir.Record(b"", b"k", 7)]
    assert m.out.flags == bytes([3, 1 | 2 | 4])


def test_process_enters_each_record_and_stops_when_told(wit):
    seen = []

    class P(weir.Process):
        def process(self, rec):
            seen.append(rec.value)
            if rec.value == b"b":
                raise ValueError("boom")

    world = weir.process_world(P)()
    world.init("")
    out = world.process(batch(wit, [(b"k", b"a", 1, []), (b"k", b"b", 2, []), (b"k", b"c", 3, [])]))
    assert seen == [b"a", b"b"], "enter(2) said stop"
    assert out[0].ok is None and out[1].value == wit.Error_Other("ValueError: boom")


def test_init_refuses_a_bad_config(wit):
    class Strict(weir.Map):
        def open(self, config):
            if "n" not in config:
                raise weir.InvalidConfig("`n` is required")

    with pytest.raises(Exception) as e:
        weir.map_world(Strict)().init('{"m": 1}')
    assert e.value.value == wit.Error_InvalidConfig("`n` is required")


class Top(weir.WindowProcess):
    def process_window(self, window, elements):
        best = max(elements, key=lambda r: r.json()["n"])
        weir.emit(weir.Record.from_json({"start": window.start, "end": window.end, "top": best.json()["n"], "of": len(elements)}))


class Sum(weir.Aggregate):
    """Sums `n`; a sum of 100 or more answers a bare number (not a row) on purpose."""

    def create_accumulator(self):
        return 0

    def add(self, acc, rec):
        return acc + rec.json()["n"]

    def merge(self, a, b):
        return a + b

    def get_result(self, acc):
        return {"sum": acc} if acc < 100 else acc


def test_window_functions_run_natively():
    from weir.testing import run_aggregate, run_window_process


    recs = [ev(n) for n in (3, 1, 2)]
    assert run_aggregate(Sum, {}, recs) == {"sum": 6}
    assert run_aggregate(Sum, {}, recs, split=1) == {"sum": 6}
    [out] = run_window_process(Top, {}, (0, 10), recs, key="k")
    assert out.json() == {"start": 0, "end": 10, "top": 3, "of": 3} and out.timestamp == 9


def test_aggregate_and_window_worlds_answer_as_the_contract_says(wit):

    w = weir.aggregate_world(Sum)()
    w.init("{}")
    acc = w.create_accumulator()
    acc = w.add(acc, [wit.Record(None, b'{"n": 2}', None, []), wit.Record(None, b'{"n": 5}', None, [])])
    assert acc == b"7" and w.merge(acc, b"3") == b"10" and w.get_result(acc) == b'{"sum":7}'
    with pytest.raises(Exception) as e:
        w.add(acc, [wit.Record(None, b"{", None, [])])
    assert isinstance(e.value.value, wit.Error_InvalidInput)
    with pytest.raises(Exception) as e:
        w.get_result(b"100")
    assert "must answer a dict" in e.value.value.value
    emitted = []
    monkey = _host.current
    try:
        class Rec:
            def emit(self, output, rec):
                emitted.append(rec)
        _host.current = Rec()
        t = weir.window_process_world(Top)()
        t.init("{}")
        t.process_window(pytypes.SimpleNamespace(start=0, end=10), [wit.Record(b"k", b'{"n": 4}', 3, [])])
    finally:
        _host.current = monkey
    assert emitted[0].json() == {"start": 0, "end": 10, "top": 4, "of": 1}
