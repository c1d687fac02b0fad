"""The Python window aggregate on CPython through weir.testing."""

import weir
from weir.testing import run_aggregate

from window_count import WindowCount


def ev(action):
    return weir.Record.from_json({"user_id": "u", "action": action})


def test_counts_and_distinct_values_also_when_merged():
    recs = [ev("view"), ev("login"), ev("view"), ev("buy")]
    assert run_aggregate(WindowCount, {}, recs) == {"count": 4}
    assert run_aggregate(WindowCount, {"distinct": "action"}, recs) == {"count": 4, "distinct_action": 3}
    assert run_aggregate(WindowCount, {"distinct": "action"}, recs, split=2) == {"count": 4, "distinct_action": 3}
