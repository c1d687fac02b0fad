/* weir's C SDK with an in-memory host: see weir_testing.h. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "weir_testing.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { VALUE, LIST, MAP };

typedef struct {
  char *key; /* the record key, NUL-terminated text */
  char *name;
  enum kind kind;
  weir_buf map_key;
  weir_buf value;
  size_t seq; /* list order */
  bool live;
} entry;

typedef struct {
  char *output;
  weir_buf value;
  int64_t timestamp;
} emitted;

typedef struct {
  weir_domain domain;
  int64_t ts;
  char *key;
} timer;

static entry *entries;
static size_t n_entries, seq;
static emitted *outputs;
static size_t n_outputs;
static timer *timers;
static size_t n_timers;
static char **logs;
static size_t n_logs;
static const char *key;
static int64_t current_ts = WEIR_TEST_NO_TIME, watermark = INT64_MIN, processing_time;
static char *error_text;

static weir_buf copy(const uint8_t *p, size_t n) {
  weir_buf b = {malloc(n + 1), n};
  memcpy(b.ptr, p, n);
  b.ptr[n] = 0;
  return b;
}

static const char *need_key(void) {
  if (!key) {
    fprintf(stderr, "weir: keyed state outside a keyed call (no current key)\n");
    abort();
  }
  return key;
}

static bool same(const weir_buf *a, weir_bytes b) {
  return a->len == b.len && memcmp(a->ptr, b.ptr, b.len) == 0;
}

static void kill(entry *e) {
  if (!e->live) return;
  e->live = false;
  free(e->key);
  free(e->name);
  weir_buf_free(&e->map_key);
  weir_buf_free(&e->value);
}

static entry *find(const char *name, enum kind kind, const weir_bytes *map_key) {
  const char *k = need_key();
  for (size_t i = 0; i < n_entries; i++) {
    entry *e = &entries[i];
    if (e->live && e->kind == kind && !strcmp(e->key, k) && !strcmp(e->name, name) && (!map_key || same(&e->map_key, *map_key))) return e;
  }
  return NULL;
}

static void add(const char *name, enum kind kind, const weir_bytes *map_key, const uint8_t *v, size_t len) {
  entries = realloc(entries, sizeof(entry) * (n_entries + 1));
  entry e = {strdup(need_key()), strdup(name), kind, {0}, copy(v, len), seq++, true};
  if (map_key) e.map_key = copy(map_key->ptr, map_key->len);
  entries[n_entries++] = e;
}

static void drop(const char *name, enum kind kind) {
  const char *k = need_key();
  for (size_t i = 0; i < n_entries; i++)
    if (entries[i].live && entries[i].kind == kind && !strcmp(entries[i].key, k) && !strcmp(entries[i].name, name)) kill(&entries[i]);
}

bool weir_value_get(const char *name, weir_buf *out) {
  entry *e = find(name, VALUE, NULL);
  if (!e) return false;
  *out = copy(e->value.ptr, e->value.len);
  return true;
}

void weir_value_set(const char *name, const uint8_t *json, size_t len) {
  drop(name, VALUE);
  add(name, VALUE, NULL, json, len);
}

void weir_value_clear(const char *name) { drop(name, VALUE); }

weir_list weir_list_get(const char *name) {
  const char *k = need_key();
  weir_list l = {malloc(sizeof(weir_buf) * (n_entries + 1)), 0};
  for (size_t i = 0; i < n_entries; i++) /* entries are in insertion (seq) order */
    if (entries[i].live && entries[i].kind == LIST && !strcmp(entries[i].key, k) && !strcmp(entries[i].name, name))
      l.items[l.len++] = copy(entries[i].value.ptr, entries[i].value.len);
  return l;
}

void weir_list_add(const char *name, const uint8_t *json, size_t len) { add(name, LIST, NULL, json, len); }

void weir_list_update(const char *name, const weir_bytes *items, size_t n) {
  drop(name, LIST);
  for (size_t i = 0; i < n; i++) add(name, LIST, NULL, items[i].ptr, items[i].len);
}

void weir_list_clear(const char *name) { drop(name, LIST); }

bool weir_map_get(const char *name, weir_bytes k, weir_buf *out) {
  entry *e = find(name, MAP, &k);
  if (!e) return false;
  *out = copy(e->value.ptr, e->value.len);
  return true;
}

void weir_map_put(const char *name, weir_bytes k, const uint8_t *json, size_t len) {
  entry *e = find(name, MAP, &k);
  if (e) kill(e);
  add(name, MAP, &k, json, len);
}

void weir_map_remove(const char *name, weir_bytes k) {
  entry *e = find(name, MAP, &k);
  if (e) kill(e);
}

bool weir_map_contains(const char *name, weir_bytes k) { return find(name, MAP, &k) != NULL; }

void weir_map_clear(const char *name) { drop(name, MAP); }

static void push(const char *output, const uint8_t *value, size_t len, const int64_t *ts) {
  outputs = realloc(outputs, sizeof(emitted) * (n_outputs + 1));
  outputs[n_outputs++] = (emitted){output ? strdup(output) : NULL, copy(value, len), ts ? *ts : current_ts};
}

void weir_emit(const uint8_t *value, size_t len, const weir_bytes *k, const int64_t *ts) {
  (void)k;
  push(NULL, value, len, ts);
}

