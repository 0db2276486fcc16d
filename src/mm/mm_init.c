/* SPDX-License-Identifier: MIT */
/*
 * Building nodes, zones and zonelists and handing memory to the buddy
 * allocator at boot (mm/mm_init.c: free_area_init, memmap_init,
 * build_zonelists, memblock_free_all). Simplified: no holes, every page is
 * present and managed; node and zone boundaries sit on MAX_ORDER blocks;
 * ZONE_MOVABLE is the top of each node, as movablecore= makes it.
 */
#include <stdlib.h>
#include <string.h>

#include <iommig/migrate_device.h>

#include "internal.h"

_Static_assert(sizeof(struct iom_page) == 64,
	       "struct iom_page is one cache line, as the kernel's struct page");

static const char *const zone_names[IOM_MAX_NR_ZONES] = {
	[IOM_ZONE_NORMAL] = "Normal",
	[IOM_ZONE_MOVABLE] = "Movable",
};

const char *iom_zone_name(int zone_type)
{
	if (zone_type < 0 || zone_type >= IOM_MAX_NR_ZONES)
		return NULL;
	return zone_names[zone_type];
}

/* ---- public pfn helpers (checked) --------------------------------------- */

bool iom_pfn_valid(const struct iom_machine *m, unsigned long pfn)
{
	return m && pfn >= m->start_pfn && pfn < m->end_pfn;
}

/*
 * The pfn/page/address helpers below also know device-private pages
 * (memremap.c) after the mem_map fast path: their pfns lie above memory.
 */
struct iom_page *iom_pfn_to_page(const struct iom_machine *m, unsigned long pfn)
{
	if (!m)
		return NULL;
	if (iom_pfn_valid(m, pfn))
		return pfn_to_page(m, pfn);
	return pgmap_pfn_to_page(m, pfn);
}

unsigned long iom_page_to_pfn(const struct iom_machine *m,
			      const struct iom_page *page)
{
	if (!m || !page)
		return (unsigned long)-1;
	if (page_in_mem_map(m, page))
		return page_to_pfn(m, page);
	if (iom_page_pgmap(m, page))
		return pgmap_page_to_pfn(page);
	return (unsigned long)-1;
}

uint64_t iom_page_to_phys(const struct iom_machine *m,
			  const struct iom_page *page)
{
	unsigned long pfn = iom_page_to_pfn(m, page);

	if (pfn == (unsigned long)-1)
		return UINT64_MAX;
	return (uint64_t)pfn << IOM_PAGE_SHIFT;
}

struct iom_page *iom_phys_to_page(const struct iom_machine *m, uint64_t phys)
{
	return iom_pfn_to_page(m, (unsigned long)(phys >> IOM_PAGE_SHIFT));
}

void *iom_page_address(const struct iom_machine *m, const struct iom_page *page)
{
	if (!m || !page)
		return NULL;
	if (page_in_mem_map(m, page))
		return page_address(m, page);
	if (iom_page_pgmap(m, page))
		return pgmap_page_address(page);
	return NULL;
}

struct iom_page *iom_virt_to_page(const struct iom_machine *m, const void *addr)
{
	uintptr_t a = (uintptr_t)addr, b;

	if (!m)
		return NULL;
	b = (uintptr_t)m->arena;
	if (a < b || a >= b + m->arena_size)
		return NULL;
	return m->mem_map + ((a - b) >> IOM_PAGE_SHIFT);
}

unsigned long iom_first_pfn(const struct iom_machine *m)
{
	return m->start_pfn;
}

unsigned long iom_end_pfn(const struct iom_machine *m)
{
	return m->end_pfn;
}

unsigned int iom_nr_nodes(const struct iom_machine *m)
{
	return m->nr_nodes;
}

unsigned int iom_pageblock_order(const struct iom_machine *m)
{
	return m->pageblock_order;
}

unsigned int iom_max_order(const struct iom_machine *m)
{
	return m->max_order;
}

/* ---- zones and zonelists ------------------------------------------------ */

static int zone_init(struct iom_machine *m, struct pglist_data *pgdat,
		     int type, unsigned long start, unsigned long pages)
{
	struct zone *zone = &pgdat->node_zones[type];
	unsigned long pfn;
	int o, t;

	zone->zone_pgdat = pgdat;
	zone->machine = m;
	zone->zone_type = type;
	zone->zone_id = pgdat->node_id * IOM_MAX_NR_ZONES + type;
	zone->name = zone_names[type];
	zone->zone_start_pfn = start;
	zone->spanned_pages = pages;
	zone->managed_pages = pages;
	IOM_CHECK_PTHREAD(pthread_mutex_init(&zone->lock, NULL));
	for (o = 0; o < NR_ORDERS_LIMIT; o++)
		for (t = 0; t < IOM_MIGRATE_TYPES; t++)
			INIT_LIST_HEAD(&zone->free_area[o].free_list[t]);
	m->zone_table[zone->zone_id] = zone;

	/* memmap_init(): every pageblock starts MIGRATE_MOVABLE. */
	for (pfn = start; pfn < start + pages; pfn += m->pageblock_nr_pages) {
		struct pageblock *pb = pfn_pageblock(m, pfn);

		pb->zone_id = (uint8_t)zone->zone_id;
		atomic_store_explicit(&pb->flags, IOM_MIGRATE_MOVABLE,
				      memory_order_relaxed);
	}
	return 0;
}

