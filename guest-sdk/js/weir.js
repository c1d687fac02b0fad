// weir's JavaScript SDK: operators for weir written in JavaScript, built into WebAssembly
// components with componentize-js.
//
// An operator is a class with the methods of its kind (`open(config)`, then `map(rec)`,
// `filter(rec)`, `flatMap(rec)`, `selectKey(rec)`, or `process(rec)` and `onTimer(timer)`).
// The component's entry module imports weir's host interfaces and exports the world made
// from the class:
//
//   import * as log from 'weir:plugin/log@0.6.0';
//   ...
//   import { processWorld } from './weir.js';
//   import { Detect } from './detect.js';
//   export const { init, process, onTimer } = processWorld(Detect, { log, context, output, state, timers });
//
// Records arrive decoded (`rec.key`, `rec.value` as Uint8Array, `rec.timestamp` as a Number
// of epoch ms or undefined, `rec.headers` as [name, Uint8Array] pairs; `rec.json()`,
// `rec.text()`). State is typed JSON (`ValueState`, `ListState`, `MapState`), as the Rust
// and Python SDKs store it. Throwing `InvalidInput` (or anything) from a record method sends
// that record to the dead-letter output with the message as its reason; throwing
// `InvalidConfig` from `open` stops the job before it starts.
//
// `testing.js` runs operators on Node.js without weir and without Wasm.

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The two clocks of `timer.domain`. */
export const EVENT_TIME = 'event-time';
export const PROCESSING_TIME = 'processing-time';

/** Bytes of a key or value given as a Uint8Array or text (undefined stays undefined). */
export function bytes(b) {
  if (b === undefined || b === null) return undefined;
  // Not `instanceof`: the bindings' arrays may come from another realm.
  if (ArrayBuffer.isView(b)) return b instanceof Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (typeof b === 'string') return encoder.encode(b);
  throw new TypeError(`expected a Uint8Array or a string, got ${typeof b}`);
}

function dumps(v) {
  const text = JSON.stringify(v);
  if (text === undefined) throw new TypeError(`${typeof v} has no JSON form`);
  return encoder.encode(text);
}

function loads(b) {
  return JSON.parse(decoder.decode(b));
}

/** The record is malformed for this operator: a dead letter with this message as reason. */
export class InvalidInput extends Error {}

/** Thrown by `open`: the operator's `config` is not acceptable; the job does not start. */
export class InvalidConfig extends Error {}

/** One record of a stream. */
export class Record {
  constructor(value = new Uint8Array(), { key, timestamp, headers } = {}) {
    this.value = bytes(value);
    this.key = bytes(key);
    this.timestamp = timestamp;
    this.headers = headers ?? [];
  }

  /** A record whose value is `obj` as JSON. Without a timestamp, an emitted record takes the
   * event time of the record (or timer) being processed. */
  static fromJson(obj, options = {}) {
    return new Record(dumps(obj), options);
  }

  /** The value read as JSON; one that is not JSON throws `InvalidInput`. */
  json() {
    try {
      return loads(this.value);
    } catch (e) {
      throw new InvalidInput(`not JSON: ${e.message}`);
    }
  }

  /** The value as UTF-8 text. */
  text() {
    try {
      return decoder.decode(this.value);
    } catch (e) {
      throw new InvalidInput(`not UTF-8: ${e.message}`);
    }
  }

  /** The value of the first header called `name`, or undefined. */
  header(name) {
    const h = this.headers.find(([n]) => n === name);
    return h && h[1];
  }
}

/** What `map` returns for a record that goes on as it came (nothing crosses back). */
export const UNCHANGED = Object.freeze({ unchanged: true });

/** What `map` returns for a record that keeps its value and headers and takes this key and
 * event time: only those cross back to the host. */
export function sameValue({ key, timestamp } = {}) {
  return { sameValue: true, key: bytes(key), timestamp };
}

// --- where the calls go: the component's imports, or the test host ---------------------------

let host = null;

/** Makes `h` the host the SDK calls (the world functions do this with the imports; the test
 * harness with its in-memory host). */
export function useHost(h) {
  host = h;
}

