/* SPDX-License-Identifier: MIT */
/*
 * I/O page tables (src/iommu/io-pgtable.c): the kernel's arm_lpae
 * self-test matrix (page-size sets x input/output address sizes: empty
 * tables translate nothing, each page size mapped at j x 1 GiB, overmap
 * fails with -EEXIST, full unmap returns the size, remap, the largest page
 * at the top of the address space), with the TLB callbacks checked as the
 * kernel's dummy ops do; the mixed fill [0x3fe400000, 0x4c0600000) mapped
 * with the largest sizes gives exactly 14 x 2 MiB + 3 x 1 GiB + 3 x 2 MiB
 * leaves; a partial unmap removes the whole block and nothing else; the
 * TLB callbacks are counted; 1000 seeded random maps and unmaps checked
 * against a shadow end with no leaf and only the top-level table, and
 * after free and an RCU barrier no table page is left on the machine;
 * threads mapping and unmapping disjoint pages of the same tables while a
 * reader walks them; and the error paths.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include <iommig/io-pgtable.h>

#define SZ_4K	0x1000UL
#define SZ_2M	0x200000UL
#define SZ_1G	0x40000000UL
#define SZ_2G	0x80000000UL

static struct test_log tlog;

/* ---- counting TLB ops ------------------------------------------------------ */

struct tlb_counts {
	const struct iom_io_pgtable_cfg *cfg;	/* the kernel's cfg_cookie */
	atomic_ulong flush_all, flush_walk, add_page, sync;
	atomic_ulong bad;			/* a callback with bad arguments */
	atomic_ulong add_bytes;
};

static void cnt_flush_all(void *cookie)
{
	struct tlb_counts *c = cookie;

	atomic_fetch_add(&c->flush_all, 1);
}

static void cnt_flush_walk(unsigned long iova, size_t size, size_t granule,
			   void *cookie)
{
	struct tlb_counts *c = cookie;

	atomic_fetch_add(&c->flush_walk, 1);
	if (granule != SZ_4K || (iova & (size - 1)) || !size)
		atomic_fetch_add(&c->bad, 1);
}

static void cnt_add_page(struct iom_iommu_iotlb_gather *gather,
			 unsigned long iova, size_t granule, void *cookie)
{
	struct tlb_counts *c = cookie;

	atomic_fetch_add(&c->add_page, 1);
	atomic_fetch_add(&c->add_bytes, granule);
	if (!(granule & c->cfg->pgsize_bitmap) || (iova & (granule - 1)))
		atomic_fetch_add(&c->bad, 1);
	iom_iommu_iotlb_gather_add_range(gather, iova, granule);
}

static void cnt_sync(struct iom_iommu_iotlb_gather *gather, void *cookie)
{
	struct tlb_counts *c = cookie;

	(void)gather;
	atomic_fetch_add(&c->sync, 1);
}

static const struct iom_iommu_flush_ops cnt_tlb_ops = {
	.tlb_flush_all = cnt_flush_all,
	.tlb_flush_walk = cnt_flush_walk,
	.tlb_add_page = cnt_add_page,
	.iotlb_sync = cnt_sync,
};

static struct iom_io_pgtable_ops *new_table(struct iom_machine *m,
					    struct iom_io_pgtable_cfg *cfg,
					    struct tlb_counts *cnt,
					    unsigned long sizes, unsigned int ias,
					    unsigned int oas, unsigned long quirks)
{
	struct iom_io_pgtable_ops *ops;

	memset(cfg, 0, sizeof(*cfg));
	memset(cnt, 0, sizeof(*cnt));
	cfg->pgsize_bitmap = sizes;
	cfg->ias = ias;
	cfg->oas = oas;
	cfg->quirks = quirks;
	cfg->tlb = &cnt_tlb_ops;
	ops = iom_alloc_io_pgtable_ops(m, IOM_ARM_64_LPAE_S1, cfg, cnt);
	assert_non_null(ops);
	cnt->cfg = iom_io_pgtable_get_cfg(ops);
	return ops;
}

static void check_no_table_pages_left(struct iom_machine *m)
{
	iom_rcu_barrier();
	assert_int_equal(iom_io_pgtable_machine_pages(m), 0);
	assert_int_equal(iom_machine_bug_count(m), 0);
}

/* ---- the self-test matrix ---------------------------------------------------- */

