// The JavaScript SDK on Node.js: typed state, timers and side outputs through testing.js, and
// the world functions encoding and decoding the contract's flat batches as jco lays them out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as weir from '../weir.js';
import { ProcessHarness, TestHost, runFilter, runFlatMap, runMap, runSelectKey } from '../testing.js';

const enc = (s) => new TextEncoder().encode(s);

class Counter {
  open(config) {
    this.count = new weir.ValueState('count');
    this.seen = new weir.ListState('seen');
    this.byAction = new weir.MapState('by_action');
    this.every = config.every ?? 10;
  }
  process(rec) {
    const e = rec.json();
    this.count.set(this.count.get(0) + 1);
    this.seen.add(e.n);
    this.byAction.put(e.action, this.byAction.get(e.action, 0) + 1);
    weir.registerEventTimer(rec.timestamp + this.every);
    if (e.action === 'odd') weir.emitTo('odd-ones', weir.Record.fromJson(e));
  }
  onTimer(timer) {
    weir.emit(weir.Record.fromJson({ key: new TextDecoder().decode(weir.currentKey()), count: this.count.get(), at: timer.timestamp }));
    weir.log.info(`fired ${timer.timestamp}`);
  }
}

const ev = (n, action = 'even', ts = n) => weir.Record.fromJson({ n, action }, { timestamp: ts });

test('state is per key and typed; side outputs apart', () => {
  const h = new ProcessHarness(Counter, { every: 10 });
  h.process('a', ev(1, 'odd'));
  h.process('a', ev(2));
  h.process('b', ev(3, 'odd'));
  h.use();
  h.host.key = enc('a');
  assert.equal(new weir.ValueState('count').get(), 2);
  assert.deepEqual(new weir.ListState('seen').get(), [1, 2]);
  assert.deepEqual(new weir.MapState('by_action').entries().map(([k, v]) => [new TextDecoder().decode(k), v]), [['even', 1], ['odd', 1]]);
  assert.deepEqual(h.takeSideOutput('odd-ones').map((r) => r.json().n), [1, 3]);
  assert.deepEqual(h.takeOutput(), []);
});

test('timers fire in time order with their key at the watermark', () => {
  const h = new ProcessHarness(Counter, { every: 10 });
  h.process('b', ev(5));
  h.process('a', ev(1));
  h.process('a', ev(1));
  assert.deepEqual(h.pendingTimers(), [['event-time', 11, 'a'], ['event-time', 15, 'b']]);
  h.advanceWatermark(12);
  assert.deepEqual(h.takeOutput().map((r) => r.json()), [{ key: 'a', count: 2, at: 11 }]);
  h.advanceWatermark(100);
  const out = h.takeOutput();
  assert.deepEqual(out.map((r) => r.json()), [{ key: 'b', count: 1, at: 15 }]);
  assert.equal(out[0].timestamp, 15, 'a record without a time takes the timer\'s');
  assert.deepEqual(h.logs(), [['info', 'fired 11'], ['info', 'fired 15']]);
});

class Upper {
  map(rec) {
    const v = rec.text();
    if (v === 'same') return weir.UNCHANGED;
    if (v === 'bad') throw new weir.InvalidInput('bad record');
    if (v === 'stamp') return weir.sameValue({ key: 'k', timestamp: 7 });
    return new weir.Record(v.toUpperCase(), { key: rec.key, timestamp: rec.timestamp });
  }
}

test('stateless runners answer per record', () => {
  const out = runMap(Upper, {}, ['ab', 'same', 'bad', 'stamp'].map((v) => new weir.Record(v)));
  assert.equal(out[0].text(), 'AB');
  assert.equal(out[1].text(), 'same');
  assert.ok(out[2] instanceof weir.InvalidInput && out[2].message === 'bad record');
  assert.deepEqual([out[3].text(), out[3].timestamp], ['stamp', 7]);
  class F { filter(r) { return r.text() > 'b'; } }
  assert.deepEqual(runFilter(F, {}, [new weir.Record('a'), new weir.Record('c')]), [false, true]);
  class W { *flatMap(r) { for (const w of r.text().split(' ').filter(Boolean)) yield new weir.Record(w); } }
  assert.deepEqual(runFlatMap(W, {}, [new weir.Record('a b'), new weir.Record('')]).map((rs) => rs.map((r) => r.text())), [['a', 'b'], []]);
  class K { selectKey(r) { return r.json().user; } }
  const keys = runSelectKey(K, {}, [weir.Record.fromJson({ user: 'u\u00e9' }), new weir.Record('{')]);
  assert.deepEqual([...keys[0]], [...enc('u\u00e9')]);
  assert.ok(keys[1] instanceof weir.InvalidInput);
});

