/* SPDX-License-Identifier: MIT */
/*
 * Names shared between the files of src/mm (mm/internal.h). Not exported.
 * Conventions: @m machine, @zone a zone, @pfn a pfn known valid here.
 */
#ifndef IOM_MM_INTERNAL_H
#define IOM_MM_INTERNAL_H

#include <errno.h>

#include "../core/debug.h"
#include "../core/machine.h"
#include "../core/percpu.h"
#include "mmzone.h"

/* ---- the public rw_semaphore storage ------------------------------------ */

_Static_assert(sizeof(pthread_rwlock_t) <= sizeof(struct iom_rw_semaphore),
	       "struct iom_rw_semaphore must hold a pthread_rwlock_t");

static inline pthread_rwlock_t *rwsem(struct iom_rw_semaphore *sem)
{
	return (pthread_rwlock_t *)(void *)sem;
}

/* ---- pfn arithmetic (fast, unchecked) ---------------------------------- */

static inline struct iom_page *pfn_to_page(const struct iom_machine *m,
					   unsigned long pfn)
{
	return m->mem_map + (pfn - m->start_pfn);
}

static inline unsigned long page_to_pfn(const struct iom_machine *m,
					const struct iom_page *page)
{
	return (unsigned long)(page - m->mem_map) + m->start_pfn;
}

static inline bool page_in_mem_map(const struct iom_machine *m,
				   const struct iom_page *page)
{
	uintptr_t p = (uintptr_t)page, b = (uintptr_t)m->mem_map;

	return p - b < m->mem_map_size && ((p - b) & (sizeof(struct iom_page) - 1)) == 0;
}

static inline void *page_address(const struct iom_machine *m,
				 const struct iom_page *page)
{
	return m->arena + ((size_t)(page - m->mem_map) << IOM_PAGE_SHIFT);
}

/* ---- memremap.c: ZONE_DEVICE (device-private) pages -------------------- */

/*
 * A device page lives outside mem_map (page_in_mem_map() is false) and
 * keeps its pgmap in lru.prev (the kernel's page->pgmap; lru.next, the
 * compound_head word, stays 0) and the driver's data in ->private
 * (zone_device_data). The plain pfn_to_page(), page_to_pfn() and
 * page_address() above are for mem_map only; the *_any() forms also know
 * device pages, for the places a device pfn can reach (device-private and
 * migration entries, migrate_device.c, the public helpers).
 */
struct iom_dev_pagemap;
struct iom_page *pgmap_pfn_to_page(const struct iom_machine *m, unsigned long pfn);
unsigned long pgmap_page_to_pfn(const struct iom_page *page);
void *pgmap_page_address(const struct iom_page *page);
/* put_page() of a device page: the last reference calls ->page_free(). */
void put_device_page(struct iom_page *page);

static inline bool is_zone_device_page(const struct iom_machine *m,
				       const struct iom_page *page)
{
	return !page_in_mem_map(m, page);
}
static inline struct iom_dev_pagemap *page_pgmap(const struct iom_page *page)
{
	return (struct iom_dev_pagemap *)(void *)page->lru.prev;
}
static inline void get_device_page(struct iom_page *page)
{
	atomic_fetch_add_explicit(&page->_refcount, 1, memory_order_relaxed);
}
static inline struct iom_page *pfn_to_page_any(const struct iom_machine *m,
					       unsigned long pfn)
{
	if (likely(pfn - m->start_pfn < m->nr_pages))
		return pfn_to_page(m, pfn);
	return pgmap_pfn_to_page(m, pfn);
}
static inline unsigned long page_to_pfn_any(const struct iom_machine *m,
					    const struct iom_page *page)
{
	if (likely(page_in_mem_map(m, page)))
		return page_to_pfn(m, page);
	return pgmap_page_to_pfn(page);
}
static inline void *page_address_any(const struct iom_machine *m,
				     const struct iom_page *page)
{
	if (likely(page_in_mem_map(m, page)))
		return page_address(m, page);
	return pgmap_page_address(page);
}

static inline struct pageblock *pfn_pageblock(const struct iom_machine *m,
					      unsigned long pfn)
{
	return &m->pageblocks[(pfn - m->start_pfn) >> m->pageblock_order];
}

static inline struct zone *page_zone(const struct iom_machine *m,
				     const struct iom_page *page)
{
	return m->zone_table[pfn_pageblock(m, page_to_pfn(m, page))->zone_id];
}

static inline struct zone *pfn_zone(const struct iom_machine *m,
				    unsigned long pfn)
{
	return m->zone_table[pfn_pageblock(m, pfn)->zone_id];
}

static inline int get_pfnblock_migratetype(const struct iom_machine *m,
					   unsigned long pfn)
{
	return atomic_load_explicit(&pfn_pageblock(m, pfn)->flags,
				    memory_order_relaxed) & PB_migrate_mask;
}

static inline int get_pageblock_migratetype(const struct iom_machine *m,
					    const struct iom_page *page)
{
	return get_pfnblock_migratetype(m, page_to_pfn(m, page));
}