/* arm_lpae_run_tests() for one configuration; 0 or the failing step. */
static int run_lpae_tests(struct iom_machine *m, unsigned long sizes,
			  unsigned int ias, unsigned int oas)
{
	struct iom_io_pgtable_cfg cfg;
	struct tlb_counts cnt;
	struct iom_io_pgtable_ops *ops;
	unsigned long iova, bitmap;
	size_t size, mapped;
	int j;

	ops = new_table(m, &cfg, &cnt, sizes, ias, oas,
			IOM_IO_PGTABLE_QUIRK_NO_WARN);
	bitmap = cfg.pgsize_bitmap;

	/* Empty page tables shouldn't provide any translations. */
	if (ops->iova_to_phys(ops, 42) || ops->iova_to_phys(ops, SZ_1G + 42) ||
	    ops->iova_to_phys(ops, SZ_2G + 42))
		return 1;

	/* Distinct mappings of different granule sizes. */
	iova = 0;
	for (j = 0; j < 64; j++) {
		if (!(bitmap & (1UL << j)))
			continue;
		size = 1UL << j;
		mapped = 0;
		if (ops->map_pages(ops, iova, iova, size, 1,
				   IOM_IOMMU_READ | IOM_IOMMU_WRITE |
				   IOM_IOMMU_NOEXEC | IOM_IOMMU_CACHE,
				   IOM_GFP_KERNEL, &mapped) || mapped != size)
			return 2;
		/* Overlapping mappings */
		if (ops->map_pages(ops, iova, iova + size, size, 1,
				   IOM_IOMMU_READ | IOM_IOMMU_NOEXEC,
				   IOM_GFP_KERNEL, &mapped) != -EEXIST)
			return 3;
		if (ops->iova_to_phys(ops, iova + 42) != iova + 42)
			return 4;
		iova += SZ_1G;
	}

	/* Full unmap */
	iova = 0;
	for (j = 0; j < 64; j++) {
		if (!(bitmap & (1UL << j)))
			continue;
		size = 1UL << j;
		if (ops->unmap_pages(ops, iova, size, 1, NULL) != size)
			return 5;
		if (ops->iova_to_phys(ops, iova + 42))
			return 6;
		/* Remap full block */
		if (ops->map_pages(ops, iova, iova, size, 1, IOM_IOMMU_WRITE,
				   IOM_GFP_KERNEL, &mapped))
			return 7;
		if (ops->iova_to_phys(ops, iova + 42) != iova + 42)
			return 8;
		iova += SZ_1G;
	}

	/* The last largest page of the IAS. */
	mapped = 0;
	size = 1UL << (63 - __builtin_clzl(bitmap));
	iova = (1UL << ias) - size;
	if (ops->map_pages(ops, iova, iova, size, 1,
			   IOM_IOMMU_READ | IOM_IOMMU_WRITE | IOM_IOMMU_NOEXEC |
			   IOM_IOMMU_CACHE, IOM_GFP_KERNEL, &mapped))
		return 9;
	if (mapped != size)
		return 10;
	if (ops->iova_to_phys(ops, iova + size - 1) != iova + size - 1)
		return 11;
	if (ops->unmap_pages(ops, iova, size, 1, NULL) != size)
		return 12;
	/* The dummy ops' checks: cookie and sizes. */
	if (atomic_load(&cnt.bad))
		return 13;
	iom_free_io_pgtable_ops(ops);
	if (atomic_load(&cnt.flush_all) != 1)
		return 14;
	return 0;
}

static void test_lpae_selftest_matrix(void **state)
{
	static const unsigned long pgsize[] = {
		SZ_4K | SZ_2M | SZ_1G, SZ_4K | SZ_2M, SZ_4K | SZ_1G, SZ_4K,
		/* restricted to the format's sizes, as the kernel does */
		SZ_4K | SZ_2M | SZ_1G | 0x10000UL,
	};
	static const unsigned int address_size[] = { 32, 36, 39, 40, 42, 44, 48 };
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	size_t i, j, k;
	int pass = 0;

	(void)state;
	assert_non_null(m);
	for (i = 0; i < sizeof(pgsize) / sizeof(pgsize[0]); i++) {
		for (j = 0; j < sizeof(address_size) / sizeof(address_size[0]); j++) {
			for (k = 0; k <= j; k++) {
				int ret = run_lpae_tests(m, pgsize[i],
							 address_size[k],
							 address_size[j]);

				if (ret)
					fail_msg("pgsize %#lx ias %u oas %u: step %d",
						 pgsize[i], address_size[k],
						 address_size[j], ret);
				pass++;
			}
		}
	}
	assert_int_equal(pass, 5 * 28);
	check_no_table_pages_left(m);
	iom_machine_destroy(m);
}

/* ---- mixed fill ---------------------------------------------------------------- */