function need(name) {
  const m = host && host[name];
  if (!m) throw new Error(`weir: \`${name}\` is not available to this kind of operator (only to process operators)`);
  return m;
}

/** One value per key (Flink's ValueState), stored as JSON. */
export class ValueState {
  constructor(name) { this.name = name; }
  get(dflt = undefined) {
    const b = need('state').valueGet(this.name);
    return b === undefined ? dflt : loads(b);
  }
  set(v) { need('state').valueSet(this.name, dumps(v)); }
  clear() { need('state').valueClear(this.name); }
}

/** A list per key (Flink's ListState), each element stored as JSON. */
export class ListState {
  constructor(name) { this.name = name; }
  get() { return need('state').listGet(this.name).map(loads); }
  add(v) { need('state').listAdd(this.name, dumps(v)); }
  update(vs) { need('state').listUpdate(this.name, vs.map(dumps)); }
  clear() { need('state').listClear(this.name); }
}

/** A map per key (Flink's MapState): keys are text or bytes, values JSON. */
export class MapState {
  constructor(name) { this.name = name; }
  get(k, dflt = undefined) {
    const b = need('state').mapGet(this.name, bytes(k));
    return b === undefined ? dflt : loads(b);
  }
  put(k, v) { need('state').mapPut(this.name, bytes(k), dumps(v)); }
  remove(k) { need('state').mapRemove(this.name, bytes(k)); }
  contains(k) { return need('state').mapContains(this.name, bytes(k)); }
  /** [key bytes, value] pairs ordered by key bytes. */
  entries() { return need('state').mapEntries(this.name).map(([k, v]) => [k, loads(v)]); }
  clear() { need('state').mapClear(this.name); }
}

function wire(rec) {
  if (!(rec instanceof Record)) throw new TypeError('emit takes a weir Record');
  return { key: rec.key, value: rec.value, timestamp: rec.timestamp === undefined ? undefined : BigInt(rec.timestamp), headers: rec.headers };
}

/** Emits a record to the operator's main output. */
export function emit(rec) { need('output').emit(wire(rec)); }
/** Emits a record to side output `name` (lowercase kebab or snake case). */
export function emitTo(name, rec) { need('output').emitTo(name, wire(rec)); }
/** The key of the record or timer being processed (Uint8Array), or undefined. */
export function currentKey() { return need('context').currentKey(); }
/** The operator's event-time watermark in epoch ms (a Number) as the record arrived. */
export function currentWatermark() { return Number(need('context').currentWatermark()); }
/** The host's processing-time clock in epoch ms. */
export function currentProcessingTime() { return Number(need('context').currentProcessingTime()); }
/** This parallel subtask's index, from 0. */
export function subtaskIndex() { return need('context').subtaskIndex(); }
/** Calls `onTimer` when the watermark reaches `ts` (epoch ms). */
export function registerEventTimer(ts) { need('timers').registerEventTime(BigInt(ts)); }
export function deleteEventTimer(ts) { need('timers').deleteEventTime(BigInt(ts)); }
/** Calls `onTimer` when processing time reaches `ts` (epoch ms). */
export function registerProcessingTimer(ts) { need('timers').registerProcessingTime(BigInt(ts)); }
export function deleteProcessingTimer(ts) { need('timers').deleteProcessingTime(BigInt(ts)); }

/** `log.info('...')`: lines to the host, tagged with the operator's name. */
export const log = Object.fromEntries(
  ['trace', 'debug', 'info', 'warn', 'error'].map((level) => [level, (msg) => need('log').log(level, String(msg))]),
);

// --- the worlds, made from an operator class -------------------------------------------------

/** The records of a flat batch, in order. */
export function records(batch) {
  const { data, ends, timestamps, flags } = batch;
  const headers = new Map();
  for (const h of batch.headers) {
    if (!headers.has(h.index)) headers.set(h.index, []);
    headers.get(h.index).push([h.name, h.value]);
  }
  const out = new Array(flags.length);
  let start = 0;
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i];
    const keyEnd = ends[2 * i];
    const valueEnd = ends[2 * i + 1];
    const r = new Record(data.subarray(keyEnd, valueEnd));
    if (f & 1) r.key = data.subarray(start, keyEnd);
    if (f & 2) r.timestamp = Number(timestamps[i]);
    r.headers = headers.get(i) ?? [];
    out[i] = r;
    start = valueEnd;
  }
  return out;
}

