/* The log-analyzer's alert rules in C, exactly those of the Rust `detect` plugin
 * (plugins/log-analyzer/detect): five failed logins within 300 s since the last success or
 * alert -> security_alert; view/purchase/download more than 86,400 s after the last
 * login_success -> anomaly_alert, once per login. */
#include <stdlib.h>
#include <string.h>

#include "weir.h"

static int64_t threshold = 5, window_seconds = 300, idle_seconds = 86400;

int weir_open(const char *config, size_t len) {
  weir_bytes c = {(const uint8_t *)config, len};
  threshold = 5, window_seconds = 300, idle_seconds = 86400;
  if (!weir_json_is_object(c)) return weir_fail(WEIR_INVALID_CONFIG, "config is not a JSON object");
  weir_json_i64(c, "threshold", &threshold);
  weir_json_i64(c, "window_seconds", &window_seconds);
  weir_json_i64(c, "idle_seconds", &idle_seconds);
  if (threshold < 1) return weir_fail(WEIR_INVALID_CONFIG, "`threshold` must be at least 1");
  return WEIR_OK;
}

static bool is(const weir_buf *s, const char *word) {
  return s->len == strlen(word) && memcmp(s->ptr, word, s->len) == 0;
}

static void alert(const char *type, const weir_buf *user, int64_t ts, const char *extra, int64_t n, const weir_buf *action) {
  weir_obj o;
  weir_obj_begin(&o);
  weir_obj_str(&o, "type", (const uint8_t *)type, strlen(type));
  weir_obj_str(&o, "user_id", user->ptr, user->len);
  weir_obj_i64(&o, "timestamp", ts);
  if (action) weir_obj_str(&o, "action", action->ptr, action->len);
  weir_obj_i64(&o, extra, n);
  weir_obj_end(&o);
  weir_emit(o.buf.ptr, o.buf.len, NULL, NULL);
  weir_buf_free(&o.buf);
}

int weir_process(const weir_record *rec) {
  weir_buf user, action;
  int64_t ts;
  if (!weir_json_string(rec->value, "user_id", &user)) return weir_fail(WEIR_INVALID_INPUT, "field `user_id`: a string is required");
  if (!weir_json_string(rec->value, "action", &action)) {
    weir_buf_free(&user);
    return weir_fail(WEIR_INVALID_INPUT, "field `action`: a string is required");
  }
  if (!weir_json_i64(rec->value, "timestamp", &ts)) {
    weir_buf_free(&user);
    weir_buf_free(&action);
    return weir_fail(WEIR_INVALID_INPUT, "field `timestamp`: an integer is required");
  }
  if (is(&action, "login_failed")) {
    size_t n;
    int64_t *fails = weir_list_get_i64("fails", &n);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
      if (fails[i] >= ts - window_seconds) fails[kept++] = fails[i];
    fails[kept++] = ts;
    if ((int64_t)kept >= threshold) {
      weir_list_clear("fails");
      alert("security_alert", &user, ts, "failed_attempts", (int64_t)kept, NULL);
    } else {
      weir_list_update_i64("fails", fails, kept);
    }
    free(fails);
  } else if (is(&action, "login_success")) {
    weir_list_clear("fails");
    weir_value_set_i64("last_login", ts);
    weir_value_set_bool("flagged", false);
  } else if (is(&action, "view") || is(&action, "purchase") || is(&action, "download")) {
    int64_t last;
    if (weir_value_get_i64("last_login", &last)) {
      int64_t idle = ts - last;
      if (idle > idle_seconds && !weir_value_get_bool("flagged", false)) {
        weir_value_set_bool("flagged", true);
        alert("anomaly_alert", &user, ts, "idle_seconds", idle, &action);
      }
    }
  }
  weir_buf_free(&user);
  weir_buf_free(&action);
  return WEIR_OK;
}

int weir_on_timer(int64_t timestamp, weir_domain domain) {
  (void)timestamp;
  (void)domain;
  return WEIR_OK;
}
