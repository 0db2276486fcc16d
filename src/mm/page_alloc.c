/* SPDX-License-Identifier: MIT */
/*
 * The buddy allocator (mm/page_alloc.c, as of Linux 6.1 with the later
 * per-list free accounting): free lists per order and migratetype,
 * pageblock stealing on fallback, CMA pageblocks lent only to movable
 * allocations, per-thread order-0 caches standing in for the per-cpu lists,
 * watermarks with lowmem reserves, compound pages.
 *
 * Simplified: no kswapd, watermark boosting, high-atomic reserves or
 * ALLOC_NOFRAGMENT (there is no DMA32 zone); the slow path's direct
 * reclaim frees clean page-cache pages (vmscan.c), then drains every
 * per-thread cache, and retries once. Compaction joins it later.
 *
 * Conventions: @m machine, @zone zone, @mt / @migratetype a migratetype,
 * @pfn a pfn of @m. Functions named __* expect zone->lock held.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iommig/cma.h>
#include <iommig/compaction.h>
#include <iommig/migrate.h>

#include "../core/percpu.h"
#include "../core/trace.h"
#include "internal.h"

static const char *const migratetype_names[IOM_MIGRATE_TYPES] = {
	"Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate",
};

const char *iom_migratetype_name(int migratetype)
{
	if (migratetype < 0 || migratetype >= IOM_MIGRATE_TYPES)
		return NULL;
	return migratetype_names[migratetype];
}

/* alloc_flags, as mm/internal.h */
#define ALLOC_WMARK_MIN		WMARK_MIN
#define ALLOC_WMARK_LOW		WMARK_LOW
#define ALLOC_WMARK_HIGH	WMARK_HIGH
#define ALLOC_NO_WATERMARKS	0x04
#define ALLOC_WMARK_MASK	(ALLOC_NO_WATERMARKS - 1)
#define ALLOC_HARDER		0x10
#define ALLOC_HIGH		0x20
#define ALLOC_CMA		0x80

static void zone_lock(struct zone *zone)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&zone->lock));
}

static void zone_unlock(struct zone *zone)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&zone->lock));
}

/* ---- free lists ------------------------------------------------------- */

static inline void ul_add(atomic_ulong *v, long d)
{
	/* Written only under zone->lock: no need for a locked RMW. */
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + d,
			      memory_order_relaxed);
}

/* Free pages on non-isolated lists count as free; CMA ones also as CMA. */
static void account_freepages(struct zone *zone, long nr, int mt)
{
	if (is_migrate_isolate(mt))
		return;
	__mod_zone_page_state(zone, NR_FREE_PAGES, nr);
	if (is_migrate_cma(mt))
		__mod_zone_page_state(zone, NR_FREE_CMA_PAGES, nr);
}

static void add_to_free_list(struct iom_page *page, struct zone *zone,
			     unsigned int order, int mt, bool tail)
{
	struct free_area *area = &zone->free_area[order];

	set_buddy_order(page, order);
	page->index = (unsigned long)mt;
	if (tail)
		list_add_tail(&page->lru, &area->free_list[mt]);
	else
		list_add(&page->lru, &area->free_list[mt]);
	ul_add(&area->nr_free, 1);
	ul_add(&area->nr_free_mt[mt], 1);
	account_freepages(zone, 1L << order, mt);
}

static void move_to_free_list(struct iom_page *page, struct zone *zone,
			      unsigned int order, int new_mt)
{
	struct free_area *area = &zone->free_area[order];
	int old_mt = (int)page->index;

	list_move_tail(&page->lru, &area->free_list[new_mt]);
	page->index = (unsigned long)new_mt;
	ul_add(&area->nr_free_mt[old_mt], -1);
	ul_add(&area->nr_free_mt[new_mt], 1);
	account_freepages(zone, -(1L << order), old_mt);
	account_freepages(zone, 1L << order, new_mt);
}

static void del_page_from_free_list(struct iom_page *page, struct zone *zone,
				    unsigned int order)
{
	struct free_area *area = &zone->free_area[order];
	int mt = (int)page->index;

	list_del(&page->lru);
	iom_ClearPageBuddy(page);
	__atomic_store_n(&page->private, 0UL, __ATOMIC_RELAXED);
	page->index = 0;
	ul_add(&area->nr_free, -1);
	ul_add(&area->nr_free_mt[mt], -1);
	account_freepages(zone, -(1L << order), mt);
}

static inline unsigned long area_nr_free_mt(struct free_area *area, int mt)
{
	return atomic_load_explicit(&area->nr_free_mt[mt], memory_order_relaxed);
}

/* ---- pageblocks --------------------------------------------------------- */

void set_pageblock_migratetype(struct iom_machine *m, unsigned long pfn,
			       int migratetype)
{
	struct pageblock *pb = pfn_pageblock(m, pfn);
	unsigned char old = atomic_load_explicit(&pb->flags, memory_order_relaxed);

	atomic_store_explicit(&pb->flags,
			      (unsigned char)((old & ~PB_migrate_mask) | migratetype),
			      memory_order_relaxed);
}

/*
 * move_freepages_block(): move every free block of @pfn's pageblock to the
 * free lists of @migratetype. Pages that are neither free nor unmovable-
 * looking are counted in @num_movable (LRU or movable pages).
 */
int move_freepages_block(struct zone *zone, unsigned long pfn,
			 int migratetype, int *num_movable)
{
	struct iom_machine *m = zone->machine;
	unsigned long start = pageblock_start_pfn(m, pfn);
	unsigned long end = start + m->pageblock_nr_pages;
	int moved = 0;

	if (num_movable)
		*num_movable = 0;
	if (start < zone->zone_start_pfn || end > zone_end_pfn(zone))
		return -1;
	for (pfn = start; pfn < end;) {
		struct iom_page *page = pfn_to_page(m, pfn);

		if (!iom_PageBuddy(page)) {
			/* page->mapping of an allocated page: READ_ONCE */
			if (num_movable && (iom_PageLRU(page) ||
					    (__atomic_load_n(&page->mapping, __ATOMIC_RELAXED) &&
					     iom_PageIsolated(page))))
				(*num_movable)++;
			pfn++;
			continue;
		}
		unsigned int order = buddy_order(page);

		move_to_free_list(page, zone, order, migratetype);
		pfn += 1UL << order;
		moved += 1 << order;
	}
	return moved;
}

int iom_get_pageblock_migratetype(const struct iom_machine *m,
				  unsigned long pfn)
{
	if (!iom_pfn_valid(m, pfn))
		return -EINVAL;
	return get_pfnblock_migratetype(m, pfn);
}

int iom_set_pageblock_migratetype(struct iom_machine *m, unsigned long pfn,
				  int migratetype)
{
	struct zone *zone;
	int moved, old;

	if (!iom_pfn_valid(m, pfn) || migratetype < 0 ||
	    migratetype >= IOM_MIGRATE_PCPTYPES)
		return -EINVAL;
	zone = pfn_zone(m, pfn);
	zone_lock(zone);
	old = get_pfnblock_migratetype(m, pfn);
	if (is_migrate_isolate(old) || is_migrate_cma(old)) {
		zone_unlock(zone);
		return -EINVAL;
	}
	moved = move_freepages_block(zone, pfn, migratetype, NULL);
	set_pageblock_migratetype(m, pfn, migratetype);
	zone_unlock(zone);
	return moved;
}

/* ---- allocation from the buddy lists ------------------------------------ */

/* expand(): split a block of order @high down to @low, freeing the halves. */
static void expand(struct zone *zone, struct iom_page *page, unsigned int low,
		   unsigned int high, int mt)
{
	unsigned long size = 1UL << high;

	while (high > low) {
		high--;
		size >>= 1;
		add_to_free_list(&page[size], zone, high, mt, false);
	}
}

static struct iom_page *__rmqueue_smallest(struct zone *zone, unsigned int order,
					   int mt)
{
	struct iom_machine *m = zone->machine;
	unsigned int o;

	for (o = order; o <= m->max_order; o++) {
		struct free_area *area = &zone->free_area[o];
		struct iom_page *page;

		if (list_empty(&area->free_list[mt]))
			continue;
		page = list_first_entry(&area->free_list[mt], struct iom_page, lru);
		del_page_from_free_list(page, zone, o);
		expand(zone, page, order, o, mt);
		return page;
	}
	return NULL;
}

static const int fallbacks[IOM_MIGRATE_PCPTYPES][3] = {
	[IOM_MIGRATE_UNMOVABLE] = { IOM_MIGRATE_RECLAIMABLE, IOM_MIGRATE_MOVABLE, IOM_MIGRATE_TYPES },
	[IOM_MIGRATE_MOVABLE] = { IOM_MIGRATE_RECLAIMABLE, IOM_MIGRATE_UNMOVABLE, IOM_MIGRATE_TYPES },
	[IOM_MIGRATE_RECLAIMABLE] = { IOM_MIGRATE_UNMOVABLE, IOM_MIGRATE_MOVABLE, IOM_MIGRATE_TYPES },
};

/*
 * can_steal_fallback(): take the whole pageblock when the block found is
 * large, or when the request is for unmovable or reclaimable memory, which
 * would otherwise scatter over many movable pageblocks.
 */
static bool can_steal_fallback(const struct iom_machine *m, unsigned int order,
			       int start_mt)
{
	if (order >= m->pageblock_order)
		return true;
	if (order >= m->pageblock_order / 2 ||
	    start_mt == IOM_MIGRATE_RECLAIMABLE ||
	    start_mt == IOM_MIGRATE_UNMOVABLE)
		return true;
	return false;
}

