package detect

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"weir"
	"weir/weirtest"
)

func ev(user, action string, ts int64) weir.Record {
	return weir.Record{Value: []byte(fmt.Sprintf(`{"user_id":%q,"action":%q,"timestamp":%d}`, user, action, ts))}
}

func alerts(t *testing.T, h *weirtest.ProcessHarness) []map[string]any {
	var out []map[string]any
	for _, r := range h.TakeOutput("") {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func harness(t *testing.T, config any) *weirtest.ProcessHarness {
	h, err := weirtest.NewProcessHarness(&Detect{}, config)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func process(t *testing.T, h *weirtest.ProcessHarness, user, action string, ts int64) {
	if err := h.Process(user, ev(user, action, ts)); err != nil {
		t.Fatal(err)
	}
}

func TestFiveFailuresWithin300sAlertOnceThenReset(t *testing.T) {
	h := harness(t, map[string]any{})
	for _, ts := range []int64{0, 100, 200, 250} {
		process(t, h, "u", "login_failed", ts)
	}
	if a := alerts(t, h); len(a) != 0 {
		t.Fatalf("early alert %v", a)
	}
	process(t, h, "u", "login_failed", 299)
	want := []map[string]any{{"type": "security_alert", "user_id": "u", "timestamp": 299.0, "failed_attempts": 5.0}}
	if a := alerts(t, h); !reflect.DeepEqual(a, want) {
		t.Fatalf("got %v, want %v", a, want)
	}
	process(t, h, "u", "login_failed", 300)
	if a := alerts(t, h); len(a) != 0 {
		t.Fatalf("not forgotten after the alert: %v", a)
	}
}

func TestOldFailuresAndSuccessDoNotCount(t *testing.T) {
	h := harness(t, nil)
	for _, ts := range []int64{0, 10, 20, 30, 311} {
		process(t, h, "u", "login_failed", ts)
	}
	process(t, h, "u", "login_success", 312)
	for _, ts := range []int64{313, 314, 315, 316} {
		process(t, h, "u", "login_failed", ts)
	}
	if a := alerts(t, h); len(a) != 0 {
		t.Fatalf("got %v", a)
	}
}

func TestAnomalyOncePerLogin(t *testing.T) {
	h := harness(t, map[string]any{"idle_seconds": 100})
	process(t, h, "u", "login_success", 0)
	process(t, h, "u", "view", 100)
	process(t, h, "u", "download", 101)
	process(t, h, "u", "view", 500)
	want := []map[string]any{{"type": "anomaly_alert", "user_id": "u", "timestamp": 101.0, "action": "download", "idle_seconds": 101.0}}
	if a := alerts(t, h); !reflect.DeepEqual(a, want) {
		t.Fatalf("got %v, want %v", a, want)
	}
	process(t, h, "u", "login_success", 600)
	process(t, h, "u", "purchase", 701)
	if a := alerts(t, h); len(a) != 1 || a[0]["timestamp"] != 701.0 {
		t.Fatalf("got %v", a)
	}
}

func TestRecordsWithoutTheFieldsAreRefused(t *testing.T) {
	h := harness(t, nil)
	for value, reason := range map[string]string{
		`{"user_id": "u", "action": "view"}`:           "field `timestamp`: an integer is required",
		`{"user_id": "u", "action": 7, "timestamp": 1}`: "field `action`: a string is required",
		`[1]`: "not a JSON object",
	} {
		err := h.Process("u", weir.Record{Value: []byte(value)})
		if kind, msg := weir.Kind(err); err == nil || kind != weir.KindInvalidInput || msg != reason {
			t.Errorf("%s: got %v", value, err)
		}
	}
	if _, err := weirtest.NewProcessHarness(&Detect{}, map[string]any{"threshold": 0}); err == nil {
		t.Error("threshold 0 accepted")
	}
}
