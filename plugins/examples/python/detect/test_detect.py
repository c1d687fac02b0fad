"""The Python detector on CPython through weir.testing: the same cases as the Rust one."""

import weir
from weir.testing import ProcessHarness

from detect import Detect


def ev(user, action, ts):
    return weir.Record.from_json({"user_id": user, "action": action, "timestamp": ts})


def alerts(h):
    return [r.json() for r in h.take_output()]


def test_five_failures_within_300s_alert_once_then_reset():
    h = ProcessHarness(Detect, {})
    for t in (0, 100, 200, 250):
        h.process("u", ev("u", "login_failed", t))
    assert alerts(h) == []
    h.process("u", ev("u", "login_failed", 299))
    assert alerts(h) == [{"type": "security_alert", "user_id": "u", "timestamp": 299, "failed_attempts": 5}]
    h.process("u", ev("u", "login_failed", 300))
    assert alerts(h) == [], "forgotten after the alert"


def test_old_failures_and_success_do_not_count():
    h = ProcessHarness(Detect, {})
    for t in (0, 10, 20, 30):
        h.process("u", ev("u", "login_failed", t))
    h.process("u", ev("u", "login_failed", 311))
    assert alerts(h) == [], "t=0..10 are older than 300 s"
    h.process("u", ev("u", "login_success", 312))
    for t in (313, 314, 315, 316):
        h.process("u", ev("u", "login_failed", t))
    assert alerts(h) == [], "the success forgot the earlier ones"


def test_anomaly_once_per_login():
    h = ProcessHarness(Detect, {"idle_seconds": 100})
    h.process("u", ev("u", "login_success", 0))
    h.process("u", ev("u", "view", 100))
    assert alerts(h) == [], "exactly the idle time is not more than it"
    h.process("u", ev("u", "download", 101))
    h.process("u", ev("u", "view", 500))
    assert alerts(h) == [{"type": "anomaly_alert", "user_id": "u", "timestamp": 101, "action": "download", "idle_seconds": 101}]
    h.process("u", ev("u", "login_success", 600))
    h.process("u", ev("u", "purchase", 701))
    assert [a["timestamp"] for a in alerts(h)] == [701]


def test_keys_do_not_share_state():
    h = ProcessHarness(Detect, {"threshold": 2})
    h.process("a", ev("a", "login_failed", 1))
    h.process("b", ev("b", "login_failed", 2))
    assert alerts(h) == []
    h.process("a", ev("a", "login_failed", 3))
    assert [a["user_id"] for a in alerts(h)] == ["a"]


def test_records_without_the_fields_are_refused():
    h = ProcessHarness(Detect, {})
    for value, reason in ((b'{"user_id": "u", "action": "view"}', "field `timestamp`: an integer is required"),
                          (b'{"user_id": "u", "action": 7, "timestamp": 1}', "field `action`: a string is required"),
                          (b'[1]', "not a JSON object")):
        try:
            h.process("u", weir.Record(value))
        except weir.InvalidInput as e:
            assert str(e) == reason
        else:
            raise AssertionError(f"{value} was accepted")
