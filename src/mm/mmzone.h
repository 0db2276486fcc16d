/* SPDX-License-Identifier: MIT */
/*
 * Nodes, zones, free areas and per-thread page caches (include/linux/
 * mmzone.h). Simplified: zone and node boundaries are aligned to the
 * MAX_ORDER block, so a buddy never lies in another zone; the zone of a page
 * is found through its pageblock rather than bits in page->flags, so a
 * never-touched struct iom_page is all zeros and costs no host memory.
 */
#ifndef IOM_MM_MMZONE_H
#define IOM_MM_MMZONE_H

#include <pthread.h>
#include <stdatomic.h>

#include <iommig/filemap.h>
#include <iommig/mm.h>
#include <iommig/vmstat.h>

#include "../core/list.h"

#define IOM_MAX_ORDER_LIMIT	20	/* largest max_order a config may ask */
#define NR_ORDERS_LIMIT		(IOM_MAX_ORDER_LIMIT + 1)

enum zone_watermarks { WMARK_MIN, WMARK_LOW, WMARK_HIGH, NR_WMARK };

enum zone_stat_item {
	NR_FREE_PAGES,
	NR_FREE_CMA_PAGES,
	NR_VM_ZONE_STAT_ITEMS,
};

/*
 * A free list per order and migratetype. Counts are changed under the zone
 * lock but read without it (the watermark checks), hence relaxed atomics.
 * The head page of a free block records its order in ->private and the
 * migratetype of the list it is on in ->index.
 */
struct free_area {
	struct list_head free_list[IOM_MIGRATE_TYPES];
	atomic_ulong nr_free;
	atomic_ulong nr_free_mt[IOM_MIGRATE_TYPES];
};

struct pglist_data;

struct zone {
	/* read-mostly */
	unsigned long _watermark[NR_WMARK];
	long lowmem_reserve[IOM_MAX_NR_ZONES];
	struct pglist_data *zone_pgdat;
	struct iom_machine *machine;
	int zone_type;
	int zone_id;			/* index in machine->zone_table */
	const char *name;
	unsigned long zone_start_pfn;
	unsigned long spanned_pages;
	unsigned long managed_pages;
	unsigned long cma_pages;
	unsigned long nr_isolate_pageblock;	/* under lock */

	pthread_mutex_t lock;
	struct free_area free_area[NR_ORDERS_LIMIT];
	atomic_long vm_stat[NR_VM_ZONE_STAT_ITEMS];

	/*
	 * Where the last partial compaction left its scanners (the kernel's
	 * compact_cached_free_pfn and compact_cached_migrate_pfn[async,
	 * sync]): direct compaction and kcompactd go on from there instead of
	 * rescanning the zone. Hints, read and written without the lock;
	 * compact_cached_valid false means "from the zone's ends".
	 */
	atomic_ulong compact_cached_free_pfn;
	atomic_ulong compact_cached_migrate_pfn[2];
	atomic_bool compact_cached_valid;
};

static inline unsigned long zone_end_pfn(const struct zone *z)
{
	return z->zone_start_pfn + z->spanned_pages;
}

static inline bool populated_zone(const struct zone *z)
{
	return z->spanned_pages != 0;
}

static inline bool zone_spans_pfn(const struct zone *z, unsigned long pfn)
{
	return pfn >= z->zone_start_pfn && pfn < zone_end_pfn(z);
}

static inline unsigned long zone_page_state(const struct zone *z, int item)
{
	long v = atomic_load_explicit(&((struct zone *)z)->vm_stat[item],
				      memory_order_relaxed);
	return v < 0 ? 0 : (unsigned long)v;
}

/*
 * The zonelist of a node: every populated zone of every node, the local
 * node first and then by distance, highest zone first within a node
 * (ZONELIST_FALLBACK, node ordering).
 */
struct zoneref {
	struct zone *zone;
	int zone_type;
};

/*
 * A node's LRU lists (struct lruvec). Pages on them have PG_lru; the lists
 * hold no reference. Lock order: lru_lock nests inside the page lock and
 * outside zone->lock.
 */
struct lruvec {
	pthread_mutex_t lru_lock;
	struct list_head lists[IOM_NR_LRU_LISTS];
	atomic_ulong nr_pages[IOM_NR_LRU_LISTS];
};

struct pglist_data {
	int node_id;
	struct lruvec lruvec;
	unsigned long node_start_pfn;
	unsigned long node_spanned_pages;
	struct zone node_zones[IOM_MAX_NR_ZONES];
	int nr_zonerefs;
	struct zoneref zonelist[IOM_MAX_NUMNODES * IOM_MAX_NR_ZONES + 1];

	/*
	 * kcompactd (mm/compaction.c). The kernel reads and writes these
	 * racily; here every field below kcompactd_lock is under it, and
	 * kcompactd_wait (the kernel's wait queue) is signalled under it.
	 * kcompactd_lock nests nothing: it is never held across compaction.
	 */
	pthread_mutex_t kcompactd_lock;
	pthread_cond_t kcompactd_wait;
	pthread_t kcompactd;		/* valid while kcompactd_running */
	bool kcompactd_running;		/* the thread was started */
	bool kcompactd_should_stop;	/* kthread_should_stop() */
	bool kcompactd_sleeping;	/* wq_has_sleeper(&kcompactd_wait) */
	int kcompactd_max_order;
	int kcompactd_highest_zoneidx;
	bool proactive_compact_trigger;
	/* proactive steps iom_kcompactd_run() still skips (the backoff) */
	unsigned int proactive_defer;
	bool kcompactd_inited;		/* lock and condvar initialised */
	/* kswapd_is_running(): inline kswapd runs in progress (vmscan.c) */
	atomic_int kswapd_active;
};

/* One zone's order-0 cache in one "cpu" (struct per_cpu_pages). */
struct per_cpu_pages {
	int count;
	int high;
	int batch;
	struct list_head lists[IOM_MIGRATE_PCPTYPES];
};

/*
 * What the kernel keeps per cpu, libiommig keeps per (thread, machine):
 * the order-0 caches of every zone and the vm event counters.
 *
 * @lock is taken by the owner around every cache operation (the kernel's
 * pcp_spin_trylock) and by drainers of other threads; uncontended it costs
 * one atomic exchange. The set is reference counted because its owner
 * thread and its machine may go away in either order: the machine detaches
 * it (machine = NULL) under @lock, the thread's exit drains it under @lock.
 */
struct iom_pcp_set {
	atomic_int lock;
	atomic_int refcount;
	_Atomic(struct iom_machine *) machine;
	int nid;
	bool dead;			/* owner thread exited; empty */
	struct list_head machine_link;	/* machine->pcp_sets */
	struct iom_pcp_set *tls_next;	/* the owner thread's sets */
	atomic_ulong events[IOM_NR_VM_EVENT_ITEMS];
	int nr_zones;
	struct per_cpu_pages pcp[];	/* indexed by zone->zone_id */
};

/* Pageblock flags (include/linux/pageblock-flags.h), one byte per block. */
#define PB_migratetype_bits	3
#define PB_migrate_mask		((1u << PB_migratetype_bits) - 1)
#define PB_migrate_skip		(1u << 3)	/* compaction's skip hint */

struct pageblock {
	atomic_uchar flags;
	uint8_t zone_id;
};

#endif /* IOM_MM_MMZONE_H */
