// Runs operators on Node.js, without weir and without Wasm, with what weir's host gives them:
// keyed state per key, timers fired by the watermark or a simulated processing-time clock in
// time order, side outputs and log lines (the abilities of the Rust SDK's
// `weir_sdk::testing`):
//
//   import { ProcessHarness } from './testing.js';
//   const h = new ProcessHarness(Detect, { threshold: 5 });
//   h.process('u1', Record.fromJson({ ... }));
//   h.advanceWatermark(60_000);
//   assert.deepEqual(h.takeOutput().map((r) => r.json()), [...]);

import { EVENT_TIME, PROCESSING_TIME, Record, UNCHANGED, bytes, useHost } from './weir.js';

const MIN_WATERMARK = -(2n ** 63n);
const hex = (b) => Buffer.from(b).toString('hex');
const fromHex = (h) => new Uint8Array(Buffer.from(h, 'hex'));

/** The in-memory host, shaped like the component's imports (the names jco gives them). */
export class TestHost {
  constructor() {
    this.key = undefined;
    this.watermark = MIN_WATERMARK;
    this.processingTime = 0n;
    this.currentTs = undefined;
    this.values = new Map();
    this.lists = new Map();
    this.maps = new Map();
    this.timers = new Map(); // "domain|ts|keyhex" -> [domain, ts, key]
    this.outputs = new Map();
    this.logs = [];
    const self = this;
    const k = (name) => {
      if (self.key === undefined) throw new Error('weir: keyed state outside a keyed operator (no current key)');
      return `${hex(self.key)}|${name}`;
    };
    this.state = {
      valueGet: (n) => self.values.get(k(n)),
      valueSet: (n, v) => self.values.set(k(n), v),
      valueClear: (n) => self.values.delete(k(n)),
      listGet: (n) => [...(self.lists.get(k(n)) ?? [])],
      listAdd: (n, v) => self.lists.set(k(n), [...(self.lists.get(k(n)) ?? []), v]),
      listUpdate: (n, vs) => (vs.length ? self.lists.set(k(n), [...vs]) : self.lists.delete(k(n))),
      listClear: (n) => self.lists.delete(k(n)),
      mapGet: (n, mk) => self.maps.get(k(n))?.get(hex(mk)),
      mapPut: (n, mk, v) => {
        if (!self.maps.has(k(n))) self.maps.set(k(n), new Map());
        self.maps.get(k(n)).set(hex(mk), v);
      },
      mapRemove: (n, mk) => self.maps.get(k(n))?.delete(hex(mk)),
      mapContains: (n, mk) => self.maps.get(k(n))?.has(hex(mk)) ?? false,
      mapEntries: (n) => [...(self.maps.get(k(n)) ?? new Map())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([mk, v]) => [fromHex(mk), v]),
      mapClear: (n) => self.maps.delete(k(n)),
    };
    const put = (name, r) => {
      if (name !== undefined && !/^[a-z][a-z0-9_-]*$/.test(name)) throw new Error(`side output name \`${name}\` must be lowercase kebab or snake case`);
      const rec = new Record(r.value, { key: r.key, timestamp: r.timestamp === undefined ? self.currentTs : Number(r.timestamp), headers: r.headers });
      if (!self.outputs.has(name)) self.outputs.set(name, []);
      self.outputs.get(name).push(rec);
    };
    this.output = { emit: (r) => put(undefined, r), emitTo: (name, r) => put(name, r) };
    this.context = {
      currentKey: () => self.key,
      currentWatermark: () => self.watermark,
      currentProcessingTime: () => self.processingTime,
      subtaskIndex: () => 0,
      enter: () => true,
    };
    const timer = (domain, on) => (ts) => {
      if (self.key === undefined) throw new Error('weir: timers outside a keyed operator (no current key)');
      const id = `${domain}|${ts}|${hex(self.key)}`;
      if (on) self.timers.set(id, [domain, BigInt(ts), self.key]);
      else self.timers.delete(id);
    };
    this.timers_ = {
      registerEventTime: timer(EVENT_TIME, true),
      deleteEventTime: timer(EVENT_TIME, false),
      registerProcessingTime: timer(PROCESSING_TIME, true),
      deleteProcessingTime: timer(PROCESSING_TIME, false),
    };
    this.log = { log: (level, message) => self.logs.push([level, message]) };
  }

  imports() {
    return { state: this.state, output: this.output, context: this.context, timers: this.timers_, log: this.log };
  }
}

class Harness {
  constructor(Cls, config = {}) {
    this.host = new TestHost();
    useHost(this.host.imports());
    this.op = new Cls();
    this.op.open?.(JSON.parse(JSON.stringify(config)));
  }

  use() {
    useHost(this.host.imports());
  }