static void test_mixed_fill_gives_20_leaves(void **state)
{
	const unsigned long start = 0x3fe400000UL, end = 0x4c0600000UL;
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct iom_io_pgtable_cfg cfg;
	struct tlb_counts cnt;
	struct iom_io_pgtable_ops *ops;
	unsigned long nr[IOM_IO_PGTABLE_MAX_LEVELS];
	struct iom_io_pgtable_walk_data w;
	size_t mapped;

	(void)state;
	ops = new_table(m, &cfg, &cnt, SZ_4K | SZ_2M | SZ_1G, 48, 48, 0);
	assert_int_equal(iom_io_pgtable_map(ops, start, start, end - start,
					    IOM_IOMMU_READ | IOM_IOMMU_WRITE,
					    IOM_GFP_KERNEL, &mapped), 0);
	assert_int_equal(mapped, end - start);
	assert_int_equal(iom_io_pgtable_nr_leaves(ops, nr), 20);
	assert_int_equal(nr[1], 3);		/* 1 GiB */
	assert_int_equal(nr[2], 14 + 3);	/* 2 MiB */
	assert_int_equal(nr[3], 0);
	/* identity everywhere, nothing around */
	assert_int_equal(ops->iova_to_phys(ops, start), start);
	assert_int_equal(ops->iova_to_phys(ops, 0x400000000UL + 12345),
			 0x400000000UL + 12345);
	assert_int_equal(ops->iova_to_phys(ops, end - 1), end - 1);
	assert_int_equal(ops->iova_to_phys(ops, start - 1), 0);
	assert_int_equal(ops->iova_to_phys(ops, end), 0);
	assert_int_equal(iom_io_pgtable_walk(ops, 0x440000000UL + 7, &w), 0);
	assert_int_equal(w.level, 1);
	assert_int_equal(w.size, SZ_1G);
	assert_true(w.pte & IOM_IOPTE_READ);
	assert_true(w.pte & IOM_IOPTE_WRITE);
	assert_true(w.pte & IOM_IOPTE_AF);
	assert_false(w.pte & IOM_IOPTE_DBM);
	assert_int_equal(iom_io_pgtable_walk(ops, start, &w), 0);
	assert_int_equal(w.level, 2);
	assert_int_equal(iom_io_pgtable_walk(ops, end, &w), -ENOENT);

	/* Overmap anywhere inside fails and changes nothing. */
	assert_int_equal(iom_io_pgtable_map(ops, start + SZ_2M, 0, SZ_4K,
					    IOM_IOMMU_READ, IOM_GFP_KERNEL,
					    &mapped), -EEXIST);
	assert_true(test_log_contains(&tlog, "existing mapping"));
	assert_int_equal(iom_io_pgtable_nr_leaves(ops, NULL), 20);

	assert_int_equal(iom_io_pgtable_unmap(ops, start, end - start, NULL),
			 end - start);
	assert_int_equal(atomic_load(&cnt.add_page), 20);
	assert_int_equal(atomic_load(&cnt.sync), 1);
	assert_int_equal(iom_io_pgtable_nr_leaves(ops, NULL), 0);
	iom_io_pgtable_reap(ops);	/* the spare table */
	assert_int_equal(iom_io_pgtable_nr_pages(ops), 1);
	iom_free_io_pgtable_ops(ops);
	check_no_table_pages_left(m);
	iom_machine_destroy(m);
}

/* ---- partial unmap ----------------------------------------------------------------- */

