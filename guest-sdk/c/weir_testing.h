/* weir's C SDK on the build machine: an in-memory host in place of weir, so that an operator
 * is unit-tested as a native program (gcc or clang, no Wasm), with keyed state per key, timers
 * fired by the watermark or a simulated processing-time clock in time order, side outputs and
 * log lines. Link the operator with weir.c and weir_testing.c (not weir_wasm.c). */
#ifndef WEIR_TESTING_H
#define WEIR_TESTING_H

#include "weir.h"

#define WEIR_TEST_NO_TIME INT64_MIN

/* Forgets all state, timers and outputs, and opens the operator with `config_json`. */
int weir_test_open(const char *config_json);
/* Processes one record (a NUL-terminated value) under `key`; WEIR_TEST_NO_TIME for none. */
int weir_test_process(const char *key, const char *value, int64_t timestamp);
/* Moves the watermark, firing due event-time timers in time order (returns the first failure). */
int weir_test_advance_watermark(int64_t watermark);
/* Moves the simulated processing-time clock, firing due processing-time timers. */
int weir_test_advance_processing_time(int64_t now);
/* Records emitted to `output` (NULL: the main output) since the last weir_test_take. */
size_t weir_test_count(const char *output);
/* Emitted record i of `output`: its value as text (NUL-terminated), and its time. */
const char *weir_test_value(const char *output, size_t i);
int64_t weir_test_timestamp(const char *output, size_t i);
/* Forgets what was emitted. */
void weir_test_take(void);
/* The reason of the last failure an operator function returned. */
const char *weir_test_error(void);
/* Timers not yet fired. */
size_t weir_test_pending_timers(void);
/* Log lines so far, and line i. */
size_t weir_test_log_count(void);
const char *weir_test_log_line(size_t i);

#endif
