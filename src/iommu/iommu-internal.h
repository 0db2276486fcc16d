/* SPDX-License-Identifier: MIT */
/*
 * Names shared between the files of the IOMMU core: iommu.c (units,
 * domains, devices, transactions), iommu-migrate.c (seed 000's migration)
 * and iommu-dma.c (dma-iommu.c's IOVA and flush queue). Not exported, and
 * not for the tests: what iotlb.c, iova.c and the tests share is in
 * iommu-priv.h.
 */
#ifndef IOM_IOMMU_INTERNAL_H
#define IOM_IOMMU_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <iommig/iommu.h>
#include <iommig/iova.h>

#include "iommu-priv.h"

#include "../core/list.h"

/* ---- structures --------------------------------------------------------- */

struct iova_fq;		/* iommu-dma.c */

/*
 * The DMA layer's state of a device or a domain (the kernel keeps it in
 * struct device and in the domain's iova_cookie): made on first use,
 * released by its owner's callback when the object goes.
 */
struct dma_state_slot {
	void *_Atomic state;
	int (*release)(void *state);	/* set by the winner, read at the end */
};

/* One leaf of a range being migrated. */
struct mig_leaf {
	unsigned long iova;
	size_t size;
	uint64_t old_pte;		/* as found; its W/DBM bits are restored */
	uint64_t new_paddr;
	unsigned int range;
	size_t off;			/* in its range */
	atomic_bool protected_;		/* fault-on-write now */
	atomic_bool dirty;		/* written since its last copy */
	atomic_bool copying;
};

enum mig_state {
	MIG_BLOCKED,	/* PER_PAGE: every access to the ranges waits */
	MIG_COPY,	/* NONBLOCK: writes fault, get restored, mark dirty */
	MIG_FINAL,	/* NONBLOCK: writes wait */
	MIG_DONE,
};

struct mig_rec {
	struct list_head node;		/* domain->migs, under mig_lock */
	enum iom_iommu_migrate_mode mode;
	const struct iom_iommu_migrate_range *r;
	unsigned int nr;
	struct mig_leaf *leaves;
	size_t nr_leaves;
	_Atomic int state;
	_Atomic uint64_t write_faults;
};

struct iom_iommu_domain {
	struct iom_iommu *iommu;
	enum iom_iommu_domain_type type;
	unsigned int id;
	struct iom_io_pgtable_ops *pgtbl;
	struct list_head node;		/* iommu->domains */

	pthread_mutex_t dev_lock;	/* devices, handler */
	struct list_head devices;
	unsigned int nr_devices;
	iom_iommu_fault_handler_t handler;
	void *token;

	_Atomic int blocked;
	_Atomic int nr_blocked_ranges;
	_Atomic int waiters;		/* transactions waiting out of flight */
	atomic_bool dying;		/* being freed: waits end */
	pthread_mutex_t mig_lock;	/* migs, leaf states, waits */
	pthread_cond_t mig_cv;
	struct list_head migs;
	_Atomic uint64_t mig_epoch;	/* bumped at every state change */

	/* dma-iommu.c's cookie */
	struct iom_iova_domain *iovad;
	unsigned long dma_limit_pfn;	/* exclusive */
	struct iova_fq *_Atomic fq[IOM_DEVICE_MAX_THREADS];
	_Atomic uint64_t fq_flush_start_cnt, fq_flush_finish_cnt;
	_Atomic long fq_pending;

	/* the DMA layer's state of the domain (its per-domain IOMAP) */
	struct dma_state_slot dma_state;
};

struct iom_iommu {
	struct iom_machine *m;
	struct iom_iommu_config cfg;
	char name[32];
	struct iom_iotlb tlb;
	struct iom_io_pgtable_cfg pgcfg;

	pthread_mutex_t lock;		/* domains, devices, ids, fq timer */
	struct list_head domains, devices;
	unsigned long *domid_map;
	unsigned int nr_domains, nr_devices;
	struct iom_iommu_stats dead;	/* of destroyed devices */

	_Atomic uint64_t inv_syncs, inv_sync_waits;
	_Atomic uint64_t fq_queued, fq_flushes, fq_timeouts;

	pthread_t fq_thread;
	bool fq_thread_started, fq_stop;
	pthread_cond_t fq_cv;
	atomic_bool fq_timer_on;
};

/* ---- iommu.c ------------------------------------------------------------ */

/* now_ns() - CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/*
 * dma_tid_get() - the calling thread's slot index (a device's in-flight
 * slot, a domain's flush queue), freed when the thread exits.
 * Return: 0 .. IOM_DEVICE_MAX_THREADS - 1; -1 if none is left.
 */
int dma_tid_get(void);

/*
 * domain_wait_inflight() - the completion of an invalidation (CMD_SYNC):
 * wait until no transaction of @d's devices that may have used a
 * translation dropped before the call is still in flight.
 * Context: takes @d->dev_lock.
 */
void domain_wait_inflight(struct iom_iommu_domain *d);

/* domain_inv_range() - drop @d's IOTLB entries in [@start, @last]; no wait. */
void domain_inv_range(struct iom_iommu_domain *d, unsigned long start,
		      unsigned long last);

/*
 * mig_kick() - a migration of @d changed state: bump @d->mig_epoch and
 * wake the transactions waiting on it.
 * Context: @d->mig_lock held.
 */
void mig_kick(struct iom_iommu_domain *d);

/* ---- iommu-migrate.c ---------------------------------------------------- */

/*
 * pte_restore() - the write-fault side of a non-blocking migration: put
 * back the write permission @l had before it was made fault-on-write.
 * Context: @d->mig_lock held (migrate_write_fault()).
 */
void pte_restore(struct iom_iommu_domain *d, struct mig_leaf *l);

/* ---- iommu-dma.c -------------------------------------------------------- */

/* fq_flush_iotlb() - one domain-wide invalidation for everything queued. */
void fq_flush_iotlb(struct iom_iommu_domain *d);

/*
 * fq_ring_free_all() - free the IOVAs of every flush queue of @d whose
 * flush has completed.
 * Context: takes each queue's lock.
 */
void fq_ring_free_all(struct iom_iommu_domain *d);

#endif /* IOM_IOMMU_INTERNAL_H */