static inline unsigned long pageblock_start_pfn(const struct iom_machine *m,
						unsigned long pfn)
{
	return pfn & ~((unsigned long)m->pageblock_nr_pages - 1);
}

static inline bool is_migrate_isolate(int mt) { return mt == IOM_MIGRATE_ISOLATE; }
static inline bool is_migrate_cma(int mt) { return mt == IOM_MIGRATE_CMA; }
static inline bool is_migrate_movable(int mt)
{
	return mt == IOM_MIGRATE_MOVABLE || mt == IOM_MIGRATE_CMA;
}
static inline bool migratetype_is_mergeable(int mt)
{
	return mt < IOM_MIGRATE_PCPTYPES;
}

/* ---- buddy helpers ------------------------------------------------------ */

static inline unsigned int buddy_order(const struct iom_page *page)
{
	return (unsigned int)page->private;
}

static inline void set_buddy_order(struct iom_page *page, unsigned int order)
{
	/* WRITE_ONCE: compaction's scanners read it without the zone lock */
	__atomic_store_n(&page->private, (unsigned long)order, __ATOMIC_RELAXED);
	iom_SetPageBuddy(page);
}

/* ---- page_alloc.c ------------------------------------------------------- */

void set_pageblock_migratetype(struct iom_machine *m, unsigned long pfn,
			       int migratetype);
/* Under zone->lock. Return: free pages moved, or -1 if the block is not
 * entirely within @zone. */
int move_freepages_block(struct zone *zone, unsigned long pfn,
			 int migratetype, int *num_movable);
/* Under zone->lock. */
void __free_one_page(struct zone *zone, struct iom_page *page,
		     unsigned long pfn, unsigned int order, int migratetype,
		     bool to_tail);
/* Give free, never-allocated memory to the buddy allocator at boot. */
void split_free_block_at(struct zone *zone, unsigned long pfn);
bool putback_free_pageblock(struct zone *zone, unsigned long pfn,
			    int migratetype);
void memblock_free_pages(struct iom_machine *m, unsigned long start_pfn,
			 unsigned long end_pfn);
int iom_check_free_lists(struct iom_machine *m, unsigned long *nr_free);
void setup_per_zone_wmarks(struct iom_machine *m);
void iom_pcp_detach_all(struct iom_machine *m);
void count_vm_event(struct iom_machine *m, int item);
void count_vm_events(struct iom_machine *m, int item, unsigned long nr);
/*
 * compaction.c's free scanner: take the free block of @order at @page off
 * the free lists as 2^@order order-0 pages of one reference each, unless
 * that leaves the zone below its min watermark. Under zone->lock.
 * Return: 2^@order, or 0.
 */
void isolated_pages_make_compound(struct iom_page *page, unsigned int order);
void isolated_compound_split(struct iom_page *page);
int __isolate_free_page(struct zone *zone, struct iom_page *page,
			unsigned int order);

static inline void __mod_zone_page_state(struct zone *zone, int item, long d)
{
	atomic_fetch_add_explicit(&zone->vm_stat[item], d,
				  memory_order_relaxed);
}

static inline void __mod_zone_freepage_state(struct zone *zone, long nr,
					     int migratetype)
{
	__mod_zone_page_state(zone, NR_FREE_PAGES, nr);
	if (is_migrate_cma(migratetype))
		__mod_zone_page_state(zone, NR_FREE_CMA_PAGES, nr);
}

/* ---- swap.c / vmscan.c -------------------------------------------------- */

/*
 * __page_cache_release(): a page whose last reference is going away leaves
 * its LRU list (PG_lru cleared). Called by the free path.
 */
void __page_cache_release(struct iom_machine *m, struct iom_page *page);
/*
 * try_to_free_pages(): direct reclaim from the allocator's slow path;
 * returns pages reclaimed. Never called with a zone or LRU lock held.
 */
unsigned long try_to_free_pages(struct iom_machine *m, int nid,
				unsigned int order, iom_gfp_t gfp);
/* kswapd's work for a zone below its low watermark, done inline. */
void wakeup_kswapd(struct iom_machine *m, struct zone *zone, unsigned int order);

/* swap.c, for vmscan.c */
unsigned long isolate_lru_pages(struct iom_machine *m, struct lruvec *lruvec,
				enum iom_lru_list lru, unsigned long nr,
				struct list_head *dst, unsigned long *nr_taken);
void shrink_active_list(struct iom_machine *m, struct lruvec *lruvec,
			enum iom_lru_list active, unsigned long nr);
/*
 * filemap.c: __remove_mapping(): drop a locked, clean, isolated page from
 * @mapping if nobody but the cache and the caller holds a reference
 * (frozen while it is removed). Returns 1 if removed (the caller's
 * reference is then the last), 0 if not.
 */
int __remove_mapping(struct iom_address_space *mapping, struct iom_page *page);

/*
 * filemap.c: sleep once on a locked page without a reference; @unlock
 * drops the caller's page-table (and mmap) locks after the sleeper is
 * registered. See the comment in filemap.c.
 */
void migration_entry_wait_on_locked(struct iom_page *page,
				    void (*unlock)(void *arg), void *arg);

