// Package weirtest runs weir operators natively with `go test`, without weir and without
// Wasm: keyed state per key, timers fired by the watermark or a simulated processing-time
// clock in time order, side outputs and log lines (the abilities of the Rust SDK's
// `weir_sdk::testing`).
package weirtest

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"

	"weir"
)

type timer struct {
	domain weir.Domain
	ts     int64
	key    string
}

// Host is the in-memory host.
type Host struct {
	key            []byte
	hasKey         bool
	watermark      int64
	processingTime int64
	currentTs      int64
	hasTs          bool
	values         map[string][]byte
	lists          map[string][][]byte
	maps           map[string]map[string][]byte
	timers         map[timer]bool
	outputs        map[string][]weir.Record
	logs           []string
}

func (h *Host) k(name string) string {
	if !h.hasKey {
		panic("weir: keyed state outside a keyed call (no current key)")
	}
	return string(h.key) + "\x00" + name
}

func (h *Host) ValueGet(n string) ([]byte, bool) { v, ok := h.values[h.k(n)]; return v, ok }
func (h *Host) ValueSet(n string, v []byte)      { h.values[h.k(n)] = append([]byte(nil), v...) }
func (h *Host) ValueClear(n string)              { delete(h.values, h.k(n)) }
func (h *Host) ListGet(n string) [][]byte        { return append([][]byte(nil), h.lists[h.k(n)]...) }
func (h *Host) ListAdd(n string, v []byte)       { h.lists[h.k(n)] = append(h.lists[h.k(n)], v) }
func (h *Host) ListUpdate(n string, vs [][]byte) {
	if len(vs) == 0 {
		delete(h.lists, h.k(n))
		return
	}
	h.lists[h.k(n)] = append([][]byte(nil), vs...)
}
func (h *Host) ListClear(n string) { delete(h.lists, h.k(n)) }
func (h *Host) MapGet(n string, key []byte) ([]byte, bool) {
	v, ok := h.maps[h.k(n)][string(key)]
	return v, ok
}
func (h *Host) MapPut(n string, key, v []byte) {
	if h.maps[h.k(n)] == nil {
		h.maps[h.k(n)] = map[string][]byte{}
	}
	h.maps[h.k(n)][string(key)] = v
}
func (h *Host) MapRemove(n string, key []byte) { delete(h.maps[h.k(n)], string(key)) }
func (h *Host) MapContains(n string, key []byte) bool {
	_, ok := h.maps[h.k(n)][string(key)]
	return ok
}
func (h *Host) MapEntries(n string) [][2][]byte {
	var out [][2][]byte
	for k, v := range h.maps[h.k(n)] {
		out = append(out, [2][]byte{[]byte(k), v})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i][0], out[j][0]) < 0 })
	return out
}
func (h *Host) MapClear(n string) { delete(h.maps, h.k(n)) }
func (h *Host) Emit(output string, rec weir.Record) {
	if !rec.HasTimestamp && h.hasTs {
		rec.Timestamp, rec.HasTimestamp = h.currentTs, true
	}
	h.outputs[output] = append(h.outputs[output], rec)
}
func (h *Host) CurrentKey() ([]byte, bool)   { return h.key, h.hasKey }
func (h *Host) CurrentWatermark() int64      { return h.watermark }
func (h *Host) CurrentProcessingTime() int64 { return h.processingTime }
func (h *Host) SubtaskIndex() uint32         { return 0 }
func (h *Host) Timer(d weir.Domain, register bool, ts int64) {
	if !h.hasKey {
		panic("weir: timers outside a keyed call (no current key)")
	}
	t := timer{d, ts, string(h.key)}
	if register {
		h.timers[t] = true
	} else {
		delete(h.timers, t)
	}
}
func (h *Host) Log(l weir.Level, msg string) { h.logs = append(h.logs, msg) }

// ProcessHarness drives a process operator on an in-memory host.
type ProcessHarness struct {
	Host *Host
	Op   weir.Process
}

// NewProcessHarness opens op with config (any value that encodes to a JSON object).
func NewProcessHarness(op weir.Process, config any) (*ProcessHarness, error) {
	h := &Host{watermark: math.MinInt64, values: map[string][]byte{}, lists: map[string][][]byte{}, maps: map[string]map[string][]byte{}, timers: map[timer]bool{}, outputs: map[string][]weir.Record{}}
	weir.UseHost(h)
	b, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	if c == nil {
		c = map[string]any{}
	}
	return &ProcessHarness{h, op}, op.Open(c)
}

// Process handles rec under key, with that key's state in scope.
func (p *ProcessHarness) Process(key string, rec weir.Record) error {
	weir.UseHost(p.Host)
	p.Host.key, p.Host.hasKey = []byte(key), true
	p.Host.currentTs, p.Host.hasTs = rec.Timestamp, rec.HasTimestamp
	return p.Op.Process(rec)
}

// AdvanceWatermark moves the watermark, firing due event-time timers in time order.
func (p *ProcessHarness) AdvanceWatermark(wm int64) error {
	if wm > p.Host.watermark {
		p.Host.watermark = wm
	}
	return p.fire(weir.EventTime, wm)
}

// AdvanceProcessingTime moves the simulated clock, firing due processing-time timers.
func (p *ProcessHarness) AdvanceProcessingTime(now int64) error {
	if now > p.Host.processingTime {
		p.Host.processingTime = now
	}
	return p.fire(weir.ProcessingTime, now)
}

func (p *ProcessHarness) fire(d weir.Domain, upto int64) error {
	weir.UseHost(p.Host)
	for {
		var due []timer
		for t := range p.Host.timers {
			if t.domain == d && t.ts <= upto {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			return nil
		}
		sort.Slice(due, func(i, j int) bool { return due[i].ts < due[j].ts || due[i].ts == due[j].ts && due[i].key < due[j].key })
		t := due[0]
		delete(p.Host.timers, t)
		p.Host.key, p.Host.hasKey, p.Host.currentTs, p.Host.hasTs = []byte(t.key), true, t.ts, true
		if err := p.Op.OnTimer(weir.Timer{Timestamp: t.ts, Domain: d}); err != nil {
			return err
		}
	}
}

// TakeOutput is what was emitted to output ("" for the main one) since the last take.
func (p *ProcessHarness) TakeOutput(output string) []weir.Record {
	out := p.Host.outputs[output]
	delete(p.Host.outputs, output)
	return out
}

// PendingTimers is how many timers have not fired.
func (p *ProcessHarness) PendingTimers() int { return len(p.Host.timers) }

// Logs are the log lines so far.
func (p *ProcessHarness) Logs() []string { return p.Host.logs }
