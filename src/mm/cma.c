/* SPDX-License-Identifier: MIT */
/*
 * The Contiguous Memory Allocator (mm/cma.c, Linux 6.1). Areas declared in
 * the machine's config are reserved at boot (cma_declare_contiguous_nid +
 * cma_activate_area): their pageblocks are MIGRATE_CMA, so the buddy
 * allocator lends them only to movable allocations. cma_alloc() finds a
 * free run of the area's bitmap and takes it with alloc_contig_range()
 * (page_alloc.c), which migrates the borrowed pages out; a busy run is
 * skipped and the next one tried. cma_release() gives the pages back
 * (free_contig_range()) and clears the bitmap.
 *
 * Simplified: an automatic area is placed at the top of its node's
 * ZONE_NORMAL, below the areas placed there before it; order_per_bit is
 * 0 (a bit per page); the kernel's global cma_mutex is a mutex per area
 * (areas never share a pageblock); no sysfs/debugfs files, but their
 * "used" and "maxchunk" numbers are iom_cma_used_pages() and
 * iom_cma_maxchunk_pages(); no tracepoints. The failure message is
 * printed at warning level (the project's level for allocation failures;
 * the kernel uses pr_err).
 *
 * Locks: cma->mutex is held across alloc_contig_range(), so it comes
 * before page locks and everything migration takes; cma->lock guards the
 * bitmap and is held by iom_cma_release() while it frees the pages, so it
 * comes before lru_lock and the allocator's locks. The two are never held
 * together, and cma->lock never while allocating.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <iommig/cma.h>

#include "internal.h"

static bool cma_overlaps(const struct iom_machine *m, unsigned long base,
			 unsigned long count)
{
	unsigned int i;

	for (i = 0; i < m->cma_area_count; i++) {
		const struct iom_cma *c = &m->cma_areas[i];

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

#define BITS_PER_LONG	((unsigned long)(sizeof(unsigned long) * CHAR_BIT))

static size_t cma_bitmap_bytes(unsigned long nbits)
{
	return (nbits + BITS_PER_LONG - 1) / BITS_PER_LONG * sizeof(unsigned long);
}

int cma_init_reserved_areas(struct iom_machine *m)
{
	unsigned int i;

	for (i = 0; i < m->cfg.nr_cma_areas; i++) {
		const struct iom_cma_config *cc = &m->cfg.cma[i];
		unsigned long count = cc->size >> IOM_PAGE_SHIFT, base, pfn;
		struct iom_cma *cma = &m->cma_areas[m->cma_area_count];
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
		/* cma_activate_area(): the bitmap, one bit per page */
		cma->order_per_bit = 0;
		cma->bitmap = iom_meta_alloc(m, cma_bitmap_bytes(count), 64, true);
		if (!cma->bitmap)
			return -ENOMEM;
		IOM_CHECK_PTHREAD(pthread_mutex_init(&cma->lock, NULL));
		IOM_CHECK_PTHREAD(pthread_mutex_init(&cma->mutex, NULL));
		cma->machine = m;
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

void cma_exit(struct iom_machine *m)
{
	unsigned int i;

	for (i = 0; i < m->cma_area_count; i++) {
		struct iom_cma *cma = &m->cma_areas[i];

		pthread_mutex_destroy(&cma->lock);
		pthread_mutex_destroy(&cma->mutex);
		iom_meta_free(m, cma->bitmap, cma_bitmap_bytes(cma->count));
		cma->bitmap = NULL;
	}
	m->cma_area_count = 0;
}

/* ---- the bitmap (lib/bitmap.c, lib/find_bit.c) ------------------------- */

/* find_next_bit() / find_next_zero_bit(): first bit == @set in [@from, @size). */
static unsigned long find_next(const unsigned long *map, unsigned long size,
			       unsigned long from, bool set)
{
	while (from < size) {
		unsigned long word = map[from / BITS_PER_LONG];

		if (!set)
			word = ~word;
		word &= ~0UL << (from % BITS_PER_LONG);
		if (word) {
			from = from - from % BITS_PER_LONG +
			       (unsigned long)__builtin_ctzl(word);
			return from < size ? from : size;
		}
		from = from - from % BITS_PER_LONG + BITS_PER_LONG;
	}
	return size;
}