static int find_suitable_fallback(struct zone *zone, unsigned int order,
				  int start_mt, bool only_stealable,
				  bool *can_steal)
{
	struct free_area *area = &zone->free_area[order];
	int i;

	*can_steal = false;
	if (!atomic_load_explicit(&area->nr_free, memory_order_relaxed))
		return -1;
	for (i = 0; fallbacks[start_mt][i] != IOM_MIGRATE_TYPES; i++) {
		int fmt = fallbacks[start_mt][i];

		if (list_empty(&area->free_list[fmt]))
			continue;
		if (can_steal_fallback(zone->machine, order, start_mt))
			*can_steal = true;
		if (!only_stealable || *can_steal)
			return fmt;
	}
	return -1;
}

/*
 * steal_suitable_fallback(): the allocation falls back into another type's
 * free block. If the block is a pageblock or larger, or enough of its
 * pageblock is free or already of a compatible type, the pageblock changes
 * owner; otherwise only the block found moves to the requested list.
 */
static void steal_suitable_fallback(struct zone *zone, struct iom_page *page,
				    int start_type, bool whole_block)
{
	struct iom_machine *m = zone->machine;
	unsigned int current_order = buddy_order(page);
	unsigned long pfn = page_to_pfn(m, page);
	int free_pages, movable_pages, alike_pages, old_block_type;

	old_block_type = get_pfnblock_migratetype(m, pfn);
	if (current_order >= m->pageblock_order) {
		/* change_pageblock_range() */
		unsigned long p, n = 1UL << current_order;

		for (p = pfn; p < pfn + n; p += m->pageblock_nr_pages)
			set_pageblock_migratetype(m, p, start_type);
		goto single_page;
	}
	if (!whole_block)
		goto single_page;

	free_pages = move_freepages_block(zone, pfn, start_type, &movable_pages);
	if (free_pages <= 0)
		goto single_page;
	if (start_type == IOM_MIGRATE_MOVABLE)
		alike_pages = movable_pages;
	else if (old_block_type == IOM_MIGRATE_MOVABLE)
		alike_pages = (int)m->pageblock_nr_pages - (free_pages + movable_pages);
	else
		alike_pages = 0;
	if (free_pages + alike_pages >= (1 << (m->pageblock_order - 1)))
		set_pageblock_migratetype(m, pfn, start_type);
	return;

single_page:
	move_to_free_list(page, zone, current_order, start_type);
}

/* __rmqueue_fallback(): steal from another migratetype; largest first. */
static bool __rmqueue_fallback(struct zone *zone, unsigned int order,
			       int start_mt)
{
	struct iom_machine *m = zone->machine;
	struct iom_page *page;
	int current_order, fallback_mt = -1;
	bool can_steal = false;

	for (current_order = (int)m->max_order; current_order >= (int)order;
	     current_order--) {
		fallback_mt = find_suitable_fallback(zone, (unsigned int)current_order,
						     start_mt, false, &can_steal);
		if (fallback_mt == -1)
			continue;
		/*
		 * A movable request that may not steal the pageblock takes the
		 * smallest block instead of breaking a large one that an
		 * unmovable request could claim whole later.
		 */
		if (!can_steal && start_mt == IOM_MIGRATE_MOVABLE &&
		    current_order > (int)order)
			goto find_smallest;
		goto do_steal;
	}
	return false;

find_smallest:
	for (current_order = (int)order; current_order <= (int)m->max_order;
	     current_order++) {
		fallback_mt = find_suitable_fallback(zone, (unsigned int)current_order,
						     start_mt, false, &can_steal);
		if (fallback_mt != -1)
			break;
	}
	IOM_BUG_ON(current_order > (int)m->max_order);

do_steal:
	page = list_first_entry(&zone->free_area[current_order].free_list[fallback_mt],
				struct iom_page, lru);
	steal_suitable_fallback(zone, page, start_mt, can_steal);

	/* the mm_page_alloc_extfrag tracepoint */
	count_vm_event(m, IOM_EXTFRAG_EVENTS);
	if (current_order < (int)m->pageblock_order)
		count_vm_event(m, IOM_EXTFRAG_FRAGMENTING);
	if (get_pageblock_migratetype(m, page) == start_mt)
		count_vm_event(m, IOM_EXTFRAG_CHANGE_OWNERSHIP);
	return true;
}

/*
 * __rmqueue(): @mt's own lists, then CMA for movable requests, then a
 * fallback. Movable requests use CMA first while more than half of the
 * zone's free memory is CMA, so that CMA does not sit idle while normal
 * pageblocks are used up.
 */
static struct iom_page *__rmqueue(struct zone *zone, unsigned int order, int mt,
				  unsigned int alloc_flags)
{
	struct iom_page *page;

	if ((alloc_flags & ALLOC_CMA) &&
	    zone_page_state(zone, NR_FREE_CMA_PAGES) >
		    zone_page_state(zone, NR_FREE_PAGES) / 2) {
		page = __rmqueue_smallest(zone, order, IOM_MIGRATE_CMA);
		if (page)
			return page;
	}
retry:
	page = __rmqueue_smallest(zone, order, mt);
	if (!page) {
		if (alloc_flags & ALLOC_CMA)
			page = __rmqueue_smallest(zone, order, IOM_MIGRATE_CMA);
		if (!page && __rmqueue_fallback(zone, order, mt))
			goto retry;
	}
	return page;
}

/* ---- per-thread page caches (the per-cpu lists) ------------------------- */

static pthread_key_t pcp_key;
static pthread_once_t pcp_key_once = PTHREAD_ONCE_INIT;
static IOM_TLS struct iom_pcp_set *tls_sets;
static IOM_TLS struct iom_pcp_set *tls_last;

static inline void pcp_spin_lock(struct iom_pcp_set *set)
{
	iom_spin_lock(&set->lock);
}

static inline void pcp_spin_unlock(struct iom_pcp_set *set)
{
	iom_spin_unlock(&set->lock);
}

static void pcp_set_put(struct iom_pcp_set *set)
{
	if (atomic_fetch_sub(&set->refcount, 1) == 1)
		free(set);
}

static inline void __count_event(struct iom_pcp_set *set, int item,
				 unsigned long nr)
{
	/* Only the owner writes its counters; others only read them. */
	atomic_store_explicit(&set->events[item],
			      atomic_load_explicit(&set->events[item],
						   memory_order_relaxed) + nr,
			      memory_order_relaxed);
}

/*
 * free_pcppages_bulk(): give @count pages of @pcp back to the buddy
 * allocator, taking them round-robin from the lists as the kernel does. The
 * pageblock's migratetype is read now, so a page whose block was isolated
 * or is CMA goes to the right list.
 */
static void free_pcppages_bulk(struct zone *zone, int count,
			       struct per_cpu_pages *pcp)
{
	struct iom_machine *m = zone->machine;
	int mt = 0;

	if (count > pcp->count)
		count = pcp->count;
	if (!count)
		return;
	zone_lock(zone);
	while (count > 0) {
		struct list_head *list = &pcp->lists[mt];
		struct iom_page *page;
		unsigned long pfn;

		if (list_empty(list)) {
			mt = (mt + 1) % IOM_MIGRATE_PCPTYPES;
			continue;
		}
		page = list_last_entry(list, struct iom_page, lru);
		list_del(&page->lru);
		pcp->count--;
		count--;
		pfn = page_to_pfn(m, page);
		__free_one_page(zone, page, pfn, 0,
				get_pfnblock_migratetype(m, pfn), false);
		mt = (mt + 1) % IOM_MIGRATE_PCPTYPES;
	}
	zone_unlock(zone);
}

/* Drain every list of @set. Caller holds set->lock. */
static void drain_pcp_set(struct iom_machine *m, struct iom_pcp_set *set)
{
	int z;

	for (z = 0; z < set->nr_zones; z++)
		if (set->pcp[z].count)
			free_pcppages_bulk(m->zone_table[z], set->pcp[z].count,
					   &set->pcp[z]);
}

/*
 * A thread exits: its caches go back to every machine still alive. The set
 * stays on the machine's list, empty and dead, until the machine prunes it
 * (its counters are still part of the machine's totals).
 */
static void pcp_thread_exit(void *unused)
{
	struct iom_pcp_set *set, *next;

	for (set = tls_sets; set; set = next) {
		struct iom_machine *m;

		next = set->tls_next;
		pcp_spin_lock(set);
		m = atomic_load_explicit(&set->machine, memory_order_relaxed);
		if (m)
			drain_pcp_set(m, set);
		set->dead = true;
		pcp_spin_unlock(set);
		pcp_set_put(set);
	}
	tls_sets = NULL;
	tls_last = NULL;
}

static void pcp_make_key(void)
{
	IOM_CHECK_PTHREAD(pthread_key_create(&pcp_key, pcp_thread_exit));
}

