/* {{name}}: counts the records of each key and emits the running count. */
#include "weir.h"

int weir_open(const char *config, size_t len) {
  (void)config;
  (void)len;
  return WEIR_OK;
}

int weir_process(const weir_record *rec) {
  int64_t n = 0;
  weir_value_get_i64("count", &n);
  weir_value_set_i64("count", ++n);
  weir_obj o;
  weir_obj_begin(&o);
  weir_obj_str(&o, "key", rec->key.ptr, rec->key.len);
  weir_obj_i64(&o, "count", n);
  weir_obj_end(&o);
  weir_emit(o.buf.ptr, o.buf.len, NULL, NULL);
  weir_buf_free(&o.buf);
  return WEIR_OK;
}

int weir_on_timer(int64_t timestamp, weir_domain domain) {
  (void)timestamp;
  (void)domain;
  return WEIR_OK;
}
