/* SPDX-License-Identifier: MIT */
/* Helpers shared by the CMocka tests. */
#ifndef IOMMIG_TEST_UTIL_H
#define IOMMIG_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <iommig/iommig.h>

/* Captures the machine's messages so tests can check what was reported. */
struct test_log {
	char text[16384];
	size_t len;
	unsigned int nr_err, nr_warn;
};

void test_log_hook(void *priv, enum iom_log_level level, const char *msg);
void test_log_reset(struct test_log *log);
int test_log_contains(const struct test_log *log, const char *needle);

/*
 * A small machine: @mem_mib of memory, watermarks off unless asked, messages
 * into @log (which may be NULL: then they are dropped).
 */
struct iom_machine *test_machine(uint64_t mem_mib, struct test_log *log,
				 struct iom_machine_config *cfg_out);

#endif