/* int_sqrt(): floor of the square root, by bisection (lib/math/int_sqrt.c). */
static unsigned long int_sqrt(unsigned long x)
{
	unsigned long lo = 0, hi = x < 2 ? x : (x < (1UL << 32) ? x / 2 + 1 : 1UL << 32);

	while (lo < hi) {
		unsigned long mid = lo + (hi - lo + 1) / 2;

		if (mid <= x / mid)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static unsigned long rounddown_pow_of_two(unsigned long n)
{
	unsigned long r = 1;

	while (r * 2 <= n)
		r *= 2;
	return r;
}

/* zone_batchsize() and zone_highsize(), or the configured values. */
static void pcp_limits(const struct iom_machine *m, const struct zone *zone,
		       int *batch, int *high)
{
	long b, h, cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (m->cfg.pcp_batch) {
		b = m->cfg.pcp_batch;
	} else {
		b = (long)(zone->managed_pages >> 10);
		if (b > 256)
			b = 256;
		b /= 4;
		if (b < 1)
			b = 1;
		b = (long)rounddown_pow_of_two((unsigned long)(b + b / 2)) - 1;
		if (b < 1)
			b = 1;
	}
	if (m->cfg.pcp_high) {
		h = m->cfg.pcp_high;
	} else {
		h = (long)zone->_watermark[WMARK_LOW] / (cpus > 0 ? cpus : 1);
		if (h < 4 * b)
			h = 4 * b;
	}
	*batch = (int)b;
	*high = (int)h;
}

/* Prune sets whose thread exited. Caller holds m->pcp_sets_lock. */
static void pcp_prune_dead(struct iom_machine *m)
{
	struct list_head *pos = m->pcp_sets.next, *n;
	int i;

	for (; pos != &m->pcp_sets; pos = n) {
		struct iom_pcp_set *set = list_entry(pos, struct iom_pcp_set,
						     machine_link);
		bool dead;

		n = pos->next;
		pcp_spin_lock(set);
		dead = set->dead;
		if (dead) {
			for (i = 0; i < IOM_NR_VM_EVENT_ITEMS; i++)
				atomic_fetch_add(&m->events_of_dead[i],
						 atomic_load(&set->events[i]));
			atomic_store_explicit(&set->machine, NULL,
					      memory_order_relaxed);
		}
		pcp_spin_unlock(set);
		if (dead) {
			list_del(&set->machine_link);
			pcp_set_put(set);
		}
	}
}

static struct iom_pcp_set *this_cpu_set_slow(struct iom_machine *m)
{
	struct iom_pcp_set *set, **pp;
	size_t size;
	int z, t;

	/* Forget sets of machines destroyed meanwhile. */
	for (pp = &tls_sets; (set = *pp);) {
		if (atomic_load_explicit(&set->machine, memory_order_relaxed) == m) {
			tls_last = set;
			return set;
		}
		if (!atomic_load_explicit(&set->machine, memory_order_relaxed)) {
			*pp = set->tls_next;
			pcp_set_put(set);
			continue;
		}
		pp = &set->tls_next;
	}

	IOM_CHECK_PTHREAD(pthread_once(&pcp_key_once, pcp_make_key));
	size = sizeof(*set) + (size_t)m->nr_zone_ids * sizeof(struct per_cpu_pages);
	/*
	 * libc, not the machine's hook: the set may outlive the machine.
	 * Cache-line aligned so two threads' sets never share a line.
	 */
	size = (size + 63) & ~(size_t)63;
	set = aligned_alloc(64, size);
	if (!set)
		return NULL;
	memset(set, 0, size);
	atomic_init(&set->refcount, 2);
	atomic_init(&set->machine, m);
	set->nr_zones = m->nr_zone_ids;
	for (z = 0; z < m->nr_zone_ids; z++) {
		pcp_limits(m, m->zone_table[z], &set->pcp[z].batch,
			   &set->pcp[z].high);
		for (t = 0; t < IOM_MIGRATE_PCPTYPES; t++)
			INIT_LIST_HEAD(&set->pcp[z].lists[t]);
	}
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&m->pcp_sets_lock));
	pcp_prune_dead(m);
	list_add_tail(&set->machine_link, &m->pcp_sets);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&m->pcp_sets_lock));

	set->tls_next = tls_sets;
	tls_sets = set;
	tls_last = set;
	IOM_CHECK_PTHREAD(pthread_setspecific(pcp_key, set));
	return set;
}

/* The calling thread's set for @m (its "cpu"), created on first use. */
static inline struct iom_pcp_set *this_cpu_set(struct iom_machine *m)
{
	struct iom_pcp_set *set = tls_last;

	if (likely(set && atomic_load_explicit(&set->machine,
					       memory_order_relaxed) == m))
		return set;
	return this_cpu_set_slow(m);
}

/*
 * Count an event in the calling thread's set. Never creates a set (that
 * takes m->pcp_sets_lock, which may not nest inside zone->lock); a thread
 * without one counts in the machine-wide total.
 */
void count_vm_events(struct iom_machine *m, int item, unsigned long nr)
{
	struct iom_pcp_set *set = tls_last;

	if (!set || atomic_load_explicit(&set->machine, memory_order_relaxed) != m)
		for (set = tls_sets; set; set = set->tls_next)
			if (atomic_load_explicit(&set->machine, memory_order_relaxed) == m)
				break;
	if (set)
		__count_event(set, item, nr);
	else
		atomic_fetch_add(&m->events_of_dead[item], nr);
}

void count_vm_event(struct iom_machine *m, int item)
{
	count_vm_events(m, item, 1);
}

/* Detach every set from @m before it is destroyed. */
void iom_pcp_detach_all(struct iom_machine *m)
{
	struct list_head *pos, *n;

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&m->pcp_sets_lock));
	for (pos = m->pcp_sets.next; pos != &m->pcp_sets; pos = n) {
		struct iom_pcp_set *set = list_entry(pos, struct iom_pcp_set,
						     machine_link);

		n = pos->next;
		pcp_spin_lock(set);
		if (!set->dead)
			drain_pcp_set(m, set);
		atomic_store_explicit(&set->machine, NULL, memory_order_relaxed);
		pcp_spin_unlock(set);
		list_del(&set->machine_link);
		pcp_set_put(set);
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&m->pcp_sets_lock));
}

void iom_drain_local_pages(struct iom_machine *m)
{
	struct iom_pcp_set *set;

	if (!m)
		return;
	set = this_cpu_set(m);
	if (!set)
		return;
	pcp_spin_lock(set);
	drain_pcp_set(m, set);
	pcp_spin_unlock(set);
}

void iom_drain_all_pages(struct iom_machine *m)
{
	struct list_head *pos;

	if (!m)
		return;
	count_vm_event(m, IOM_DRAIN_ALL_PAGES);
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&m->pcp_sets_lock));
	list_for_each(pos, &m->pcp_sets) {
		struct iom_pcp_set *set = list_entry(pos, struct iom_pcp_set,
						     machine_link);

		pcp_spin_lock(set);
		if (!set->dead)
			drain_pcp_set(m, set);
		pcp_spin_unlock(set);
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&m->pcp_sets_lock));
}

int iom_set_numa_node(struct iom_machine *m, int nid)
{
	struct iom_pcp_set *set;

	if (!m || nid < 0 || (unsigned int)nid >= m->nr_nodes)
		return -EINVAL;
	set = this_cpu_set(m);
	if (!set)
		return -ENOMEM;
	set->nid = nid;
	return 0;
}

/* rmqueue_bulk(): move @count order-0 pages of @mt to @list. */
static int rmqueue_bulk(struct zone *zone, int count, struct list_head *list,
			int mt, unsigned int alloc_flags)
{
	int i;

	zone_lock(zone);
	for (i = 0; i < count; i++) {
		struct iom_page *page = __rmqueue(zone, 0, mt, alloc_flags);

		if (!page)
			break;
		list_add_tail(&page->lru, list);
	}
	zone_unlock(zone);
	return i;
}

static struct iom_page *rmqueue_pcplist(struct iom_pcp_set *set,
					struct zone *zone, int mt,
					unsigned int alloc_flags)
{
	struct per_cpu_pages *pcp = &set->pcp[zone->zone_id];
	struct list_head *list = &pcp->lists[mt];
	struct iom_page *page;

	pcp_spin_lock(set);
	if (list_empty(list)) {
		pcp->count += rmqueue_bulk(zone, pcp->batch, list, mt,
					   alloc_flags);
		__count_event(set, IOM_PCP_REFILL, 1);
		if (list_empty(list)) {
			pcp_spin_unlock(set);
			return NULL;
		}
	}
	page = list_first_entry(list, struct iom_page, lru);
	list_del(&page->lru);
	pcp->count--;
	pcp_spin_unlock(set);
	return page;
}

static struct iom_page *rmqueue(struct iom_pcp_set *set, struct zone *zone,
				unsigned int order, int mt,
				unsigned int alloc_flags)
{
	struct iom_page *page;

	/* Movable requests that may not use CMA bypass the caches. */
	if (order == 0 && (alloc_flags & ALLOC_CMA || mt != IOM_MIGRATE_MOVABLE))
		return rmqueue_pcplist(set, zone, mt, alloc_flags);

	zone_lock(zone);
	page = __rmqueue(zone, order, mt, alloc_flags);
	zone_unlock(zone);
	return page;
}

/* ---- watermarks --------------------------------------------------------- */

