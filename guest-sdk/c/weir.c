/* weir's C SDK, the part both backends share: failures, typed state, JSON. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "weir.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static weir_error_kind error_kind = WEIR_OTHER;
static char *error_message = NULL;

int weir_fail(weir_error_kind kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  free(error_message);
  error_message = malloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(error_message, (size_t)n + 1, fmt, ap);
  va_end(ap);
  error_kind = kind;
  return WEIR_ERR;
}

weir_error_kind weir__take_error(char **message) {
  if (!error_message) {
    *message = strdup("the operator failed without saying why (return weir_fail(...))");
    return WEIR_OTHER;
  }
  *message = error_message;
  error_message = NULL;
  return error_kind;
}

void weir_buf_free(weir_buf *b) {
  free(b->ptr);
  b->ptr = NULL;
  b->len = 0;
}

void weir_list_free(weir_list *l) {
  for (size_t i = 0; i < l->len; i++) weir_buf_free(&l->items[i]);
  free(l->items);
  l->items = NULL;
  l->len = 0;
}

/* ---- JSON reading: a small strict scanner over one top-level object --------------------- */

typedef struct {
  const uint8_t *p, *end;
} scan;

static void ws(scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool hex4(scan *s, uint32_t *out) {
  if (s->end - s->p < 4) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(s->p[i]);
    if (h < 0) return false;
    v = v << 4 | (uint32_t)h;
  }
  s->p += 4;
  *out = v;
  return true;
}

static void put(weir_buf *b, size_t *cap, const uint8_t *src, size_t n) {
  if (!b) return;
  if (b->len + n > *cap) {
    *cap = (b->len + n) * 2 + 16;
    b->ptr = realloc(b->ptr, *cap);
  }
  memcpy(b->ptr + b->len, src, n);
  b->len += n;
}

/* A JSON string at s->p (at its opening quote); its text unescaped into `out` when given. */
static bool string(scan *s, weir_buf *out) {
  size_t cap = out ? out->len : 0;
  if (s->p >= s->end || *s->p != '"') return false;
  s->p++;
  while (s->p < s->end) {
    uint8_t c = *s->p++;
    if (c == '"') return true;
    if (c < 0x20) return false;
    if (c != '\\') {
      put(out, &cap, &c, 1);
      continue;
    }
    if (s->p >= s->end) return false;
    uint8_t e = *s->p++;
    uint8_t one;
    switch (e) {
      case '"': one = '"'; break;
      case '\\': one = '\\'; break;
      case '/': one = '/'; break;
      case 'b': one = '\b'; break;
      case 'f': one = '\f'; break;
      case 'n': one = '\n'; break;
      case 'r': one = '\r'; break;
      case 't': one = '\t'; break;
      case 'u': {
        uint32_t cp;
        if (!hex4(s, &cp)) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u') return false;
          s->p += 2;
          if (!hex4(s, &lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return false;
        }
        uint8_t u[4];
        size_t n;
        if (cp < 0x80) { u[0] = (uint8_t)cp; n = 1; }
        else if (cp < 0x800) { u[0] = (uint8_t)(0xC0 | cp >> 6); u[1] = (uint8_t)(0x80 | (cp & 0x3F)); n = 2; }
        else if (cp < 0x10000) { u[0] = (uint8_t)(0xE0 | cp >> 12); u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); u[2] = (uint8_t)(0x80 | (cp & 0x3F)); n = 3; }
        else { u[0] = (uint8_t)(0xF0 | cp >> 18); u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F)); u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); u[3] = (uint8_t)(0x80 | (cp & 0x3F)); n = 4; }
        put(out, &cap, u, n);
        continue;
      }
      default: return false;
    }
    put(out, &cap, &one, 1);
  }
  return false;
}

static bool literal(scan *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return false;
  s->p += n;
  return true;
}

/* A JSON number; *integer says whether it has no fraction or exponent. */
static bool number(scan *s, bool *integer) {
  const uint8_t *start = s->p;
  *integer = true;
  if (s->p < s->end && *s->p == '-') s->p++;
  if (s->p >= s->end) return false;
  if (*s->p == '0') s->p++;
  else if (*s->p >= '1' && *s->p <= '9') while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  else return false;
  if (s->p < s->end && *s->p == '.') {
    *integer = false;
    s->p++;
    const uint8_t *d = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
    if (s->p == d) return false;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    *integer = false;
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    const uint8_t *d = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
    if (s->p == d) return false;
  }
  return s->p > start;
}