/*
 * build_zonelists(): the local node first, then the others by distance
 * (local 10, remote 20: so simply in node order after the local one), and
 * within a node the highest zone first.
 */
static void build_zonelists(struct iom_machine *m, struct pglist_data *pgdat)
{
	unsigned int i;
	int n = 0, z;

	for (i = 0; i < m->nr_nodes; i++) {
		struct pglist_data *node =
			m->node_data[(pgdat->node_id + i) % m->nr_nodes];

		for (z = IOM_MAX_NR_ZONES - 1; z >= 0; z--) {
			if (!populated_zone(&node->node_zones[z]))
				continue;
			pgdat->zonelist[n].zone = &node->node_zones[z];
			pgdat->zonelist[n].zone_type = z;
			n++;
		}
	}
	pgdat->zonelist[n].zone = NULL;
	pgdat->nr_zonerefs = n;
}

/*
 * memblock_free_all(): give [start_pfn, end_pfn) of one zone to the buddy
 * allocator. A MAX_ORDER block whose pageblocks share one migratetype goes
 * in whole; a mixed one (CMA next to normal memory) goes in by pageblock and
 * __free_one_page() merges what may merge.
 */
void memblock_free_pages(struct iom_machine *m, unsigned long start_pfn,
			 unsigned long end_pfn)
{
	struct zone *zone = pfn_zone(m, start_pfn);
	unsigned long max_nr = 1UL << m->max_order, pfn, p;

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&zone->lock));
	for (pfn = start_pfn; pfn < end_pfn; pfn += max_nr) {
		int mt = get_pfnblock_migratetype(m, pfn);
		bool uniform = true;

		for (p = pfn; p < pfn + max_nr; p += m->pageblock_nr_pages)
			if (get_pfnblock_migratetype(m, p) != mt)
				uniform = false;
		if (uniform) {
			__free_one_page(zone, pfn_to_page(m, pfn), pfn,
					m->max_order, mt, true);
			continue;
		}
		for (p = pfn; p < pfn + max_nr; p += m->pageblock_nr_pages)
			__free_one_page(zone, pfn_to_page(m, p), p,
					m->pageblock_order,
					get_pfnblock_migratetype(m, p), true);
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&zone->lock));
}

int iom_mm_init(struct iom_machine *m)
{
	unsigned long node_pages = m->nr_pages / m->nr_nodes;
	unsigned long movable = (m->cfg.movable_size >> IOM_PAGE_SHIFT) / m->nr_nodes;
	unsigned int nid;
	int ret, z;

	for (nid = 0; nid < m->nr_nodes; nid++) {
		struct pglist_data *pgdat;
		unsigned long start = m->start_pfn + nid * node_pages;

		pgdat = iom_meta_alloc(m, sizeof(*pgdat), 64, true);
		if (!pgdat)
			return -ENOMEM;
		m->node_data[nid] = pgdat;
		pgdat->node_id = (int)nid;
		pgdat->node_start_pfn = start;
		pgdat->node_spanned_pages = node_pages;
		IOM_CHECK_PTHREAD(pthread_mutex_init(&pgdat->lruvec.lru_lock, NULL));
		for (z = 0; z < IOM_NR_LRU_LISTS; z++)
			INIT_LIST_HEAD(&pgdat->lruvec.lists[z]);
		zone_init(m, pgdat, IOM_ZONE_NORMAL, start, node_pages - movable);
		zone_init(m, pgdat, IOM_ZONE_MOVABLE, start + node_pages - movable,
			  movable);
	}
	m->nr_zone_ids = (int)m->nr_nodes * IOM_MAX_NR_ZONES;
	for (nid = 0; nid < m->nr_nodes; nid++)
		build_zonelists(m, m->node_data[nid]);

	ret = cma_init_reserved_areas(m);
	if (ret)
		return ret;

	for (nid = 0; nid < m->nr_nodes; nid++)
		for (z = 0; z < IOM_MAX_NR_ZONES; z++) {
			struct zone *zone = &m->node_data[nid]->node_zones[z];

			if (populated_zone(zone))
				memblock_free_pages(m, zone->zone_start_pfn,
						    zone_end_pfn(zone));
		}
	setup_per_zone_wmarks(m);
	return 0;
}

void iom_mm_exit(struct iom_machine *m)
{
	unsigned int nid;
	int z;

	cma_exit(m);
	for (nid = 0; nid < m->nr_nodes; nid++) {
		struct pglist_data *pgdat = m->node_data[nid];

		if (!pgdat)
			continue;
		for (z = 0; z < IOM_MAX_NR_ZONES; z++)
			if (pgdat->node_zones[z].machine)
				pthread_mutex_destroy(&pgdat->node_zones[z].lock);
		pthread_mutex_destroy(&pgdat->lruvec.lru_lock);
		iom_meta_free(m, pgdat, sizeof(*pgdat));
		m->node_data[nid] = NULL;
	}
}