static void bitmap_assign(unsigned long *map, unsigned long start,
			  unsigned long nr, bool set)
{
	unsigned long i;

	for (i = start; i < start + nr; i++) {
		unsigned long bit = 1UL << (i % BITS_PER_LONG);

		if (set)
			map[i / BITS_PER_LONG] |= bit;
		else
			map[i / BITS_PER_LONG] &= ~bit;
	}
}

/*
 * bitmap_find_next_zero_area_off(): the first run of @nr clear bits at or
 * after @start whose index plus @align_offset is a multiple of
 * @align_mask + 1. Return: its index, or a value past @size if none.
 */
static unsigned long bitmap_find_next_zero_area_off(const unsigned long *map,
						    unsigned long size,
						    unsigned long start,
						    unsigned long nr,
						    unsigned long align_mask,
						    unsigned long align_offset)
{
	for (;;) {
		unsigned long index, end, busy;

		index = find_next(map, size, start, false);
		index = ((index + align_offset + align_mask) & ~align_mask) -
			align_offset;
		end = index + nr;
		if (end > size || end < index)
			return size + 1;
		busy = find_next(map, end, index, true);
		if (busy >= end)
			return index;
		start = busy + 1;
	}
}

static inline void cma_lock(struct iom_cma *cma)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&cma->lock));
}

static inline void cma_unlock(struct iom_cma *cma)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&cma->lock));
}

/* cma_bitmap_aligned_mask(): alignment of a run in bits, as a mask. */
static unsigned long cma_bitmap_aligned_mask(const struct iom_cma *cma,
					     unsigned int align_order)
{
	if (align_order <= cma->order_per_bit)
		return 0;
	return (1UL << (align_order - cma->order_per_bit)) - 1;
}

/*
 * cma_bitmap_aligned_offset(): the bits by which the area's base misses
 * the alignment, so that the run's pfn, not its index, is aligned.
 */
static unsigned long cma_bitmap_aligned_offset(const struct iom_cma *cma,
					       unsigned int align_order)
{
	return (cma->base_pfn & ((1UL << align_order) - 1)) >> cma->order_per_bit;
}

static inline unsigned long cma_bitmap_maxno(const struct iom_cma *cma)
{
	return cma->count >> cma->order_per_bit;
}

static unsigned long cma_bitmap_pages_to_bits(const struct iom_cma *cma,
					      unsigned long pages)
{
	unsigned long unit = 1UL << cma->order_per_bit;

	return (pages + unit - 1) / unit;
}

static void cma_clear_bitmap(struct iom_cma *cma, unsigned long pfn,
			     unsigned long count)
{
	unsigned long bitmap_no = (pfn - cma->base_pfn) >> cma->order_per_bit;

	cma_lock(cma);
	bitmap_assign(cma->bitmap, bitmap_no,
		      cma_bitmap_pages_to_bits(cma, count), false);
	cma_unlock(cma);
}

/*
 * cma_debug_show_areas(): the free runs of the bitmap as "pages@index"
 * joined by '+', then the total, on one line. Long lists are cut short.
 */
static void cma_debug_show_areas(struct iom_cma *cma)
{
	unsigned long nbits = cma_bitmap_maxno(cma), start = 0, total = 0;
	char buf[512];
	size_t len = 0;
	bool cut = false;

	cma_lock(cma);
	for (;;) {
		unsigned long zero = find_next(cma->bitmap, nbits, start, false);
		unsigned long set, nr;
		int n;

		if (zero >= nbits)
			break;
		set = find_next(cma->bitmap, nbits, zero, true);
		nr = (set - zero) << cma->order_per_bit;
		if (!cut) {
			n = snprintf(buf + len, sizeof(buf) - len, "%s%lu@%lu",
				     total ? "+" : "", nr, zero);
			if (n < 0 || (size_t)n >= sizeof(buf) - len - 4) {
				cut = true;
				buf[len] = '\0';
			} else {
				len += (size_t)n;
			}
		}
		total += nr;
		start = set;
	}
	cma_unlock(cma);
	if (len == 0)
		buf[0] = '\0';
	iom_printk(cma->machine, IOM_LOG_INFO,
		   "cma: number of available pages: %s%s=> %lu free of %lu total pages",
		   buf, cut ? "+..." : "", total, cma->count);
}

