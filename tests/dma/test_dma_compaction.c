/* SPDX-License-Identifier: MIT */
/*
 * Seed 000's claims about fragmentation, checked by running one workload
 * twice, with movable (IOMAP) and with legacy (2013: unmovable, orders
 * 4..0) coherent buffers, the machine's cfg.dma_legacy being the only
 * difference:
 *
 *  - "non-movable low-order pages cause external fragmentation", and
 *    compaction undoes it only for movable DMA pages: memory is filled with
 *    anonymous pages, the one at every HOLE_STRIDE-th pfn is unmapped, and
 *    1-page coherent buffers are allocated into those holes (memory is
 *    full, so both kinds land there, legacy ones through the allocator's
 *    fallback into MOVABLE pageblocks); then the anonymous pages go. Nearly
 *    every pageblock now holds DMA pages. iom_compact_node() packs the
 *    movable buffers into a pageblock or two, leaving about as many free
 *    order-9 blocks as if there were no DMA at all; legacy buffers keep
 *    every pageblock they sit in. The buffers' content, stamped before, is
 *    intact through the device and the CPU view after compaction, and the
 *    IOMMU translates every IOVA to the page now backing it.
 *  - the same with 1-, 2- and 4-page buffers, recorded as it comes out:
 *    the legacy allocator's order-2/1 attempts run direct compaction,
 *    which moves the anonymous pages and lets the unmovable allocations
 *    take whole pageblocks, so legacy buffers end up grouped rather than
 *    scattered (the kernel's anti-fragmentation at work, paid for with
 *    compaction stalls in dma_alloc_coherent()).
 *  - "pages are non-movable therefore they cannot use CMA area": with the
 *    rest of memory full of unmovable pages, movable buffers are allocated
 *    from the CMA area and a CMA allocation of the whole area still
 *    succeeds, moving them out with their content; legacy buffers never
 *    land in CMA, and once normal memory runs out they fail (ENOMEM) while
 *    the CMA area is free.
 *
 * Every scenario ends with every page back (iom_rcu_barrier() for the
 * IOMMU's deferred table frees) and no bug reported. The legacy runs are
 * the control: the checks that pass for movable buffers fail for them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/cma.h>
#include <iommig/compaction.h>
#include <iommig/dma-mapping.h>
#include <iommig/iomap.h>

#include "dma_util.h"

#define PG		IOM_PAGE_SIZE
#define MEM_MIB		64
/* one filler freed in every HOLE_STRIDE pages (at pfn % HOLE_STRIDE == 0) */
#define HOLE_STRIDE	32
/* holes left for the IOMMU's page-table pages and the per-thread caches */
#define HOLE_SLACK	32
#define CMA_MIB		16
/* normal (non-CMA) pages left free in the CMA scenario */
#define CMA_HEADROOM	256
#define CMA_NBUF	8
#define CMA_BUF_PAGES	8

static struct test_log tlog;

struct buffer {
	void *cpu;
	iom_dma_addr_t h;
	size_t pages;
	unsigned long *pfn;	/* where each page was before compaction */
};

/* A DMA rig on a MEM_MIB machine; returns its one populated zone. */
static int rig_up(struct test_dma_rig *r, bool legacy, unsigned long cma_bytes)
{
	struct iom_machine_config cfg;
	struct iom_machine *m;
	struct iom_zone_info zi;
	int populated = -1;

	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = (uint64_t)MEM_MIB << 20;
	cfg.dma_legacy = legacy;
	if (cma_bytes) {
		cfg.nr_cma_areas = 1;
		cfg.cma[0].size = cma_bytes;
		cfg.cma[0].name = "dma-cma";
	}
	m = test_machine(MEM_MIB, &tlog, &cfg);
	assert_non_null(m);
	for (int zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
		assert_int_equal(iom_zone_info(m, 0, zt, &zi), 0);
		if (zi.populated) {
			assert_int_equal(populated, -1);
			populated = zt;
		}
	}
	assert_true(populated >= 0);
	test_dma_rig_up(r, m, NULL, IOM_IOMMU_DOMAIN_DMA, 1ULL << 20, 1ULL << 32);
	return populated;
}