/** A flat batch written record by record. */
class Builder {
  constructor() {
    this.parts = [];
    this.size = 0;
    this.ends = [];
    this.stamps = [];
    this.flags = [];
    this.headers = [];
  }

  add(key, value, timestamp, headers, same = false) {
    if (key !== undefined) { this.parts.push(key); this.size += key.length; }
    this.ends.push(this.size);
    if (value && value.length) { this.parts.push(value); this.size += value.length; }
    this.ends.push(this.size);
    this.stamps.push(timestamp === undefined ? 0n : BigInt(timestamp));
    this.flags.push((key !== undefined ? 1 : 0) | (timestamp !== undefined ? 2 : 0) | (same ? 4 : 0));
    const index = this.flags.length - 1;
    for (const [name, v] of headers ?? []) this.headers.push({ index, name, value: bytes(v) });
  }

  addRecord(rec) {
    if (!(rec instanceof Record)) throw new TypeError('an operator must answer a weir Record');
    this.add(rec.key, rec.value, rec.timestamp, rec.headers);
  }

  batch() {
    const data = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) { data.set(p, at); at += p.length; }
    return { data, ends: new Uint32Array(this.ends), timestamps: new BigInt64Array(this.stamps), flags: new Uint8Array(this.flags), headers: this.headers };
  }
}

/** The contract's error for what an operator threw. */
export function toError(e) {
  if (e instanceof InvalidInput) return { tag: 'invalid-input', val: e.message };
  if (e instanceof InvalidConfig) return { tag: 'invalid-config', val: e.message };
  if (e instanceof Error) return { tag: 'other', val: `${e.name}: ${e.message}` };
  return { tag: 'other', val: String(e) };
}

/** An error as a `result`'s err: componentize-js takes a thrown value's `payload`. */
function fail(error) {
  const e = new Error(error.val);
  e.payload = error;
  return e;
}

function world(Cls, imports, methods) {
  let op = null;
  const out = {
    init(config) {
      useHost(imports);
      try {
        op = new Cls();
        op.open?.(config ? JSON.parse(config) : {});
      } catch (e) {
        const err = toError(e);
        throw fail({ tag: 'invalid-config', val: err.val });
      }
    },
  };
  for (const [name, make] of Object.entries(methods)) out[name] = make(() => op);
  return out;
}

/** The `map` world of a class with `map(rec)` (answering a Record, `UNCHANGED` or `sameValue`). */
export function mapWorld(Cls, imports) {
  return world(Cls, imports, {
    map: (op) => (batch) => {
      const out = new Builder();
      const recs = records(batch);
      const same = new Uint8Array(recs.length);
      const failed = [];
      recs.forEach((rec, index) => {
        try {
          const r = op().map(rec);
          if (r === UNCHANGED) same[index] = 1;
          else if (r && r.sameValue) out.add(r.key, undefined, r.timestamp, [], true);
          else out.addRecord(r);
        } catch (e) {
          failed.push({ index, error: toError(e) });
        }
      });
      return { out: out.batch(), same, failed };
    },
  });
}

/** The `filter` world of a class with `filter(rec)` (truthy keeps the record). */
export function filterWorld(Cls, imports) {
  return world(Cls, imports, {
    filter: (op) => (batch) => {
      const recs = records(batch);
      const keep = new Uint8Array(recs.length);
      const failed = [];
      recs.forEach((rec, index) => {
        try {
          keep[index] = op().filter(rec) ? 1 : 0;
        } catch (e) {
          failed.push({ index, error: toError(e) });
        }
      });
      return { keep, failed };
    },
  });
}

