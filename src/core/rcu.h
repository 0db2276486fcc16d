/* SPDX-License-Identifier: MIT */
/*
 * RCU inside the library. Library code enters read sections with
 * iom_rcu_read_lock_auto(): it registers the calling thread with liburcu on
 * its first read (and unregisters it at thread exit), so a user thread
 * that calls, say, iom_file_read() without registering is still a reader
 * that grace periods wait for. Threads may also register explicitly.
 */
#ifndef IOM_CORE_RCU_H
#define IOM_CORE_RCU_H

#include <stdbool.h>
#include <urcu/urcu-memb.h>

extern __thread bool iom_rcu_registered;
void iom_rcu_register_auto(void);

/*
 * ThreadSanitizer cannot see liburcu's ordering (it is not instrumented),
 * so in TSan builds the grace-period guarantees are stated to it: the end
 * of every read section happens before every RCU callback and every return
 * from synchronize_rcu(); every callback happens before rcu_barrier()
 * returns. Library callbacks call iom_rcu_cb_enter()/iom_rcu_cb_exit().
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char iom_rcu_tsan_gp, iom_rcu_tsan_barrier;
#define iom_rcu_tsan_release(a) __tsan_release(a)
#define iom_rcu_tsan_acquire(a) __tsan_acquire(a)
#else
#define iom_rcu_tsan_release(a) do { } while (0)
#define iom_rcu_tsan_acquire(a) do { } while (0)
#endif

static inline void iom_rcu_read_lock_auto(void)
{
	if (__builtin_expect(!iom_rcu_registered, 0))
		iom_rcu_register_auto();
	urcu_memb_read_lock();
}

static inline void iom_rcu_read_unlock_auto(void)
{
	iom_rcu_tsan_release(&iom_rcu_tsan_gp);
	urcu_memb_read_unlock();
}

/* Start and end of every call_rcu callback of the library. */
static inline void iom_rcu_cb_enter(void)
{
	iom_rcu_tsan_acquire(&iom_rcu_tsan_gp);
}

static inline void iom_rcu_cb_exit(void)
{
	iom_rcu_tsan_release(&iom_rcu_tsan_barrier);
}

/* call_rcu() with the annotations: the library's only way to defer a free. */
#define iom_call_rcu(head, fn) urcu_memb_call_rcu((head), (fn))

#endif /* IOM_CORE_RCU_H */
