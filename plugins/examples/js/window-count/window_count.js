// A window aggregate in JavaScript: the records of each key and window, counted, as the
// built-in `count` aggregate does (tests/conformance/tumble10s.toml with this plugin in place
// of `aggregates` gives Flink's rows), and with `config = { distinct: FIELD }` how many
// distinct values of FIELD they had.
export class WindowCount {
  open(config) {
    this.distinct = config.distinct;
  }

  createAccumulator() {
    return { count: 0, seen: [] };
  }

  add(acc, rec) {
    acc.count += 1;
    if (this.distinct) {
      const v = rec.json()[this.distinct];
      if (!acc.seen.includes(v)) acc.seen.push(v);
    }
    return acc;
  }

  merge(a, b) {
    return { count: a.count + b.count, seen: [...a.seen, ...b.seen.filter((v) => !a.seen.includes(v))] };
  }

  getResult(acc) {
    return this.distinct ? { count: acc.count, [`distinct_${this.distinct}`]: acc.seen.length } : { count: acc.count };
  }
}
