/* SPDX-License-Identifier: MIT */
/*
 * ZONE_DEVICE memory of type DEVICE_PRIVATE (mm/memremap.c: memremap_pages,
 * memunmap_pages, free_zone_device_page, zone_device_page_init).
 * Simplified: no struct resource or hotplug; a range gets a fixed slot of
 * IOM_PGMAP_MAX_PAGES pfns above the machine's memory (so a device pfn maps
 * to its pgmap by one division, where the kernel uses an xarray), its
 * struct iom_page array and its 4 KiB contents come from host memory, and
 * the kernel's percpu_ref on the pgmap is replaced by memunmap's check
 * that every page is idle.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <iommig/filemap.h>
#include <iommig/migrate_device.h>

#include "internal.h"

/* The machine's device ranges: slot i has pfns base + i * MAX_PAGES. */
struct pgmap_table {
	pthread_mutex_t lock;		/* writers of slot[] */
	unsigned long base_pfn;
	struct iom_dev_pagemap *_Atomic slot[IOM_PGMAP_MAX_RANGES];
};

static void *pgmap_table_make(struct iom_machine *m)
{
	struct pgmap_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	IOM_CHECK_PTHREAD(pthread_mutex_init(&t->lock, NULL));
	t->base_pfn = (m->end_pfn + IOM_PGMAP_MAX_PAGES - 1) &
		      ~(IOM_PGMAP_MAX_PAGES - 1);
	return t;
}

