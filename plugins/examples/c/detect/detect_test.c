/* The C detector as a native program with weir_testing.c: the same cases as the Rust one.
 *   cc -I ../../../../guest-sdk/c detect.c detect_test.c ../../../../guest-sdk/c/weir.c \
 *      ../../../../guest-sdk/c/weir_testing.c -o detect_test && ./detect_test */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir_testing.h"

static int failures;

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                     \
    }                                                                 \
  } while (0)

static void ev(const char *user, const char *action, long long ts) {
  char v[256];
  snprintf(v, sizeof v, "{\"user_id\":\"%s\",\"action\":\"%s\",\"timestamp\":%lld}", user, action, ts);
  CHECK(weir_test_process(user, v, ts * 1000) == WEIR_OK);
}

static void five_failures_within_300s_alert_once_then_reset(void) {
  CHECK(weir_test_open("{}") == WEIR_OK);
  long long ts[] = {0, 100, 200, 250};
  for (int i = 0; i < 4; i++) ev("u", "login_failed", ts[i]);
  CHECK(weir_test_count(NULL) == 0);
  ev("u", "login_failed", 299);
  CHECK(weir_test_count(NULL) == 1);
  CHECK(!strcmp(weir_test_value(NULL, 0), "{\"type\":\"security_alert\",\"user_id\":\"u\",\"timestamp\":299,\"failed_attempts\":5}"));
  CHECK(weir_test_timestamp(NULL, 0) == 299000);
  weir_test_take();
  ev("u", "login_failed", 300);
  CHECK(weir_test_count(NULL) == 0);
}

static void old_failures_and_success_do_not_count(void) {
  CHECK(weir_test_open("{}") == WEIR_OK);
  long long ts[] = {0, 10, 20, 30};
  for (int i = 0; i < 4; i++) ev("u", "login_failed", ts[i]);
  ev("u", "login_failed", 311);
  CHECK(weir_test_count(NULL) == 0);
  ev("u", "login_success", 312);
  for (int t = 313; t <= 316; t++) ev("u", "login_failed", t);
  CHECK(weir_test_count(NULL) == 0);
}

static void anomaly_once_per_login(void) {
  CHECK(weir_test_open("{\"idle_seconds\": 100}") == WEIR_OK);
  ev("u", "login_success", 0);
  ev("u", "view", 100);
  CHECK(weir_test_count(NULL) == 0);
  ev("u", "download", 101);
  ev("u", "view", 500);
  CHECK(weir_test_count(NULL) == 1);
  CHECK(!strcmp(weir_test_value(NULL, 0), "{\"type\":\"anomaly_alert\",\"user_id\":\"u\",\"timestamp\":101,\"action\":\"download\",\"idle_seconds\":101}"));
  weir_test_take();
  ev("u", "login_success", 600);
  ev("u", "purchase", 701);
  CHECK(weir_test_count(NULL) == 1);
}

static void escaped_text_reads_as_its_characters(void) {
  CHECK(weir_test_open("{}") == WEIR_OK);
  for (int t = 0; t < 5; t++) {
    char v[256];
    snprintf(v, sizeof v, "{\"user_id\": \"u\\u00e9\", \"action\": \"login_f\\u0061iled\", \"timestamp\": %d, \"ip\": \"x\"}", t);
    CHECK(weir_test_process("u", v, t) == WEIR_OK);
  }
  CHECK(weir_test_count(NULL) == 1);
  CHECK(!strcmp(weir_test_value(NULL, 0), "{\"type\":\"security_alert\",\"user_id\":\"u\xc3\xa9\",\"timestamp\":4,\"failed_attempts\":5}"));
}

static void malformed_records_and_config_are_refused(void) {
  CHECK(weir_test_open("{\"threshold\": 0}") == WEIR_ERR);
  CHECK(strstr(weir_test_error(), "threshold") != NULL);
  CHECK(weir_test_open("{}") == WEIR_OK);
  CHECK(weir_test_process("u", "{\"user_id\": \"u\", \"action\": 3, \"timestamp\": 1}", 1) == WEIR_ERR);
  CHECK(strstr(weir_test_error(), "action") != NULL);
  CHECK(weir_test_process("u", "{\"user_id\": \"u\", \"action\": \"view\", \"timestamp\": 1.5}", 1) == WEIR_ERR);
  CHECK(weir_test_process("u", "{\"user_id\": \"u\", \"action\": \"view\", \"timestamp\": 1", 1) == WEIR_ERR);
}

int main(void) {
  five_failures_within_300s_alert_once_then_reset();
  old_failures_and_success_do_not_count();
  anomaly_once_per_login();
  escaped_text_reads_as_its_characters();
  malformed_records_and_config_are_refused();
  if (failures) {
    fprintf(stderr, "detect_test: %d checks failed\n", failures);
    return 1;
  }
  printf("detect_test: all checks passed\n");
  return 0;
}
