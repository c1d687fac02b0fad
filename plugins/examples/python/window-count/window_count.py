"""A window aggregate in Python: the records of each key and window, counted, as the
built-in `count` aggregate does (so `tests/conformance/tumble10s.toml` with this plugin in
place of `aggregates` gives Flink's rows), and, with `config = { distinct = "FIELD" }`, how
many distinct values of FIELD they had."""

import weir


class WindowCount(weir.Aggregate):
    def open(self, config):
        self.distinct = config.get("distinct")

    def create_accumulator(self):
        return {"count": 0, "seen": []}

    def add(self, acc, rec):
        acc["count"] += 1
        if self.distinct:
            v = rec.json().get(self.distinct)
            if v not in acc["seen"]:
                acc["seen"].append(v)
        return acc

    def merge(self, a, b):
        return {"count": a["count"] + b["count"], "seen": a["seen"] + [v for v in b["seen"] if v not in a["seen"]]}

    def get_result(self, acc):
        out = {"count": acc["count"]}
        if self.distinct:
            out[f"distinct_{self.distinct}"] = len(acc["seen"])
        return out
