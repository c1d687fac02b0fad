/* weir's C SDK: keyed process operators (the `process` world) written in C, built into
 * WebAssembly components with clang, wasi-libc and `wit-bindgen c` (see build.sh).
 *
 * The author writes three functions and never sees the contract's flat batches:
 *
 *   int weir_open(const char *config, size_t len);       once per subtask, config as JSON
 *   int weir_process(const weir_record *rec);            each record, its key's state in scope
 *   int weir_on_timer(int64_t timestamp, weir_domain d); each timer that fires
 *
 * Each returns WEIR_OK, or the result of weir_fail(...), which names the reason: a record
 * that fails goes to the job's dead-letter output with it; a failing weir_open stops the job
 * before it starts.
 *
 * State is JSON, as the Rust, Python and JavaScript SDKs store it (weir_value_get_i64 reads
 * what a Rust `ValueState<i64>` wrote). Bytes the SDK hands out (weir_buf) are the caller's:
 * free them with weir_buf_free / weir_list_free.
 *
 * The same API runs natively with weir_testing.c in place of weir_wasm.c: a C test binary
 * drives the operator with in-memory state, timers and outputs (weir_testing.h). */
#ifndef WEIR_H
#define WEIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { WEIR_OK = 0, WEIR_ERR = 1 };

typedef enum { WEIR_EVENT_TIME = 0, WEIR_PROCESSING_TIME = 1 } weir_domain;
typedef enum { WEIR_INVALID_INPUT = 0, WEIR_INVALID_CONFIG = 1, WEIR_OTHER = 2 } weir_error_kind;
typedef enum { WEIR_TRACE, WEIR_DEBUG, WEIR_INFO, WEIR_WARN, WEIR_ERROR } weir_level;

/* Bytes lent for the length of a call. */
typedef struct {
  const uint8_t *ptr;
  size_t len;
} weir_bytes;

/* Bytes owned by the caller (free with weir_buf_free). */
typedef struct {
  uint8_t *ptr;
  size_t len;
} weir_buf;

typedef struct {
  weir_bytes name, value;
} weir_header;

/* One record, lent for the length of weir_process. */
typedef struct {
  bool has_key;
  weir_bytes key;
  weir_bytes value;
  bool has_timestamp;
  int64_t timestamp; /* event time, epoch ms */
  size_t n_headers;
  const weir_header *headers;
} weir_record;

/* ---- what the author writes ---------------------------------------------------------- */
int weir_open(const char *config, size_t len);
int weir_process(const weir_record *rec);
int weir_on_timer(int64_t timestamp, weir_domain domain);

/* ---- errors ---------------------------------------------------------------------------- */
/* Sets the reason of the failure being returned (printf-style); returns WEIR_ERR. */
int weir_fail(weir_error_kind kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- keyed state of the current key (raw JSON bytes) ----------------------------------- */
bool weir_value_get(const char *name, weir_buf *out); /* false: no value */
void weir_value_set(const char *name, const uint8_t *json, size_t len);
void weir_value_clear(const char *name);
typedef struct {
  weir_buf *items;
  size_t len;
} weir_list;
weir_list weir_list_get(const char *name);
void weir_list_add(const char *name, const uint8_t *json, size_t len);
void weir_list_update(const char *name, const weir_bytes *items, size_t n); /* n = 0 clears */
void weir_list_clear(const char *name);
bool weir_map_get(const char *name, weir_bytes key, weir_buf *out);
void weir_map_put(const char *name, weir_bytes key, const uint8_t *json, size_t len);
void weir_map_remove(const char *name, weir_bytes key);
bool weir_map_contains(const char *name, weir_bytes key);
void weir_map_clear(const char *name);

/* Typed state: integers and booleans as JSON numbers and `true`/`false`. */
bool weir_value_get_i64(const char *name, int64_t *out); /* false: no value (or not an integer) */
void weir_value_set_i64(const char *name, int64_t v);
bool weir_value_get_bool(const char *name, bool dflt);
void weir_value_set_bool(const char *name, bool v);
/* The integers of a list state; *n of them in a malloc'd array (free it). */
int64_t *weir_list_get_i64(const char *name, size_t *n);
void weir_list_update_i64(const char *name, const int64_t *items, size_t n);

/* ---- output, context, timers, logging --------------------------------------------------- */
/* Emits a record (no key when key is NULL; without a timestamp it takes the input's). */
void weir_emit(const uint8_t *value, size_t len, const weir_bytes *key, const int64_t *timestamp);
void weir_emit_to(const char *output, const uint8_t *value, size_t len);
bool weir_current_key(weir_buf *out);
int64_t weir_current_watermark(void);
int64_t weir_current_processing_time(void);
uint32_t weir_subtask_index(void);
void weir_register_event_timer(int64_t ts);
void weir_delete_event_timer(int64_t ts);
void weir_register_processing_timer(int64_t ts);
void weir_delete_processing_timer(int64_t ts);
void weir_log(weir_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void weir_buf_free(weir_buf *b);
void weir_list_free(weir_list *l);

/* ---- JSON ------------------------------------------------------------------------------ */
/* The string field `field` of the top-level JSON object `json`, unescaped, into `out`
 * (free it); false when the text is not an object, has no such field, or it is no string. */
bool weir_json_string(weir_bytes json, const char *field, weir_buf *out);
/* The integer field `field` (no fraction or exponent, within int64). */
bool weir_json_i64(weir_bytes json, const char *field, int64_t *out);
/* Whether `json` is one well-formed JSON object (and nothing after it). */
bool weir_json_is_object(weir_bytes json);

/* A JSON object written field by field: weir_obj_begin, weir_obj_str / weir_obj_i64 /
 * weir_obj_bool, weir_obj_end; then .buf holds it (free with weir_buf_free). */
typedef struct {
  weir_buf buf;
  size_t cap;
  bool first;
} weir_obj;
void weir_obj_begin(weir_obj *o);
void weir_obj_str(weir_obj *o, const char *name, const uint8_t *s, size_t len);
void weir_obj_i64(weir_obj *o, const char *name, int64_t v);
void weir_obj_bool(weir_obj *o, const char *name, bool v);
void weir_obj_end(weir_obj *o);

/* ---- for the backends (weir_wasm.c, weir_testing.c), not for authors ------------------ */
/* The reason weir_fail set for the failure just returned, and forgets it. */
weir_error_kind weir__take_error(char **message);

#ifdef __cplusplus
}
#endif
#endif
