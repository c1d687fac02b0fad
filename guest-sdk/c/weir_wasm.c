/* weir's C SDK inside a component: the SDK's calls on the bindings `wit-bindgen c` makes for
 * the `process` world (process.h), and that world's exports calling the author's functions. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process.h"
#include "weir.h"

static process_string_t str(const char *s) {
  return (process_string_t){(uint8_t *)s, strlen(s)};
}

static process_list_u8_t lst(const uint8_t *p, size_t n) {
  return (process_list_u8_t){(uint8_t *)p, n};
}

/* Bytes the bindings allocated for us, handed on as the caller's. */
static weir_buf own(process_list_u8_t l) {
  return (weir_buf){l.ptr, l.len};
}

bool weir_value_get(const char *name, weir_buf *out) {
  process_string_t n = str(name);
  process_list_u8_t ret;
  if (!weir_plugin_state_value_get(&n, &ret)) return false;
  *out = own(ret);
  return true;
}

void weir_value_set(const char *name, const uint8_t *json, size_t len) {
  process_string_t n = str(name);
  process_list_u8_t v = lst(json, len);
  weir_plugin_state_value_set(&n, &v);
}

void weir_value_clear(const char *name) {
  process_string_t n = str(name);
  weir_plugin_state_value_clear(&n);
}

weir_list weir_list_get(const char *name) {
  process_string_t n = str(name);
  process_list_list_u8_t ret;
  weir_plugin_state_list_get(&n, &ret);
  weir_list out = {malloc(sizeof(weir_buf) * (ret.len + 1)), ret.len};
  for (size_t i = 0; i < ret.len; i++) out.items[i] = own(ret.ptr[i]);
  free(ret.ptr);
  return out;
}

void weir_list_add(const char *name, const uint8_t *json, size_t len) {
  process_string_t n = str(name);
  process_list_u8_t v = lst(json, len);
  weir_plugin_state_list_add(&n, &v);
}

void weir_list_update(const char *name, const weir_bytes *items, size_t count) {
  process_string_t n = str(name);
  process_list_list_u8_t vs = {malloc(sizeof(process_list_u8_t) * (count + 1)), count};
  for (size_t i = 0; i < count; i++) vs.ptr[i] = lst(items[i].ptr, items[i].len);
  weir_plugin_state_list_update(&n, &vs);
  free(vs.ptr);
}

void weir_list_clear(const char *name) {
  process_string_t n = str(name);
  weir_plugin_state_list_clear(&n);
}

bool weir_map_get(const char *name, weir_bytes key, weir_buf *out) {
  process_string_t n = str(name);
  process_list_u8_t k = lst(key.ptr, key.len), ret;
  if (!weir_plugin_state_map_get(&n, &k, &ret)) return false;
  *out = own(ret);
  return true;
}

void weir_map_put(const char *name, weir_bytes key, const uint8_t *json, size_t len) {
  process_string_t n = str(name);
  process_list_u8_t k = lst(key.ptr, key.len), v = lst(json, len);
  weir_plugin_state_map_put(&n, &k, &v);
}

void weir_map_remove(const char *name, weir_bytes key) {
  process_string_t n = str(name);
  process_list_u8_t k = lst(key.ptr, key.len);
  weir_plugin_state_map_remove(&n, &k);
}

bool weir_map_contains(const char *name, weir_bytes key) {
  process_string_t n = str(name);
  process_list_u8_t k = lst(key.ptr, key.len);
  return weir_plugin_state_map_contains(&n, &k);
}

void weir_map_clear(const char *name) {
  process_string_t n = str(name);
  weir_plugin_state_map_clear(&n);
}

static weir_plugin_output_record_t out_record(const uint8_t *value, size_t len, const weir_bytes *key, const int64_t *ts) {
  weir_plugin_output_record_t r = {0};
  r.value = lst(value, len);
  if (key) {
    r.key.is_some = true;
    r.key.val = lst(key->ptr, key->len);
  }
  if (ts) {
    r.timestamp.is_some = true;
    r.timestamp.val = *ts;
  }
  return r;
}

void weir_emit(const uint8_t *value, size_t len, const weir_bytes *key, const int64_t *timestamp) {
  weir_plugin_output_record_t r = out_record(value, len, key, timestamp);
  weir_plugin_output_emit(&r);
}

