// Package weir is weir's Go SDK: keyed process operators (the `process` world) written in
// Go, built into WebAssembly components with Go's wasip1 port, `wit-bindgen go` and
// wasm-tools (see build.sh).
//
// An operator implements Process and registers itself from its package's init:
//
//	func init() { weir.RegisterProcess(func() weir.Process { return &Detect{} }) }
//
// Records arrive decoded (Record.Key, .Value, .Timestamp, .Headers); state is typed JSON
// (ValueState, ListState, MapState), as the Rust, Python, JavaScript and C SDKs store it.
// An error returned from Process sends that record to the dead-letter output with its
// message as the reason (InvalidInput for a malformed record); an error from Open stops the
// job before it starts.
//
// Package weirtest runs operators natively with `go test`, without weir and without Wasm.
package weir

import (
	"encoding/json"
	"fmt"
)

// Domain is the clock of a timer.
type Domain int

const (
	// EventTime timers fire when the watermark reaches them.
	EventTime Domain = iota
	// ProcessingTime timers fire when the host clock reaches them.
	ProcessingTime
)

// Level is the severity of a log line.
type Level int

const (
	Trace Level = iota
	Debug
	Info
	Warn
	Error
)

// Header is one record header; names may repeat.
type Header struct {
	Name  string
	Value []byte
}

// Record is one record of a stream. Timestamp is event time in epoch ms.
type Record struct {
	Key          []byte
	HasKey       bool
	Value        []byte
	Timestamp    int64
	HasTimestamp bool
	Headers      []Header
}

// JSON reads the value as JSON into v; a value that is not JSON is an InvalidInput error.
func (r Record) JSON(v any) error {
	if err := json.Unmarshal(r.Value, v); err != nil {
		return InvalidInput("not JSON: %v", err)
	}
	return nil
}

// FromJSON is a record whose value is v as JSON (no key; it takes the event time of the
// record or timer being processed).
func FromJSON(v any) (Record, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Record{}, fmt.Errorf("cannot write JSON: %w", err)
	}
	return Record{Value: b}, nil
}

// Timer is a timer that fired.
type Timer struct {
	Timestamp int64
	Domain    Domain
}

// ErrorKind says what a failure means to the host.
type ErrorKind int

const (
	// KindInvalidInput: the record is malformed; it goes to dead-letter, the job goes on.
	KindInvalidInput ErrorKind = iota
	// KindInvalidConfig: from Open, the job does not start.
	KindInvalidConfig
	// KindOther: anything else; the record goes to dead-letter.
	KindOther
)

// Failure is an error with the kind the host sees. Other errors count as KindOther.
type Failure struct {
	Kind    ErrorKind
	Message string
}

func (f *Failure) Error() string { return f.Message }

// InvalidInput is the error for a malformed record.
func InvalidInput(format string, args ...any) error {
	return &Failure{KindInvalidInput, fmt.Sprintf(format, args...)}
}

// InvalidConfig is the error Open returns for a config it refuses.
func InvalidConfig(format string, args ...any) error {
	return &Failure{KindInvalidConfig, fmt.Sprintf(format, args...)}
}

// Process is a keyed process function (Flink's KeyedProcessFunction).
type Process interface {
	// Open is called once per parallel subtask with the operator's config (JSON).
	Open(config map[string]any) error
	// Process handles one record with its key's state in scope.
	Process(rec Record) error
	// OnTimer handles a timer of the current key that fired.
	OnTimer(t Timer) error
}

var newProcess func() Process

// RegisterProcess names the operator the component runs (call it from an init function).
func RegisterProcess(f func() Process) { newProcess = f }

// Registered is the registered operator's constructor (for the component's exports).
func Registered() func() Process { return newProcess }

// Host is what the SDK calls: the component's imports, or weirtest's in-memory host.
type Host interface {
	ValueGet(name string) ([]byte, bool)
	ValueSet(name string, v []byte)
	ValueClear(name string)
	ListGet(name string) [][]byte
	ListAdd(name string, v []byte)
	ListUpdate(name string, vs [][]byte)
	ListClear(name string)
	MapGet(name string, key []byte) ([]byte, bool)
	MapPut(name string, key, v []byte)
	MapRemove(name string, key []byte)
	MapContains(name string, key []byte) bool
	MapEntries(name string) [][2][]byte
	MapClear(name string)
	// Emit to the main output when output is "", else to that side output.
	Emit(output string, rec Record)
	CurrentKey() ([]byte, bool)
	CurrentWatermark() int64
	CurrentProcessingTime() int64
	SubtaskIndex() uint32
	Timer(d Domain, register bool, ts int64)
	Log(l Level, msg string)
}

var host Host

// UseHost makes h the host the SDK calls.
func UseHost(h Host) { host = h }

// ValueState is one value per key (Flink's ValueState), stored as JSON.
type ValueState[T any] struct{ Name string }

// Get is the key's value; ok is false when it has none.
func (s ValueState[T]) Get() (v T, ok bool, err error) {
	b, ok := host.ValueGet(s.Name)
	if !ok {
		return v, false, nil
	}
	err = json.Unmarshal(b, &v)
	return v, err == nil, err
}