static void test_partial_unmap_removes_whole_block(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct iom_io_pgtable_cfg cfg;
	struct tlb_counts cnt;
	struct iom_io_pgtable_ops *ops;
	const unsigned long base = 0x40000000UL + 4 * SZ_2M;
	struct iom_iommu_iotlb_gather g;

	(void)state;
	ops = new_table(m, &cfg, &cnt, SZ_4K | SZ_2M | SZ_1G, 39, 40, 0);
	/* two 2 MiB blocks side by side, and a 4 KiB page after them */
	assert_int_equal(iom_io_pgtable_map(ops, base, 0x80000000UL, 2 * SZ_2M,
					    IOM_IOMMU_READ, IOM_GFP_KERNEL, NULL), 0);
	assert_int_equal(iom_io_pgtable_map(ops, base + 2 * SZ_2M, 0x1000UL,
					    SZ_4K, IOM_IOMMU_READ,
					    IOM_GFP_KERNEL, NULL), 0);
	assert_int_equal(iom_io_pgtable_nr_leaves(ops, NULL), 3);

	/* 4 KiB inside the first block: the block goes, 2 MiB returned */
	iom_iommu_iotlb_gather_init(&g);
	assert_int_equal(ops->unmap_pages(ops, base + SZ_4K, SZ_4K, 1, &g), SZ_2M);
	assert_int_equal(g.start, base);
	assert_int_equal(g.end, base + SZ_2M - 1);
	assert_int_equal(ops->iova_to_phys(ops, base), 0);
	assert_int_equal(ops->iova_to_phys(ops, base + SZ_2M - 1), 0);
	/* ... and not the next one */
	assert_int_equal(ops->iova_to_phys(ops, base + SZ_2M), 0x80000000UL + SZ_2M);

	/* Through the helper: the range ends inside the second block. */
	assert_int_equal(iom_io_pgtable_unmap(ops, base + SZ_2M + SZ_4K,
					      SZ_4K, NULL), SZ_2M);
	assert_int_equal(ops->iova_to_phys(ops, base + SZ_2M), 0);
	/* the 4 KiB page after the blocks is untouched */
	assert_int_equal(ops->iova_to_phys(ops, base + 2 * SZ_2M + 5), 0x1005UL);
	assert_int_equal(iom_io_pgtable_nr_leaves(ops, NULL), 1);

	/* A 1 GiB block partly unmapped by the helper from its middle. */
	assert_int_equal(iom_io_pgtable_map(ops, 3 * SZ_1G, SZ_1G, SZ_1G,
					    IOM_IOMMU_WRITE, IOM_GFP_KERNEL, NULL), 0);
	assert_int_equal(iom_io_pgtable_unmap(ops, 3 * SZ_1G + SZ_2M, 4 * SZ_2M,
					      NULL), SZ_1G);
	assert_int_equal(ops->iova_to_phys(ops, 3 * SZ_1G), 0);

	/* Nothing mapped: 0, with a warning (no NO_WARN quirk here). */
	test_log_reset(&tlog);
	assert_int_equal(ops->unmap_pages(ops, base, SZ_2M, 1, NULL), 0);
	assert_int_equal(iom_io_pgtable_unmap(ops, 5 * SZ_1G, SZ_2M, NULL), 0);
	assert_true(test_log_contains(&tlog, "nothing mapped"));

	assert_int_equal(iom_io_pgtable_unmap(ops, base + 2 * SZ_2M, SZ_4K, NULL),
			 SZ_4K);
	assert_int_equal(iom_io_pgtable_nr_leaves(ops, NULL), 0);
	iom_io_pgtable_reap(ops);	/* the spare table */
	assert_int_equal(iom_io_pgtable_nr_pages(ops), 1);
	assert_int_equal(atomic_load(&cnt.bad), 0);
	iom_free_io_pgtable_ops(ops);
	check_no_table_pages_left(m);
	iom_machine_destroy(m);
}

/* ---- TLB callbacks ---------------------------------------------------------------- */

static void test_tlb_callbacks_counted(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct iom_io_pgtable_cfg cfg;
	struct tlb_counts cnt;
	struct iom_io_pgtable_ops *ops;
	struct iom_iommu_iotlb_gather g;
	const unsigned long base = 7 * SZ_1G;

	(void)state;
	ops = new_table(m, &cfg, &cnt, SZ_4K | SZ_2M | SZ_1G, 48, 48, 0);
	/* 16 pages in one leaf table: 3 tables below the pgd */
	assert_int_equal(iom_io_pgtable_map(ops, base, 0, 16 * SZ_4K,
					    IOM_IOMMU_READ, IOM_GFP_KERNEL, NULL), 0);
	assert_int_equal(iom_io_pgtable_nr_pages(ops), 4);
	assert_int_equal(atomic_load(&cnt.flush_walk) + atomic_load(&cnt.add_page) +
			 atomic_load(&cnt.sync), 0);	/* map needs no TLB work */

	/* unmap_fast style: one add_page per leaf, no sync, no walk flush yet */
	iom_iommu_iotlb_gather_init(&g);
	assert_int_equal(iom_io_pgtable_unmap(ops, base, 8 * SZ_4K, &g), 8 * SZ_4K);
	assert_int_equal(atomic_load(&cnt.add_page), 8);
	assert_int_equal(atomic_load(&cnt.sync), 0);
	assert_int_equal(atomic_load(&cnt.flush_walk), 0);
	assert_int_equal(g.start, base);
	assert_int_equal(g.end, base + 8 * SZ_4K - 1);

	/* a queued gather (lazy mode) gets no pages */
	iom_iommu_iotlb_gather_init(&g);
	g.queued = true;
	assert_int_equal(iom_io_pgtable_unmap(ops, base + 8 * SZ_4K, 4 * SZ_4K, &g),
			 4 * SZ_4K);
	assert_int_equal(atomic_load(&cnt.add_page), 8);

	/* the last 4 pages empty the tables: one sync; reaping the spare
	 * gives the three walk flushes */
	assert_int_equal(iom_io_pgtable_unmap(ops, base + 12 * SZ_4K, 4 * SZ_4K,
					      NULL), 4 * SZ_4K);
	assert_int_equal(atomic_load(&cnt.add_page), 12);
	assert_int_equal(atomic_load(&cnt.sync), 1);
	iom_io_pgtable_reap(ops);	/* the spare table */
	assert_int_equal(atomic_load(&cnt.flush_walk), 3);
	assert_int_equal(iom_io_pgtable_nr_pages(ops), 1);

	/* a block over a table: unmap of the 2 MiB level frees the table */
	assert_int_equal(iom_io_pgtable_map(ops, base, 0, SZ_4K, IOM_IOMMU_READ,
					    IOM_GFP_KERNEL, NULL), 0);
	assert_int_equal(ops->unmap_pages(ops, base, SZ_2M, 1, NULL), SZ_2M);
	assert_int_equal(ops->iova_to_phys(ops, base), 0);
	assert_int_equal(atomic_load(&cnt.bad), 0);
	iom_free_io_pgtable_ops(ops);
	assert_int_equal(atomic_load(&cnt.flush_all), 1);
	check_no_table_pages_left(m);
	iom_machine_destroy(m);
}

