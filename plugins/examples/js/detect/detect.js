// The log-analyzer's alert rules in JavaScript, exactly those of the Rust `detect` plugin
// (plugins/log-analyzer/detect): five failed logins within 300 s since the last success or
// alert -> security_alert; view/purchase/download more than 86,400 s after the last
// login_success -> anomaly_alert, once per login.
import { InvalidConfig, InvalidInput, ListState, Record, ValueState, emit } from './weir.js';

/** The fields the rules read; a record without them is refused with the reason. */
function event(rec) {
  const e = rec.json();
  if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new InvalidInput('not a JSON object');
  for (const [name, ok, what] of [['user_id', (v) => typeof v === 'string', 'a string'], ['action', (v) => typeof v === 'string', 'a string'], ['timestamp', Number.isInteger, 'an integer']]) {
    if (!ok(e[name])) throw new InvalidInput(`field \`${name}\`: ${what} is required`);
  }
  return e;
}

export class Detect {
  open(config) {
    this.threshold = config.threshold ?? 5;
    this.windowSeconds = config.window_seconds ?? 300;
    this.idleSeconds = config.idle_seconds ?? 86400;
    for (const [name, v] of [['threshold', this.threshold], ['window_seconds', this.windowSeconds], ['idle_seconds', this.idleSeconds]]) {
      if (!Number.isInteger(v)) throw new InvalidConfig(`\`${name}\` must be an integer`);
    }
    if (this.threshold < 1) throw new InvalidConfig('`threshold` must be at least 1');
    this.fails = new ListState('fails');
    this.lastLogin = new ValueState('last_login');
    this.flagged = new ValueState('flagged');
  }

  process(rec) {
    const e = event(rec);
    const ts = e.timestamp;
    switch (e.action) {
      case 'login_failed': {
        const recent = this.fails.get().filter((t) => t >= ts - this.windowSeconds);
        recent.push(ts);
        if (recent.length >= this.threshold) {
          this.fails.clear();
          emit(Record.fromJson({ type: 'security_alert', user_id: e.user_id, timestamp: ts, failed_attempts: recent.length }));
        } else {
          this.fails.update(recent);
        }
        break;
      }
      case 'login_success':
        this.fails.clear();
        this.lastLogin.set(ts);
        this.flagged.set(false);
        break;
      case 'view':
      case 'purchase':
      case 'download': {
        const last = this.lastLogin.get();
        if (last !== undefined) {
          const idle = ts - last;
          if (idle > this.idleSeconds && !this.flagged.get(false)) {
            this.flagged.set(true);
            emit(Record.fromJson({ type: 'anomaly_alert', user_id: e.user_id, timestamp: ts, action: e.action, idle_seconds: idle }));
          }
        }
        break;
      }
      default:
    }
  }
}
