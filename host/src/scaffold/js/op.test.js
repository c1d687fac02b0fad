// {{name}}'s unit tests on Node.js with testing.js (no weir, no Wasm): node --test
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Record } from './weir.js';
import { ProcessHarness } from './testing.js';
import { {{class}} } from './{{module}}.js';

test('counts per key', () => {
  const h = new ProcessHarness({{class}}, {});
  for (const key of ['a', 'b', 'a']) h.process(key, new Record('{}'));
  assert.deepEqual(h.takeOutput().map((r) => r.json()), [{ key: 'a', count: 1 }, { key: 'b', count: 1 }, { key: 'a', count: 2 }]);
});