/** The `flat-map` world of a class with `flatMap(rec)` (an iterable of Records). */
export function flatMapWorld(Cls, imports) {
  return world(Cls, imports, {
    flatMap: (op) => (batch) => {
      const out = new Builder();
      const recs = records(batch);
      const counts = new Uint32Array(recs.length);
      const failed = [];
      recs.forEach((rec, index) => {
        try {
          const rs = [...(op().flatMap(rec) ?? [])];
          for (const r of rs) if (!(r instanceof Record)) throw new TypeError('flatMap must give weir Records');
          rs.forEach((r) => out.addRecord(r));
          counts[index] = rs.length;
        } catch (e) {
          failed.push({ index, error: toError(e) });
        }
      });
      return { out: out.batch(), counts, failed };
    },
  });
}

/** The `key-selector` world of a class with `selectKey(rec)` (a Uint8Array or text). */
export function keySelectorWorld(Cls, imports) {
  return world(Cls, imports, {
    selectKey: (op) => (batch) => {
      const recs = records(batch);
      const parts = [];
      const ends = new Uint32Array(recs.length);
      const failed = [];
      let size = 0;
      recs.forEach((rec, index) => {
        try {
          const k = bytes(op().selectKey(rec));
          parts.push(k);
          size += k.length;
        } catch (e) {
          failed.push({ index, error: toError(e) });
        }
        ends[index] = size;
      });
      const data = new Uint8Array(size);
      let at = 0;
      for (const p of parts) { data.set(p, at); at += p.length; }
      return { data, ends, failed };
    },
  });
}

/** The `process` world of a class with `process(rec)` and `onTimer(timer)`. */
export function processWorld(Cls, imports) {
  return world(Cls, imports, {
    process: (op) => (batch) => {
      const enter = imports.context.enter;
      const results = [];
      const recs = records(batch);
      for (let i = 0; i < recs.length; i++) {
        if (!enter(i)) break;
        try {
          op().process(recs[i]);
          results.push({ tag: 'ok', val: undefined });
        } catch (e) {
          results.push({ tag: 'err', val: toError(e) });
        }
      }
      return results;
    },
    onTimer: (op) => (fired) => {
      for (const t of fired) {
        try {
          op().onTimer?.({ timestamp: Number(t.timestamp), domain: t.domain });
        } catch (e) {
          throw fail(toError(e));
        }
      }
    },
  });
}

/** A record of the contract's `record` type (aggregate and window-process calls). */
function fromWire(r) {
  return new Record(r.value, { key: r.key, timestamp: r.timestamp === undefined ? undefined : Number(r.timestamp), headers: r.headers ?? [] });
}

/** Runs `call`; its value, or the contract's error thrown as a `result`'s err. */
function result(call) {
  try {
    return call();
  } catch (e) {
    throw fail(toError(e));
  }
}

/** The `aggregate` world of a class with `createAccumulator()`, `add(acc, rec)` (the new
 * accumulator), `merge(a, b)` and `getResult(acc)` (an object whose fields join the window's
 * result row). Accumulators are stored as JSON. */
export function aggregateWorld(Cls, imports) {
  return world(Cls, imports, {
    createAccumulator: (op) => () => dumps(op().createAccumulator()),
    add: (op) => (accumulator, batch) =>
      result(() => {
        let acc = loads(accumulator);
        for (const r of batch) acc = op().add(acc, fromWire(r));
        return dumps(acc);
      }),
    merge: (op) => (a, b) => result(() => dumps(op().merge(loads(a), loads(b)))),
    getResult: (op) => (accumulator) =>
      result(() => {
        const out = op().getResult(loads(accumulator));
        if (typeof out !== 'object' || out === null || Array.isArray(out)) throw new TypeError('getResult must answer an object (its fields join the result row)');
        return dumps(out);
      }),
  });
}

/** The `window-process` world of a class with `processWindow(window, elements)`, which emits
 * its rows with `emit` (`window.start` inclusive, `window.end` exclusive, epoch ms). */
export function windowProcessWorld(Cls, imports) {
  return world(Cls, imports, {
    processWindow: (op) => (window, elements) =>
      result(() => op().processWindow({ start: Number(window.start), end: Number(window.end) }, elements.map(fromWire))),
  });
}