/* ---- the API ------------------------------------------------------------ */

struct iom_cma *iom_cma_get(struct iom_machine *m, unsigned int idx)
{
	if (!m || idx >= m->cma_area_count) {
		errno = EINVAL;
		return NULL;
	}
	return &m->cma_areas[idx];
}

struct iom_cma *iom_cma_get_by_name(struct iom_machine *m, const char *name)
{
	unsigned int i;

	if (!m || !name) {
		errno = EINVAL;
		return NULL;
	}
	for (i = 0; i < m->cma_area_count; i++)
		if (!strcmp(m->cma_areas[i].name, name))
			return &m->cma_areas[i];
	errno = ENOENT;
	return NULL;
}

uint64_t iom_cma_get_base(const struct iom_cma *cma)
{
	return cma ? (uint64_t)cma->base_pfn << IOM_PAGE_SHIFT : 0;
}

uint64_t iom_cma_get_size(const struct iom_cma *cma)
{
	return cma ? (uint64_t)cma->count << IOM_PAGE_SHIFT : 0;
}

const char *iom_cma_get_name(const struct iom_cma *cma)
{
	return cma ? cma->name : NULL;
}

/* The clear bits of the bitmap: how many, and the longest run of them. */
static void cma_bitmap_free_runs(struct iom_cma *cma, unsigned long *nr_free,
				 unsigned long *maxchunk)
{
	unsigned long nbits = cma_bitmap_maxno(cma), start = 0;

	*nr_free = *maxchunk = 0;
	cma_lock(cma);
	while (start < nbits) {
		unsigned long zero = find_next(cma->bitmap, nbits, start, false);
		unsigned long set;

		if (zero >= nbits)
			break;
		set = find_next(cma->bitmap, nbits, zero, true);
		*nr_free += set - zero;
		if (set - zero > *maxchunk)
			*maxchunk = set - zero;
		start = set;
	}
	cma_unlock(cma);
}

unsigned long iom_cma_used_pages(struct iom_cma *cma)
{
	unsigned long nr_free, maxchunk;

	if (!cma || !cma->bitmap)
		return 0;
	cma_bitmap_free_runs(cma, &nr_free, &maxchunk);
	return (cma_bitmap_maxno(cma) - nr_free) << cma->order_per_bit;
}

unsigned long iom_cma_maxchunk_pages(struct iom_cma *cma)
{
	unsigned long nr_free, maxchunk;

	if (!cma || !cma->bitmap)
		return 0;
	cma_bitmap_free_runs(cma, &nr_free, &maxchunk);
	return maxchunk << cma->order_per_bit;
}