void weir_emit_to(const char *output, const uint8_t *value, size_t len) { push(output, value, len, NULL); }

bool weir_current_key(weir_buf *out) {
  if (!key) return false;
  *out = copy((const uint8_t *)key, strlen(key));
  return true;
}

int64_t weir_current_watermark(void) { return watermark; }
int64_t weir_current_processing_time(void) { return processing_time; }
uint32_t weir_subtask_index(void) { return 0; }

static void set_timer(weir_domain d, int64_t ts, bool on) {
  const char *k = need_key();
  for (size_t i = 0; i < n_timers; i++)
    if (timers[i].domain == d && timers[i].ts == ts && !strcmp(timers[i].key, k)) {
      if (!on) {
        free(timers[i].key);
        timers[i] = timers[--n_timers];
      }
      return;
    }
  if (!on) return;
  timers = realloc(timers, sizeof(timer) * (n_timers + 1));
  timers[n_timers++] = (timer){d, ts, strdup(k)};
}

void weir_register_event_timer(int64_t ts) { set_timer(WEIR_EVENT_TIME, ts, true); }
void weir_delete_event_timer(int64_t ts) { set_timer(WEIR_EVENT_TIME, ts, false); }
void weir_register_processing_timer(int64_t ts) { set_timer(WEIR_PROCESSING_TIME, ts, true); }
void weir_delete_processing_timer(int64_t ts) { set_timer(WEIR_PROCESSING_TIME, ts, false); }

void weir_log(weir_level level, const char *fmt, ...) {
  static const char *names[] = {"trace", "debug", "info", "warn", "error"};
  char line[1024];
  int n = snprintf(line, sizeof line, "%s: ", names[level]);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  logs = realloc(logs, sizeof(char *) * (n_logs + 1));
  logs[n_logs++] = strdup(line);
}

static int result(int rc) {
  if (rc != WEIR_OK) {
    free(error_text);
    weir__take_error(&error_text);
  }
  return rc;
}

static void forget(void) {
  for (size_t i = 0; i < n_entries; i++) kill(&entries[i]);
  weir_test_take();
  for (size_t i = 0; i < n_timers; i++) free(timers[i].key);
  for (size_t i = 0; i < n_logs; i++) free(logs[i]);
  n_entries = n_timers = n_logs = 0;
}

int weir_test_open(const char *config) {
  forget();
  key = NULL;
  watermark = INT64_MIN;
  processing_time = 0;
  return result(weir_open(config, strlen(config)));
}

int weir_test_process(const char *k, const char *value, int64_t ts) {
  weir_record rec = {0};
  rec.has_key = true;
  rec.key = (weir_bytes){(const uint8_t *)k, strlen(k)};
  rec.value = (weir_bytes){(const uint8_t *)value, strlen(value)};
  rec.has_timestamp = ts != WEIR_TEST_NO_TIME;
  rec.timestamp = rec.has_timestamp ? ts : 0;
  key = k;
  current_ts = ts;
  return result(weir_process(&rec));
}

static int fire(weir_domain d, int64_t upto) {
  for (;;) {
    size_t best = n_timers;
    for (size_t i = 0; i < n_timers; i++)
      if (timers[i].domain == d && timers[i].ts <= upto &&
          (best == n_timers || timers[i].ts < timers[best].ts || (timers[i].ts == timers[best].ts && strcmp(timers[i].key, timers[best].key) < 0)))
        best = i;
    if (best == n_timers) return WEIR_OK;
    timer t = timers[best];
    timers[best] = timers[--n_timers];
    key = t.key;
    current_ts = t.ts;
    int rc = result(weir_on_timer(t.ts, d));
    key = NULL;
    free(t.key);
    if (rc != WEIR_OK) return rc;
  }
}

int weir_test_advance_watermark(int64_t wm) {
  if (wm > watermark) watermark = wm;
  return fire(WEIR_EVENT_TIME, wm);
}

int weir_test_advance_processing_time(int64_t now) {
  if (now > processing_time) processing_time = now;
  return fire(WEIR_PROCESSING_TIME, now);
}

static emitted *nth(const char *output, size_t i) {
  for (size_t j = 0; j < n_outputs; j++)
    if ((output == NULL) == (outputs[j].output == NULL) && (!output || !strcmp(output, outputs[j].output)) && i-- == 0) return &outputs[j];
  return NULL;
}

size_t weir_test_count(const char *output) {
  size_t n = 0;
  while (nth(output, n)) n++;
  return n;
}

const char *weir_test_value(const char *output, size_t i) {
  emitted *e = nth(output, i);
  return e ? (const char *)e->value.ptr : NULL;
}

int64_t weir_test_timestamp(const char *output, size_t i) {
  emitted *e = nth(output, i);
  return e ? e->timestamp : WEIR_TEST_NO_TIME;
}

void weir_test_take(void) {
  for (size_t i = 0; i < n_outputs; i++) {
    free(outputs[i].output);
    weir_buf_free(&outputs[i].value);
  }
  n_outputs = 0;
}
const char *weir_test_error(void) { return error_text ? error_text : ""; }
size_t weir_test_pending_timers(void) { return n_timers; }
size_t weir_test_log_count(void) { return n_logs; }
const char *weir_test_log_line(size_t i) { return i < n_logs ? logs[i] : NULL; }