static bool __zone_watermark_ok(struct zone *zone, unsigned int order,
				unsigned long mark, int highest_zoneidx,
				unsigned int alloc_flags, long free_pages)
{
	long min = (long)mark;
	unsigned int o;
	int mt;

	free_pages -= (1L << order) - 1;
	if (!(alloc_flags & ALLOC_CMA))
		free_pages -= (long)zone_page_state(zone, NR_FREE_CMA_PAGES);
	if (alloc_flags & ALLOC_HIGH)
		min -= min / 2;
	if (alloc_flags & ALLOC_HARDER)
		min -= min / 4;
	if (free_pages <= min + zone->lowmem_reserve[highest_zoneidx])
		return false;
	if (!order)
		return true;
	/* A block of the order must exist on a list the request may use. */
	for (o = order; o <= zone->machine->max_order; o++) {
		struct free_area *area = &zone->free_area[o];

		if (!atomic_load_explicit(&area->nr_free, memory_order_relaxed))
			continue;
		for (mt = 0; mt < IOM_MIGRATE_PCPTYPES; mt++)
			if (area_nr_free_mt(area, mt))
				return true;
		if ((alloc_flags & ALLOC_CMA) && area_nr_free_mt(area, IOM_MIGRATE_CMA))
			return true;
	}
	return false;
}

static bool zone_watermark_fast(struct zone *zone, unsigned int order,
				unsigned long mark, int highest_zoneidx,
				unsigned int alloc_flags)
{
	long free_pages = (long)zone_page_state(zone, NR_FREE_PAGES);

	if (!order) {
		long cma = alloc_flags & ALLOC_CMA ? 0 :
			   (long)zone_page_state(zone, NR_FREE_CMA_PAGES);
		long usable = free_pages - (cma < free_pages ? cma : free_pages);

		if (usable > (long)mark + zone->lowmem_reserve[highest_zoneidx])
			return true;
	}
	return __zone_watermark_ok(zone, order, mark, highest_zoneidx,
				   alloc_flags, free_pages);
}

/*
 * setup_per_zone_wmarks() after calculate_min_free_kbytes(), and
 * setup_per_zone_lowmem_reserve() with the kernel's ratios (32 for
 * ZONE_NORMAL below ZONE_MOVABLE).
 */
void setup_per_zone_wmarks(struct iom_machine *m)
{
	unsigned long lowmem = 0, pages_min;
	long min_free_kbytes = m->cfg.min_free_kbytes;
	unsigned int nid;
	int z, j;

	for (nid = 0; nid < m->nr_nodes; nid++)
		for (z = 0; z < IOM_MAX_NR_ZONES; z++)
			lowmem += m->node_data[nid]->node_zones[z].managed_pages;
	if (min_free_kbytes == 0) {
		unsigned long normal = 0;

		for (nid = 0; nid < m->nr_nodes; nid++)
			normal += m->node_data[nid]->node_zones[IOM_ZONE_NORMAL].managed_pages;
		min_free_kbytes = (long)int_sqrt(normal * (IOM_PAGE_SIZE >> 10) * 16);
		if (min_free_kbytes < 128)
			min_free_kbytes = 128;
		if (min_free_kbytes > 262144)
			min_free_kbytes = 262144;
	}
	m->cfg.min_free_kbytes = min_free_kbytes;
	pages_min = min_free_kbytes > 0 ?
		    (unsigned long)min_free_kbytes >> (IOM_PAGE_SHIFT - 10) : 0;

	for (nid = 0; nid < m->nr_nodes; nid++) {
		struct pglist_data *pgdat = m->node_data[nid];

		for (z = 0; z < IOM_MAX_NR_ZONES; z++) {
			struct zone *zone = &pgdat->node_zones[z];
			unsigned long tmp, scale;

			if (min_free_kbytes < 0 || !lowmem) {
				memset(zone->_watermark, 0, sizeof(zone->_watermark));
				continue;
			}
			tmp = (unsigned long)((unsigned __int128)pages_min *
					      zone->managed_pages / lowmem);
			zone->_watermark[WMARK_MIN] = tmp;
			scale = zone->managed_pages * 10 / 10000;
			tmp = tmp >> 2 > scale ? tmp >> 2 : scale;
			zone->_watermark[WMARK_LOW] = zone->_watermark[WMARK_MIN] + tmp;
			zone->_watermark[WMARK_HIGH] = zone->_watermark[WMARK_LOW] + tmp;
		}
		for (z = 0; z < IOM_MAX_NR_ZONES; z++) {
			struct zone *zone = &pgdat->node_zones[z];
			unsigned long above = 0;

			for (j = 0; j < IOM_MAX_NR_ZONES; j++)
				zone->lowmem_reserve[j] = 0;
			if (min_free_kbytes < 0 || z != IOM_ZONE_NORMAL)
				continue;
			for (j = z + 1; j < IOM_MAX_NR_ZONES; j++) {
				above += pgdat->node_zones[j].managed_pages;
				zone->lowmem_reserve[j] = (long)(above / 32);
			}
		}
	}
}

/* ---- page preparation and checks ---------------------------------------- */

#define PAGE_FLAGS_CHECK_AT_FREE					\
	((1UL << IOM_PG_locked) | (1UL << IOM_PG_lru) |			\
	 (1UL << IOM_PG_writeback) | (1UL << IOM_PG_reserved) |		\
	 (1UL << IOM_PG_active) | (1UL << IOM_PG_private) |		\
	 (1UL << IOM_PG_isolated) | (1UL << IOM_PG_buddy))
#define PAGE_FLAGS_CHECK_AT_PREP					\
	(~0UL & ~(1UL << IOM_PG_poisoned))

static void bad_page(struct iom_machine *m, struct iom_page *page,
		     const char *reason)
{
	iom_report_bug(m, "BUG: Bad page state: pfn:%#lx refcount:%d mapcount:%d mapping:%p index:%#lx flags:%#lx: %s",
		       page_to_pfn(m, page), iom_page_ref_count(page),
		       iom_page_mapcount(page), (void *)page->mapping,
		       page->index, atomic_load(&page->flags), reason);
}

/* check_poison_mem(): the content of a poisoned free page must be intact. */
static void check_poison(struct iom_machine *m, struct iom_page *page)
{
	const uint64_t pattern = 0xaaaaaaaaaaaaaaaaULL;
	const uint64_t *p = page_address(m, page);
	size_t i;

	for (i = 0; i < IOM_PAGE_SIZE / sizeof(*p); i++) {
		if (p[i] != pattern) {
			iom_report_bug(m, "pagealloc: memory corruption: pfn:%#lx offset:%#zx: a free page was written",
				       page_to_pfn(m, page), i * sizeof(*p));
			return;
		}
	}
}

/* The kernel's is_check_pages_enabled(): check every subpage, not just the head. */
static inline bool check_pages_enabled(const struct iom_machine *m)
{
#ifdef IOMMIG_DEBUG
	return true;
#else
	return m->page_poison;
#endif
}

static bool check_new_page(struct iom_machine *m, struct iom_page *p)
{
	unsigned long flags = atomic_load_explicit(&p->flags, memory_order_relaxed);

	if (unlikely(flags & (1UL << IOM_PG_poisoned))) {
		check_poison(m, p);
		iom_ClearPagePoisoned(p);
		flags &= ~(1UL << IOM_PG_poisoned);
	}
	if (likely(!(flags | (unsigned long)iom_page_ref_count(p) |
		     (unsigned long)iom_page_mapcount(p) | (uintptr_t)p->mapping)))
		return true;
	bad_page(m, p, "nonzero state on a page being allocated");
	return false;
}

/*
 * check_new_pages(): every page must come out clean; a bad page is
 * reported and leaked, as the kernel does.
 */
static bool check_new_pages(struct iom_machine *m, struct iom_page *page,
			    unsigned int order)
{
	unsigned long i, n = 1UL << order;
	bool ok = check_new_page(m, page);

	if (order && check_pages_enabled(m))
		for (i = 1; i < n; i++)
			ok &= check_new_page(m, page + i);
	return ok;
}

static void prep_compound_page(struct iom_page *page, unsigned int order)
{
	unsigned long i, n = 1UL << order;

	iom_SetPageHead(page);
	for (i = 1; i < n; i++)
		__atomic_store_n(&page[i].compound_head, (unsigned long)page | 1UL,
				 __ATOMIC_RELAXED);
	page[1].index = order;
}

static void prep_new_page(struct iom_machine *m, struct iom_page *page,
			  unsigned int order, iom_gfp_t gfp)
{
	/* ->private and ->index were cleared when the page left the free lists */
	atomic_store_explicit(&page->_refcount, 1, memory_order_relaxed);
	page->owner_gfp = gfp;
	if (gfp & IOM___GFP_ZERO)
		memset(page_address(m, page), 0, IOM_PAGE_SIZE << order);
	if (order)
		prep_compound_page(page, order);
}

/* ---- the allocator entry points ----------------------------------------- */

struct alloc_context {
	struct pglist_data *pgdat;	/* preferred node */
	int highest_zoneidx;
	int migratetype;
	bool thisnode;
};

/* May the request of @ac use the zone of @z? (zone type, __GFP_THISNODE) */
static inline bool zoneref_allowed(const struct zoneref *z,
				   const struct alloc_context *ac)
{
	return z->zone_type <= ac->highest_zoneidx &&
	       (!ac->thisnode || z->zone->zone_pgdat == ac->pgdat);
}

/* for_each_zone_zonelist_nodemask(): the zones @ac may allocate from. */
#define for_each_allowed_zone(z, ac)					\
	for ((z) = (ac)->pgdat->zonelist; (z)->zone; (z)++)		\
		if (!zoneref_allowed((z), (ac))) {} else

