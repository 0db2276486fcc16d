/* SPDX-License-Identifier: MIT */
/*
 * Contiguous Memory Allocator areas (mm/cma.c): reservation at boot
 * (cma_declare_contiguous_nid + cma_activate_area). Each area's pageblocks
 * are MIGRATE_CMA, so the buddy allocator lends them only to movable
 * allocations. cma_alloc()/cma_release() come with alloc_contig_range().
 * Simplified: an automatic area is placed at the top of its node's
 * ZONE_NORMAL, below the areas placed there before it.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static bool cma_overlaps(const struct iom_machine *m, unsigned long base,
			 unsigned long count)
{
	unsigned int i;

	for (i = 0; i < m->cma_area_count; i++) {
		const struct cma *c = &m->cma_areas[i];

		if (base < c->base_pfn + c->count && c->base_pfn < base + count)
			return true;
	}
	return false;
}

/* Lowest base pfn of the automatic areas already on @zone, or its end. */
static unsigned long cma_auto_top(const struct iom_machine *m,
				  const struct zone *zone)
{
	unsigned long top = zone_end_pfn(zone);
	unsigned int i;

	for (i = 0; i < m->cma_area_count; i++)
		if (zone_spans_pfn(zone, m->cma_areas[i].base_pfn) &&
		    m->cma_areas[i].base_pfn < top)
			top = m->cma_areas[i].base_pfn;
	return top;
}

int cma_init_reserved_areas(struct iom_machine *m)
{
	unsigned int i;

	for (i = 0; i < m->cfg.nr_cma_areas; i++) {
		const struct iom_cma_config *cc = &m->cfg.cma[i];
		unsigned long count = cc->size >> IOM_PAGE_SHIFT, base, pfn;
		struct cma *cma = &m->cma_areas[m->cma_area_count];
		struct zone *zone;

		if (cc->base) {
			base = cc->base >> IOM_PAGE_SHIFT;
			if (base < m->start_pfn || base + count > m->end_pfn ||
			    base + count < base) {
				iom_warn(m, "iom_machine_create: cma[%u] lies outside memory", i);
				return -EINVAL;
			}
		} else {
			zone = &m->node_data[cc->nid]->node_zones[IOM_ZONE_NORMAL];
			base = cma_auto_top(m, zone);
			if (base - zone->zone_start_pfn < count) {
				iom_warn(m, "iom_machine_create: cma[%u] (%lu pages) does not fit in node %d's ZONE_NORMAL",
					 i, count, cc->nid);
				return -EINVAL;
			}
			base -= count;
		}
		zone = pfn_zone(m, base);
		if (pfn_zone(m, base + count - 1) != zone) {
			iom_warn(m, "iom_machine_create: cma[%u] crosses a zone boundary", i);
			return -EINVAL;
		}
		if (cma_overlaps(m, base, count)) {
			iom_warn(m, "iom_machine_create: cma[%u] overlaps another area", i);
			return -EINVAL;
		}
		cma->base_pfn = base;
		cma->count = count;
		if (cc->name)
			snprintf(cma->name, sizeof(cma->name), "%s", cc->name);
		else
			snprintf(cma->name, sizeof(cma->name), "cma%u", i);
		/* cma_activate_area() -> init_cma_reserved_pageblock() */
		for (pfn = base; pfn < base + count; pfn += m->pageblock_nr_pages)
			set_pageblock_migratetype(m, pfn, IOM_MIGRATE_CMA);
		zone->cma_pages += count;
		m->cma_area_count++;
	}
	return 0;
}

unsigned int iom_cma_area_count(const struct iom_machine *m)
{
	return m ? m->cma_area_count : 0;
}

int iom_cma_area_info(const struct iom_machine *m, unsigned int idx,
		      struct iom_cma_info *out)
{
	if (!m || !out || idx >= m->cma_area_count)
		return -EINVAL;
	out->base_pfn = m->cma_areas[idx].base_pfn;
	out->count = m->cma_areas[idx].count;
	out->name = m->cma_areas[idx].name;
	return 0;
}