// A flat batch as the host sends it: [key, value, timestamp, headers] per record.
function batch(recs) {
  const parts = [];
  const ends = [];
  const ts = [];
  const flags = [];
  const headers = [];
  let size = 0;
  recs.forEach(([k, v, t, hs], index) => {
    if (k !== undefined) { parts.push(enc(k)); size += enc(k).length; }
    ends.push(size);
    parts.push(enc(v));
    size += enc(v).length;
    ends.push(size);
    ts.push(BigInt(t ?? 0));
    flags.push((k !== undefined ? 1 : 0) | (t !== undefined ? 2 : 0));
    for (const [name, hv] of hs ?? []) headers.push({ index, name, value: enc(hv) });
  });
  const data = new Uint8Array(size);
  let at = 0;
  for (const p of parts) { data.set(p, at); at += p.length; }
  return { data, ends: new Uint32Array(ends), timestamps: new BigInt64Array(ts), flags: new Uint8Array(flags), headers };
}

test('the map world answers as the contract says', () => {
  const w = weir.mapWorld(Upper, new TestHost().imports());
  w.init('{}');
  const m = w.map(batch([['k', 'ab', 1, [['h', 'x']]], [undefined, 'same'], [undefined, 'bad'], [undefined, 'stamp']]));
  assert.deepEqual([...m.same], [0, 1, 0, 0]);
  assert.deepEqual(m.failed, [{ index: 2, error: { tag: 'invalid-input', val: 'bad record' } }]);
  const back = weir.records(m.out);
  assert.deepEqual(back.map((r) => [r.text(), r.key && new TextDecoder().decode(r.key), r.timestamp]), [['AB', 'k', 1], ['', 'k', 7]]);
  assert.deepEqual([...m.out.flags], [3, 1 | 2 | 4]);
});

test('the process world enters each record and stops when told', () => {
  const seen = [];
  class P { process(rec) { seen.push(rec.text()); if (rec.text() === 'b') throw new RangeError('boom'); } }
  const host = new TestHost();
  host.context.enter = (i) => i < 2;
  const w = weir.processWorld(P, host.imports());
  w.init('');
  const out = w.process(batch([['k', 'a', 1], ['k', 'b', 2], ['k', 'c', 3]]));
  assert.deepEqual(seen, ['a', 'b']);
  assert.deepEqual(out, [{ tag: 'ok', val: undefined }, { tag: 'err', val: { tag: 'other', val: 'RangeError: boom' } }]);
});

test('init refuses a bad config with its reason', () => {
  class Strict { open(c) { if (!('n' in c)) throw new weir.InvalidConfig('`n` is required'); } }
  const w = weir.mapWorld(Strict, new TestHost().imports());
  assert.throws(() => w.init('{"m": 1}'), (e) => e.payload.tag === 'invalid-config' && e.payload.val === '`n` is required');
});

class Sum {
  createAccumulator() { return 0; }
  add(acc, rec) { return acc + rec.json().n; }
  merge(a, b) { return a + b; }
  getResult(acc) { return acc < 100 ? { sum: acc } : acc; }
}

class Top {
  processWindow(window, elements) {
    const best = Math.max(...elements.map((r) => r.json().n));
    weir.emit(weir.Record.fromJson({ start: window.start, end: window.end, top: best, of: elements.length }));
  }
}

test('window functions run natively and through their worlds', async () => {
  const { runAggregate, runWindowProcess } = await import('../testing.js');
  const recs = [3, 1, 2].map((n) => weir.Record.fromJson({ n }));
  assert.deepEqual(runAggregate(Sum, {}, recs), { sum: 6 });
  assert.deepEqual(runAggregate(Sum, {}, recs, 1), { sum: 6 });
  const [out] = runWindowProcess(Top, {}, { start: 0, end: 10 }, recs, 'k');
  assert.deepEqual([out.json(), out.timestamp], [{ start: 0, end: 10, top: 3, of: 3 }, 9]);

  const w = weir.aggregateWorld(Sum, new TestHost().imports());
  w.init('{}');
  const wire = (v) => ({ key: undefined, value: enc(v), timestamp: undefined, headers: [] });
  const acc = w.add(w.createAccumulator(), [wire('{"n": 2}'), wire('{"n": 5}')]);
  assert.equal(new TextDecoder().decode(acc), '7');
  assert.equal(new TextDecoder().decode(w.merge(acc, enc('3'))), '10');
  assert.equal(new TextDecoder().decode(w.getResult(acc)), '{"sum":7}');
  assert.throws(() => w.add(acc, [wire('{')]), (e) => e.payload.tag === 'invalid-input');
  assert.throws(() => w.getResult(enc('100')), (e) => e.payload.val.includes('must answer an object'));

  const host = new TestHost();
  const t = weir.windowProcessWorld(Top, host.imports());
  t.init('{}');
  t.processWindow({ start: 0n, end: 10n }, [{ key: enc('k'), value: enc('{"n": 4}'), timestamp: 3n, headers: [] }]);
  assert.deepEqual(host.outputs.get(undefined).map((r) => r.json()), [{ start: 0, end: 10, top: 4, of: 1 }]);
});
