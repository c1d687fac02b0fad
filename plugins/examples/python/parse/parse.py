"""The log-analyzer's parser in Python, with the rules of the Rust `parse` plugin
(plugins/log-analyzer/parse): a JSON line becomes a LogEvent.

A line that is not a JSON object, lacks one of `user_id`, `session_id`, `action`,
`timestamp`, `ip_address`, `user_agent`, or has one of the wrong type (strings, and an
integer `timestamp` in epoch seconds; a boolean is not an integer) is refused with the
reason, and weir sends it to the dead-letter output. `metadata`, when present, must be an
object or null. A line with exactly these fields goes on unchanged; one with more (extra
fields, repeated keys, `metadata: null`) is re-encoded with exactly these fields.

With `config = { stamp = true }` each LogEvent also leaves with its `user_id` as the record's
key and its `timestamp` (in ms) as its event time; a plain line still sends back no value.
"""

import json

import weir

STRINGS = ("user_id", "session_id", "action", "ip_address", "user_agent")
FIELDS = frozenset(STRINGS + ("timestamp", "metadata"))
I64 = 2**63 - 1
MS_LIMIT = I64 // 1000


class _Dup(dict):
    """An object read from JSON that had a key twice (the last one wins, as in serde_json)."""


def _pairs(pairs):
    d = dict(pairs)
    return d if len(d) == len(pairs) else _Dup(d)


def parse_line(value):
    """The LogEvent of a line (a dict with exactly the LogEvent fields), and whether the line
    is that event as it is. Raises `weir.InvalidInput` naming the first field that is wrong."""
    try:
        obj = json.loads(value, object_pairs_hook=_pairs)
    except ValueError as e:
        raise weir.InvalidInput(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise weir.InvalidInput("not a JSON object")
    for name in STRINGS:
        if name not in obj:
            raise weir.InvalidInput(f"missing field `{name}`")
        if type(obj[name]) is not str:
            raise weir.InvalidInput(f"field `{name}` must be a string")
    ts = obj.get("timestamp", weir)
    if ts is weir:
        raise weir.InvalidInput("missing field `timestamp`")
    if type(ts) is not int or not -I64 - 1 <= ts <= I64:
        raise weir.InvalidInput("field `timestamp` must be an integer (epoch seconds)")
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise weir.InvalidInput("field `metadata` must be an object")
    as_is = type(obj) is dict and obj.keys() <= FIELDS and ("metadata" not in obj or metadata is not None)
    if not as_is:
        obj = {name: obj[name] for name in ("user_id", "session_id", "action", "timestamp", "ip_address", "user_agent")}
        if metadata is not None:
            obj["metadata"] = metadata
    return obj, as_is


def event_time_ms(seconds):
    if not -MS_LIMIT <= seconds <= MS_LIMIT:
        raise weir.InvalidInput(f"field `timestamp` = {seconds} s is out of range in ms")
    return seconds * 1000


class Parse(weir.Map):
    def open(self, config):
        stamp = config.get("stamp", False)
        if not isinstance(stamp, bool):
            raise weir.InvalidConfig("`stamp` must be true or false")
        self.stamp = stamp

    def map(self, rec):
        event, as_is = parse_line(rec.value)
        if not self.stamp:
            return weir.UNCHANGED if as_is else weir.Record.from_json(event, rec.key, rec.timestamp, rec.headers)
        ms = event_time_ms(event["timestamp"])
        if as_is:
            return weir.same_value(key=event["user_id"], timestamp=ms)
        return weir.Record.from_json(event, event["user_id"], ms, rec.headers)
