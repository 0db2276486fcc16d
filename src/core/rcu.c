/* SPDX-License-Identifier: MIT */
/*
 * RCU glue: the public wrappers of include/iommig/rcu.h over liburcu's
 * "memb" flavour (membarrier-based readers: a read lock is a compiler
 * barrier and a per-thread counter), and automatic registration of threads
 * that first read under RCU inside the library (see rcu.h).
 */
#include <pthread.h>

#include <iommig/rcu.h>

#include "debug.h"
#include "rcu.h"

__thread bool iom_rcu_registered;
#if defined(__SANITIZE_THREAD__)
char iom_rcu_tsan_gp, iom_rcu_tsan_barrier;
#endif
static __thread bool rcu_registered_by_us;
static pthread_key_t rcu_key;
static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;

static void rcu_thread_exit(void *unused)
{
	if (rcu_registered_by_us && iom_rcu_registered) {
		urcu_memb_unregister_thread();
		iom_rcu_registered = false;
		rcu_registered_by_us = false;
	}
}

static void rcu_make_key(void)
{
	IOM_CHECK_PTHREAD(pthread_key_create(&rcu_key, rcu_thread_exit));
}

void iom_rcu_register_auto(void)
{
	IOM_CHECK_PTHREAD(pthread_once(&rcu_key_once, rcu_make_key));
	urcu_memb_register_thread();
	iom_rcu_registered = true;
	rcu_registered_by_us = true;
	IOM_CHECK_PTHREAD(pthread_setspecific(rcu_key, (void *)1));
}

void iom_rcu_register_thread(void)
{
	if (iom_rcu_registered)
		return;
	urcu_memb_register_thread();
	iom_rcu_registered = true;
}

void iom_rcu_unregister_thread(void)
{
	if (!iom_rcu_registered)
		return;
	urcu_memb_unregister_thread();
	iom_rcu_registered = false;
	rcu_registered_by_us = false;
}

void iom_rcu_read_lock(void)
{
	iom_rcu_read_lock_auto();
}

void iom_rcu_read_unlock(void)
{
	iom_rcu_read_unlock_auto();
}

void iom_synchronize_rcu(void)
{
	urcu_memb_synchronize_rcu();
	iom_rcu_tsan_acquire(&iom_rcu_tsan_gp);
}

void iom_rcu_barrier(void)
{
	urcu_memb_barrier();
	iom_rcu_tsan_acquire(&iom_rcu_tsan_barrier);
}