/* ---- DBM-style dirty state ------------------------------------------------------- */

static void test_hd_quirk_dirty_bits(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct iom_io_pgtable_cfg cfg;
	struct tlb_counts cnt;
	struct iom_io_pgtable_ops *ops;
	struct iom_io_pgtable_walk_data w;

	(void)state;
	ops = new_table(m, &cfg, &cnt, SZ_4K | SZ_2M, 39, 39,
			IOM_IO_PGTABLE_QUIRK_ARM_HD);
	assert_int_equal(iom_io_pgtable_map(ops, 0, SZ_4K, SZ_4K,
					    IOM_IOMMU_READ | IOM_IOMMU_WRITE,
					    IOM_GFP_KERNEL, NULL), 0);
	assert_int_equal(iom_io_pgtable_map(ops, SZ_2M, SZ_2M, SZ_2M,
					    IOM_IOMMU_READ, IOM_GFP_KERNEL, NULL), 0);
	assert_int_equal(iom_io_pgtable_walk(ops, 5, &w), 0);
	assert_int_equal(w.level, 3);
	assert_true(w.pte & IOM_IOPTE_TABLE);	/* a page entry */
	assert_true(iom_iopte_dirty(w.pte));	/* writable mappings start dirty */
	assert_true(iom_iopte_writeable(w.pte));
	assert_false(w.pte & IOM_IOPTE_SW_MIGRATE);
	assert_int_equal(iom_iopte_to_paddr(w.pte), SZ_4K);
	assert_int_equal(iom_io_pgtable_walk(ops, SZ_2M + 5, &w), 0);
	assert_int_equal(w.level, 2);
	assert_false(iom_iopte_writeable(w.pte));
	assert_false(iom_iopte_dirty(w.pte));
	/* No access: nothing mapped, no error (the kernel's behaviour). */
	assert_int_equal(ops->map_pages(ops, 4 * SZ_2M, 0, SZ_4K, 1, 0,
					IOM_GFP_KERNEL, NULL), 0);
	assert_int_equal(ops->iova_to_phys(ops, 4 * SZ_2M), 0);
	iom_free_io_pgtable_ops(ops);
	check_no_table_pages_left(m);
	iom_machine_destroy(m);
}

/* ---- random map/unmap ---------------------------------------------------------------- */

#define RND_WINDOW_PAGES	(1UL << 20)	/* 4 GiB of IOVA */
#define RND_MAX_LIVE		1000

struct live_map {
	unsigned long iova;
	size_t size;
	uint64_t paddr;
};

static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static bool shadow_busy(const uint8_t *shadow, unsigned long pfn, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		if (shadow[(pfn + i) >> 3] & (1u << ((pfn + i) & 7)))
			return true;
	return false;
}

static void shadow_set(uint8_t *shadow, unsigned long pfn, unsigned long n, bool v)
{
	for (unsigned long i = 0; i < n; i++) {
		if (v)
			shadow[(pfn + i) >> 3] |= (uint8_t)(1u << ((pfn + i) & 7));
		else
			shadow[(pfn + i) >> 3] &= (uint8_t)~(1u << ((pfn + i) & 7));
	}
}