/* The byte at @off of buffer @b: differs between buffers and pages. */
static unsigned char stamp_byte(unsigned int b, size_t off)
{
	return (unsigned char)(b * 131 + off * 7 + (off >> 12) * 13 + 1);
}

static void stamp(struct test_dma_rig *r, struct buffer *bf, unsigned int b)
{
	size_t len = bf->pages * PG;
	unsigned char *in = malloc(len);

	assert_non_null(in);
	for (size_t i = 0; i < len; i++)
		in[i] = stamp_byte(b, i);
	assert_int_equal(iom_device_dma_write(r->dev, bf->h, in, len), 0);
	free(in);
}

/* The stamp is there, through the device and through the CPU view. */
static void check_stamp(struct test_dma_rig *r, struct buffer *bf, unsigned int b)
{
	size_t len = bf->pages * PG;
	unsigned char *want = malloc(len), *got = malloc(len);

	assert_non_null(want);
	assert_non_null(got);
	for (size_t i = 0; i < len; i++)
		want[i] = stamp_byte(b, i);
	memset(got, 0, len);
	assert_int_equal(iom_device_dma_read(r->dev, bf->h, got, len), 0);
	assert_memory_equal(got, want, len);
	memset(got, 0, len);
	assert_int_equal(iom_dma_vmap_read(r->dev, bf->cpu, 0, got, len), 0);
	assert_memory_equal(got, want, len);
	free(want);
	free(got);
}

static unsigned long buffer_pfn(struct test_dma_rig *r, struct buffer *bf, size_t i)
{
	struct iom_page *page = iom_dma_buffer_page(r->dev, bf->cpu, i * PG);
	unsigned long pfn;

	assert_non_null(page);
	pfn = iom_page_to_pfn(r->m, page);
	assert_int_equal(iom_put_page(r->m, page), 0);
	return pfn;
}

static void free_buffer(struct test_dma_rig *r, struct buffer *bf)
{
	assert_int_equal(iom_dma_free_coherent(r->dev, bf->pages * PG, bf->cpu, bf->h, 0), 0);
	free(bf->pfn);
}

/*
 * Free blocks of zone @zt that an allocation of @order could take:
 * a free block of order o >= @order counts 2^(o - @order) times.
 */
static unsigned long free_blocks(struct test_dma_rig *r, int zt, unsigned int order)
{
	struct iom_zone_info zi;
	unsigned long n = 0;

	iom_drain_all_pages(r->m);
	assert_int_equal(iom_zone_info(r->m, 0, zt, &zi), 0);
	for (unsigned int o = order; o <= iom_max_order(r->m) && o < 32; o++)
		n += zi.nr_free[o] << (o - order);
	return n;
}

/* ---- 1. compaction over DMA buffers -------------------------------------- */

struct frag_figures {
	unsigned long holes, nr_buf, dma_pages;
	unsigned long nr_blocks, pinned_before, pinned_after;
	unsigned long free_pages, ideal4, ideal9;
	unsigned long o4_before, o9_before, o4_after, o9_after;
	unsigned long moved, in_movable_pb, o9_allocated;
	unsigned long alloc_compact_stalls;	/* direct compaction while allocating */
};

static void compaction_scenario(bool legacy, unsigned int max_buf_order,
				struct frag_figures *f)
{
	struct test_dma_rig r;
	int zt;
	struct iom_mm *mm;
	struct buffer *buf;
	unsigned long first, end, pb = 0, nr_fill, k, want, *pinned_pb;
	uint64_t ubase;
	unsigned int pb_order;

	memset(f, 0, sizeof(*f));
	zt = rig_up(&r, legacy, 0);
	first = iom_first_pfn(r.m);
	end = iom_end_pfn(r.m);
	pb_order = iom_pageblock_order(r.m);
	f->nr_blocks = (end - first) >> pb_order;
	pinned_pb = calloc(f->nr_blocks, sizeof(*pinned_pb));
	assert_non_null(pinned_pb);

