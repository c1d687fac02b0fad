/* {{name}}'s unit tests as a native program with weir_testing.c (no weir, no Wasm). */
#include <stdio.h>
#include <string.h>

#include "weir_testing.h"

int main(void) {
  int failures = 0;
  if (weir_test_open("{}") != WEIR_OK) failures++;
  const char *keys[] = {"a", "b", "a"};
  for (int i = 0; i < 3; i++)
    if (weir_test_process(keys[i], "{}", WEIR_TEST_NO_TIME) != WEIR_OK) failures++;
  const char *want[] = {"{\"key\":\"a\",\"count\":1}", "{\"key\":\"b\",\"count\":1}", "{\"key\":\"a\",\"count\":2}"};
  if (weir_test_count(NULL) != 3) failures++;
  for (size_t i = 0; i < 3 && i < weir_test_count(NULL); i++)
    if (strcmp(weir_test_value(NULL, i), want[i]) != 0) {
      fprintf(stderr, "row %zu: %s, want %s\n", i, weir_test_value(NULL, i), want[i]);
      failures++;
    }
  printf("%s\n", failures ? "{{name}}: FAILED" : "{{name}}: all checks passed");
  return failures != 0;
}