static struct iom_page *get_page_from_freelist(struct iom_machine *m,
					       struct iom_pcp_set *set,
					       iom_gfp_t gfp, unsigned int order,
					       unsigned int alloc_flags,
					       const struct alloc_context *ac)
{
	const struct zoneref *z;

	for (z = ac->pgdat->zonelist; z->zone; z++) {
		struct zone *zone = z->zone;
		struct iom_page *page;

		if (!zoneref_allowed(z, ac))
			continue;
		if (!(alloc_flags & ALLOC_NO_WATERMARKS) &&
		    !zone_watermark_fast(zone, order,
					 zone->_watermark[alloc_flags & ALLOC_WMARK_MASK],
					 ac->highest_zoneidx, alloc_flags))
			continue;
		page = rmqueue(set, zone, order, ac->migratetype, alloc_flags);
		if (!page)
			continue;
		if (!check_new_pages(m, page, order))
			continue;	/* leaked, as the kernel does */
		prep_new_page(m, page, order, gfp);
		__count_event(set, zone->zone_type == IOM_ZONE_MOVABLE ?
				   IOM_PGALLOC_MOVABLE : IOM_PGALLOC_NORMAL,
			      1UL << order);
		return page;
	}
	return NULL;
}

static unsigned int gfp_to_alloc_flags(iom_gfp_t gfp, int migratetype)
{
	unsigned int alloc_flags = ALLOC_WMARK_MIN;

	if (gfp & IOM___GFP_HIGH)
		alloc_flags |= ALLOC_HIGH;
	if (!(gfp & IOM___GFP_DIRECT_RECLAIM) && !(gfp & IOM___GFP_NOMEMALLOC))
		alloc_flags |= ALLOC_HARDER;
	if ((gfp & IOM___GFP_MEMALLOC) && !(gfp & IOM___GFP_NOMEMALLOC))
		alloc_flags |= ALLOC_NO_WATERMARKS;
	if (migratetype == IOM_MIGRATE_MOVABLE)
		alloc_flags |= ALLOC_CMA;
	return alloc_flags;
}

/*
 * __alloc_pages_direct_compact(): compact the zones of the zonelist that
 * compaction_suitable() allows, then try again. Always MIGRATE_ASYNC: the
 * allocating thread may hold page locks, and the kernel's direct
 * compaction (PF_MEMALLOC) never sleeps on one either.
 */
static struct iom_page *__alloc_pages_direct_compact(struct iom_machine *m,
						     struct iom_pcp_set *set,
						     iom_gfp_t gfp, unsigned int order,
						     unsigned int alloc_flags,
						     const struct alloc_context *ac)
{
	const struct zoneref *z;
	bool compacted = false;

	for_each_allowed_zone(z, ac) {
		int nid = z->zone->zone_pgdat->node_id;

		if (iom_compaction_suitable(m, nid, z->zone_type, order) !=
		    IOM_COMPACT_CONTINUE)
			continue;
		if (compact_zone_order(m, z->zone, order, IOM_MIGRATE_ASYNC) ==
		    IOM_COMPACT_SUCCESS)
			compacted = true;
	}
	if (!compacted)
		return NULL;
	return get_page_from_freelist(m, set, gfp, order, alloc_flags, ac);
}

/* Out of line, as in the kernel: the fast path stays small. */
static __attribute__((noinline)) struct iom_page *__alloc_pages_slowpath(struct iom_machine *m,
					       struct iom_pcp_set *set,
					       iom_gfp_t gfp, unsigned int order,
					       const struct alloc_context *ac)
{
	unsigned int alloc_flags = gfp_to_alloc_flags(gfp, ac->migratetype);
	struct iom_page *page;

	/*
	 * wake_all_kswapds(): balance the zones that failed the low mark. With
	 * no kswapd thread the work runs here, so only for callers that may
	 * sleep; an atomic allocation leaves it to the next one that can.
	 */
	if ((gfp & IOM___GFP_KSWAPD_RECLAIM) && (gfp & IOM___GFP_DIRECT_RECLAIM)) {
		const struct zoneref *z;

		for_each_allowed_zone(z, ac)
			wakeup_kswapd(m, z->zone, order);
	}
	page = get_page_from_freelist(m, set, gfp, order, alloc_flags, ac);
	if (page || !(gfp & IOM___GFP_DIRECT_RECLAIM))
		return page;
	/* costly or not, a high order is first sought by compaction */
	if (order) {
		page = __alloc_pages_direct_compact(m, set, gfp, order, alloc_flags, ac);
		if (page)
			return page;
	}
	/*
	 * __alloc_pages_direct_reclaim(): reclaim clean page-cache pages, then,
	 * if that did not do, the pages sitting in every thread's cache.
	 */
	if (try_to_free_pages(m, ac->pgdat->node_id, order, gfp)) {
		page = get_page_from_freelist(m, set, gfp, order, alloc_flags, ac);
		if (page)
			return page;
	}
	iom_drain_all_pages(m);
	return get_page_from_freelist(m, set, gfp, order, alloc_flags, ac);
}

struct iom_page *iom_alloc_pages_node(struct iom_machine *m, int nid,
				      iom_gfp_t gfp, unsigned int order)
{
	struct alloc_context ac;
	struct iom_pcp_set *set;
	struct iom_page *page;

	if (unlikely(!m)) {
		errno = EINVAL;
		return NULL;
	}
	if (unlikely(order > m->max_order || (gfp & ~IOM_GFP_VALID_MASK) ||
		     nid < -1 || nid >= (int)m->nr_nodes ||
		     (gfp & (IOM___GFP_MOVABLE | IOM___GFP_RECLAIMABLE)) ==
			     (IOM___GFP_MOVABLE | IOM___GFP_RECLAIMABLE))) {
		iom_warn(m, "iom_alloc_pages: invalid request: order %u (max %u), gfp %#x, node %d",
			 order, m->max_order, gfp, nid);
		errno = EINVAL;
		return NULL;
	}
	gfp = current_gfp_context(gfp);	/* a long-term pin: not movable */
	set = this_cpu_set(m);
	if (unlikely(!set)) {
		errno = ENOMEM;
		return NULL;
	}
	ac.pgdat = m->node_data[nid < 0 ? set->nid : nid];
	ac.highest_zoneidx = iom_gfp_zone(gfp);
	ac.migratetype = iom_gfp_migratetype(gfp);
	ac.thisnode = gfp & IOM___GFP_THISNODE;

	page = get_page_from_freelist(m, set, gfp, order,
				      ALLOC_WMARK_LOW |
				      (ac.migratetype == IOM_MIGRATE_MOVABLE ? ALLOC_CMA : 0),
				      &ac);
	if (likely(page)) iom_trace(m, IOM_TRACE_MM_PAGE_ALLOC, 'i', page_to_pfn(m, page), order, gfp, ac.migratetype);
	if (likely(page))
		return page;
	page = __alloc_pages_slowpath(m, set, gfp, order, &ac);
	iom_trace(m, IOM_TRACE_MM_PAGE_ALLOC, 'i', page ? page_to_pfn(m, page) : ~0UL, order, gfp, ac.migratetype);
	if (page)
		return page;
	__count_event(set, IOM_PGALLOC_FAIL, 1);
	if (!(gfp & IOM___GFP_NOWARN))
		iom_warn(m, "page allocation failure: order:%u, mode:%#x, nodemask=(null)",
			 order, gfp);
	errno = ENOMEM;
	return NULL;
}

struct iom_page *iom_alloc_pages(struct iom_machine *m, iom_gfp_t gfp,
				 unsigned int order)
{
	return iom_alloc_pages_node(m, -1, gfp, order);
}

/* ---- freeing ------------------------------------------------------------ */

static inline bool page_is_buddy(struct iom_page *buddy, unsigned int order)
{
	return iom_PageBuddy(buddy) && buddy_order(buddy) == order;
}

/* The next-order buddy is free: this block will likely merge soon. */
static bool buddy_merge_likely(struct iom_machine *m, unsigned long pfn,
			       unsigned long buddy_pfn, unsigned int order)
{
	unsigned long higher;

	if (order >= m->max_order - 1)
		return false;
	higher = (pfn & buddy_pfn) ^ (1UL << (order + 1));
	if (!iom_pfn_valid(m, higher))
		return false;
	return page_is_buddy(pfn_to_page(m, higher), order + 1);
}

/*
 * __free_one_page(): merge with free buddies as far as they go. Above the
 * pageblock order, blocks of different types merge only if both are
 * ordinary (unmovable, movable, reclaimable): CMA and isolated pageblocks
 * keep to themselves.
 */
void __free_one_page(struct zone *zone, struct iom_page *page,
		     unsigned long pfn, unsigned int order, int migratetype,
		     bool to_tail)
{
	struct iom_machine *m = zone->machine;
	unsigned long buddy_pfn = 0;

	while (order < m->max_order) {
		struct iom_page *buddy;

		buddy_pfn = pfn ^ (1UL << order);
		if (!iom_pfn_valid(m, buddy_pfn))
			break;
		buddy = pfn_to_page(m, buddy_pfn);
		if (!page_is_buddy(buddy, order))
			break;
		if (order >= m->pageblock_order) {
			int buddy_mt = get_pfnblock_migratetype(m, buddy_pfn);

			if (migratetype != buddy_mt &&
			    (!migratetype_is_mergeable(migratetype) ||
			     !migratetype_is_mergeable(buddy_mt)))
				break;
		}
		IOM_BUG_ON(pfn_zone(m, buddy_pfn) != zone);
		del_page_from_free_list(buddy, zone, order);
		pfn &= buddy_pfn;
		page = pfn_to_page(m, pfn);
		order++;
	}
	if (!to_tail)
		to_tail = buddy_merge_likely(m, pfn, pfn ^ (1UL << order), order);
	add_to_free_list(page, zone, order, migratetype, to_tail);
}