  /** The records emitted to the main output so far (and forgets them). */
  takeOutput() {
    const out = this.host.outputs.get(undefined) ?? [];
    this.host.outputs.delete(undefined);
    return out;
  }

  /** The records emitted to side output `name` so far (and forgets them). */
  takeSideOutput(name) {
    const out = this.host.outputs.get(name) ?? [];
    this.host.outputs.delete(name);
    return out;
  }

  /** The [level, message] lines logged so far. */
  logs() {
    return [...this.host.logs];
  }
}

/** A keyed process operator on an in-memory host. */
export class ProcessHarness extends Harness {
  /** Processes `rec` under `key` (a Uint8Array or text), with that key's state in scope. */
  process(key, rec) {
    this.use();
    this.host.key = bytes(key);
    this.host.currentTs = rec.timestamp;
    this.op.process(rec);
  }

  /** Moves the watermark, firing due event-time timers in time order. */
  advanceWatermark(wm) {
    this.use();
    if (BigInt(wm) > this.host.watermark) this.host.watermark = BigInt(wm);
    this.fire(EVENT_TIME, BigInt(wm));
  }

  /** Moves the simulated processing-time clock, firing due processing-time timers. */
  advanceProcessingTime(now) {
    this.use();
    if (BigInt(now) > this.host.processingTime) this.host.processingTime = BigInt(now);
    this.fire(PROCESSING_TIME, BigInt(now));
  }

  fire(domain, upto) {
    for (;;) {
      const due = [...this.host.timers.entries()]
        .filter(([, [d, ts]]) => d === domain && ts <= upto)
        .sort(([, a], [, b]) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : hex(a[2]) < hex(b[2]) ? -1 : 1));
      if (!due.length) return;
      const [id, [, ts, key]] = due[0];
      this.host.timers.delete(id);
      this.host.key = key;
      this.host.currentTs = Number(ts);
      this.op.onTimer?.({ timestamp: Number(ts), domain });
    }
  }

  /** The timers not yet fired, as sorted [domain, timestamp, key text]. */
  pendingTimers() {
    return [...this.host.timers.values()]
      .map(([d, ts, k]) => [d, Number(ts), Buffer.from(k).toString()])
      .sort((a, b) => (a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] - b[1] || (a[2] < b[2] ? -1 : 1)));
  }
}

function each(h, records, call) {
  h.use();
  return records.map((rec) => {
    h.host.currentTs = rec.timestamp;
    try {
      return call(rec);
    } catch (e) {
      return e;
    }
  });
}

/** Opens a map operator and maps `records`: per record the Record it becomes (the input for
 * `UNCHANGED`; its value with the new key and time for `sameValue`), or what it threw. */
export function runMap(Cls, config, records) {
  const h = new Harness(Cls, config);
  return each(h, records, (rec) => {
    const r = h.op.map(rec);
    if (r === UNCHANGED) return rec;
    if (r && r.sameValue) return new Record(rec.value, { key: r.key, timestamp: r.timestamp, headers: rec.headers });
    if (!(r instanceof Record)) throw new TypeError('an operator must answer a weir Record');
    return r;
  });
}

/** Opens a filter operator: per record true, false, or what it threw. */
export function runFilter(Cls, config, records) {
  const h = new Harness(Cls, config);
  return each(h, records, (rec) => Boolean(h.op.filter(rec)));
}

/** Opens a flat-map operator: per record the array of records, or what it threw. */
export function runFlatMap(Cls, config, records) {
  const h = new Harness(Cls, config);
  return each(h, records, (rec) => [...(h.op.flatMap(rec) ?? [])]);
}

/** Opens a key selector: per record the key bytes, or what it threw. */
export function runSelectKey(Cls, config, records) {
  const h = new Harness(Cls, config);
  return each(h, records, (rec) => bytes(h.op.selectKey(rec)));
}

/** Opens an aggregate, adds `records` to a fresh accumulator and answers `getResult`; with
 * `split = i` the first `i` and the rest go to two accumulators that are then merged.
 * Accumulators pass through JSON, as in weir. */
export function runAggregate(Cls, config, records, split = undefined) {
  const h = new Harness(Cls, config);
  const json = (v) => JSON.parse(JSON.stringify(v));
  const fold = (recs) => recs.reduce((acc, r) => json(h.op.add(acc, r)), json(h.op.createAccumulator()));
  const acc = split === undefined ? fold(records) : json(h.op.merge(fold(records.slice(0, split)), fold(records.slice(split))));
  return h.op.getResult(acc);
}

/** Opens a window-process operator and fires one window ({ start, end }) of `key` with
 * `records`; answers the records it emitted. */
export function runWindowProcess(Cls, config, window, records, key = undefined) {
  const h = new Harness(Cls, config);
  h.host.key = bytes(key);
  h.host.currentTs = window.end - 1;
  h.op.processWindow(window, records);
  return h.takeOutput();
}
