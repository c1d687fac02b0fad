"""The Python parser on CPython through weir.testing: the rules of the Rust one."""

import weir
from weir.testing import run_map

from parse import Parse

LINE = '{"user_id": "u1", "session_id": "s", "action": "view", "timestamp": 1735689603, "ip_address": "1.2.3.4", "user_agent": "x"%s}'


def one(config, line):
    [out] = run_map(Parse, config, [weir.Record(line.encode())])
    return out


def test_a_log_event_goes_on_as_it_is_and_stamped():
    rec = one({}, LINE % ', "metadata": {}')
    assert rec == weir.Record((LINE % ', "metadata": {}').encode())
    rec = one({"stamp": True}, LINE % "")
    assert (rec.value, rec.key, rec.timestamp) == ((LINE % "").encode(), b"u1", 1735689603000)


def test_more_than_a_log_event_is_reencoded():
    for extra in (', "extra": [1]', ', "metadata": null', ', "user_id": "u1"'):
        rec = one({"stamp": True}, LINE % extra)
        assert rec.json() == {"user_id": "u1", "session_id": "s", "action": "view", "timestamp": 1735689603, "ip_address": "1.2.3.4", "user_agent": "x"}, extra
        assert (rec.key, rec.timestamp) == (b"u1", 1735689603000)


def test_malformed_lines_name_the_reason():
    cases = {
        "not json": "not JSON",
        "[1]": "not a JSON object",
        '{"user_id": "u"}': "missing field `session_id`",
        (LINE % "").replace('"u1"', "7"): "field `user_id` must be a string",
        (LINE % "").replace("1735689603", "true"): "field `timestamp` must be an integer (epoch seconds)",
        (LINE % "").replace("1735689603", "1.5"): "field `timestamp` must be an integer (epoch seconds)",
        (LINE % "").replace("1735689603", "99999999999999999999"): "field `timestamp` must be an integer (epoch seconds)",
        LINE % ', "metadata": 3': "field `metadata` must be an object",
    }
    for line, reason in cases.items():
        err = one({}, line)
        assert isinstance(err, weir.InvalidInput) and str(err).startswith(reason), (line, err)
    err = one({"stamp": True}, (LINE % "").replace("1735689603", str(2**62)))
    assert "out of range in ms" in str(err)