static void pgmap_table_release(void *priv)
{
	struct pgmap_table *t = priv;

	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct pgmap_table *pgmap_table(const struct iom_machine *m)
{
	return atomic_load_explicit(&((struct iom_machine *)m)->ext[IOM_MACHINE_EXT_PGMAP].priv,
				    memory_order_acquire);
}

/* ---- lookups (the slow side of pfn_to_page_any() and friends) ----------- */

struct iom_page *pgmap_pfn_to_page(const struct iom_machine *m, unsigned long pfn)
{
	struct pgmap_table *t = pgmap_table(m);
	struct iom_dev_pagemap *pgmap;
	unsigned long i;

	if (!t || pfn < t->base_pfn)
		return NULL;
	i = (pfn - t->base_pfn) / IOM_PGMAP_MAX_PAGES;
	if (i >= IOM_PGMAP_MAX_RANGES)
		return NULL;
	pgmap = atomic_load_explicit(&t->slot[i], memory_order_acquire);
	if (!pgmap || pfn - pgmap->pfn_first >= pgmap->nr_pages)
		return NULL;
	return pgmap->pages + (pfn - pgmap->pfn_first);
}

unsigned long pgmap_page_to_pfn(const struct iom_page *page)
{
	const struct iom_dev_pagemap *pgmap = page_pgmap(page);

	return pgmap->pfn_first + (unsigned long)(page - pgmap->pages);
}

void *pgmap_page_address(const struct iom_page *page)
{
	const struct iom_dev_pagemap *pgmap = page_pgmap(page);

	return pgmap->_contents +
	       ((size_t)(page - pgmap->pages) << IOM_PAGE_SHIFT);
}

struct iom_dev_pagemap *iom_page_pgmap(const struct iom_machine *m,
				       const struct iom_page *page)
{
	struct pgmap_table *t;
	unsigned int i;

	if (!m || !page || page_in_mem_map(m, page))
		return NULL;
	t = pgmap_table(m);
	if (!t)
		return NULL;
	for (i = 0; i < IOM_PGMAP_MAX_RANGES; i++) {
		struct iom_dev_pagemap *pgmap =
			atomic_load_explicit(&t->slot[i], memory_order_acquire);
		uintptr_t p = (uintptr_t)page, b;

		if (!pgmap)
			continue;
		b = (uintptr_t)pgmap->pages;
		if (p >= b && p < b + pgmap->nr_pages * sizeof(struct iom_page) &&
		    (p - b) % sizeof(struct iom_page) == 0)
			return pgmap;
	}
	return NULL;
}

/* ---- references --------------------------------------------------------- */

/*
 * free_zone_device_page(): the page goes back to its driver, clean of
 * everything the MM set on it. The driver sees refcount 0.
 */
static void free_zone_device_page(struct iom_page *page)
{
	struct iom_dev_pagemap *pgmap = page_pgmap(page);

	IOM_BUG_ON(iom_page_mapcount(page) != 0 || iom_PageLocked(page));
	__atomic_store_n(&page->mapping, NULL, __ATOMIC_RELEASE);
	page->index = 0;
	atomic_fetch_and_explicit(&page->flags, 1UL << IOM_PG_waiters,
				  memory_order_release);
	pgmap->ops->page_free(page);
}

void put_device_page(struct iom_page *page)
{
	int old = atomic_fetch_sub_explicit(&page->_refcount, 1,
					    memory_order_acq_rel);

	IOM_BUG_ON(old <= 0);
	if (old == 1)
		free_zone_device_page(page);
}

int iom_zone_device_page_init(struct iom_machine *m, struct iom_page *page)
{
	int idle = 0;

	if (!iom_page_pgmap(m, page))
		return -EINVAL;
	if (!atomic_compare_exchange_strong(&page->_refcount, &idle, 1))
		return -EINVAL;
	if (!iom_trylock_page(page)) {
		atomic_store(&page->_refcount, 0);
		return -EINVAL;
	}
	return 0;
}

/* ---- memremap_pages / memunmap_pages ------------------------------------ */

int iom_memremap_pages(struct iom_machine *m, struct iom_dev_pagemap *pgmap)
{
	struct pgmap_table *t;
	struct iom_page *pages;
	char *contents;
	unsigned long i;
	int slot = -1;
	size_t bytes;

	if (!m || !pgmap || pgmap->type != IOM_MEMORY_DEVICE_PRIVATE ||
	    !pgmap->nr_pages || pgmap->nr_pages > IOM_PGMAP_MAX_PAGES ||
	    !pgmap->ops || !pgmap->ops->page_free ||
	    !pgmap->ops->migrate_to_ram || pgmap->pages)
		return -EINVAL;
	t = iom_machine_ext_get(m, IOM_MACHINE_EXT_PGMAP, pgmap_table_make,
				pgmap_table_release);
	if (!t)
		return -ENOMEM;
	bytes = pgmap->nr_pages << IOM_PAGE_SHIFT;
	/* like the arena: host memory only for the pages touched */
	contents = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (contents == MAP_FAILED)
		return -ENOMEM;
	pages = aligned_alloc(64, pgmap->nr_pages * sizeof(*pages));
	if (!pages) {
		munmap(contents, bytes);
		return -ENOMEM;
	}
	memset(pages, 0, pgmap->nr_pages * sizeof(*pages));
	for (i = 0; i < pgmap->nr_pages; i++)
		pages[i].lru.prev = (struct iom_list_head *)(void *)pgmap;

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&t->lock));
	for (i = 0; i < IOM_PGMAP_MAX_RANGES; i++)
		if (!atomic_load(&t->slot[i])) {
			slot = (int)i;
			break;
		}
	if (slot < 0) {
		IOM_CHECK_PTHREAD(pthread_mutex_unlock(&t->lock));
		free(pages);
		munmap(contents, bytes);
		return -ENOSPC;
	}
	pgmap->m = m;
	pgmap->pages = pages;
	pgmap->_contents = contents;
	pgmap->_slot = slot;
	pgmap->pfn_first = t->base_pfn + (unsigned long)slot * IOM_PGMAP_MAX_PAGES;
	atomic_store_explicit(&t->slot[slot], pgmap, memory_order_release);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&t->lock));
	return 0;
}

int iom_memunmap_pages(struct iom_dev_pagemap *pgmap)
{
	struct pgmap_table *t;
	unsigned long i;

	if (!pgmap || !pgmap->pages || !pgmap->m)
		return -EINVAL;
	t = pgmap_table(pgmap->m);
	if (!t || atomic_load(&t->slot[pgmap->_slot]) != pgmap)
		return -EINVAL;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&t->lock));
	for (i = 0; i < pgmap->nr_pages; i++)
		if (iom_page_ref_count(&pgmap->pages[i]) ||
		    iom_page_mapcount(&pgmap->pages[i])) {
			IOM_CHECK_PTHREAD(pthread_mutex_unlock(&t->lock));
			return -EBUSY;
		}
	atomic_store_explicit(&t->slot[pgmap->_slot], NULL, memory_order_release);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&t->lock));
	munmap(pgmap->_contents, pgmap->nr_pages << IOM_PAGE_SHIFT);
	free(pgmap->pages);
	pgmap->pages = NULL;
	pgmap->_contents = NULL;
	pgmap->pfn_first = 0;
	pgmap->m = NULL;
	return 0;
}
