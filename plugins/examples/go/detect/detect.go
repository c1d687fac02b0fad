// Package detect is the log-analyzer's alert rules in Go, exactly those of the Rust `detect`
// plugin (plugins/log-analyzer/detect): five failed logins within 300 s since the last
// success or alert -> security_alert; view/purchase/download more than 86,400 s after the
// last login_success -> anomaly_alert, once per login.
package detect

import (
	"encoding/json"

	"weir"
)

func init() { weir.RegisterProcess(func() weir.Process { return &Detect{} }) }

// Detect holds the thresholds (overridable in the job's config) and the state handles.
type Detect struct {
	threshold, windowSeconds, idleSeconds int64
	fails                                 weir.ListState[int64]
	lastLogin                             weir.ValueState[int64]
	flagged                               weir.ValueState[bool]
}

// Open reads the thresholds.
func (d *Detect) Open(config map[string]any) error {
	d.threshold, d.windowSeconds, d.idleSeconds = 5, 300, 86400
	for name, field := range map[string]*int64{"threshold": &d.threshold, "window_seconds": &d.windowSeconds, "idle_seconds": &d.idleSeconds} {
		if v, ok := config[name]; ok {
			n, ok := v.(float64)
			if !ok || n != float64(int64(n)) {
				return weir.InvalidConfig("`%s` must be an integer", name)
			}
			*field = int64(n)
		}
	}
	if d.threshold < 1 {
		return weir.InvalidConfig("`threshold` must be at least 1")
	}
	d.fails, d.lastLogin, d.flagged = weir.ListState[int64]{Name: "fails"}, weir.ValueState[int64]{Name: "last_login"}, weir.ValueState[bool]{Name: "flagged"}
	return nil
}

type event struct {
	UserID    *string `json:"user_id"`
	Action    *string `json:"action"`
	Timestamp *int64  `json:"timestamp"`
}

// read is the fields the rules read; a record without them is refused with the reason.
func read(rec weir.Record) (user, action string, ts int64, err error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(rec.Value, &raw); err != nil {
		return "", "", 0, weir.InvalidInput("not a JSON object")
	}
	var e event
	// Field by field, so that the first one that is wrong is named.
	for _, f := range []struct {
		name, what string
		into       any
	}{{"user_id", "a string", &e.UserID}, {"action", "a string", &e.Action}, {"timestamp", "an integer", &e.Timestamp}} {
		v, ok := raw[f.name]
		if !ok || json.Unmarshal(v, f.into) != nil || string(v) == "null" {
			return "", "", 0, weir.InvalidInput("field `%s`: %s is required", f.name, f.what)
		}
	}
	return *e.UserID, *e.Action, *e.Timestamp, nil
}

func emit(alert map[string]any) error {
	rec, err := weir.FromJSON(alert)
	if err == nil {
		weir.Emit(rec)
	}
	return err
}

// Process applies the two rules to one event.
func (d *Detect) Process(rec weir.Record) error {
	user, action, ts, err := read(rec)
	if err != nil {
		return err
	}
	switch action {
	case "login_failed":
		fails, err := d.fails.Get()
		if err != nil {
			return err
		}
		recent := fails[:0]
		for _, t := range fails {
			if t >= ts-d.windowSeconds {
				recent = append(recent, t)
			}
		}
		recent = append(recent, ts)
		if int64(len(recent)) >= d.threshold {
			d.fails.Clear()
			return emit(map[string]any{"type": "security_alert", "user_id": user, "timestamp": ts, "failed_attempts": len(recent)})
		}
		return d.fails.Update(recent)
	case "login_success":
		d.fails.Clear()
		if err := d.lastLogin.Set(ts); err != nil {
			return err
		}
		return d.flagged.Set(false)
	case "view", "purchase", "download":
		last, ok, err := d.lastLogin.Get()
		if err != nil || !ok {
			return err
		}
		flagged, _, err := d.flagged.Get()
		if err != nil {
			return err
		}
		if idle := ts - last; idle > d.idleSeconds && !flagged {
			if err := d.flagged.Set(true); err != nil {
				return err
			}
			return emit(map[string]any{"type": "anomaly_alert", "user_id": user, "timestamp": ts, "action": action, "idle_seconds": idle})
		}
	}
	return nil
}

// OnTimer: the rules use no timers.
func (d *Detect) OnTimer(weir.Timer) error { return nil }
