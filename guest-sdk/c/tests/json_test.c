/* The C SDK's JSON reader: one walk checks the whole object and finds the field. Run by
 * scripts/test.sh natively (with weir_testing.c for the state calls weir.c links to). */
#include <stdio.h>
#include <string.h>
#include "weir.h"
/* weir_testing.c drives an operator; this program has none to drive. */
int weir_open(const char *config, size_t len) { (void)config; (void)len; return WEIR_OK; }
int weir_process(const weir_record *rec) { (void)rec; return WEIR_OK; }
int weir_on_timer(int64_t timestamp, weir_domain domain) { (void)timestamp; (void)domain; return WEIR_OK; }

static weir_bytes b(const char *t) { return (weir_bytes){(const uint8_t *)t, strlen(t)}; }
int main(void) {
  int f = 0; int64_t v; weir_buf o;
  f += !weir_json_i64(b(" {\"a\": 1, \"b\\u0061\": [1, {\"x\": null}], \"n\": -42 } "), "n", &v) || v != -42;
  f += !weir_json_string(b("{\"b\\u0061\": \"q\\\"\"}"), "ba", &o) || o.len != 2 || memcmp(o.ptr, "q\"", 2); weir_buf_free(&o);
  f += weir_json_i64(b("{\"n\": 1} x"), "n", &v);   /* trailing garbage */
  f += weir_json_i64(b("{\"n\": 1,}"), "n", &v);    /* trailing comma */
  f += weir_json_i64(b("{\"n\": 1, \"m\": tru}"), "n", &v); /* malformed later value */
  f += weir_json_i64(b("{}"), "n", &v);
  f += !weir_json_i64(b("{\"n\": 1, \"n\": 2}"), "n", &v) || v != 2;  /* last wins */
  printf("json_test: %s\n", f ? "FAILED" : "all checks passed");
  return f != 0;
}