	/*
	 * Fill memory with anonymous pages (movable, on the LRU), then unmap
	 * the one at every pfn that is a multiple of HOLE_STRIDE.
	 */
	assert_int_equal(iom_mm_create(r.m, &mm), 0);
	nr_fill = r.free_at_start;
	ubase = test_mmap(mm, 0, nr_fill * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			  IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	for (k = 0; k < nr_fill; k++) {
		uint64_t v = k;

		if (iom_write(mm, ubase + k * PG, &v, sizeof(v)) != 0)
			break;
	}
	nr_fill = k;
	assert_true(test_nr_free(r.m) <= 64);
	for (k = 0; k < nr_fill; k++) {
		struct iom_page *p = test_get_page_at(mm, ubase + k * PG);
		unsigned long pfn = iom_page_to_pfn(r.m, p);

		iom_put_page(r.m, p);
		if (pfn % HOLE_STRIDE)
			continue;
		assert_int_equal(iom_munmap(mm, ubase + k * PG, PG), 0);
		f->holes++;
	}
	iom_drain_all_pages(r.m);
	assert_true(f->holes > f->nr_blocks * ((1UL << pb_order) / HOLE_STRIDE) * 9 / 10);

	/* small coherent buffers (1 page, or 1, 2, 4 pages) into the holes */
	want = f->holes - HOLE_SLACK;
	f->alloc_compact_stalls = iom_vm_event_count(r.m, IOM_COMPACTSTALL);
	buf = calloc(want, sizeof(*buf));
	assert_non_null(buf);
	for (unsigned long b = 0; f->dma_pages < want; b++) {
		struct buffer *bf = &buf[b];

		bf->pages = (size_t)1 << (b % (max_buf_order + 1));
		if (f->dma_pages + bf->pages > want)
			bf->pages = 1;
		bf->cpu = iom_dma_alloc_coherent(r.dev, bf->pages * PG, &bf->h,
						 IOM_GFP_KERNEL, 0);
		assert_non_null(bf->cpu);
		f->dma_pages += bf->pages;
		f->nr_buf++;
	}
	f->alloc_compact_stalls = iom_vm_event_count(r.m, IOM_COMPACTSTALL) -
				  f->alloc_compact_stalls;
	/* the fillers go: only DMA pages (and IOMMU tables) are left */
	iom_mm_destroy(mm);

	for (unsigned long b = 0; b < f->nr_buf; b++) {
		struct buffer *bf = &buf[b];

		bf->pfn = calloc(bf->pages, sizeof(*bf->pfn));
		assert_non_null(bf->pfn);
		for (size_t i = 0; i < bf->pages; i++) {
			bf->pfn[i] = buffer_pfn(&r, bf, i);
			pinned_pb[(bf->pfn[i] - first) >> pb_order]++;
			f->in_movable_pb += iom_get_pageblock_migratetype(r.m, bf->pfn[i]) ==
					    IOM_MIGRATE_MOVABLE;
		}
		stamp(&r, bf, (unsigned int)b);
	}
	for (pb = 0; pb < f->nr_blocks; pb++)
		f->pinned_before += pinned_pb[pb] != 0;
	f->free_pages = test_nr_free(r.m);
	f->ideal4 = f->free_pages >> 4;
	f->ideal9 = f->free_pages >> 9;
	f->o4_before = free_blocks(&r, zt, 4);
	f->o9_before = free_blocks(&r, zt, 9);

	assert_int_equal(iom_compact_node(r.m, 0), 0);

	f->o4_after = free_blocks(&r, zt, 4);
	f->o9_after = free_blocks(&r, zt, 9);
	memset(pinned_pb, 0, f->nr_blocks * sizeof(*pinned_pb));
	for (unsigned long b = 0; b < f->nr_buf; b++) {
		struct buffer *bf = &buf[b];

		for (size_t i = 0; i < bf->pages; i++) {
			unsigned long pfn = buffer_pfn(&r, bf, i);
			struct iom_page *page = iom_dma_buffer_page(r.dev, bf->cpu, i * PG);

			f->moved += pfn != bf->pfn[i];
			pinned_pb[(pfn - first) >> pb_order]++;
			/* the device translates to the page now backing it */
			assert_int_equal(iom_iommu_iova_to_phys(r.domain, bf->h + i * PG),
					 iom_page_to_phys(r.m, page));
			assert_int_equal(iom_PageIomap(page), !legacy);
			iom_put_page(r.m, page);
		}
		check_stamp(&r, bf, (unsigned int)b);
	}
	for (pb = 0; pb < f->nr_blocks; pb++)
		f->pinned_after += pinned_pb[pb] != 0;

	/* what the allocator makes of it: order-9 pages until one fails */
	{
		struct iom_page **huge = calloc(f->nr_blocks + 1, sizeof(*huge));

		assert_non_null(huge);
		while (f->o9_allocated <= f->nr_blocks) {
			huge[f->o9_allocated] = iom_alloc_pages(r.m, IOM_GFP_HIGHUSER_MOVABLE |
								IOM___GFP_NORETRY |
								IOM___GFP_NOWARN, 9);
			if (!huge[f->o9_allocated])
				break;
			f->o9_allocated++;
		}
		for (unsigned long i = 0; i < f->o9_allocated; i++)
			iom___free_pages(r.m, huge[i], 9);
		free(huge);
	}

	for (unsigned long b = 0; b < f->nr_buf; b++)
		free_buffer(&r, &buf[b]);
	free(buf);
	free(pinned_pb);
	test_dma_rig_down(&r);
}

static void print_figures(const char *mode, const struct frag_figures *f)
{
	print_message("%-7s: %lu holes, %lu buffers (%lu DMA pages, %lu in MOVABLE pageblocks, "
		      "%lu compact stalls) over %lu of %lu pageblocks; free %lu pages "
		      "(ideal: %lu order-4, %lu order-9 blocks)\n",
		      mode, f->holes, f->nr_buf, f->dma_pages, f->in_movable_pb,
		      f->alloc_compact_stalls, f->pinned_before, f->nr_blocks, f->free_pages,
		      f->ideal4, f->ideal9);
	print_message("%-7s: free order-4 blocks %lu -> %lu, order-9 blocks %lu -> %lu by compaction "
		      "(%lu order-9 allocations then succeed); %lu DMA pages moved, "
		      "now in %lu pageblocks\n",
		      mode, f->o4_before, f->o4_after, f->o9_before, f->o9_after,
		      f->o9_allocated, f->moved, f->pinned_after);
}

static void test_compaction_frees_blocks_only_around_movable_dma(void **state)
{
	struct frag_figures mov, leg;

	(void)state;
	compaction_scenario(false, 0, &mov);
	compaction_scenario(true, 0, &leg);
	print_message("1-page buffers:\n");
	print_figures("movable", &mov);
	print_figures("legacy", &leg);

	/* the same workload scattered DMA pages over nearly every pageblock */
	assert_int_equal(mov.dma_pages, leg.dma_pages);
	assert_true(mov.pinned_before >= mov.nr_blocks * 9 / 10);
	assert_true(leg.pinned_before >= leg.nr_blocks * 9 / 10);
	/* legacy pages sit in MOVABLE pageblocks: the allocator's fallback */
	assert_true(leg.in_movable_pb >= leg.dma_pages * 9 / 10);
	assert_true(mov.o9_before <= mov.nr_blocks / 10);
	assert_true(leg.o9_before <= leg.nr_blocks / 10);

	/* movable: packed into a few pageblocks, nearly the no-DMA ideal */
	assert_true(mov.moved >= mov.dma_pages / 2);
	assert_true(mov.pinned_after <= 4);
	assert_true(mov.o9_after + 3 >= mov.ideal9);
	assert_true(mov.o9_allocated >= mov.o9_after);
	assert_true(mov.o4_after + 64 >= mov.ideal4);

	/* legacy: nothing moved, every pinned pageblock stays pinned */
	assert_int_equal(leg.moved, 0);
	assert_int_equal(leg.pinned_after, leg.pinned_before);
	assert_true(leg.o9_after <= leg.nr_blocks - leg.pinned_before);
	/* even with the allocator's own direct compaction */
	assert_true(leg.o9_allocated <= leg.nr_blocks - leg.pinned_before);
	/* a clear gap: order 9 at least 3/4 of the ideal apart */
	assert_true(mov.o9_after >= leg.o9_after + mov.ideal9 * 3 / 4);
	assert_true(mov.o4_after >= leg.o4_after + leg.o4_after / 2);
}

/*
 * The same workload with buffers of 1, 2 and 4 pages. The legacy
 * allocator tries order 2 and 1 first (__GFP_NORETRY, but not without
 * direct compaction), and that compaction can move the anonymous fillers:
 * it empties pageblocks, which the unmovable allocations then take whole
 * (pageblock stealing), so the legacy buffers end up grouped in a couple
 * of UNMOVABLE pageblocks instead of scattered. The kernel's
 * anti-fragmentation works here; what this records is that it needs the
 * rest of memory to be movable and pays with direct compaction stalls
 * inside dma_alloc_coherent(), while movable buffers need neither.
 */
static void test_multi_page_buffers_legacy_grouped_by_direct_compaction(void **state)
{
	struct frag_figures mov, leg;

	(void)state;
	compaction_scenario(false, 2, &mov);
	compaction_scenario(true, 2, &leg);
	print_message("1-, 2- and 4-page buffers:\n");
	print_figures("movable", &mov);
	print_figures("legacy", &leg);

	assert_int_equal(mov.dma_pages, leg.dma_pages);
	/* movable: scattered by the allocator, packed by compaction */
	assert_int_equal(mov.alloc_compact_stalls, 0);
	assert_true(mov.pinned_before >= mov.nr_blocks * 9 / 10);
	assert_true(mov.pinned_after <= 4);
	assert_true(mov.o9_after + 3 >= mov.ideal9);
	/* legacy: grouped at allocation time, at the price of compaction stalls */
	assert_true(leg.alloc_compact_stalls > 0);
	assert_true(leg.pinned_before < leg.nr_blocks / 2);
	assert_true(leg.in_movable_pb < leg.dma_pages / 2);
	assert_int_equal(leg.moved, 0);
	assert_int_equal(leg.pinned_after, leg.pinned_before);
}

/* ---- 2. CMA over DMA pages ----------------------------------------------- */

struct cma_figures {
	unsigned long cma_pages, in_cma_before, in_cma_after;
	bool cma_alloc_ok;
	int overflow_errno;	/* a buffer larger than normal free memory */
	unsigned long overflow_in_cma;
};

static unsigned long in_area(struct test_dma_rig *r, struct buffer *bf, uint64_t base, uint64_t size)
{
	unsigned long n = 0;

	for (size_t i = 0; i < bf->pages; i++) {
		uint64_t pa = (uint64_t)buffer_pfn(r, bf, i) << IOM_PAGE_SHIFT;

		n += pa >= base && pa < base + size;
	}
	return n;
}

static void cma_scenario(bool legacy, struct cma_figures *f)
{
	struct test_dma_rig r;
	int zt;
	struct iom_cma *cma;
	struct iom_page **filler, *area;
	struct buffer buf[CMA_NBUF], big;
	unsigned long nr_filler, cma_pages;
	uint64_t base, size;

	memset(f, 0, sizeof(*f));
	zt = rig_up(&r, legacy, (unsigned long)CMA_MIB << 20);
	cma = iom_cma_get(r.m, 0);
	assert_non_null(cma);
	base = iom_cma_get_base(cma);
	size = iom_cma_get_size(cma);
	cma_pages = f->cma_pages = (unsigned long)(size >> IOM_PAGE_SHIFT);

	/* normal memory full of unmovable pages but CMA_HEADROOM */
	nr_filler = test_nr_free(r.m) - cma_pages - CMA_HEADROOM;
	filler = calloc(nr_filler, sizeof(*filler));
	assert_non_null(filler);
	for (unsigned long i = 0; i < nr_filler; i++) {
		uint64_t pa;

		filler[i] = iom_alloc_pages(r.m, IOM_GFP_KERNEL | IOM___GFP_NOWARN, 0);
		assert_non_null(filler[i]);
		pa = iom_page_to_phys(r.m, filler[i]);
		assert_false(pa >= base && pa < base + size);
	}

	/* CMA is most of what is free now: movable buffers land there */
	{
		struct iom_zone_info zi;

		iom_drain_all_pages(r.m);
		assert_int_equal(iom_zone_info(r.m, 0, zt, &zi), 0);
		assert_true(zi.nr_free_cma > zi.nr_free_pages / 2);
	}
	for (unsigned int b = 0; b < CMA_NBUF; b++) {
		struct buffer *bf = &buf[b];

		bf->pages = CMA_BUF_PAGES;
		bf->cpu = iom_dma_alloc_coherent(r.dev, bf->pages * PG, &bf->h,
						 IOM_GFP_KERNEL, 0);
		assert_non_null(bf->cpu);
		stamp(&r, bf, b);
		f->in_cma_before += in_area(&r, bf, base, size);
	}

	/* the whole area, over whatever DMA pages are in it */
	area = iom_cma_alloc(cma, cma_pages, 0, true);
	f->cma_alloc_ok = area != NULL;
	for (unsigned int b = 0; b < CMA_NBUF; b++) {
		f->in_cma_after += in_area(&r, &buf[b], base, size);
		check_stamp(&r, &buf[b], b);
	}
	if (area) {
		assert_int_equal(iom_cma_used_pages(cma), cma_pages);
		assert_int_equal(iom_cma_release(cma, area, cma_pages), 0);
	}

	/*
	 * A buffer larger than the normal memory still free: movable pages
	 * may come from CMA, legacy ones may not.
	 */
	big.pages = CMA_HEADROOM + 64;
	errno = 0;
	big.cpu = iom_dma_alloc_coherent(r.dev, big.pages * PG, &big.h,
					 IOM_GFP_KERNEL | IOM___GFP_NOWARN, 0);
	f->overflow_errno = big.cpu ? 0 : errno;
	if (big.cpu) {
		stamp(&r, &big, 99);
		check_stamp(&r, &big, 99);
		f->overflow_in_cma = in_area(&r, &big, base, size);
		big.pfn = NULL;
		free_buffer(&r, &big);
	}

	for (unsigned int b = 0; b < CMA_NBUF; b++) {
		buf[b].pfn = NULL;
		free_buffer(&r, &buf[b]);
	}
	for (unsigned long i = 0; i < nr_filler; i++)
		iom_put_page(r.m, filler[i]);
	free(filler);
	test_dma_rig_down(&r);
}

static void test_cma_alloc_moves_movable_dma_pages_legacy_never_in_cma(void **state)
{
	struct cma_figures mov, leg;
	const unsigned long nr = CMA_NBUF * CMA_BUF_PAGES;

	(void)state;
	cma_scenario(false, &mov);
	cma_scenario(true, &leg);
	print_message("movable: %lu of %lu DMA pages in CMA (%lu pages), cma_alloc(whole area) %s, "
		      "%lu left in CMA; a %u-page buffer past normal memory: %s (%lu pages in CMA)\n",
		      mov.in_cma_before, nr, mov.cma_pages, mov.cma_alloc_ok ? "ok" : "FAILED",
		      mov.in_cma_after, CMA_HEADROOM + 64,
		      mov.overflow_errno ? strerror(mov.overflow_errno) : "ok", mov.overflow_in_cma);
	print_message("legacy : %lu of %lu DMA pages in CMA (%lu pages), cma_alloc(whole area) %s, "
		      "%lu left in CMA; a %u-page buffer past normal memory: %s\n",
		      leg.in_cma_before, nr, leg.cma_pages, leg.cma_alloc_ok ? "ok" : "FAILED",
		      leg.in_cma_after, CMA_HEADROOM + 64,
		      leg.overflow_errno ? strerror(leg.overflow_errno) : "ok");

	/* movable: most DMA pages went to CMA, and CMA got them out again */
	assert_true(mov.in_cma_before >= nr / 2);
	assert_true(mov.cma_alloc_ok);
	assert_int_equal(mov.in_cma_after, 0);
	assert_int_equal(mov.overflow_errno, 0);
	assert_true(mov.overflow_in_cma > 0);

	/* legacy: never in CMA, and CMA's free memory is out of its reach */
	assert_int_equal(leg.in_cma_before, 0);
	assert_true(leg.cma_alloc_ok);
	assert_int_equal(leg.in_cma_after, 0);
	assert_int_equal(leg.overflow_errno, ENOMEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compaction_frees_blocks_only_around_movable_dma),
		cmocka_unit_test(test_multi_page_buffers_legacy_grouped_by_direct_compaction),
		cmocka_unit_test(test_cma_alloc_moves_movable_dma_pages_legacy_never_in_cma),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