struct iom_page *iom_cma_alloc(struct iom_cma *cma, unsigned long count,
			       unsigned int align, bool no_warn)
{
	unsigned long mask, offset, bitmap_maxno, bitmap_no, bitmap_count;
	unsigned long start = 0, pfn;
	struct iom_page *page = NULL;
	struct iom_machine *m;
	int ret = -ENOMEM;

	if (!cma || !cma->machine || !cma->bitmap) {
		errno = EINVAL;
		return NULL;
	}
	m = cma->machine;
	if (!count || count > cma->count || align >= BITS_PER_LONG - 1) {
		iom_warn(m, "cma_alloc: %s: bad request: %lu pages (area of %lu), align order %u",
			 cma->name, count, cma->count, align);
		errno = EINVAL;
		return NULL;
	}
	mask = cma_bitmap_aligned_mask(cma, align);
	offset = cma_bitmap_aligned_offset(cma, align);
	bitmap_maxno = cma_bitmap_maxno(cma);
	bitmap_count = cma_bitmap_pages_to_bits(cma, count);

	for (;;) {
		cma_lock(cma);
		bitmap_no = bitmap_find_next_zero_area_off(cma->bitmap, bitmap_maxno,
							   start, bitmap_count,
							   mask, offset);
		if (bitmap_no >= bitmap_maxno) {
			cma_unlock(cma);
			break;
		}
		/* Ours from now on: the range can be isolated without the lock. */
		bitmap_assign(cma->bitmap, bitmap_no, bitmap_count, true);
		cma_unlock(cma);

		pfn = cma->base_pfn + (bitmap_no << cma->order_per_bit);
		IOM_CHECK_PTHREAD(pthread_mutex_lock(&cma->mutex));
		ret = iom_alloc_contig_range(m, pfn, pfn + count, IOM_MIGRATE_CMA,
					     IOM_GFP_KERNEL |
					     (no_warn ? IOM___GFP_NOWARN : 0));
		IOM_CHECK_PTHREAD(pthread_mutex_unlock(&cma->mutex));
		if (ret == 0) {
			page = pfn_to_page(m, pfn);
			break;
		}
		cma_clear_bitmap(cma, pfn, count);
		if (ret != -EBUSY)
			break;
		/* this run is busy: try one a little further on */
		start = bitmap_no + mask + 1;
	}

	if (ret && !no_warn) {
		iom_warn(m, "cma_alloc: %s: alloc failed, req-size: %lu pages, ret: %d",
			 cma->name, count, ret);
		cma_debug_show_areas(cma);
	}
	if (page) {
		count_vm_event(m, IOM_CMA_ALLOC_SUCCESS);
	} else {
		count_vm_event(m, IOM_CMA_ALLOC_FAIL);
		errno = -ret;
	}
	return page;
}

int iom_cma_release(struct iom_cma *cma, struct iom_page *pages,
		    unsigned long count)
{
	unsigned long pfn, bitmap_no, nbits, busy;
	struct iom_machine *m;
	int ret;

	if (!cma || !cma->machine || !cma->bitmap)
		return -EINVAL;
	m = cma->machine;
	if (!pages || !count || !page_in_mem_map(m, pages)) {
		iom_warn(m, "cma_release: %s: bad arguments (pages %p, count %lu)",
			 cma->name, (void *)pages, count);
		return -EINVAL;
	}
	/* cma_pages_valid() */
	pfn = page_to_pfn(m, pages);
	if (pfn < cma->base_pfn || count > cma->count ||
	    pfn - cma->base_pfn > cma->count - count) {
		iom_warn(m, "cma_release: %s: pfns [%#lx, %#lx) are not in this area",
			 cma->name, pfn, pfn + count);
		return -EINVAL;
	}
	bitmap_no = (pfn - cma->base_pfn) >> cma->order_per_bit;
	nbits = cma_bitmap_pages_to_bits(cma, count);

	/*
	 * The bitmap lock is held across the free so that a second release
	 * of the same pages sees them allocated or not, never half-way, and
	 * so that no cma_alloc() picks the run while its pages are still
	 * in use (the kernel frees before it clears the bitmap, too).
	 */
	cma_lock(cma);
	busy = find_next(cma->bitmap, bitmap_no + nbits, bitmap_no, false);
	if (busy < bitmap_no + nbits) {
		cma_unlock(cma);
		iom_warn(m, "cma_release: %s: pfn %#lx was not allocated from this area (double release?)",
			 cma->name, cma->base_pfn + (busy << cma->order_per_bit));
		return -EINVAL;
	}
	ret = iom_free_contig_range(m, pfn, count);
	if (!ret)
		bitmap_assign(cma->bitmap, bitmap_no, nbits, false);
	cma_unlock(cma);
	return ret;
}