void weir_emit_to(const char *output, const uint8_t *value, size_t len) {
  weir_plugin_output_record_t r = out_record(value, len, NULL, NULL);
  process_string_t o = str(output);
  weir_plugin_output_emit_to(&o, &r);
}

bool weir_current_key(weir_buf *out) {
  process_list_u8_t k;
  if (!weir_plugin_context_current_key(&k)) return false;
  *out = own(k);
  return true;
}

int64_t weir_current_watermark(void) { return weir_plugin_context_current_watermark(); }
int64_t weir_current_processing_time(void) { return weir_plugin_context_current_processing_time(); }
uint32_t weir_subtask_index(void) { return weir_plugin_context_subtask_index(); }
void weir_register_event_timer(int64_t ts) { weir_plugin_timers_register_event_time(ts); }
void weir_delete_event_timer(int64_t ts) { weir_plugin_timers_delete_event_time(ts); }
void weir_register_processing_timer(int64_t ts) { weir_plugin_timers_register_processing_time(ts); }
void weir_delete_processing_timer(int64_t ts) { weir_plugin_timers_delete_processing_time(ts); }

void weir_log(weir_level level, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  process_string_t m = str(line);
  weir_plugin_log_log((weir_plugin_log_level_t)level, &m);
}

/* The error the author's failure names, as the contract's variant (the string is ours to
 * give: the bindings free it after the call returns). */
static process_error_t take_error(void) {
  char *message;
  weir_error_kind kind = weir__take_error(&message);
  process_error_t e;
  e.tag = (uint8_t)kind;
  e.val.other = (process_string_t){(uint8_t *)message, strlen(message)};
  return e;
}

bool exports_process_init(process_string_t *config, process_error_t *err) {
  int rc = weir_open((const char *)config->ptr, config->len);
  process_string_free(config);
  if (rc == WEIR_OK) return true;
  *err = take_error();
  err->tag = WEIR_PLUGIN_TYPES_ERROR_INVALID_CONFIG;
  return false;
}

void exports_process_process(process_batch_t *batch, process_list_result_void_error_t *ret) {
  size_t n = batch->flags.len;
  ret->ptr = calloc(n + 1, sizeof(process_result_void_error_t));
  ret->len = 0;
  weir_header *headers = malloc(sizeof(weir_header) * (batch->headers.len + 1));
  size_t h = 0, start = 0;
  for (size_t i = 0; i < n; i++) {
    if (!weir_plugin_context_enter((uint32_t)i)) break;
    uint8_t f = batch->flags.ptr[i];
    size_t key_end = batch->ends.ptr[2 * i], value_end = batch->ends.ptr[2 * i + 1];
    weir_record rec = {0};
    rec.has_key = f & 1;
    rec.key = (weir_bytes){batch->data.ptr + start, key_end - start};
    rec.value = (weir_bytes){batch->data.ptr + key_end, value_end - key_end};
    rec.has_timestamp = f & 2;
    rec.timestamp = batch->timestamps.ptr[i];
    rec.headers = headers;
    while (h < batch->headers.len && batch->headers.ptr[h].index < i) h++;
    for (; h < batch->headers.len && batch->headers.ptr[h].index == i; h++) {
      weir_plugin_types_header_t *src = &batch->headers.ptr[h];
      headers[rec.n_headers++] = (weir_header){{src->name.ptr, src->name.len}, {src->value.ptr, src->value.len}};
    }
    process_result_void_error_t *r = &ret->ptr[ret->len++];
    if (weir_process(&rec) != WEIR_OK) {
      r->is_err = true;
      r->val.err = take_error();
    }
    start = value_end;
  }
  free(headers);
  process_batch_free(batch);
}

bool exports_process_on_timer(process_list_timer_t *fired, process_error_t *err) {
  bool ok = true;
  for (size_t i = 0; i < fired->len && ok; i++) {
    weir_domain d = fired->ptr[i].domain == WEIR_PLUGIN_TYPES_TIME_DOMAIN_EVENT_TIME ? WEIR_EVENT_TIME : WEIR_PROCESSING_TIME;
    if (weir_on_timer(fired->ptr[i].timestamp, d) != WEIR_OK) {
      *err = take_error();
      ok = false;
    }
  }
  process_list_timer_free(fired);
  return ok;
}