static inline struct pglist_data *page_pgdat(const struct iom_machine *m,
					     const struct iom_page *page)
{
	return page_zone(m, page)->zone_pgdat;
}

/* ---- compaction.c (struct compact_control is shared with page_alloc.c's
 * alloc_contig_range(), as in the kernel's mm/internal.h) --------------- */

#define COMPACT_CLUSTER_MAX	32	/* SWAP_CLUSTER_MAX */

struct compact_control {
	struct iom_machine *m;
	struct zone *zone;
	struct list_head freepages;	/* isolated free order-0 pages */
	struct list_head migratepages;	/* isolated pages to migrate */
	unsigned int nr_freepages;
	unsigned int nr_migratepages;
	unsigned long free_pfn;		/* free scanner: next pageblock down */
	unsigned long migrate_pfn;	/* migration scanner: next pfn up */
	unsigned long total_migrate_scanned;
	unsigned long total_free_scanned;
	int order;			/* -1: compact the whole zone */
	enum iom_migrate_mode mode;
	bool proactive_compaction;	/* stop at the low score watermark */
	bool whole_zone;		/* from the zone's ends, not the cached pfns */
};

/*
 * compact_zone_order() - direct compaction of one zone for @order (the
 * allocator's slow path): as iom_compact_zone(), but the scanners start
 * where the zone's last partial run left them. Return: an enum
 * iom_compact_result.
 */
int compact_zone_order(struct iom_machine *m, struct zone *zone,
		       unsigned int order, enum iom_migrate_mode mode);

/*
 * isolate_migratepages_range() (isolate_migratepages_block()): isolate
 * movable order-0 LRU pages of [@low_pfn, @end_pfn) onto
 * cc->migratepages (cc->m and cc->migratepages set), at most
 * COMPACT_CLUSTER_MAX in cc->nr_migratepages. Pages that look pinned are
 * skipped. Return: the pfn to resume at.
 */
unsigned long isolate_migratepages_range(struct compact_control *cc,
					 unsigned long low_pfn,
					 unsigned long end_pfn);

/*
 * kcompactd (compaction.c). kcompactd_init() sets up every node's
 * kcompactd state after iom_mm_init() and starts the threads when the
 * config asks (kcompactd_run()); kcompactd_exit() stops and joins them
 * (kcompactd_stop()) before the memory goes; safe on a machine whose
 * creation failed half way. wakeup_kcompactd(): kswapd's hand-over for a
 * high-order request, from any thread, with no lock held.
 */
int kcompactd_init(struct iom_machine *m);
void kcompactd_exit(struct iom_machine *m);
void wakeup_kcompactd(struct pglist_data *pgdat, int order,
		      int highest_zoneidx);

/* ---- migrate.c ---------------------------------------------------------- */

/*
 * struct migration_target_control / alloc_migration_target(): the
 * get_new_page of iom_migrate_pages() used by alloc_contig_range(), the
 * long-term pin path and move_pages(): pass a pointer to the control as
 * `private`. @nid is the preferred node (NUMA_NO_NODE, -1: the old page's
 * node); @gfp_mask the allocation flags (__GFP_THISNODE to stay on it).
 */
struct migration_target_control {
	struct iom_machine *m;
	int nid;
	iom_gfp_t gfp_mask;
};

struct iom_page *alloc_migration_target(struct iom_page *page,
					unsigned long private);

/* ---- gup.c ------------------------------------------------------------- */

/* GUP_PIN_COUNTING_BIAS (include/linux/mm.h): one FOLL_PIN of an order-0 page. */
#define GUP_PIN_COUNTING_BIAS	1024

/*
 * memalloc_pin_save() / memalloc_pin_restore(): PF_MEMALLOC_PIN for the
 * calling thread (a long-term pin runs with it), and current_gfp_context():
 * under it, allocations drop __GFP_MOVABLE, so they come from neither
 * ZONE_MOVABLE nor CMA. Applied, as the kernel's __alloc_pages() does, to
 * every allocation (iom_alloc_pages_node()). initial-exec TLS: no
 * __tls_get_addr() call on the allocator's fast path.
 */
extern IOM_TLS unsigned int iom_memalloc_pin_depth;

static inline unsigned int memalloc_pin_save(void)
{
	return iom_memalloc_pin_depth++;
}
static inline void memalloc_pin_restore(unsigned int flags)
{
	iom_memalloc_pin_depth = flags;
}
static inline iom_gfp_t current_gfp_context(iom_gfp_t gfp)
{
	if (iom_memalloc_pin_depth)
		gfp &= ~IOM___GFP_MOVABLE;
	return gfp;
}

/* ---- mm_init.c / cma.c / page_isolation.c ------------------------------- */

int iom_mm_init(struct iom_machine *m);
void iom_mm_exit(struct iom_machine *m);
int cma_init_reserved_areas(struct iom_machine *m);
/* cma.c: free the areas' bitmaps and locks (from iom_mm_exit()). */
void cma_exit(struct iom_machine *m);

#endif /* IOM_MM_INTERNAL_H */
