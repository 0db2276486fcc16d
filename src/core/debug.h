/* SPDX-License-Identifier: MIT */
/*
 * Bug checks and messages (include/asm-generic/bug.h, printk).
 * IOM_BUG_ON() is for the library's own invariants only and is compiled in
 * IOMMIG_DEBUG builds; a caller's mistake is an -errno and a warning.
 */
#ifndef IOM_CORE_DEBUG_H
#define IOM_CORE_DEBUG_H

#include <iommig/machine.h>

#define IOM_NORETURN __attribute__((noreturn))
#define IOM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

IOM_NORETURN void _iom_bug(const char *file, int line, const char *func,
			   const char *cond);
IOM_NORETURN void _iom_die(const char *file, int line, const char *func,
			   const char *what, int err);

#ifdef IOMMIG_DEBUG
#define IOM_BUG_ON(cond)						\
	do {								\
		if (unlikely(cond))					\
			_iom_bug(__FILE__, __LINE__, __func__, #cond);	\
	} while (0)
#else
#define IOM_BUG_ON(cond) do { (void)sizeof(cond); } while (0)
#endif

/* A pthread call that must not fail (liburcu's urcu_die()). */
#define IOM_CHECK_PTHREAD(call)						\
	do {								\
		int __e = (call);					\
		if (unlikely(__e))					\
			_iom_die(__FILE__, __LINE__, __func__, #call, __e); \
	} while (0)

/* Messages: through the machine's log hook, or stderr. */
void iom_printk(const struct iom_machine *m, enum iom_log_level level,
		const char *fmt, ...) IOM_PRINTF(3, 4);
/* A bug report: counted in iom_machine_bug_count() and printed at ERR. */
void iom_report_bug(struct iom_machine *m, const char *fmt, ...)
	IOM_PRINTF(2, 3);

#define iom_warn(m, ...) iom_printk(m, IOM_LOG_WARNING, __VA_ARGS__)

#endif /* IOM_CORE_DEBUG_H */
