"""{{name}}: counts the records of each key and emits the running count."""

import weir


class {{class}}(weir.Process):
    def open(self, config):
        self.count = weir.ValueState("count")

    def process(self, rec):
        n = self.count.get(0) + 1
        self.count.set(n)
        weir.emit(weir.Record.from_json({"key": weir.current_key().decode(), "count": n}))