/* free_unref_page(): order 0 into the thread's cache. */
static void free_unref_page(struct iom_machine *m, struct iom_page *page,
			    unsigned long pfn)
{
	const struct pageblock *pb = pfn_pageblock(m, pfn);
	struct zone *zone = m->zone_table[pb->zone_id];
	int mt = atomic_load_explicit(&((struct pageblock *)pb)->flags,
				      memory_order_relaxed) & PB_migrate_mask;
	struct iom_pcp_set *set;
	struct per_cpu_pages *pcp;

	set = this_cpu_set(m);
	if (unlikely(mt >= IOM_MIGRATE_PCPTYPES || !set)) {
		if (unlikely(!set) || is_migrate_isolate(mt)) {
			zone_lock(zone);
			__free_one_page(zone, page, pfn, 0, mt, false);
			zone_unlock(zone);
			if (set)
				__count_event(set, IOM_PGFREE, 1);
			else
				atomic_fetch_add(&m->events_of_dead[IOM_PGFREE], 1);
			return;
		}
		mt = IOM_MIGRATE_MOVABLE;	/* CMA pages ride the movable list */
	}
	pcp = &set->pcp[zone->zone_id];
	pcp_spin_lock(set);
	list_add(&page->lru, &pcp->lists[mt]);
	pcp->count++;
	if (pcp->count >= pcp->high) {
		free_pcppages_bulk(zone, pcp->batch, pcp);
		__count_event(set, IOM_PCP_DRAIN, 1);
	}
	pcp_spin_unlock(set);
	__count_event(set, IOM_PGFREE, 1);
}

/*
 * free_pages_prepare(): the page must be clean. A dirty one is reported and
 * leaked. Returns false if so. Tails are unlinked from the head always;
 * their state is checked when check_pages_enabled().
 */
static bool free_pages_prepare(struct iom_machine *m, struct iom_page *page,
			       unsigned int order)
{
	unsigned long i, n = 1UL << order;
	bool ok = true;

	if (order) {
		bool check = check_pages_enabled(m);

		for (i = 1; i < n; i++) {
			struct iom_page *p = page + i;

			if (check) {
				if (p->compound_head != ((unsigned long)page | 1UL)) {
					bad_page(m, p, "corrupted compound_head");
					ok = false;
				}
				if (iom_page_ref_count(p) || iom_page_mapcount(p)) {
					bad_page(m, p, "tail page in use");
					ok = false;
				}
			}
			__atomic_store_n(&p->compound_head, 0UL, __ATOMIC_RELAXED);
		}
		page[1].index = 0;
	}
	/*
	 * An anonymous page's mapping is its anon_vma, a released non-LRU
	 * movable page's the bare PAGE_MAPPING_MOVABLE flag: cleared on free
	 * (PageMappingFlags()).
	 */
	if ((uintptr_t)page->mapping & 3UL)	/* scanners read it unlocked */
		__atomic_store_n(&page->mapping, NULL, __ATOMIC_RELAXED);
	if (unlikely((atomic_load_explicit(&page->flags, memory_order_relaxed) &
		      PAGE_FLAGS_CHECK_AT_FREE) |
		     (unsigned long)iom_page_mapcount(page) | (uintptr_t)page->mapping)) {
		bad_page(m, page, "page still in use when freed");
		ok = false;
	}
	if (!ok)
		return false;
	__atomic_store_n(&page->private, 0UL, __ATOMIC_RELAXED);
	page->index = 0;
	page->owner_gfp = 0;
	atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
	if (m->page_poison) {
		for (i = 0; i < n; i++) {
			memset(page_address(m, page + i), IOM_PAGE_POISON, IOM_PAGE_SIZE);
			iom_SetPagePoisoned(page + i);
		}
	}
	return true;
}

/*
 * __free_pages_ok(): the last reference to @page (at @pfn) is gone. The
 * flags were checked before the count dropped, so a putback may have put
 * the page on an LRU since: it leaves the LRU first.
 */
static inline __attribute__((always_inline)) void
__free_pages_ok(struct iom_machine *m, struct iom_page *page,
			    unsigned long pfn, unsigned int order)
{
	struct zone *zone;

	iom_trace(m, IOM_TRACE_MM_PAGE_FREE, 'i', pfn, order, 0, 0);
	if (iom_PageLRU(page))
		__page_cache_release(m, page);
	if (!free_pages_prepare(m, page, order))
		return;
	if (order == 0) {
		free_unref_page(m, page, pfn);
		return;
	}
	zone = pfn_zone(m, pfn);
	zone_lock(zone);
	__free_one_page(zone, page, pfn, order, get_pfnblock_migratetype(m, pfn),
			false);
	zone_unlock(zone);
	count_vm_events(m, IOM_PGFREE, 1UL << order);
}

/* Checks shared by the public free paths. */
static int check_free_request(struct iom_machine *m, struct iom_page *page,
			      unsigned int order, bool order_known)
{
	unsigned int alloc_order;

	if (!m || !page)
		return -EINVAL;
	if (!page_in_mem_map(m, page)) {
		iom_warn(m, "free_pages: %p is not a page of this machine", (void *)page);
		return -EFAULT;
	}
	if (order > m->max_order) {
		iom_warn(m, "free_pages: order %u > MAX_ORDER %u (pfn %#lx)", order,
			 m->max_order, page_to_pfn(m, page));
		return -EINVAL;
	}
	if (iom_PageTail(page)) {
		iom_warn(m, "free_pages: pfn %#lx is a tail page", page_to_pfn(m, page));
		return -EINVAL;
	}
	if (iom_PageBuddy(page) || iom_page_ref_count(page) <= 0) {
		iom_warn(m, "free_pages: pfn %#lx is already free (double free?)",
			 page_to_pfn(m, page));
		return -EINVAL;
	}
	alloc_order = iom_compound_order(page);
	if (order_known && order != alloc_order) {
		iom_warn(m, "free_pages: pfn %#lx freed with order %u, allocated with order %u",
			 page_to_pfn(m, page), order, alloc_order);
		return -EINVAL;
	}
	return 0;
}

/* put_page_testzero() that refuses to go below zero. */
static int page_ref_dec_and_test(struct iom_machine *m, struct iom_page *page,
				 bool *zero)
{
	int old = atomic_load_explicit(&page->_refcount, memory_order_relaxed);

	do {
		if (old <= 0) {
			iom_warn(m, "free_pages: pfn %#lx is already free (no reference left; double free?)",
				 page_to_pfn(m, page));
			return -EINVAL;
		}
	} while (!atomic_compare_exchange_weak_explicit(&page->_refcount, &old,
							old - 1,
							memory_order_acq_rel,
							memory_order_relaxed));
	*zero = old == 1;
	return 0;
}

int iom___free_pages(struct iom_machine *m, struct iom_page *page,
		     unsigned int order)
{
	bool zero;
	int ret;

	/*
	 * Order 0, a page of this machine, not compound, no flag that forbids
	 * freeing: straight to the thread's cache. Anything else takes the
	 * checked path below, which explains what is wrong.
	 */
	if (likely(m && order == 0)) {
		uintptr_t off = (uintptr_t)page - (uintptr_t)m->mem_map;

		if (likely(off < m->mem_map_size &&
			   !(off & (sizeof(struct iom_page) - 1)) &&
			   !iom_PageTail(page) &&
			   !(atomic_load_explicit(&page->flags, memory_order_relaxed) &
			     ((1UL << IOM_PG_head) | PAGE_FLAGS_CHECK_AT_FREE)))) {
			ret = page_ref_dec_and_test(m, page, &zero);
			if (!ret && zero)
				__free_pages_ok(m, page, m->start_pfn +
						off / sizeof(struct iom_page), 0);
			return ret;
		}
	}

	ret = check_free_request(m, page, order, true);
	if (unlikely(ret))
		return ret;
	ret = page_ref_dec_and_test(m, page, &zero);
	if (unlikely(ret))
		return ret;
	if (zero)
		__free_pages_ok(m, page, page_to_pfn(m, page), order);
	return 0;
}

int iom_free_pages(struct iom_machine *m, void *addr, unsigned int order)
{
	struct iom_page *page;

	if (!m || !addr)
		return -EINVAL;
	page = iom_virt_to_page(m, addr);
	if (!page || ((uintptr_t)addr & (IOM_PAGE_SIZE - 1))) {
		iom_warn(m, "free_pages: %p is not the start of a page of this machine",
			 addr);
		return -EFAULT;
	}
	return iom___free_pages(m, page, order);
}

