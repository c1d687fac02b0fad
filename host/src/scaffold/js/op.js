// {{name}}: counts the records of each key and emits the running count.
import { Record, ValueState, currentKey, emit } from './weir.js';

export class {{class}} {
  open(config) {
    this.count = new ValueState('count');
  }

  process(rec) {
    const n = this.count.get(0) + 1;
    this.count.set(n);
    emit(Record.fromJson({ key: new TextDecoder().decode(currentKey()), count: n }));
  }
}