static void test_random_map_unmap_leaves_nothing(void **state)
{
	struct iom_machine *m = test_machine(128, &tlog, NULL);
	struct iom_io_pgtable_cfg cfg;
	struct tlb_counts cnt;
	struct iom_io_pgtable_ops *ops;
	struct live_map *live = calloc(RND_MAX_LIVE, sizeof(*live));
	uint8_t *shadow = calloc(RND_WINDOW_PAGES / 8, 1);
	uint64_t seed = 0x5eed1234abcdULL;
	unsigned int nlive = 0, op, maps = 0, eexist = 0, unmaps = 0, holes = 0;

	(void)state;
	assert_non_null(live);
	assert_non_null(shadow);
	ops = new_table(m, &cfg, &cnt, SZ_4K | SZ_2M | SZ_1G, 39, 40,
			IOM_IO_PGTABLE_QUIRK_NO_WARN);
	for (op = 0; op < 1000; op++) {
		unsigned int kind = rnd_next(&seed) % 10;

		if (kind < 5 && nlive < RND_MAX_LIVE) {
			/* map 2^k pages, aligned to its size; paddr offset by GiBs */
			unsigned int k = (unsigned int)(rnd_next(&seed) % 12);
			unsigned long n, pfn;
			uint64_t pa;
			size_t mapped;
			int ret;

			if (rnd_next(&seed) % 50 == 0)
				k = 18;	/* 1 GiB */
			n = 1UL << k;
			pfn = (rnd_next(&seed) % (RND_WINDOW_PAGES / n)) * n;
			pa = ((uint64_t)pfn << 12) + SZ_1G * (rnd_next(&seed) % 4);
			ret = iom_io_pgtable_map(ops, pfn << 12, pa, n << 12,
						 IOM_IOMMU_READ, IOM_GFP_KERNEL,
						 &mapped);
			if (shadow_busy(shadow, pfn, n)) {
				assert_int_equal(ret, -EEXIST);
				assert_int_equal(mapped, 0);
				eexist++;
			} else {
				assert_int_equal(ret, 0);
				assert_int_equal(mapped, n << 12);
				shadow_set(shadow, pfn, n, true);
				live[nlive++] = (struct live_map){ pfn << 12,
								   n << 12, pa };
				maps++;
			}
		} else if (kind < 9 && nlive) {
			unsigned int i = (unsigned int)(rnd_next(&seed) % nlive);

			assert_int_equal(iom_io_pgtable_unmap(ops, live[i].iova,
							      live[i].size, NULL),
					 live[i].size);
			shadow_set(shadow, live[i].iova >> 12, live[i].size >> 12,
				   false);
			live[i] = live[--nlive];
			unmaps++;
		} else {
			unsigned long pfn = rnd_next(&seed) % RND_WINDOW_PAGES;

			if (!shadow_busy(shadow, pfn, 1)) {
				assert_int_equal(iom_io_pgtable_unmap(ops, pfn << 12,
								      SZ_4K, NULL), 0);
				holes++;
			}
		}
		/* probe a live mapping and a random address */
		if (nlive) {
			struct live_map *l = &live[rnd_next(&seed) % nlive];
			unsigned long off = (rnd_next(&seed) % l->size) & ~7UL;

			assert_int_equal(ops->iova_to_phys(ops, l->iova + off),
					 l->paddr + off);
		}
		{
			unsigned long pfn = rnd_next(&seed) % RND_WINDOW_PAGES;

			if (!shadow_busy(shadow, pfn, 1))
				assert_int_equal(ops->iova_to_phys(ops, pfn << 12), 0);
		}
	}
	assert_true(maps > 100 && unmaps > 100 && holes > 10);
	(void)eexist;
	while (nlive) {
		nlive--;
		assert_int_equal(iom_io_pgtable_unmap(ops, live[nlive].iova,
						      live[nlive].size, NULL),
				 live[nlive].size);
	}
	assert_int_equal(iom_io_pgtable_nr_leaves(ops, NULL), 0);
	iom_io_pgtable_reap(ops);	/* the spare table */
	assert_int_equal(iom_io_pgtable_nr_pages(ops), 1);	/* the pgd */
	assert_int_equal(atomic_load(&cnt.bad), 0);
	iom_free_io_pgtable_ops(ops);
	check_no_table_pages_left(m);
	free(live);
	free(shadow);
	iom_machine_destroy(m);
}

/* ---- concurrency ------------------------------------------------------------------------ */

#define CONC_THREADS	3
#define CONC_ROUNDS	1500
#define CONC_SLOTS	24		/* pages each thread owns, interleaved */

struct conc_arg {
	struct iom_io_pgtable_ops *ops;
	unsigned int id;
	atomic_bool *stop;
	unsigned long errors;
	unsigned long walks;
};

/* Thread @id owns pages id, id + N, id + 2N ... of two 2 MiB regions. */
static unsigned long conc_iova(unsigned int id, unsigned int slot)
{
	unsigned long region = (slot & 1) ? 5 * SZ_1G : 9 * SZ_1G + 17 * SZ_2M;

	return region + (unsigned long)(slot / 2 * CONC_THREADS + id) * SZ_4K;
}