int iom_get_page(struct iom_machine *m, struct iom_page *page)
{
	int old;

	if (!m || !page || !page_in_mem_map(m, page))
		return -EINVAL;
	page = iom_compound_head(page);
	old = atomic_load_explicit(&page->_refcount, memory_order_relaxed);
	do {
		if (old <= 0)
			return -EINVAL;
	} while (!atomic_compare_exchange_weak_explicit(&page->_refcount, &old,
							old + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	return 0;
}

int iom_put_page(struct iom_machine *m, struct iom_page *page)
{
	if (!m || !page || !page_in_mem_map(m, page))
		return -EINVAL;
	page = iom_compound_head(page);
	return iom___free_pages(m, page, iom_compound_order(page));
}

/* ---- helpers for page_isolation.c ----------------------------------------- */

/*
 * split_free_block_at(): if @pfn's pageblock lies inside a free block larger
 * than a pageblock, split that block (as expand() does) until the pageblock
 * is a free block of its own, so isolation can move it alone
 * (isolate_single_pageblock() -> split_free_page()). Under zone->lock.
 */
void split_free_block_at(struct zone *zone, unsigned long pfn)
{
	struct iom_machine *m = zone->machine;
	unsigned int order;

	for (order = m->pageblock_order + 1; order <= m->max_order; order++) {
		unsigned long head = pfn & ~((1UL << order) - 1);
		struct iom_page *page;
		int mt;

		if (head < zone->zone_start_pfn)
			return;
		page = pfn_to_page(m, head);
		if (!iom_PageBuddy(page) || buddy_order(page) != order)
			continue;
		mt = (int)page->index;
		del_page_from_free_list(page, zone, order);
		while (order > m->pageblock_order) {
			unsigned long half = 1UL << --order;

			if (pfn - head >= half) {
				add_to_free_list(pfn_to_page(m, head), zone, order, mt, true);
				head += half;
			} else {
				add_to_free_list(pfn_to_page(m, head + half), zone, order,
						 mt, true);
			}
		}
		add_to_free_list(pfn_to_page(m, head), zone, order, mt, true);
		return;
	}
}

/*
 * putback_free_pageblock(): unisolating; if the pageblock at @pfn is one
 * free block, take it off the isolated list and free it again under
 * @migratetype so it merges with its neighbours (__putback_isolated_page()).
 * Returns false if the pageblock is not one free block. Under zone->lock;
 * the pageblock's migratetype must already be @migratetype.
 */
bool putback_free_pageblock(struct zone *zone, unsigned long pfn,
			    int migratetype)
{
	struct iom_machine *m = zone->machine;
	struct iom_page *page = pfn_to_page(m, pfn);
	unsigned int order;

	/* Neighbouring isolated pageblocks may have merged with this one. */
	split_free_block_at(zone, pfn);
	if (!iom_PageBuddy(page) || buddy_order(page) < m->pageblock_order)
		return false;
	order = buddy_order(page);
	del_page_from_free_list(page, zone, order);
	__free_one_page(zone, page, pfn, order, migratetype, true);
	return true;
}

/* ---- invariant checker (tests, debugging) -------------------------------- */

static int check_fail(struct iom_machine *m, const char *what, unsigned long pfn)
{
	iom_report_bug(m, "free list check: %s (pfn %#lx)", what, pfn);
	return -EUCLEAN;
}

/*
 * iom_check_free_lists(): walk every free list of @m and check that each
 * entry is a buddy head of the list's order and type, aligned, inside its
 * zone, overlapping no other free block, that CMA pages are only on CMA or
 * isolated lists, and that every counter matches the lists. @nr_free, if
 * not NULL, receives the pages on all free lists (pcp caches excluded).
 * Return: 0 or -EUCLEAN (each violation is also a bug report).
 */
int iom_check_free_lists(struct iom_machine *m, unsigned long *nr_free)
{
	unsigned long total_all = 0;
	int z, ret = 0;

	for (z = 0; z < m->nr_zone_ids; z++) {
		struct zone *zone = m->zone_table[z];
		unsigned long total = 0, cma = 0, span = zone->spanned_pages;
		unsigned char *seen;
		unsigned int o;
		int mt;

		if (!populated_zone(zone))
			continue;
		seen = calloc(span / 8 + 1, 1);
		if (!seen)
			return -ENOMEM;
		zone_lock(zone);
		for (o = 0; o <= m->max_order; o++) {
			struct free_area *area = &zone->free_area[o];
			unsigned long area_total = 0;

			for (mt = 0; mt < IOM_MIGRATE_TYPES; mt++) {
				unsigned long n = 0;
				struct list_head *pos;

				list_for_each(pos, &area->free_list[mt]) {
					struct iom_page *page = list_entry(pos, struct iom_page, lru);
					unsigned long pfn, i;
					int bmt;

					if (!page_in_mem_map(m, page)) {
						ret = check_fail(m, "entry outside mem_map", 0);
						break;
					}
					pfn = page_to_pfn(m, page);
					n++;
					if (!iom_PageBuddy(page) || buddy_order(page) != o)
						ret = check_fail(m, "entry is not a buddy of its order", pfn);
					if ((int)page->index != mt)
						ret = check_fail(m, "entry records another list", pfn);
					if (pfn & ((1UL << o) - 1))
						ret = check_fail(m, "misaligned block", pfn);
					if (!zone_spans_pfn(zone, pfn) ||
					    !zone_spans_pfn(zone, pfn + (1UL << o) - 1)) {
						ret = check_fail(m, "block outside its zone", pfn);
						continue;
					}
					bmt = get_pfnblock_migratetype(m, pfn);
					if (is_migrate_cma(bmt) != is_migrate_cma(mt) &&
					    !is_migrate_isolate(mt) && !is_migrate_isolate(bmt))
						ret = check_fail(m, "CMA page on a non-CMA list or the reverse", pfn);
					for (i = 0; i < (1UL << o); i++) {
						unsigned long off = pfn - zone->zone_start_pfn + i;

						if (seen[off / 8] & (1u << (off % 8))) {
							ret = check_fail(m, "free blocks overlap", pfn + i);
							break;
						}
						seen[off / 8] |= (unsigned char)(1u << (off % 8));
					}
					if (!is_migrate_isolate(mt))
						total += 1UL << o;
					if (is_migrate_cma(mt))
						cma += 1UL << o;
					total_all += 1UL << o;
				}
				if (n != area_nr_free_mt(area, mt))
					ret = check_fail(m, "nr_free_mt differs from the list", n);
				area_total += n;
			}
			if (area_total != atomic_load(&area->nr_free))
				ret = check_fail(m, "nr_free differs from the lists", area_total);
		}
		if (total != zone_page_state(zone, NR_FREE_PAGES))
			ret = check_fail(m, "NR_FREE_PAGES differs from the lists", total);
		if (cma != zone_page_state(zone, NR_FREE_CMA_PAGES))
			ret = check_fail(m, "NR_FREE_CMA_PAGES differs from the lists", cma);
		zone_unlock(zone);
		free(seen);
	}
	if (nr_free)
		*nr_free = total_all;
	return ret;
}

/* ---- compaction's free-page isolation (mm/page_alloc.c) ----------------- */

/*
 * __isolate_free_page(): take the free block of @order headed by @page off
 * its free list for compaction's free scanner, as the kernel does:
 * refuse if that would leave the zone below its min watermark (not for
 * an isolated pageblock), and give a pageblock-sized block's pageblocks
 * to MIGRATE_MOVABLE. Simplified: the kernel leaves the split to the
 * caller (split_map_pages: post_alloc_hook + split_page); here the block
 * is prepared at once as 2^@order order-0 pages with one reference each
 * (prep_new_page, no __GFP_ZERO, no allocation-time poison check).
 * Context: zone->lock held; @page is PageBuddy of @order in @zone.
 * Return: 2^@order, or 0 if not isolated.
 */
int __isolate_free_page(struct zone *zone, struct iom_page *page,
			unsigned int order)
{
	struct iom_machine *m = zone->machine;
	unsigned long i, n = 1UL << order;
	int mt = (int)page->index;

	if (!iom_PageBuddy(page) || buddy_order(page) != order)
		return 0;
	if (!is_migrate_isolate(mt)) {
		unsigned long wmark = zone->_watermark[WMARK_MIN] + n;

		if (zone_page_state(zone, NR_FREE_PAGES) < wmark)
			return 0;
	}
	del_page_from_free_list(page, zone, order);

	if (order >= m->pageblock_order - 1 && order >= 1) {
		struct iom_page *endpage = page + n - 1;

		for (; page <= endpage; page += m->pageblock_nr_pages) {
			int bmt = get_pageblock_migratetype(m, page);

			if (!is_migrate_isolate(bmt) && !is_migrate_cma(bmt) &&
			    bmt != IOM_MIGRATE_HIGHATOMIC)
				set_pageblock_migratetype(m, page_to_pfn(m, page),
							  IOM_MIGRATE_MOVABLE);
			if (m->pageblock_nr_pages > n)
				break;
		}
		page = endpage + 1 - n;
	}
	for (i = 0; i < n; i++)
		prep_new_page(m, page + i, 0, IOM_GFP_HIGHUSER_MOVABLE);
	return (int)n;
}

/*
 * Compaction's compound targets (see compaction_alloc()): 2^@order pages
 * __isolate_free_page() left as order-0 pages with a reference each become
 * one compound page, as a fresh allocation of @order would be; and back.
 */
void isolated_pages_make_compound(struct iom_page *page, unsigned int order)
{
	for (unsigned long i = 1; i < (1UL << order); i++)
		atomic_store_explicit(&page[i]._refcount, 0, memory_order_relaxed);
	prep_compound_page(page, order);
}

void isolated_compound_split(struct iom_page *page)
{
	unsigned int order = iom_compound_order(page);

	for (unsigned long i = 1; i < (1UL << order); i++) {
		__atomic_store_n(&page[i].compound_head, 0UL, __ATOMIC_RELAXED);
		page[i].index = 0;
		atomic_store_explicit(&page[i]._refcount, 1, memory_order_relaxed);
	}
	iom_ClearPageHead(page);
}

/* ---- contiguous ranges: alloc_contig_range() (mm/page_alloc.c) ---------- */

/* Failed migration rounds in a row before __alloc_contig_migrate_range() gives up. */
#define CONTIG_MIGRATE_TRIES	5

/*
 * __alloc_contig_migrate_range(): migrate every movable page of
 * [@start, @end) out, in batches of COMPACT_CLUSTER_MAX isolated by
 * compaction's isolate_migratepages_range(). Pages that fail stay on the
 * list and are tried again; after CONTIG_MIGRATE_TRIES rounds with no
 * new batch the range is declared busy. Targets come from
 * alloc_migration_target() on the zone's node: the range's pageblocks are
 * isolated, so the allocator never hands out a page of the range. There
 * are no per-cpu LRU pagevecs to drain (lru_cache_disable()): pages reach
 * the LRU at once. Clean page-cache pages are migrated rather than
 * reclaimed (no reclaim_clean_pages_from_list()).
 * Return: 0, -EBUSY or -ENOMEM; on failure the isolated pages are put back.
 */
static int __alloc_contig_migrate_range(struct compact_control *cc,
					unsigned long start, unsigned long end)
{
	struct iom_machine *m = cc->m;
	struct migration_target_control mtc = {
		.m = m,
		.nid = cc->zone->zone_pgdat->node_id,
		.gfp_mask = IOM_GFP_USER | IOM___GFP_MOVABLE | IOM___GFP_RETRY_MAYFAIL,
	};
	unsigned long pfn = start;
	unsigned int tries = 0;
	int ret = 0;

	while (pfn < end || !list_empty(&cc->migratepages)) {
		if (list_empty(&cc->migratepages)) {
			cc->nr_migratepages = 0;
			pfn = isolate_migratepages_range(cc, pfn, end);
			tries = 0;
		} else if (++tries == CONTIG_MIGRATE_TRIES) {
			ret = -EBUSY;
			break;
		}
		ret = iom_migrate_pages(m, &cc->migratepages,
					alloc_migration_target, NULL,
					(unsigned long)&mtc, cc->mode,
					IOM_MR_CONTIG_RANGE, NULL);
		/* migrate_pages() gave up at once: so do we */
		if (ret == -ENOMEM)
			break;
	}
	if (ret < 0) {
		iom_putback_movable_pages(m, &cc->migratepages);
		cc->nr_migratepages = 0;
		return ret;
	}
	return 0;
}

/*
 * The first pfn of the free block that holds @start, or @start if it is
 * not inside a free block (the outer_start search of alloc_contig_range()).
 * Under zone->lock.
 */
static unsigned long contig_outer_start(struct zone *zone, unsigned long start)
{
	struct iom_machine *m = zone->machine;
	unsigned long outer = start;
	unsigned int order = 0;

	while (!iom_PageBuddy(pfn_to_page(m, outer))) {
		if (++order > m->max_order)
			return start;
		outer &= ~0UL << order;
		if (outer < zone->zone_start_pfn)
			return start;
	}
	/* a smaller free block below @start does not contain it */
	if (outer + (1UL << buddy_order(pfn_to_page(m, outer))) <= start)
		return start;
	return outer;
}

/*
 * test_pages_isolated() for [@pfn, @end) with @pfn the head of a free
 * block: every page free and on an isolated list. Under zone->lock.
 * Return: the first pfn that is not, or @end.
 */
static unsigned long __test_pages_isolated(struct zone *zone, unsigned long pfn,
					   unsigned long end)
{
	struct iom_machine *m = zone->machine;

	while (pfn < end) {
		struct iom_page *page = pfn_to_page(m, pfn);

		if (!iom_PageBuddy(page) || !is_migrate_isolate((int)page->index))
			break;
		pfn += 1UL << buddy_order(page);
	}
	return pfn < end ? pfn : end;
}

/*
 * isolate_freepages_range() (compaction.c) + the free_contig_range() of
 * the head and tail: take every free block of [@outer_start, @end) off
 * the isolated free lists; the pages of [@start, @end) become allocated
 * order-0 pages with one reference each (checked like any new page, so a
 * write to a poisoned free page is caught); the parts of the blocks
 * outside the range go straight back to the isolated lists (the kernel
 * allocates and then frees them). Under zone->lock; the range passed
 * __test_pages_isolated().
 */
static void isolate_freepages_range(struct zone *zone, unsigned long outer_start,
				    unsigned long start, unsigned long end)
{
	struct iom_machine *m = zone->machine;
	unsigned long pfn = outer_start;

	while (pfn < end) {
		struct iom_page *page = pfn_to_page(m, pfn);
		unsigned int order = buddy_order(page);
		unsigned long i, n = 1UL << order;

		del_page_from_free_list(page, zone, order);
		for (i = 0; i < n; i++) {
			unsigned long p = pfn + i;

			if (p < start || p >= end) {
				__free_one_page(zone, page + i, p, 0,
						IOM_MIGRATE_ISOLATE, false);
				continue;
			}
			check_new_page(m, page + i);
			prep_new_page(m, page + i, 0, IOM___GFP_MOVABLE);
		}
		pfn += n;
	}
}

int iom_alloc_contig_range(struct iom_machine *m, unsigned long start,
			   unsigned long end, int migratetype, iom_gfp_t gfp)
{
	unsigned long iso_start, iso_end, outer_start, busy;
	struct compact_control cc;
	struct zone *zone;
	int ret;

	if (!m)
		return -EINVAL;
	if (start >= end || !iom_pfn_valid(m, start) || !iom_pfn_valid(m, end - 1) ||
	    pfn_zone(m, start) != pfn_zone(m, end - 1) ||
	    (migratetype != IOM_MIGRATE_MOVABLE && migratetype != IOM_MIGRATE_CMA) ||
	    (gfp & ~IOM_GFP_VALID_MASK)) {
		iom_warn(m, "alloc_contig_range: bad range [%#lx, %#lx), migratetype %d or gfp %#x",
			 start, end, migratetype, gfp);
		return -EINVAL;
	}
	zone = pfn_zone(m, start);
	cc = (struct compact_control){
		.m = m, .zone = zone, .order = -1, .mode = IOM_MIGRATE_SYNC,
	};
	INIT_LIST_HEAD(&cc.freepages);
	INIT_LIST_HEAD(&cc.migratepages);

	/*
	 * Isolate whole pageblocks: from now on no page of the range is
	 * handed out, and a page freed there stays free. (Linux 6.1 rounds
	 * inside start_isolate_page_range(); ours takes aligned ranges.)
	 */
	iso_start = pageblock_start_pfn(m, start);
	iso_end = pageblock_start_pfn(m, end - 1) + m->pageblock_nr_pages;
	ret = iom_start_isolate_page_range(m, iso_start, iso_end, migratetype, 0);
	if (ret)
		return ret;
	/* pages of the range sitting in per-thread caches go back */
	iom_drain_all_pages(m);

	/*
	 * A migration that ends -EBUSY is not the last word: the busy pages
	 * may have gone by now, so the range is tested either way.
	 */
	ret = __alloc_contig_migrate_range(&cc, start, end);
	if (ret && ret != -EBUSY)
		goto done;
	ret = 0;

	/*
	 * Test and take under one hold of zone->lock: the pages are isolated,
	 * so none can leave the free lists meanwhile, but a page may still
	 * be freed into the range.
	 */
	zone_lock(zone);
	outer_start = contig_outer_start(zone, start);
	busy = __test_pages_isolated(zone, outer_start, end);
	if (busy == end)
		isolate_freepages_range(zone, outer_start, start, end);
	zone_unlock(zone);
	if (busy != end) {
		iom_printk(m, IOM_LOG_INFO, "alloc_contig_range: [%lx, %lx) PFNs busy",
			   outer_start, end);
		ret = -EBUSY;
	}
done:
	iom_undo_isolate_page_range(m, iso_start, iso_end, migratetype);
	return ret;
}

int iom_free_contig_range(struct iom_machine *m, unsigned long pfn,
			  unsigned long nr_pages)
{
	unsigned long i, in_use = 0;

	if (!m)
		return -EINVAL;
	if (!nr_pages || !iom_pfn_valid(m, pfn) || pfn + nr_pages < pfn ||
	    !iom_pfn_valid(m, pfn + nr_pages - 1)) {
		iom_warn(m, "free_contig_range: bad range of %lu pages at pfn %#lx",
			 nr_pages, pfn);
		return -EINVAL;
	}
	/* Every page first, so that a bad one changes nothing. */
	for (i = 0; i < nr_pages; i++) {
		struct iom_page *page = pfn_to_page(m, pfn + i);

		if (iom_page_ref_count(page) <= 0 || iom_PageBuddy(page) ||
		    iom_PageHead(page) || iom_PageTail(page)) {
			iom_warn(m, "free_contig_range: pfn %#lx is free or part of a compound page",
				 pfn + i);
			return -EINVAL;
		}
	}
	for (i = 0; i < nr_pages; i++) {
		struct iom_page *page = pfn_to_page(m, pfn + i);

		in_use += iom_page_ref_count(page) != 1;
		iom___free_pages(m, page, 0);
	}
	if (in_use)
		iom_warn(m, "free_contig_range: %lu pages are still in use!", in_use);
	return 0;
}