static bool value(scan *s, int depth);

static bool members(scan *s, int depth, char open, char close) {
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    return true;
  }
  for (;;) {
    ws(s);
    if (open == '{') {
      if (!string(s, NULL)) return false;
      ws(s);
      if (s->p >= s->end || *s->p++ != ':') return false;
    }
    if (!value(s, depth + 1)) return false;
    ws(s);
    if (s->p >= s->end) return false;
    uint8_t c = *s->p++;
    if (c == close) return true;
    if (c != ',') return false;
  }
}

static bool value(scan *s, int depth) {
  bool integer;
  ws(s);
  if (s->p >= s->end || depth > 128) return false;
  switch (*s->p) {
    case '{': return members(s, depth, '{', '}');
    case '[': return members(s, depth, '[', ']');
    case '"': return string(s, NULL);
    case 't': return literal(s, "true");
    case 'f': return literal(s, "false");
    case 'n': return literal(s, "null");
    default: return number(s, &integer);
  }
}

bool weir_json_is_object(weir_bytes json) {
  scan s = {json.ptr, json.ptr + json.len};
  ws(&s);
  if (s.p >= s.end || *s.p != '{' || !value(&s, 0)) return false;
  ws(&s);
  return s.p == s.end;
}

/* Whether the object key at s->p (at its opening quote) is `name`, reading past it; -1 when
 * it is not a well-formed string. Keys without escapes (nearly all) are compared in place;
 * one with escapes is unescaped first. */
static int key_is(scan *s, const char *name, size_t n) {
  const uint8_t *start = s->p + 1;
  if (!string(s, NULL)) return -1;
  size_t raw = (size_t)(s->p - 1 - start);
  if (memchr(start, '\\', raw) == NULL) return raw == n && memcmp(start, name, n) == 0;
  scan again = {start - 1, s->p};
  weir_buf key = {0};
  string(&again, &key);
  int match = key.len == n && memcmp(key.ptr, name, n) == 0;
  weir_buf_free(&key);
  return match;
}

/* Finds `field` in the top-level object, checking the whole text is one well-formed object
 * in the same walk; leaves `at` at the field's value. The last of repeated keys wins, as in
 * the other SDKs' JSON readers. */
static bool field(weir_bytes json, const char *name, scan *at) {
  scan s = {json.ptr, json.ptr + json.len};
  size_t n = strlen(name);
  bool found = false;
  ws(&s);
  if (s.p >= s.end || *s.p++ != '{') return false;
  ws(&s);
  if (s.p < s.end && *s.p == '}') {
    s.p++;
  } else {
    for (;;) {
      ws(&s);
      int match = key_is(&s, name, n);
      if (match < 0) return false;
      ws(&s);
      if (s.p >= s.end || *s.p++ != ':') return false;
      ws(&s);
      if (match) {
        *at = s;
        found = true;
      }
      if (!value(&s, 1)) return false;
      ws(&s);
      if (s.p >= s.end) return false;
      uint8_t c = *s.p++;
      if (c == '}') break;
      if (c != ',') return false;
    }
  }
  ws(&s);
  return found && s.p == s.end;
}

bool weir_json_string(weir_bytes json, const char *name, weir_buf *out) {
  scan s;
  out->ptr = NULL;
  out->len = 0;
  if (!field(json, name, &s) || *s.p != '"') return false;
  out->ptr = malloc(1);
  return string(&s, out);
}

