/* SPDX-License-Identifier: MIT */
/*
 * libiommig - pages and the page allocator (include/linux/mm_types.h,
 * page-flags.h, gfp.h, mmzone.h, page-isolation.h in the kernel).
 *
 * Conventions in this header:
 *   @m:     the machine.
 *   @page:  a struct iom_page of @m's mem_map.
 *   @pfn:   a page frame number of @m (phys >> IOM_PAGE_SHIFT).
 *   @order: log2 of a number of contiguous pages.
 *   @gfp:   IOM_GFP_* / IOM___GFP_* flags, as the kernel's gfp_t.
 *   @nid:   NUMA node id.
 *
 * The fields of struct iom_page are public so experiments can look at a
 * page, but only the library changes them; use the accessors.
 */
#ifndef IOMMIG_MM_H
#define IOMMIG_MM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <iommig/machine.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- struct iom_page -------------------------------------------------- */

/** struct iom_list_head - doubly linked list, as the kernel's list_head. */
struct iom_list_head {
	struct iom_list_head *next, *prev;
};

struct iom_address_space;

/**
 * struct iom_page - metadata of one simulated 4 KiB page (struct page).
 * @flags:     PG_* bits, changed atomically.
 * @lru:       linkage on a buddy free list, a per-thread cache list or
 *             (later) an LRU list.
 * @compound_head: for a tail page, the head page's address | 1 (shares
 *             storage with @lru.next, as in the kernel).
 * @mapping:   owning address_space, or NULL.
 * @index:     offset in @mapping; on page[1] of a compound page, its order.
 * @private:   buddy order of a free block's head (PageBuddy), or owner data.
 * @_mapcount: number of page-table mappings. The kernel stores this minus
 *             one; libiommig stores it as is, so that an untouched
 *             struct iom_page is all zeros and costs no host memory.
 * @_refcount: references; 0 for a free page.
 * @owner_gfp: gfp of the allocation that owns the page (head page only),
 *             as mm/page_owner.c records it; 0 while free.
 * @_reserved: keeps the struct at 64 bytes: one cache line, and page
 *             arithmetic by shifts.
 */
struct iom_page {
	_Atomic unsigned long flags;
	union {
		struct iom_list_head lru;
		unsigned long compound_head;
	};
	struct iom_address_space *mapping;
	unsigned long index;
	unsigned long private;
	atomic_int _mapcount;
	atomic_int _refcount;
	unsigned int owner_gfp;
	unsigned int _reserved;
};

/*
 * Page flags, the kernel's enum pageflags where it has them. PG_buddy is
 * a page type in the kernel; PG_poisoned is libiommig's record that the
 * content was filled with IOM_PAGE_POISON when the page was freed.
 */
enum iom_pageflags {
	IOM_PG_locked,
	IOM_PG_referenced,
	IOM_PG_uptodate,
	IOM_PG_dirty,
	IOM_PG_lru,
	IOM_PG_active,
	IOM_PG_private,
	IOM_PG_writeback,
	IOM_PG_head,
	IOM_PG_swapbacked,
	IOM_PG_reserved,
	IOM_PG_isolated,
	IOM_PG_buddy,
	IOM_PG_poisoned,
	IOM_PG_waiters,		/* someone sleeps on this page's lock */
	IOM_NR_PAGEFLAGS,
};

#define IOM_PAGE_POISON 0xaa

