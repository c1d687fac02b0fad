// The JavaScript window aggregate on Node.js through testing.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Record } from './weir.js';
import { runAggregate } from './testing.js';
import { WindowCount } from './window_count.js';

test('counts and distinct values, also when merged', () => {
  const recs = ['view', 'login', 'view', 'buy'].map((action) => Record.fromJson({ user_id: 'u', action }));
  assert.deepEqual(runAggregate(WindowCount, {}, recs), { count: 4 });
  assert.deepEqual(runAggregate(WindowCount, { distinct: 'action' }, recs), { count: 4, distinct_action: 3 });
  assert.deepEqual(runAggregate(WindowCount, { distinct: 'action' }, recs, 2), { count: 4, distinct_action: 3 });
});