bool weir_json_i64(weir_bytes json, const char *name, int64_t *out) {
  scan s;
  bool integer;
  if (!field(json, name, &s)) return false;
  const uint8_t *start = s.p;
  if (!number(&s, &integer) || !integer) return false;
  bool neg = *start == '-';
  uint64_t v = 0;
  for (const uint8_t *d = start + neg; d < s.p; d++) {
    uint64_t next = v * 10 + (uint64_t)(*d - '0');
    if (next / 10 != v) return false;
    v = next;
  }
  if (v > (uint64_t)INT64_MAX + neg) return false;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

/* ---- typed state ------------------------------------------------------------------------ */

static bool parse_i64(const weir_buf *b, int64_t *out) {
  /* A JSON integer alone: reuse the field reader on {"v": ...}. */
  uint8_t *wrapped = malloc(b->len + 6);
  memcpy(wrapped, "{\"v\":", 5);
  memcpy(wrapped + 5, b->ptr, b->len);
  wrapped[b->len + 5] = '}';
  weir_bytes j = {wrapped, b->len + 6};
  bool ok = weir_json_i64(j, "v", out);
  free(wrapped);
  return ok;
}

bool weir_value_get_i64(const char *name, int64_t *out) {
  weir_buf b;
  if (!weir_value_get(name, &b)) return false;
  bool ok = parse_i64(&b, out);
  weir_buf_free(&b);
  return ok;
}

void weir_value_set_i64(const char *name, int64_t v) {
  char s[24];
  int n = snprintf(s, sizeof s, "%lld", (long long)v);
  weir_value_set(name, (const uint8_t *)s, (size_t)n);
}

bool weir_value_get_bool(const char *name, bool dflt) {
  weir_buf b;
  if (!weir_value_get(name, &b)) return dflt;
  bool v = b.len == 4 && memcmp(b.ptr, "true", 4) == 0 ? true : b.len == 5 && memcmp(b.ptr, "false", 5) == 0 ? false : dflt;
  weir_buf_free(&b);
  return v;
}

void weir_value_set_bool(const char *name, bool v) {
  weir_value_set(name, (const uint8_t *)(v ? "true" : "false"), v ? 4 : 5);
}

int64_t *weir_list_get_i64(const char *name, size_t *n) {
  weir_list l = weir_list_get(name);
  int64_t *out = malloc(sizeof(int64_t) * (l.len + 1));
  *n = 0;
  for (size_t i = 0; i < l.len; i++)
    if (parse_i64(&l.items[i], &out[*n])) (*n)++;
  weir_list_free(&l);
  return out;
}

void weir_list_update_i64(const char *name, const int64_t *items, size_t n) {
  char(*text)[24] = malloc(24 * (n + 1));
  weir_bytes *b = malloc(sizeof(weir_bytes) * (n + 1));
  for (size_t i = 0; i < n; i++) {
    int len = snprintf(text[i], 24, "%lld", (long long)items[i]);
    b[i] = (weir_bytes){(const uint8_t *)text[i], (size_t)len};
  }
  weir_list_update(name, b, n);
  free(b);
  free(text);
}

/* ---- JSON writing ------------------------------------------------------------------------ */

static void raw(weir_obj *o, const void *p, size_t n) {
  put(&o->buf, &o->cap, p, n);
}

static void quoted(weir_obj *o, const uint8_t *s, size_t len) {
  raw(o, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    uint8_t c = s[i];
    if (c == '"' || c == '\\') {
      uint8_t e[2] = {'\\', c};
      raw(o, e, 2);
    } else if (c < 0x20) {
      char e[8];
      int n = c == '\n' ? snprintf(e, sizeof e, "\\n") : c == '\t' ? snprintf(e, sizeof e, "\\t") : c == '\r' ? snprintf(e, sizeof e, "\\r") : snprintf(e, sizeof e, "\\u%04x", c);
      raw(o, e, (size_t)n);
    } else {
      raw(o, &c, 1);
    }
  }
  raw(o, "\"", 1);
}

static void name(weir_obj *o, const char *n) {
  if (!o->first) raw(o, ",", 1);
  o->first = false;
  quoted(o, (const uint8_t *)n, strlen(n));
  raw(o, ":", 1);
}

void weir_obj_begin(weir_obj *o) {
  o->buf = (weir_buf){0};
  o->cap = 0;
  o->first = true;
  raw(o, "{", 1);
}

void weir_obj_str(weir_obj *o, const char *n, const uint8_t *s, size_t len) {
  name(o, n);
  quoted(o, s, len);
}

void weir_obj_i64(weir_obj *o, const char *n, int64_t v) {
  char s[24];
  int len = snprintf(s, sizeof s, "%lld", (long long)v);
  name(o, n);
  raw(o, s, (size_t)len);
}

void weir_obj_bool(weir_obj *o, const char *n, bool v) {
  name(o, n);
  raw(o, v ? "true" : "false", v ? 4 : 5);
}

void weir_obj_end(weir_obj *o) {
  raw(o, "}", 1);
}
