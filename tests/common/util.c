/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "util.h"

void test_log_hook(void *priv, enum iom_log_level level, const char *msg)
{
	struct test_log *log = priv;
	size_t n;

	if (!log)
		return;
	if (level <= IOM_LOG_ERR)
		log->nr_err++;
	else if (level == IOM_LOG_WARNING)
		log->nr_warn++;
	n = strlen(msg);
	if (log->len + n + 2 < sizeof(log->text)) {
		memcpy(log->text + log->len, msg, n);
		log->len += n;
		log->text[log->len++] = '\n';
		log->text[log->len] = '\0';
	}
}

void test_log_reset(struct test_log *log)
{
	memset(log, 0, sizeof(*log));
}

int test_log_contains(const struct test_log *log, const char *needle)
{
	return strstr(log->text, needle) != NULL;
}

struct iom_machine *test_machine(uint64_t mem_mib, struct test_log *log,
				 struct iom_machine_config *cfg_out)
{
	struct iom_machine_config cfg;
	struct iom_machine *m = NULL;

	if (cfg_out && cfg_out->mem_size)
		cfg = *cfg_out;
	else
		memset(&cfg, 0, sizeof(cfg));
	if (!cfg.mem_size)
		cfg.mem_size = mem_mib << 20;
	if (!cfg.min_free_kbytes)
		cfg.min_free_kbytes = -1;
	cfg.log = test_log_hook;
	cfg.log_priv = log;
	if (log)
		test_log_reset(log);
	if (iom_machine_create(&cfg, &m))
		return NULL;
	return m;
}
