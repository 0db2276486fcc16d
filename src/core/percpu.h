/* SPDX-License-Identifier: MIT */
/*
 * What stands in for per-cpu data (include/linux/percpu.h, spinlock.h):
 * per-thread variables in initial-exec TLS (no __tls_get_addr() call on a
 * fast path), and the small test-and-set spinlock that guards a thread's
 * cache against the rare flusher from another thread (the kernel's
 * pcp->lock and the iova_cpu_rcache lock). Not exported.
 */
#ifndef IOM_CORE_PERCPU_H
#define IOM_CORE_PERCPU_H

#include <sched.h>
#include <stdatomic.h>

#define IOM_TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* Spin on a read, yield after 100 spins (the holder may be off-cpu). */
static inline void iom_spin_lock(atomic_int *lock)
{
	while (atomic_exchange_explicit(lock, 1, memory_order_acquire)) {
		int spins = 0;

		while (atomic_load_explicit(lock, memory_order_relaxed))
			if (++spins > 100)
				sched_yield();
	}
}

static inline void iom_spin_unlock(atomic_int *lock)
{
	atomic_store_explicit(lock, 0, memory_order_release);
}

#endif /* IOM_CORE_PERCPU_H */
