/* SPDX-License-Identifier: MIT */
/*
 * Messages and bug reports (kernel/printk, lib/bug.c). A machine's
 * messages go to its log hook, or to stderr with the kernel's level
 * prefixes; bug reports are also counted so tests can assert none happened.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug.h"
#include "machine.h"

void _iom_bug(const char *file, int line, const char *func, const char *cond)
{
	fprintf(stderr, "libiommig BUG at %s:%d %s(): %s\n", file, line, func,
		cond);
	abort();
}

void _iom_die(const char *file, int line, const char *func, const char *what,
	      int err)
{
	fprintf(stderr, "libiommig: %s:%d %s(): %s failed: %s\n", file, line,
		func, what, strerror(err));
	abort();
}

static void iom_vprintk(const struct iom_machine *m, enum iom_log_level level,
			const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m && m->cfg.log) {
		m->cfg.log(m->cfg.log_priv, level, msg);
		return;
	}
	fprintf(stderr, "libiommig <%d>: %s\n", (int)level, msg);
}

void iom_printk(const struct iom_machine *m, enum iom_log_level level,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	iom_vprintk(m, level, fmt, ap);
	va_end(ap);
}

void iom_report_bug(struct iom_machine *m, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add_explicit(&m->bug_count, 1, memory_order_relaxed);
	va_start(ap, fmt);
	iom_vprintk(m, IOM_LOG_ERR, fmt, ap);
	va_end(ap);
}