static void *conc_mapper(void *p)
{
	struct conc_arg *a = p;
	struct iom_io_pgtable_ops *ops = a->ops;
	unsigned int r, s;

	for (r = 0; r < CONC_ROUNDS; r++) {
		s = (r * 7 + a->id) % CONC_SLOTS;
		unsigned long iova = conc_iova(a->id, s);
		/* the "stamp": the physical address encodes owner and round */
		uint64_t pa = ((uint64_t)(a->id + 1) << 32) | ((uint64_t)r << 12);
		size_t mapped = 0;

		if (ops->map_pages(ops, iova, pa, SZ_4K, 1, IOM_IOMMU_READ,
				   IOM_GFP_KERNEL, &mapped) || mapped != SZ_4K)
			a->errors++;
		if (ops->iova_to_phys(ops, iova + 9) != pa + 9)
			a->errors++;
		if (ops->unmap_pages(ops, iova, SZ_4K, 1, NULL) != SZ_4K)
			a->errors++;
		if (ops->iova_to_phys(ops, iova))
			a->errors++;
	}
	return NULL;
}

/* Walks everything the mappers own: a translation must carry its owner. */
static void *conc_walker(void *p)
{
	struct conc_arg *a = p;
	unsigned int id, s;

	while (!atomic_load(a->stop)) {
		for (id = 0; id < CONC_THREADS; id++) {
			for (s = 0; s < CONC_SLOTS; s++) {
				uint64_t pa = a->ops->iova_to_phys(a->ops,
								   conc_iova(id, s));

				if (pa && (pa >> 32) != id + 1)
					a->errors++;
				a->walks++;
			}
		}
	}
	return NULL;
}

static void test_concurrent_disjoint_map_unmap(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct iom_io_pgtable_cfg cfg;
	struct tlb_counts cnt;
	struct iom_io_pgtable_ops *ops;
	struct conc_arg args[CONC_THREADS + 1];
	pthread_t tids[CONC_THREADS + 1];
	atomic_bool stop = false;
	unsigned int i;

	(void)state;
	ops = new_table(m, &cfg, &cnt, SZ_4K | SZ_2M | SZ_1G, 48, 48,
			IOM_IO_PGTABLE_QUIRK_NO_WARN);
	for (i = 0; i <= CONC_THREADS; i++) {
		args[i] = (struct conc_arg){ .ops = ops, .id = i, .stop = &stop };
		assert_int_equal(pthread_create(&tids[i], NULL,
						i < CONC_THREADS ? conc_mapper :
						conc_walker, &args[i]), 0);
	}
	for (i = 0; i < CONC_THREADS; i++)
		pthread_join(tids[i], NULL);
	atomic_store(&stop, true);
	pthread_join(tids[CONC_THREADS], NULL);
	for (i = 0; i <= CONC_THREADS; i++)
		assert_int_equal(args[i].errors, 0);
	assert_true(args[CONC_THREADS].walks > 0);
	assert_int_equal(iom_io_pgtable_nr_leaves(ops, NULL), 0);
	iom_io_pgtable_reap(ops);	/* the spare table */
	assert_int_equal(iom_io_pgtable_nr_pages(ops), 1);
	iom_free_io_pgtable_ops(ops);
	check_no_table_pages_left(m);
	iom_machine_destroy(m);
}

/* ---- error paths ------------------------------------------------------------------------ */