// Set sets the key's value.
func (s ValueState[T]) Set(v T) error {
	b, err := json.Marshal(v)
	if err == nil {
		host.ValueSet(s.Name, b)
	}
	return err
}

// Clear forgets the key's value.
func (s ValueState[T]) Clear() { host.ValueClear(s.Name) }

// ListState is a list per key (Flink's ListState), each element stored as JSON.
type ListState[T any] struct{ Name string }

// Get is the key's list in insertion order.
func (s ListState[T]) Get() ([]T, error) {
	raw := host.ListGet(s.Name)
	out := make([]T, len(raw))
	for i, b := range raw {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Add appends one element.
func (s ListState[T]) Add(v T) error {
	b, err := json.Marshal(v)
	if err == nil {
		host.ListAdd(s.Name, b)
	}
	return err
}

// Update replaces the list; an empty one clears it.
func (s ListState[T]) Update(vs []T) error {
	raw := make([][]byte, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		raw[i] = b
	}
	host.ListUpdate(s.Name, raw)
	return nil
}

// Clear forgets the list.
func (s ListState[T]) Clear() { host.ListClear(s.Name) }

// MapState is a map per key (Flink's MapState): string keys, JSON values.
type MapState[V any] struct{ Name string }

// Get is the value under k; ok is false when absent.
func (s MapState[V]) Get(k string) (v V, ok bool, err error) {
	b, ok := host.MapGet(s.Name, []byte(k))
	if !ok {
		return v, false, nil
	}
	err = json.Unmarshal(b, &v)
	return v, err == nil, err
}

// Put puts v under k.
func (s MapState[V]) Put(k string, v V) error {
	b, err := json.Marshal(v)
	if err == nil {
		host.MapPut(s.Name, []byte(k), b)
	}
	return err
}

// Remove removes k.
func (s MapState[V]) Remove(k string) { host.MapRemove(s.Name, []byte(k)) }

// Contains says whether k is present.
func (s MapState[V]) Contains(k string) bool { return host.MapContains(s.Name, []byte(k)) }

// Keys are the map's keys ordered by their bytes.
func (s MapState[V]) Keys() []string {
	var out []string
	for _, e := range host.MapEntries(s.Name) {
		out = append(out, string(e[0]))
	}
	return out
}

// Clear forgets the map.
func (s MapState[V]) Clear() { host.MapClear(s.Name) }

// Emit emits a record to the main output.
func Emit(rec Record) { host.Emit("", rec) }

// EmitTo emits a record to a side output (lowercase kebab or snake case).
func EmitTo(output string, rec Record) { host.Emit(output, rec) }

// CurrentKey is the key of the record or timer being processed.
func CurrentKey() []byte { k, _ := host.CurrentKey(); return k }

// CurrentWatermark is the operator's event-time watermark in epoch ms.
func CurrentWatermark() int64 { return host.CurrentWatermark() }

// CurrentProcessingTime is the host's processing-time clock in epoch ms.
func CurrentProcessingTime() int64 { return host.CurrentProcessingTime() }

// SubtaskIndex is this parallel subtask's index, from 0.
func SubtaskIndex() uint32 { return host.SubtaskIndex() }

// RegisterEventTimer calls OnTimer when the watermark reaches ts.
func RegisterEventTimer(ts int64) { host.Timer(EventTime, true, ts) }

// DeleteEventTimer deletes an event-time timer.
func DeleteEventTimer(ts int64) { host.Timer(EventTime, false, ts) }

// RegisterProcessingTimer calls OnTimer when processing time reaches ts.
func RegisterProcessingTimer(ts int64) { host.Timer(ProcessingTime, true, ts) }

// DeleteProcessingTimer deletes a processing-time timer.
func DeleteProcessingTimer(ts int64) { host.Timer(ProcessingTime, false, ts) }

// Logf writes a log line to the host, tagged with the operator's name.
func Logf(l Level, format string, args ...any) { host.Log(l, fmt.Sprintf(format, args...)) }

// BatchHeader is a header of record Index of a flat batch.
type BatchHeader struct {
	Index uint32
	Name  string
	Value []byte
}

// Records decodes the contract's flat batch (see `batch` in wit/weir.wit).
func Records(data []byte, ends []uint32, timestamps []int64, flags []byte, headers []BatchHeader) []Record {
	out := make([]Record, len(flags))
	start := uint32(0)
	for i, f := range flags {
		keyEnd, valueEnd := ends[2*i], ends[2*i+1]
		r := Record{Value: data[keyEnd:valueEnd]}
		if f&1 != 0 {
			r.Key, r.HasKey = data[start:keyEnd], true
		}
		if f&2 != 0 {
			r.Timestamp, r.HasTimestamp = timestamps[i], true
		}
		out[i] = r
		start = valueEnd
	}
	for _, h := range headers {
		out[h.Index].Headers = append(out[h.Index].Headers, Header{h.Name, h.Value})
	}
	return out
}

// Kind is how the host sees err: a Failure's kind, else KindOther.
func Kind(err error) (ErrorKind, string) {
	if f, ok := err.(*Failure); ok {
		return f.Kind, f.Message
	}
	return KindOther, err.Error()
}