#define IOM_PAGEFLAG(name, bit)						\
static inline bool iom_Page##name(const struct iom_page *page)		\
{									\
	return atomic_load_explicit(&((struct iom_page *)page)->flags,	\
				    memory_order_acquire) &		\
	       (1UL << IOM_PG_##bit);					\
}									\
static inline void iom_SetPage##name(struct iom_page *page)		\
{									\
	atomic_fetch_or_explicit(&page->flags, 1UL << IOM_PG_##bit,	\
				 memory_order_release);			\
}									\
static inline void iom_ClearPage##name(struct iom_page *page)		\
{									\
	atomic_fetch_and_explicit(&page->flags, ~(1UL << IOM_PG_##bit),\
				  memory_order_release);		\
}

IOM_PAGEFLAG(Locked, locked)
IOM_PAGEFLAG(Referenced, referenced)
IOM_PAGEFLAG(Uptodate, uptodate)
IOM_PAGEFLAG(Dirty, dirty)
IOM_PAGEFLAG(LRU, lru)
IOM_PAGEFLAG(Active, active)
IOM_PAGEFLAG(Private, private)
IOM_PAGEFLAG(Writeback, writeback)
IOM_PAGEFLAG(Head, head)
IOM_PAGEFLAG(SwapBacked, swapbacked)
IOM_PAGEFLAG(Reserved, reserved)
IOM_PAGEFLAG(Isolated, isolated)
IOM_PAGEFLAG(Buddy, buddy)
IOM_PAGEFLAG(Poisoned, poisoned)
IOM_PAGEFLAG(Waiters, waiters)

/** iom_PageTail() - is @page a tail page of a compound page? */
static inline bool iom_PageTail(const struct iom_page *page)
{
	/* READ_ONCE: the word is also lru.next, written by list operations */
	return __atomic_load_n(&page->compound_head, __ATOMIC_RELAXED) & 1UL;
}

/** iom_compound_head() - the head page of @page (itself if not a tail). */
static inline struct iom_page *iom_compound_head(const struct iom_page *page)
{
	unsigned long head = __atomic_load_n(&page->compound_head, __ATOMIC_RELAXED);

	if (head & 1UL)
		return (struct iom_page *)(head - 1);
	return (struct iom_page *)page;
}

/** iom_compound_order() - order of a compound head page, 0 otherwise. */
static inline unsigned int iom_compound_order(const struct iom_page *page)
{
	if (!iom_PageHead(page))
		return 0;
	return (unsigned int)page[1].index;
}

static inline int iom_page_ref_count(const struct iom_page *page)
{
	return atomic_load_explicit(&((struct iom_page *)page)->_refcount,
				    memory_order_relaxed);
}

static inline int iom_page_mapcount(const struct iom_page *page)
{
	return atomic_load_explicit(&((struct iom_page *)page)->_mapcount,
				    memory_order_relaxed);
}

/* ---- pfn, page, phys and content -------------------------------------- */

/** iom_pfn_to_page() - the page of @pfn, or NULL if @m has no such pfn. */
IOM_API struct iom_page *iom_pfn_to_page(const struct iom_machine *m,
					 unsigned long pfn);
/**
 * iom_page_to_pfn() - pfn of @page.
 * Return: the pfn, or (unsigned long)-1 if @page is not in @m's mem_map.
 */
IOM_API unsigned long iom_page_to_pfn(const struct iom_machine *m,
				      const struct iom_page *page);
/** iom_page_to_phys() - physical address of @page, or UINT64_MAX. */
IOM_API uint64_t iom_page_to_phys(const struct iom_machine *m,
				  const struct iom_page *page);
/** iom_phys_to_page() - page holding @phys, or NULL. */
IOM_API struct iom_page *iom_phys_to_page(const struct iom_machine *m,
					  uint64_t phys);
/**
 * iom_page_address() - the 4 KiB content of @page (page_address()).
 * Return: a pointer into the physical arena, or NULL for a foreign page.
 * Content of consecutive pfns is contiguous.
 */
IOM_API void *iom_page_address(const struct iom_machine *m,
			       const struct iom_page *page);
/** iom_virt_to_page() - page whose content holds @addr, or NULL. */
IOM_API struct iom_page *iom_virt_to_page(const struct iom_machine *m,
					  const void *addr);
/** iom_pfn_valid() - does @m have @pfn? */
IOM_API bool iom_pfn_valid(const struct iom_machine *m, unsigned long pfn);
/** iom_first_pfn(), iom_end_pfn() - @m's pfns are [first, end). */
IOM_API unsigned long iom_first_pfn(const struct iom_machine *m);
IOM_API unsigned long iom_end_pfn(const struct iom_machine *m);

/* ---- zones, migratetypes, gfp ----------------------------------------- */

enum iom_zone_type {
	IOM_ZONE_NORMAL,
	IOM_ZONE_MOVABLE,
	IOM_MAX_NR_ZONES,
};

/*
 * Migratetypes in the kernel's order. MIGRATE_HIGHATOMIC exists so that
 * /proc/pagetypeinfo has the kernel's columns; libiommig does not reserve
 * high-atomic pageblocks, so it stays empty.
 */
enum iom_migratetype {
	IOM_MIGRATE_UNMOVABLE,
	IOM_MIGRATE_MOVABLE,
	IOM_MIGRATE_RECLAIMABLE,
	IOM_MIGRATE_PCPTYPES,
	IOM_MIGRATE_HIGHATOMIC = IOM_MIGRATE_PCPTYPES,
	IOM_MIGRATE_CMA,
	IOM_MIGRATE_ISOLATE,
	IOM_MIGRATE_TYPES,
};

/** iom_migratetype_name() - the kernel's migratetype_names[] string. */
IOM_API const char *iom_migratetype_name(int migratetype);
/** iom_zone_name() - "Normal", "Movable". */
IOM_API const char *iom_zone_name(int zone_type);

typedef unsigned int iom_gfp_t;

/* The kernel's __GFP_* bits (include/linux/gfp_types.h), same values. */
#define IOM___GFP_DMA		0x01u	/* accepted; no DMA zone: ZONE_NORMAL */
#define IOM___GFP_HIGHMEM	0x02u
#define IOM___GFP_DMA32		0x04u	/* accepted; no DMA32 zone: ZONE_NORMAL */
#define IOM___GFP_MOVABLE	0x08u
#define IOM___GFP_RECLAIMABLE	0x10u
#define IOM___GFP_HIGH		0x20u
#define IOM___GFP_IO		0x40u
#define IOM___GFP_FS		0x80u
#define IOM___GFP_ZERO		0x100u
#define IOM___GFP_DIRECT_RECLAIM 0x400u
#define IOM___GFP_KSWAPD_RECLAIM 0x800u
#define IOM___GFP_NOWARN	0x2000u
#define IOM___GFP_RETRY_MAYFAIL	0x4000u
#define IOM___GFP_NORETRY	0x10000u
#define IOM___GFP_MEMALLOC	0x20000u
#define IOM___GFP_COMP		0x40000u
#define IOM___GFP_NOMEMALLOC	0x80000u
#define IOM___GFP_HARDWALL	0x100000u
#define IOM___GFP_THISNODE	0x200000u

#define IOM___GFP_RECLAIM	(IOM___GFP_DIRECT_RECLAIM | IOM___GFP_KSWAPD_RECLAIM)
#define IOM_GFP_ATOMIC		(IOM___GFP_HIGH | IOM___GFP_KSWAPD_RECLAIM)
#define IOM_GFP_KERNEL		(IOM___GFP_RECLAIM | IOM___GFP_IO | IOM___GFP_FS)
#define IOM_GFP_NOWAIT		(IOM___GFP_KSWAPD_RECLAIM)
#define IOM_GFP_NOIO		(IOM___GFP_RECLAIM)
#define IOM_GFP_USER		(IOM_GFP_KERNEL | IOM___GFP_HARDWALL)
#define IOM_GFP_HIGHUSER	(IOM_GFP_USER | IOM___GFP_HIGHMEM)
#define IOM_GFP_HIGHUSER_MOVABLE (IOM_GFP_HIGHUSER | IOM___GFP_MOVABLE)
#define IOM_GFP_KERNEL_RECLAIMABLE (IOM_GFP_KERNEL | IOM___GFP_RECLAIMABLE)
#define IOM_GFP_VALID_MASK	0x3fffffu

/** iom_gfp_migratetype() - gfp_migratetype(): the migratetype @gfp asks for. */
static inline int iom_gfp_migratetype(iom_gfp_t gfp)
{
	if (gfp & IOM___GFP_MOVABLE)
		return IOM_MIGRATE_MOVABLE;
	if (gfp & IOM___GFP_RECLAIMABLE)
		return IOM_MIGRATE_RECLAIMABLE;
	return IOM_MIGRATE_UNMOVABLE;
}

/**
 * iom_gfp_zone() - gfp_zone(): the highest zone @gfp may use. Only
 * __GFP_HIGHMEM together with __GFP_MOVABLE reaches ZONE_MOVABLE.
 */
static inline enum iom_zone_type iom_gfp_zone(iom_gfp_t gfp)
{
	if ((gfp & (IOM___GFP_HIGHMEM | IOM___GFP_MOVABLE)) ==
	    (IOM___GFP_HIGHMEM | IOM___GFP_MOVABLE))
		return IOM_ZONE_MOVABLE;
	return IOM_ZONE_NORMAL;
}

/* How hard migration may try (include/linux/migrate_mode.h). */
enum iom_migrate_mode {
	IOM_MIGRATE_ASYNC,		/* never block */
	IOM_MIGRATE_SYNC_LIGHT,		/* block on most things, not writeback */
	IOM_MIGRATE_SYNC,		/* block on everything */
};

/* ---- the page allocator ----------------------------------------------- */

/**
 * iom_alloc_pages() - allocate 2^@order contiguous pages (alloc_pages()).
 * @m:     the machine.
 * @gfp:   allocation flags: zone, migratetype, watermark and retry policy.
 * @order: 0 .. max_order. Order > 0 gives a compound page.
 *
 * Order 0 is served from the calling thread's page cache (the kernel's
 * per-cpu lists), refilled from the buddy allocator in batches. The zonelist
 * starts at the thread's local node (iom_set_numa_node()).
 *
 * Context: any thread; takes the zone lock on the slow path.
 * Return: the head page with a reference count of 1, or NULL with errno set
 * to EINVAL (bad @gfp or @order: a warning names it) or ENOMEM.
 */
IOM_API struct iom_page *iom_alloc_pages(struct iom_machine *m, iom_gfp_t gfp,
					 unsigned int order);

/**
 * iom_alloc_pages_node() - alloc_pages_node(): as iom_alloc_pages() with
 * @nid as the preferred node (IOM___GFP_THISNODE: only that node).
 */
IOM_API struct iom_page *iom_alloc_pages_node(struct iom_machine *m, int nid,
					      iom_gfp_t gfp, unsigned int order);

/**
 * iom___free_pages() - __free_pages(): drop a reference to a block of
 * 2^@order pages from iom_alloc_pages(), freeing it when that was the last.
 * @m:     the machine.
 * @page:  head page of the block.
 * @order: the order it was allocated with.
 *
 * Bad input loses nothing: the free lists are left untouched and a
 * warning says what was wrong.
 *
 * Context: any thread.
 * Return: 0; -EFAULT if @page is not in @m's mem_map; -EINVAL if @order
 * is out of range, differs from the allocation's order, @page is a tail
 * page, or the page is already free (double free).
 */
IOM_API int iom___free_pages(struct iom_machine *m, struct iom_page *page,
			     unsigned int order);

/**
 * iom_free_pages() - free_pages(): as iom___free_pages() for the block
 * whose content starts at @addr. Return: -EFAULT if @addr is not the start
 * of a page of @m.
 */
IOM_API int iom_free_pages(struct iom_machine *m, void *addr,
			   unsigned int order);

/** iom_get_page() - take a reference on an allocated page. -EINVAL if free. */
IOM_API int iom_get_page(struct iom_machine *m, struct iom_page *page);
/**
 * iom_put_page() - drop a reference; the last one frees the page (with its
 * compound order). Return: 0, or the errors of iom___free_pages().
 */
IOM_API int iom_put_page(struct iom_machine *m, struct iom_page *page);

/**
 * iom_set_numa_node() - make @nid the calling thread's local node on @m
 * (the node of the "cpu" it runs on). Default 0.
 * Return: 0, -EINVAL for a node @m does not have.
 */
IOM_API int iom_set_numa_node(struct iom_machine *m, int nid);

/**
 * iom_drain_local_pages() - give the calling thread's cached order-0 pages
 * of @m back to the buddy allocator.
 */
IOM_API void iom_drain_local_pages(struct iom_machine *m);
/**
 * iom_drain_all_pages() - drain_all_pages(): drain every thread's cache.
 * Context: any thread; waits for each cache's owner to leave its
 * critical section (a few instructions).
 */
IOM_API void iom_drain_all_pages(struct iom_machine *m);

/* ---- pageblocks and isolation (mm/page_isolation.c) ------------------- */

/** iom_pageblock_order() - pageblock order of @m. */
IOM_API unsigned int iom_pageblock_order(const struct iom_machine *m);
/** iom_max_order() - largest allocatable order of @m. */
IOM_API unsigned int iom_max_order(const struct iom_machine *m);

/** iom_get_pageblock_migratetype() - migratetype of @pfn's pageblock, or -EINVAL. */
IOM_API int iom_get_pageblock_migratetype(const struct iom_machine *m,
					  unsigned long pfn);
/**
 * iom_set_pageblock_migratetype() - set the migratetype of @pfn's
 * pageblock and move its free pages to the lists of that type
 * (set_pageblock_migratetype() + move_freepages_block()).
 * Return: number of free pages moved; -EINVAL for a bad @pfn or type,
 * or for ISOLATE and CMA, which have their own paths (isolation, CMA
 * reservation).
 */
IOM_API int iom_set_pageblock_migratetype(struct iom_machine *m,
					  unsigned long pfn, int migratetype);

/* Flags of iom_start_isolate_page_range(), as the kernel's isol_flags. */
#define IOM_MEMORY_OFFLINE	0x1
#define IOM_REPORT_FAILURE	0x2

/**
 * iom_start_isolate_page_range() - mark every pageblock of
 * [@start_pfn, @end_pfn) MIGRATE_ISOLATE, so the allocator hands out none
 * of its free pages and pages freed there stay there.
 * @migratetype: the type the caller will restore (MOVABLE or CMA).
 * @flags:       IOM_MEMORY_OFFLINE, IOM_REPORT_FAILURE.
 *
 * A pageblock holding unmovable pages (allocated, not LRU and not movable,
 * outside ZONE_MOVABLE and CMA) cannot be isolated; then every block
 * isolated by the call is restored.
 *
 * Return: 0; -EINVAL for a range not pageblock-aligned, outside memory or
 * crossing zones; -EBUSY if a block is already isolated or unmovable.
 */
IOM_API int iom_start_isolate_page_range(struct iom_machine *m,
					 unsigned long start_pfn,
					 unsigned long end_pfn,
					 int migratetype, int flags);
/** iom_undo_isolate_page_range() - give isolated blocks back @migratetype. */
IOM_API int iom_undo_isolate_page_range(struct iom_machine *m,
					unsigned long start_pfn,
					unsigned long end_pfn, int migratetype);
/**
 * iom_test_pages_isolated() - are all pages of the range free and on
 * isolated free lists? Return: 0 if so, -EBUSY if not, -EINVAL.
 */
IOM_API int iom_test_pages_isolated(struct iom_machine *m,
				    unsigned long start_pfn,
				    unsigned long end_pfn, int flags);

/* ---- CMA areas reserved at boot (mm/cma.c) ---------------------------- */

/**
 * struct iom_cma_info - one reserved CMA area.
 * @base_pfn: first pfn.  @count: pages.  @name: its name.
 */
struct iom_cma_info {
	unsigned long base_pfn;
	unsigned long count;
	const char *name;
};

/** iom_cma_area_count() - number of CMA areas of @m. */
IOM_API unsigned int iom_cma_area_count(const struct iom_machine *m);
/** iom_cma_area_info() - describe area @idx. Return: 0 or -EINVAL. */
IOM_API int iom_cma_area_info(const struct iom_machine *m, unsigned int idx,
			      struct iom_cma_info *out);

/* ---- nodes and zones -------------------------------------------------- */

/**
 * struct iom_zone_info - a snapshot of one zone (what /proc/zoneinfo and
 * /proc/pagetypeinfo show).
 */
struct iom_zone_info {
	int nid;
	int zone_type;
	bool populated;
	unsigned long zone_start_pfn;
	unsigned long spanned_pages;
	unsigned long managed_pages;
	unsigned long nr_free_pages;	/* NR_FREE_PAGES (not in pcp caches) */
	unsigned long nr_free_cma;	/* NR_FREE_CMA_PAGES */
	unsigned long watermark_min, watermark_low, watermark_high;
	unsigned long nr_free[32];	/* free blocks per order */
	unsigned long nr_free_type[32][IOM_MIGRATE_TYPES];
	unsigned long nr_blocks_type[IOM_MIGRATE_TYPES];
};

/** iom_nr_nodes() - nodes of @m. */
IOM_API unsigned int iom_nr_nodes(const struct iom_machine *m);
/** iom_zone_info() - fill @out for zone @zone_type of node @nid. */
IOM_API int iom_zone_info(struct iom_machine *m, int nid, int zone_type,
			  struct iom_zone_info *out);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_MM_H */
