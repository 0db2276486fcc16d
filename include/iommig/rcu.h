/* SPDX-License-Identifier: MIT */
/*
 * libiommig - RCU for users of the library (liburcu, "memb" flavour).
 *
 * RULE: every thread that reads under RCU is registered with liburcu, or
 * grace periods would not wait for it and a node it reads could be freed
 * under it. Library functions that read under RCU (find_get_page(), file
 * reads, device page-table walks) register the calling thread themselves
 * on its first read and unregister it when it exits. A thread that calls
 * iom_rcu_read_lock() and the radix-tree lookups directly is registered
 * the same way; registering explicitly with iom_rcu_register_thread() (and
 * iom_rcu_unregister_thread() before exit) is still allowed and cheaper to
 * reason about. Never unregister inside a read-side critical section.
 *
 * These wrappers exist so that no public header carries a liburcu type;
 * calling liburcu's urcu_memb_* functions directly is equivalent.
 */
#ifndef IOMMIG_RCU_H
#define IOMMIG_RCU_H

#include <iommig/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/** iom_rcu_register_thread() - make the calling thread an RCU reader (idempotent). */
IOM_API void iom_rcu_register_thread(void);
/** iom_rcu_unregister_thread() - before a registered thread exits. */
IOM_API void iom_rcu_unregister_thread(void);
/**
 * iom_rcu_read_lock() - enter a read-side critical section (nests); registers
 * the thread on first use.
 */
IOM_API void iom_rcu_read_lock(void);
/** iom_rcu_read_unlock() - leave it. */
IOM_API void iom_rcu_read_unlock(void);
/**
 * iom_synchronize_rcu() - wait until every read-side critical section that
 * began before the call has ended. Context: not inside a read section.
 */
IOM_API void iom_synchronize_rcu(void);
/**
 * iom_rcu_barrier() - wait until every callback queued by the library with
 * call_rcu() has run (deferred frees). Context: not inside a read section.
 */
IOM_API void iom_rcu_barrier(void);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_RCU_H */