static void test_error_paths(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_io_pgtable_cfg cfg;
	struct tlb_counts cnt;
	struct iom_io_pgtable_ops *ops;
	struct iom_page *hog[8192];
	unsigned long nhog = 0, pages;
	size_t mapped = 0;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.pgsize_bitmap = SZ_4K;
	cfg.ias = cfg.oas = 48;
	errno = 0;
	assert_null(iom_alloc_io_pgtable_ops(m, IOM_IO_PGTABLE_NUM_FMTS, &cfg, NULL));
	assert_int_equal(errno, EINVAL);
	cfg.ias = 31;
	assert_null(iom_alloc_io_pgtable_ops(m, IOM_ARM_64_LPAE_S1, &cfg, NULL));
	assert_int_equal(errno, EINVAL);
	cfg.ias = 48;
	cfg.oas = 52;
	assert_null(iom_alloc_io_pgtable_ops(m, IOM_ARM_64_LPAE_S1, &cfg, NULL));
	cfg.oas = 48;
	cfg.pgsize_bitmap = SZ_2M;
	assert_null(iom_alloc_io_pgtable_ops(m, IOM_ARM_64_LPAE_S1, &cfg, NULL));
	assert_true(test_log_contains(&tlog, "no 4 KiB granule"));
	assert_null(iom_alloc_io_pgtable_ops(NULL, IOM_ARM_64_LPAE_S1, &cfg, NULL));
	iom_free_io_pgtable_ops(NULL);

	ops = new_table(m, &cfg, &cnt, SZ_4K | SZ_2M, 36, 36, 0);
	assert_int_equal(cfg.pgsize_bitmap, SZ_4K | SZ_2M);
	/* bad page size, count, alignment */
	assert_int_equal(ops->map_pages(ops, 0, 0, SZ_1G, 1, IOM_IOMMU_READ,
					IOM_GFP_KERNEL, &mapped), -EINVAL);
	assert_int_equal(ops->map_pages(ops, 0, 0, 3 * SZ_4K, 1, IOM_IOMMU_READ,
					IOM_GFP_KERNEL, &mapped), -EINVAL);
	assert_int_equal(ops->map_pages(ops, 0, 0, SZ_4K, 0, IOM_IOMMU_READ,
					IOM_GFP_KERNEL, &mapped), -EINVAL);
	assert_int_equal(ops->map_pages(ops, SZ_4K, 0, SZ_2M, 1, IOM_IOMMU_READ,
					IOM_GFP_KERNEL, &mapped), -EINVAL);
	assert_int_equal(ops->map_pages(ops, 0, 0x800, SZ_4K, 1, IOM_IOMMU_READ,
					IOM_GFP_KERNEL, &mapped), -EINVAL);
	/* beyond ias / oas */
	assert_int_equal(ops->map_pages(ops, 1UL << 36, 0, SZ_4K, 1, IOM_IOMMU_READ,
					IOM_GFP_KERNEL, &mapped), -ERANGE);
	assert_int_equal(ops->map_pages(ops, 0, 1UL << 36, SZ_4K, 1, IOM_IOMMU_READ,
					IOM_GFP_KERNEL, &mapped), -ERANGE);
	assert_int_equal(mapped, 0);
	assert_int_equal(iom_io_pgtable_map(ops, 0, 0, 100, IOM_IOMMU_READ,
					    IOM_GFP_KERNEL, &mapped), -EINVAL);
	assert_int_equal(iom_io_pgtable_map(ops, 0, 0, 0, IOM_IOMMU_READ,
					    IOM_GFP_KERNEL, &mapped), -EINVAL);
	assert_int_equal(ops->unmap_pages(ops, SZ_4K, SZ_2M, 1, NULL), 0);
	assert_int_equal(ops->unmap_pages(ops, 1UL << 36, SZ_4K, 1, NULL), 0);
	assert_int_equal(iom_io_pgtable_unmap(ops, 0, 100, NULL), 0);
	assert_true(test_log_contains(&tlog, "not aligned"));
	assert_true(test_log_contains(&tlog, "beyond ias"));
	assert_int_equal(iom_io_pgtable_walk(ops, 1UL << 36, &(struct iom_io_pgtable_walk_data){0}),
			 -ERANGE);
	assert_int_equal(iom_io_pgtable_walk(NULL, 0, NULL), -EINVAL);
	assert_int_equal(iom_io_pgtable_nr_pages(ops), 1);

	/* Out of memory: a map that needs tables fails and leaves nothing. */
	assert_int_equal(iom_io_pgtable_map(ops, 0, 0, SZ_4K, IOM_IOMMU_READ,
					    IOM_GFP_KERNEL, NULL), 0);
	pages = iom_io_pgtable_nr_pages(ops);
	while (nhog < sizeof(hog) / sizeof(hog[0]) &&
	       (hog[nhog] = iom_alloc_pages(m, IOM_GFP_KERNEL | IOM___GFP_NOWARN, 0)))
		nhog++;
	assert_true(nhog < sizeof(hog) / sizeof(hog[0]));
	assert_int_equal(iom_io_pgtable_map(ops, 7 * SZ_1G + 3 * SZ_2M, 0,
					    2 * SZ_4K, IOM_IOMMU_READ,
					    IOM_GFP_KERNEL, &mapped), -ENOMEM);
	assert_int_equal(mapped, 0);
	/* the same table, next page: no new table needed */
	assert_int_equal(iom_io_pgtable_map(ops, SZ_4K, 0, SZ_4K, IOM_IOMMU_READ,
					    IOM_GFP_KERNEL, NULL), 0);
	assert_int_equal(iom_io_pgtable_nr_pages(ops), pages);
	assert_int_equal(iom_io_pgtable_nr_leaves(ops, NULL), 2);
	while (nhog)
		assert_int_equal(iom___free_pages(m, hog[--nhog], 0), 0);
	iom_rcu_barrier();
	iom_free_io_pgtable_ops(ops);
	check_no_table_pages_left(m);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lpae_selftest_matrix),
		cmocka_unit_test(test_mixed_fill_gives_20_leaves),
		cmocka_unit_test(test_partial_unmap_removes_whole_block),
		cmocka_unit_test(test_tlb_callbacks_counted),
		cmocka_unit_test(test_hd_quirk_dirty_bits),
		cmocka_unit_test(test_random_map_unmap_leaves_nothing),
		cmocka_unit_test(test_concurrent_disjoint_map_unmap),
		cmocka_unit_test(test_error_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
