"""The log-analyzer's alert rules in Python, exactly those of the Rust `detect` plugin
(plugins/log-analyzer/detect):

- security_alert: on `login_failed`, keep the failed-login timestamps no older than
  `window_seconds` (300) before this event since the last `login_success` or alert; at
  `threshold` (5) of them, emit the alert and forget them. `login_success` forgets them too.
- anomaly_alert: on `view`, `purchase` or `download` more than `idle_seconds` (86,400) after
  the user's last `login_success`, emit the alert once per login.
"""

import weir


def event(rec):
    """The fields the rules read; a record without them is refused with the reason."""
    e = rec.json()
    if not isinstance(e, dict):
        raise weir.InvalidInput("not a JSON object")
    for name, kind, what in (("user_id", str, "a string"), ("action", str, "a string"), ("timestamp", int, "an integer")):
        if type(e.get(name)) is not kind:
            raise weir.InvalidInput(f"field `{name}`: {what} is required")
    return e


class Detect(weir.Process):
    def open(self, config):
        self.threshold = int(config.get("threshold", 5))
        self.window_seconds = int(config.get("window_seconds", 300))
        self.idle_seconds = int(config.get("idle_seconds", 86400))
        if self.threshold < 1:
            raise weir.InvalidConfig("`threshold` must be at least 1")
        self.fails = weir.ListState("fails")
        self.last_login = weir.ValueState("last_login")
        self.flagged = weir.ValueState("flagged")

    def process(self, rec):
        e = event(rec)
        action, ts = e["action"], e["timestamp"]
        if action == "login_failed":
            recent = [t for t in self.fails.get() if t >= ts - self.window_seconds]
            recent.append(ts)
            if len(recent) >= self.threshold:
                self.fails.clear()
                weir.emit(weir.Record.from_json(
                    {"type": "security_alert", "user_id": e["user_id"], "timestamp": ts, "failed_attempts": len(recent)}
                ))
            else:
                self.fails.update(recent)
        elif action == "login_success":
            self.fails.clear()
            self.last_login.set(ts)
            self.flagged.set(False)
        elif action in ("view", "purchase", "download"):
            last = self.last_login.get()
            if last is not None:
                idle = ts - last
                if idle > self.idle_seconds and not self.flagged.get(False):
                    self.flagged.set(True)
                    weir.emit(weir.Record.from_json(
                        {"type": "anomaly_alert", "user_id": e["user_id"], "timestamp": ts, "action": action, "idle_seconds": idle}
                    ))
