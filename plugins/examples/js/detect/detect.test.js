// The JavaScript detector on Node.js through testing.js: the same cases as the Rust one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Record } from './weir.js';
import { ProcessHarness } from './testing.js';
import { Detect } from './detect.js';

const ev = (user, action, ts) => Record.fromJson({ user_id: user, action, timestamp: ts });
const alerts = (h) => h.takeOutput().map((r) => r.json());

test('five failures within 300 s alert once, then reset', () => {
  const h = new ProcessHarness(Detect, {});
  for (const t of [0, 100, 200, 250]) h.process('u', ev('u', 'login_failed', t));
  assert.deepEqual(alerts(h), []);
  h.process('u', ev('u', 'login_failed', 299));
  assert.deepEqual(alerts(h), [{ type: 'security_alert', user_id: 'u', timestamp: 299, failed_attempts: 5 }]);
  h.process('u', ev('u', 'login_failed', 300));
  assert.deepEqual(alerts(h), [], 'forgotten after the alert');
});

test('old failures and a success do not count', () => {
  const h = new ProcessHarness(Detect, {});
  for (const t of [0, 10, 20, 30]) h.process('u', ev('u', 'login_failed', t));
  h.process('u', ev('u', 'login_failed', 311));
  assert.deepEqual(alerts(h), []);
  h.process('u', ev('u', 'login_success', 312));
  for (const t of [313, 314, 315, 316]) h.process('u', ev('u', 'login_failed', t));
  assert.deepEqual(alerts(h), []);
});

test('an anomaly once per login', () => {
  const h = new ProcessHarness(Detect, { idle_seconds: 100 });
  h.process('u', ev('u', 'login_success', 0));
  h.process('u', ev('u', 'view', 100));
  assert.deepEqual(alerts(h), [], 'exactly the idle time is not more than it');
  h.process('u', ev('u', 'download', 101));
  h.process('u', ev('u', 'view', 500));
  assert.deepEqual(alerts(h), [{ type: 'anomaly_alert', user_id: 'u', timestamp: 101, action: 'download', idle_seconds: 101 }]);
  h.process('u', ev('u', 'login_success', 600));
  h.process('u', ev('u', 'purchase', 701));
  assert.deepEqual(alerts(h).map((a) => a.timestamp), [701]);
});

test('keys do not share state', () => {
  const h = new ProcessHarness(Detect, { threshold: 2 });
  h.process('a', ev('a', 'login_failed', 1));
  h.process('b', ev('b', 'login_failed', 2));
  assert.deepEqual(alerts(h), []);
  h.process('a', ev('a', 'login_failed', 3));
  assert.deepEqual(alerts(h).map((a) => a.user_id), ['a']);
});

test('records without the fields are refused', () => {
  const h = new ProcessHarness(Detect, {});
  for (const [value, reason] of [
    ['{"user_id": "u", "action": "view"}', 'field `timestamp`: an integer is required'],
    ['{"user_id": "u", "action": 7, "timestamp": 1}', 'field `action`: a string is required'],
    ['[1]', 'not a JSON object'],
  ]) {
    assert.throws(() => h.process('u', new Record(value)), (e) => e.message === reason);
  }
});
