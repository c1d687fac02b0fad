"""{{name}}'s unit tests on CPython with weir.testing (no weir, no Wasm): python3 -m pytest"""

import weir
from weir.testing import ProcessHarness

from {{module}} import {{class}}


def test_counts_per_key():
    h = ProcessHarness({{class}})
    for key in ("a", "b", "a"):
        h.process(key, weir.Record(b"{}"))
    assert [r.json() for r in h.take_output()] == [{"key": "a", "count": 1}, {"key": "b", "count": 1}, {"key": "a", "count": 2}]
