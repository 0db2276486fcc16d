/* SPDX-License-Identifier: MIT */
/*
 * CMA allocation and alloc_contig_range() (src/mm/cma.c, page_alloc.c):
 * iom_cma_alloc() takes the whole area, aligned chunks, and the same chunk
 * again after a release, with the bitmap's used/maxchunk numbers following;
 * bad requests and bad releases change nothing; a write into a poisoned
 * free page of the area is caught when it is allocated; a process's anonymous
 * pages living in the area are migrated out and still read back their
 * stamps (and the check fails when migration skips the copy); a page with
 * an extra reference makes the range busy ("PFNs busy", -EBUSY, nothing
 * lost) unless another run of the area is free (the retry path), and stops
 * mattering once the reference is dropped; alloc_contig_range() on
 * movable pageblocks migrates too, refuses a block with an unmovable page,
 * and gives back the parts of free blocks outside an unaligned range; and
 * threads writing stamped data into pages of the area while the main
 * thread allocates and releases the whole area lose no write.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mm_util.h"

#define PG IOM_PAGE_SIZE
#define MiB (1024ULL * 1024)

static struct test_log tlog;

/* A machine of @mem_mib MiB with one CMA area "test" of @cma_mib MiB. */
static struct iom_machine *cma_machine(uint64_t mem_mib, uint64_t cma_mib)
{
	struct iom_machine_config cfg = { 0 };

	cfg.mem_size = mem_mib * MiB;
	cfg.nr_cma_areas = cma_mib ? 1 : 0;
	cfg.cma[0].size = cma_mib * MiB;
	cfg.cma[0].name = "test";
	return test_machine(0, &tlog, &cfg);
}

static unsigned long area_base(struct iom_cma *cma)
{
	return (unsigned long)(iom_cma_get_base(cma) / PG);
}

static unsigned long area_count(struct iom_cma *cma)
{
	return (unsigned long)(iom_cma_get_size(cma) / PG);
}

static bool pfn_in_area(struct iom_cma *cma, unsigned long pfn)
{
	return pfn >= area_base(cma) && pfn < area_base(cma) + area_count(cma);
}

static unsigned long pfn_at(struct iom_machine *m, struct iom_mm *mm, uint64_t addr)
{
	struct iom_page *page = test_get_page_at(mm, addr);
	unsigned long pfn = iom_page_to_pfn(m, page);

	assert_int_equal(iom_put_page(m, page), 0);
	return pfn;
}

/* Every page of [@pfn, @pfn + @n) is an allocated order-0 page of one reference. */
static void assert_pages_allocated(struct iom_machine *m, unsigned long pfn,
				   unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		struct iom_page *p = iom_pfn_to_page(m, pfn + i);

		assert_int_equal(iom_page_ref_count(p), 1);
		assert_false(iom_PageBuddy(p) || iom_PageHead(p) || iom_PageTail(p));
	}
}

/* ---- stamped pages ------------------------------------------------------- */

static void stamp_buf(uint64_t *buf, uint64_t stamp)
{
	for (size_t j = 0; j < PG / sizeof(uint64_t); j++)
		buf[j] = stamp ^ (j * 0x9e3779b97f4a7c15ULL);
}

static int write_stamp(struct iom_mm *mm, uint64_t addr, uint64_t stamp)
{
	uint64_t buf[PG / sizeof(uint64_t)];

	stamp_buf(buf, stamp);
	return iom_write(mm, addr, buf, PG);
}

/* 0 if the page at @addr holds @stamp, 1 if not, or the read's -errno. */
static int check_stamp(struct iom_mm *mm, uint64_t addr, uint64_t stamp)
{
	uint64_t buf[PG / sizeof(uint64_t)], want[PG / sizeof(uint64_t)];
	int ret = iom_read(mm, addr, buf, PG);

	if (ret)
		return ret;
	stamp_buf(want, stamp);
	return memcmp(buf, want, PG) ? 1 : 0;
}

/*
 * A process with @n anonymous pages, nearly all in the CMA area: its page
 * tables are made first (a page touched every 256 pages and the last one),
 * then normal memory is filled with unmovable pages, so that the other
 * pages can only come from CMA; then the filler is freed again. Every page
 * holds the stamp of its index.
 */
static uint64_t process_in_cma(struct iom_machine *m, struct iom_mm *mm,
			       unsigned long n)
{
	static struct iom_page *filler[4096];
	unsigned long i, nr = 0;
	uint64_t a;

	a = test_mmap(mm, 0, n * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		      IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	for (i = 0; i < n; i += 256)
		assert_int_equal(write_stamp(mm, a + i * PG, i), 0);
	assert_int_equal(write_stamp(mm, a + (n - 1) * PG, n - 1), 0);
	iom_drain_all_pages(m);
	while (nr < 4096) {
		struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL | IOM___GFP_NOWARN, 0);

		if (!p)
			break;
		filler[nr++] = p;
	}
	assert_true(nr > 0 && nr < 4096);
	for (i = 0; i < n; i++)
		assert_int_equal(write_stamp(mm, a + i * PG, i), 0);
	for (i = 0; i < nr; i++)
		assert_int_equal(iom_put_page(m, filler[i]), 0);
	return a;
}

static unsigned long pages_in_area(struct iom_machine *m, struct iom_cma *cma,
				   struct iom_mm *mm, uint64_t a, unsigned long n)
{
	unsigned long i, in = 0;

	for (i = 0; i < n; i++)
		in += pfn_in_area(cma, pfn_at(m, mm, a + i * PG));
	return in;
}

/* ---- allocation and release ---------------------------------------------- */

/*
 * What this proves: the whole area, aligned chunks and a released chunk
 * again come out at the pfns the bitmap says, as order-0 pages of one
 * reference, with iom_cma_used_pages()/iom_cma_maxchunk_pages() and the
 * cma_alloc_* counters following; a full area fails with ENOMEM and the
 * kernel's message; releasing everything leaves the machine clean.
 */
static void cma_alloc_whole_area_chunks_and_again(void **state)
{
	struct iom_machine *m = cma_machine(16, 4);
	struct iom_page *whole, *chunk[9], *again;
	struct iom_zone_info zi;
	struct iom_cma *cma;
	unsigned long base, ok0, fail0;
	int i;

	(void)state;
	assert_non_null(m);
	cma = iom_cma_get(m, 0);
	assert_non_null(cma);
	assert_ptr_equal(iom_cma_get_by_name(m, "test"), cma);
	assert_string_equal(iom_cma_get_name(cma), "test");
	assert_int_equal(area_count(cma), 1024);
	base = area_base(cma);
	assert_int_equal(iom_cma_used_pages(cma), 0);
	assert_int_equal(iom_cma_maxchunk_pages(cma), 1024);
	ok0 = iom_vm_event_count(m, IOM_CMA_ALLOC_SUCCESS);
	fail0 = iom_vm_event_count(m, IOM_CMA_ALLOC_FAIL);

	/* the whole area */
	whole = iom_cma_alloc(cma, 1024, 0, false);
	assert_non_null(whole);
	assert_int_equal(iom_page_to_pfn(m, whole), base);
	assert_pages_allocated(m, base, 1024);
	assert_int_equal(iom_cma_used_pages(cma), 1024);
	assert_int_equal(iom_cma_maxchunk_pages(cma), 0);
	iom_drain_all_pages(m);
	assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi), 0);
	assert_int_equal(zi.nr_free_cma, 0);
	/* the pages are usable memory */
	memset(iom_page_address(m, whole), 0x5a, 1024 * PG);
	assert_int_equal(iom_check_free_lists(m, NULL), 0);

	/* full: ENOMEM and the kernel's message */
	test_log_reset(&tlog);
	errno = 0;
	assert_null(iom_cma_alloc(cma, 1, 0, false));
	assert_int_equal(errno, ENOMEM);
	assert_true(test_log_contains(&tlog, "cma_alloc: test: alloc failed, req-size: 1 pages, ret: -12"));
	assert_true(test_log_contains(&tlog, "=> 0 free of 1024 total pages"));
	/* no_warn: quiet */
	test_log_reset(&tlog);
	assert_null(iom_cma_alloc(cma, 1, 0, true));
	assert_int_equal(tlog.len, 0);
	assert_int_equal(iom_cma_release(cma, whole, 1024), 0);
	assert_int_equal(iom_cma_used_pages(cma), 0);
	assert_int_equal(test_nr_free(m), iom_end_pfn(m) - iom_first_pfn(m));

	/* 100 pages aligned to 128: 8 chunks fit, at every 128 pages */
	for (i = 0; i < 8; i++) {
		chunk[i] = iom_cma_alloc(cma, 100, 7, false);
		assert_non_null(chunk[i]);
		assert_int_equal(iom_page_to_pfn(m, chunk[i]), base + 128UL * (unsigned long)i);
		assert_pages_allocated(m, base + 128UL * (unsigned long)i, 100);
	}
	assert_int_equal(iom_cma_used_pages(cma), 800);
	assert_int_equal(iom_cma_maxchunk_pages(cma), 28);
	errno = 0;
	assert_null(iom_cma_alloc(cma, 100, 7, true));
	assert_int_equal(errno, ENOMEM);
	/* a 28-page hole is still there */
	chunk[8] = iom_cma_alloc(cma, 28, 0, false);
	assert_non_null(chunk[8]);
	assert_int_equal(iom_page_to_pfn(m, chunk[8]), base + 100);

	/* release chunk 3: the next aligned request gets it back */
	assert_int_equal(iom_cma_release(cma, chunk[3], 100), 0);
	assert_int_equal(iom_cma_used_pages(cma), 728);
	again = iom_cma_alloc(cma, 100, 7, false);
	assert_ptr_equal(again, chunk[3]);
	assert_pages_allocated(m, base + 384, 100);

	for (i = 0; i < 8; i++)
		assert_int_equal(iom_cma_release(cma, chunk[i], 100), 0);
	assert_int_equal(iom_cma_release(cma, chunk[8], 28), 0);
	assert_int_equal(iom_cma_used_pages(cma), 0);
	assert_int_equal(iom_cma_maxchunk_pages(cma), 1024);
	/* 1 + 8 + 1 + 1 successes, 3 failures */
	assert_int_equal(iom_vm_event_count(m, IOM_CMA_ALLOC_SUCCESS), ok0 + 11);
	assert_int_equal(iom_vm_event_count(m, IOM_CMA_ALLOC_FAIL), fail0 + 3);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/*
 * What this proves: bad requests (NULL area, no pages, more than the area,
 * an impossible alignment) and bad releases (NULL, nothing, pages of
 * another area or machine, pages never allocated, a double release, a
 * release running past the allocation) fail with EINVAL and change
 * nothing; an alignment no pfn of the area meets fails with ENOMEM.
 */
static void cma_bad_requests_change_nothing(void **state)
{
	struct iom_machine *m = cma_machine(16, 4), *other = cma_machine(16, 4);
	struct iom_cma *cma, *ocma;
	struct iom_page *p, *normal, *op;
	unsigned long free0, ok0, fail0, base;

	(void)state;
	assert_non_null(m);
	assert_non_null(other);
	cma = iom_cma_get(m, 0);
	ocma = iom_cma_get(other, 0);
	base = area_base(cma);
	errno = 0;
	assert_null(iom_cma_get(m, 1));
	assert_int_equal(errno, EINVAL);
	assert_null(iom_cma_get(NULL, 0));
	errno = 0;
	assert_null(iom_cma_get_by_name(m, "nope"));
	assert_int_equal(errno, ENOENT);
	assert_null(iom_cma_get_by_name(m, NULL));
	assert_int_equal(iom_cma_get_size(NULL), 0);
	assert_null(iom_cma_get_name(NULL));

	free0 = test_nr_free(m);
	ok0 = iom_vm_event_count(m, IOM_CMA_ALLOC_SUCCESS);
	fail0 = iom_vm_event_count(m, IOM_CMA_ALLOC_FAIL);
	test_log_reset(&tlog);

	errno = 0;
	assert_null(iom_cma_alloc(NULL, 1, 0, false));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(iom_cma_alloc(cma, 0, 0, false));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(iom_cma_alloc(cma, 1025, 0, false));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(iom_cma_alloc(cma, 1, 63, false));
	assert_int_equal(errno, EINVAL);
	assert_true(test_log_contains(&tlog, "cma_alloc: test: bad request"));
	assert_int_equal(iom_vm_event_count(m, IOM_CMA_ALLOC_FAIL), fail0);
	/* 2^20 pages: the area (pfns 3072..4095) holds no such pfn */
	errno = 0;
	assert_null(iom_cma_alloc(cma, 1, 20, true));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(iom_vm_event_count(m, IOM_CMA_ALLOC_FAIL), fail0 + 1);
	/* the area's own base is aligned to 2^10: a 1-page request at order 10 fits */
	p = iom_cma_alloc(cma, 1, 10, false);
	assert_non_null(p);
	assert_int_equal(iom_page_to_pfn(m, p), base);
	assert_int_equal(iom_cma_release(cma, p, 1), 0);
	assert_int_equal(test_nr_free(m), free0);

	/* releases */
	p = iom_cma_alloc(cma, 10, 0, false);
	assert_non_null(p);
	normal = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_non_null(normal);
	op = iom_cma_alloc(ocma, 1, 0, false);
	assert_non_null(op);
	free0 = test_nr_free(m);
	test_log_reset(&tlog);
	assert_int_equal(iom_cma_release(NULL, p, 10), -EINVAL);
	assert_int_equal(iom_cma_release(cma, NULL, 10), -EINVAL);
	assert_int_equal(iom_cma_release(cma, p, 0), -EINVAL);
	assert_int_equal(iom_cma_release(cma, normal, 1), -EINVAL);	/* not CMA */
	assert_true(test_log_contains(&tlog, "are not in this area"));
	assert_int_equal(iom_cma_release(cma, op, 1), -EINVAL);		/* another machine */
	assert_int_equal(iom_cma_release(ocma, p, 1), -EINVAL);		/* another area */
	assert_int_equal(iom_cma_release(cma, p + 10, 1), -EINVAL);	/* never allocated */
	assert_int_equal(iom_cma_release(cma, p, 11), -EINVAL);		/* runs past */
	assert_int_equal(iom_cma_release(cma, p + 1000, 100), -EINVAL);	/* past the area */
	assert_true(test_log_contains(&tlog, "was not allocated from this area"));
	assert_int_equal(iom_cma_used_pages(cma), 10);
	assert_pages_allocated(m, iom_page_to_pfn(m, p), 10);
	assert_int_equal(iom_page_ref_count(normal), 1);
	assert_int_equal(test_nr_free(m), free0);
	/* a part, then the rest, then a double release */
	assert_int_equal(iom_cma_release(cma, p + 5, 5), 0);
	assert_int_equal(iom_cma_used_pages(cma), 5);
	assert_int_equal(iom_cma_release(cma, p, 5), 0);
	assert_int_equal(iom_cma_release(cma, p, 5), -EINVAL);
	assert_int_equal(iom_cma_used_pages(cma), 0);
	assert_int_equal(iom_vm_event_count(m, IOM_CMA_ALLOC_SUCCESS), ok0 + 2);

	/* iom_alloc_contig_range() / iom_free_contig_range() arguments */
	free0 = test_nr_free(m);
	assert_int_equal(iom_alloc_contig_range(NULL, base, base + 1, IOM_MIGRATE_CMA,
						IOM_GFP_KERNEL), -EINVAL);
	assert_int_equal(iom_alloc_contig_range(m, base, base, IOM_MIGRATE_CMA,
						IOM_GFP_KERNEL), -EINVAL);
	assert_int_equal(iom_alloc_contig_range(m, base, iom_end_pfn(m) + 1,
						IOM_MIGRATE_CMA, IOM_GFP_KERNEL), -EINVAL);
	assert_int_equal(iom_alloc_contig_range(m, base, base + 1, IOM_MIGRATE_UNMOVABLE,
						IOM_GFP_KERNEL), -EINVAL);
	assert_int_equal(iom_alloc_contig_range(m, base, base + 1, IOM_MIGRATE_CMA,
						0xffffffffu), -EINVAL);
	/* a CMA block is not MIGRATE_MOVABLE's to take */
	assert_int_equal(iom_alloc_contig_range(m, base, base + 1, IOM_MIGRATE_MOVABLE,
						IOM_GFP_KERNEL), -EBUSY);
	assert_int_equal(iom_free_contig_range(m, base, 0), -EINVAL);
	assert_int_equal(iom_free_contig_range(m, base, 1), -EINVAL);	/* free page */
	assert_int_equal(iom_free_contig_range(m, iom_end_pfn(m) - 1, 2), -EINVAL);
	assert_int_equal(iom_get_pageblock_migratetype(m, base), IOM_MIGRATE_CMA);
	assert_int_equal(test_nr_free(m), free0);

	assert_int_equal(iom_put_page(m, normal), 0);
	assert_int_equal(iom_cma_release(ocma, op, 1), 0);
	test_assert_machine_clean(m);
	test_assert_machine_clean(other);
	iom_machine_destroy(m);
	iom_machine_destroy(other);
}

/*
 * What this proves: the pages iom_cma_alloc() takes off the free lists are
 * checked like any new page: with poisoning on, a write into a free page
 * of the area is reported when the area is allocated.
 */
static void cma_alloc_checks_poisoned_free_pages(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct iom_cma *cma;
	struct iom_page *pages;

	(void)state;
	cfg.mem_size = 16 * MiB;
	cfg.nr_cma_areas = 1;
	cfg.cma[0].size = 4 * MiB;
	cfg.page_poison = 1;
	m = test_machine(0, &tlog, &cfg);
	assert_non_null(m);
	cma = iom_cma_get(m, 0);
	/* pages are poisoned when freed (memory never allocated is not) */
	pages = iom_cma_alloc(cma, 16, 0, false);
	assert_non_null(pages);
	assert_int_equal(iom_cma_release(cma, pages, 16), 0);
	iom_drain_all_pages(m);
	assert_int_equal(iom_machine_bug_count(m), 0);
	((char *)iom_page_address(m, iom_pfn_to_page(m, area_base(cma) + 7)))[100] = 1;
	pages = iom_cma_alloc(cma, 16, 0, false);
	assert_non_null(pages);
	assert_int_equal(iom_machine_bug_count(m), 1);
	assert_true(test_log_contains(&tlog, "a free page was written"));
	assert_int_equal(iom_cma_release(cma, pages, 16), 0);
	iom_machine_destroy(m);
}

/* ---- migration out of the area -------------------------------------------- */

/*
 * What this proves: a process's anonymous pages living in the area are
 * migrated out by iom_cma_alloc() of the whole area (reason
 * MR_CONTIG_RANGE: pgmigrate_success counts them), the process reads every
 * stamp back from pages outside the area, and the area's pages are ours.
 * With migration told to skip the copy, the same check fails: it can.
 */
static void run_process_pages_migrate_out(bool skip_copy)
{
	struct iom_machine *m = cma_machine(16, 4);
	struct iom_cma *cma = iom_cma_get(m, 0);
	const unsigned long n = 600;
	unsigned long i, in, mig0, bad = 0;
	struct iom_page *pages;
	struct iom_mm *mm;
	uint64_t a;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = process_in_cma(m, mm, n);
	in = pages_in_area(m, cma, mm, a, n);
	assert_true(in >= n - 8);
	mig0 = iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS);

	atomic_store(&m->test_skip_migrate_copy, skip_copy);
	pages = iom_cma_alloc(cma, 1024, 0, false);
	atomic_store(&m->test_skip_migrate_copy, false);
	assert_non_null(pages);
	assert_int_equal(iom_page_to_pfn(m, pages), area_base(cma));
	assert_pages_allocated(m, area_base(cma), 1024);
	assert_int_equal(iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS), mig0 + in);
	assert_int_equal(pages_in_area(m, cma, mm, a, n), 0);
	for (i = 0; i < n; i++)
		bad += check_stamp(mm, a + i * PG, i) != 0;
	if (skip_copy)
		assert_int_equal(bad, in);
	else
		assert_int_equal(bad, 0);
	assert_int_equal(iom_check_free_lists(m, NULL), 0);

	assert_int_equal(iom_cma_release(cma, pages, 1024), 0);
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void cma_alloc_migrates_process_pages_out(void **state)
{
	(void)state;
	run_process_pages_migrate_out(false);
}

static void cma_data_check_fails_without_the_copy(void **state)
{
	(void)state;
	run_process_pages_migrate_out(true);
}

/*
 * What this proves: a page of the area with an extra reference (a
 * short-term pin) cannot be migrated, so a request for the whole area
 * fails with EBUSY, "PFNs busy" and the cma_alloc message, the page stays
 * where it is with its data and nothing is lost; a request that another
 * run of the area can satisfy skips the busy run and succeeds there (the
 * retry path); after iom_put_page() the whole area can be had.
 */
static void pinned_page_makes_the_range_busy(void **state)
{
	struct iom_machine *m = cma_machine(16, 4);
	struct iom_cma *cma = iom_cma_get(m, 0);
	const unsigned long n = 900;
	unsigned long i, base = area_base(cma), pin_idx = n, pin_pfn = 0, free0;
	struct iom_page *pin, *pages;
	struct iom_mm *mm;
	char msg[96];
	uint64_t a;

	(void)state;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = process_in_cma(m, mm, n);
	/* a process page in the area's first pageblock */
	for (i = 0; i < n && pin_idx == n; i++) {
		unsigned long pfn = pfn_at(m, mm, a + i * PG);

		if (pfn >= base && pfn < base + 512) {
			pin_idx = i;
			pin_pfn = pfn;
		}
	}
	assert_true(pin_idx < n);
	pin = test_get_page_at(mm, a + pin_idx * PG);	/* the extra reference */

	/* the whole area: busy */
	free0 = test_nr_free(m);
	test_log_reset(&tlog);
	errno = 0;
	assert_null(iom_cma_alloc(cma, 1024, 0, false));
	assert_int_equal(errno, EBUSY);
	snprintf(msg, sizeof(msg), "alloc_contig_range: [%lx, %lx) PFNs busy",
		 base, base + 1024);
	assert_true(test_log_contains(&tlog, msg));
	assert_true(test_log_contains(&tlog, "cma_alloc: test: alloc failed, req-size: 1024 pages, ret: -16"));
	assert_int_equal(iom_cma_used_pages(cma), 0);
	assert_int_equal(pfn_at(m, mm, a + pin_idx * PG), pin_pfn);
	assert_int_equal(iom_page_ref_count(pin), 2);
	for (i = 0; i < n; i++)
		assert_int_equal(check_stamp(mm, a + i * PG, i), 0);
	/* the other pages moved out; one page in, one page out */
	assert_int_equal(pages_in_area(m, cma, mm, a, n), 1);
	assert_int_equal(test_nr_free(m), free0);
	assert_int_equal(iom_get_pageblock_migratetype(m, base), IOM_MIGRATE_CMA);

	/* 512 pages aligned to 512: the first block is busy, the second is not */
	test_log_reset(&tlog);
	pages = iom_cma_alloc(cma, 512, 9, false);
	assert_non_null(pages);
	assert_int_equal(iom_page_to_pfn(m, pages), base + 512);	/* the retry */
	snprintf(msg, sizeof(msg), "alloc_contig_range: [%lx, %lx) PFNs busy",
		 base, base + 512);
	assert_true(test_log_contains(&tlog, msg));
	assert_false(test_log_contains(&tlog, "alloc failed"));
	assert_int_equal(iom_cma_used_pages(cma), 512);
	assert_int_equal(iom_cma_release(cma, pages, 512), 0);

	/* unpinned: the whole area */
	assert_int_equal(iom_put_page(m, pin), 0);
	pages = iom_cma_alloc(cma, 1024, 0, false);
	assert_non_null(pages);
	assert_int_equal(pages_in_area(m, cma, mm, a, n), 0);
	for (i = 0; i < n; i++)
		assert_int_equal(check_stamp(mm, a + i * PG, i), 0);
	assert_int_equal(iom_cma_release(cma, pages, 1024), 0);

	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/*
 * What this proves (seed 002): a short-term pin (iom_pin_user_pages
 * without FOLL_LONGTERM) of a process page in the area makes the whole
 * area busy ("PFNs busy", EBUSY) until it is unpinned; a FOLL_LONGTERM pin
 * of the process's pages moves every one of them out of the area first,
 * so iom_cma_alloc() of the whole area succeeds while they stay pinned,
 * and the process still reads its data.
 */
static void short_term_pin_busy_long_term_pin_moves_out(void **state)
{
	static struct iom_page *pinned[900];
	struct iom_machine *m = cma_machine(16, 4);
	struct iom_cma *cma = iom_cma_get(m, 0);
	const unsigned long n = 900;
	unsigned long i, base = area_base(cma), idx = n;
	struct iom_page *pin, *pages;
	struct iom_mm *mm;
	char msg[96];
	uint64_t a;

	(void)state;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = process_in_cma(m, mm, n);
	for (i = 0; i < n && idx == n; i++)
		if (pfn_in_area(cma, pfn_at(m, mm, a + i * PG)))
			idx = i;
	assert_true(idx < n);

	/* short-term pin: busy */
	assert_int_equal(iom_pin_user_pages(mm, a + idx * PG, 1, IOM_FOLL_WRITE, &pin), 1);
	assert_true(iom_page_maybe_dma_pinned(pin));
	assert_true(pfn_in_area(cma, iom_page_to_pfn(m, pin)));
	test_log_reset(&tlog);
	errno = 0;
	assert_null(iom_cma_alloc(cma, 1024, 0, true));
	assert_int_equal(errno, EBUSY);
	snprintf(msg, sizeof(msg), "alloc_contig_range: [%lx, %lx) PFNs busy",
		 base, base + 1024);
	assert_true(test_log_contains(&tlog, msg));
	assert_int_equal(pfn_at(m, mm, a + idx * PG), iom_page_to_pfn(m, pin));
	iom_unpin_user_page(m, pin);
	pages = iom_cma_alloc(cma, 1024, 0, false);
	assert_non_null(pages);
	assert_int_equal(iom_cma_release(cma, pages, 1024), 0);

	/* back into the area, then a long-term pin of everything */
	iom_mm_destroy(mm);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = process_in_cma(m, mm, n);
	assert_true(pages_in_area(m, cma, mm, a, n) > n / 2);
	assert_int_equal(iom_pin_user_pages(mm, a, n, IOM_FOLL_WRITE | IOM_FOLL_LONGTERM,
					    pinned), (long)n);
	assert_int_equal(pages_in_area(m, cma, mm, a, n), 0);
	for (i = 0; i < n; i++) {
		assert_false(pfn_in_area(cma, iom_page_to_pfn(m, pinned[i])));
		assert_int_equal(check_stamp(mm, a + i * PG, i), 0);
	}
	test_log_reset(&tlog);
	pages = iom_cma_alloc(cma, 1024, 0, false);
	assert_non_null(pages);
	assert_false(test_log_contains(&tlog, "PFNs busy"));
	assert_int_equal(iom_cma_release(cma, pages, 1024), 0);
	iom_unpin_user_pages(m, pinned, n);
	for (i = 0; i < n; i++)
		assert_int_equal(check_stamp(mm, a + i * PG, i), 0);

	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- alloc_contig_range() on movable memory ------------------------------- */

/*
 * What this proves: iom_alloc_contig_range(MIGRATE_MOVABLE) of a
 * pageblock holding a process's pages migrates them out and hands over
 * the block; an unaligned range takes only its own pages (the rest of the
 * free blocks around it stays free); a pinned LRU page makes the range
 * "PFNs busy"; a pageblock with an unmovable page cannot be isolated
 * (-EBUSY); a failure loses no page and restores the pageblock's type.
 */
static void alloc_contig_range_on_movable_blocks(void **state)
{
	struct iom_machine *m = cma_machine(16, 0);
	const unsigned long n = 700, nr_pb = 1UL << iom_pageblock_order(m);
	unsigned long i, pfn, pb, free0, total = iom_end_pfn(m) - iom_first_pfn(m);
	struct iom_page *pin, *unmov;
	struct iom_mm *mm;
	char msg[96];
	uint64_t a;

	(void)state;
	assert_non_null(m);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, n * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		      IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	for (i = 0; i < n; i++)
		assert_int_equal(write_stamp(mm, a + i * PG, i), 0);

	/* the pageblock of page 300 */
	pb = pfn_at(m, mm, a + 300 * PG) & ~(nr_pb - 1);
	assert_int_equal(iom_get_pageblock_migratetype(m, pb), IOM_MIGRATE_MOVABLE);

	/* pinned: busy, nothing lost */
	pin = test_get_page_at(mm, a + 300 * PG);
	pfn = iom_page_to_pfn(m, pin);
	free0 = test_nr_free(m);
	test_log_reset(&tlog);
	assert_int_equal(iom_alloc_contig_range(m, pb, pb + nr_pb, IOM_MIGRATE_MOVABLE,
						IOM_GFP_KERNEL), -EBUSY);
	snprintf(msg, sizeof(msg), "alloc_contig_range: [%lx, %lx) PFNs busy",
		 pb, pb + nr_pb);
	assert_true(test_log_contains(&tlog, msg));
	assert_int_equal(pfn_at(m, mm, a + 300 * PG), pfn);
	assert_int_equal(test_nr_free(m), free0);
	assert_int_equal(iom_get_pageblock_migratetype(m, pb), IOM_MIGRATE_MOVABLE);
	for (i = 0; i < n; i++)
		assert_int_equal(check_stamp(mm, a + i * PG, i), 0);
	assert_int_equal(iom_put_page(m, pin), 0);

	/* unpinned: the block is ours, the process's pages are elsewhere */
	assert_int_equal(iom_alloc_contig_range(m, pb, pb + nr_pb, IOM_MIGRATE_MOVABLE,
						IOM_GFP_KERNEL), 0);
	assert_pages_allocated(m, pb, nr_pb);
	for (i = 0; i < n; i++) {
		unsigned long p = pfn_at(m, mm, a + i * PG);

		assert_false(p >= pb && p < pb + nr_pb);
		assert_int_equal(check_stamp(mm, a + i * PG, i), 0);
	}
	assert_int_equal(iom_get_pageblock_migratetype(m, pb), IOM_MIGRATE_MOVABLE);
	assert_int_equal(iom_free_contig_range(m, pb, nr_pb), 0);
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);

	/* an unaligned range of free memory: only its own pages are taken */
	pb = iom_first_pfn(m) + 4 * nr_pb;
	assert_int_equal(iom_alloc_contig_range(m, pb + 3, pb + nr_pb + 100,
						IOM_MIGRATE_MOVABLE, IOM_GFP_KERNEL), 0);
	assert_pages_allocated(m, pb + 3, nr_pb + 97);
	assert_int_equal(test_nr_free(m), total - (nr_pb + 97));
	assert_int_equal(iom_page_ref_count(iom_pfn_to_page(m, pb + 2)), 0);
	assert_int_equal(iom_page_ref_count(iom_pfn_to_page(m, pb + nr_pb + 100)), 0);
	/* an extra reference: reported, freed when it goes */
	assert_int_equal(iom_get_page(m, iom_pfn_to_page(m, pb + 3)), 0);
	test_log_reset(&tlog);
	assert_int_equal(iom_free_contig_range(m, pb + 3, nr_pb + 97), 0);
	assert_true(test_log_contains(&tlog, "free_contig_range: 1 pages are still in use!"));
	assert_int_equal(iom_put_page(m, iom_pfn_to_page(m, pb + 3)), 0);
	test_assert_machine_clean(m);

	/* an unmovable page: its pageblock cannot be isolated */
	unmov = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_non_null(unmov);
	pfn = iom_page_to_pfn(m, unmov);
	pb = pfn & ~(nr_pb - 1);
	free0 = test_nr_free(m);
	assert_int_equal(iom_alloc_contig_range(m, pfn, pfn + 1, IOM_MIGRATE_MOVABLE,
						IOM_GFP_KERNEL), -EBUSY);
	assert_int_equal(iom_alloc_contig_range(m, pb, pb + nr_pb, IOM_MIGRATE_MOVABLE,
						IOM_GFP_KERNEL), -EBUSY);
	assert_int_equal(iom_page_ref_count(unmov), 1);
	assert_int_equal(test_nr_free(m), free0);
	assert_int_not_equal(iom_get_pageblock_migratetype(m, pb), IOM_MIGRATE_ISOLATE);
	assert_int_equal(iom_put_page(m, unmov), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- concurrency ---------------------------------------------------------- */

#define NR_WRITERS	2
#define WRITER_PAGES	48
#define WRITER_ROUNDS	40
#define CMA_ROUNDS	12

struct writer {
	struct iom_machine *m;
	int id;
	atomic_int *ready;
	atomic_bool *first_done;
	atomic_bool *stop;
	/* results, checked by the main thread */
	int err;
	unsigned long bad;
	unsigned long rounds;
};

static uint64_t writer_stamp(int id, unsigned long round, unsigned long i)
{
	return ((uint64_t)id << 48) | ((uint64_t)round << 20) | i;
}

/*
 * A writer: its pages are faulted in (mostly into the CMA area, which the
 * allocator prefers while it holds most free memory), then written with
 * a new stamp and read back, round after round; every few rounds the
 * mapping is replaced so new pages come from the area again. A write lost
 * by a migration shows as a stamp that does not read back.
 */
static void *writer_fn(void *arg)
{
	struct writer *w = arg;
	struct iom_mm *mm;
	uint64_t a = 0;
	unsigned long r, i;
	int ret;

	if ((w->err = iom_mm_create(w->m, &mm)))
		return NULL;
	for (r = 0; r < WRITER_ROUNDS || !atomic_load(w->stop); r++) {
		if (r % 8 == 0) {
			/* no fault or free until the first allocation is done */
			while (r && !atomic_load(w->first_done))
				sched_yield();
			if (a && (ret = iom_munmap(mm, a, WRITER_PAGES * PG)))
				goto fail;
			ret = iom_mmap(mm, 0, WRITER_PAGES * PG,
				       IOM_PROT_READ | IOM_PROT_WRITE,
				       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0, &a);
			if (ret)
				goto fail;
		}
		for (i = 0; i < WRITER_PAGES; i++)
			if ((ret = write_stamp(mm, a + i * PG, writer_stamp(w->id, r, i))))
				goto fail;
		if (r == 0)
			atomic_fetch_add(w->ready, 1);
		for (i = 0; i < WRITER_PAGES; i++) {
			ret = check_stamp(mm, a + i * PG, writer_stamp(w->id, r, i));
			if (ret < 0)
				goto fail;
			w->bad += (unsigned long)ret;
		}
		w->rounds++;
	}
	iom_mm_destroy(mm);
	return NULL;
fail:
	w->err = ret;
	iom_mm_destroy(mm);
	return NULL;
}

/*
 * What this proves: while two threads write and read back stamped pages
 * that live in the CMA area, the main thread allocates the whole area
 * (migrating their pages out under them) and releases it again, over and
 * over: no write is lost, every allocation that succeeds hands over the
 * whole area, and the first one (made while the writers only write, so no
 * page of the area can be busy) succeeds and migrates their pages.
 */
static void cma_alloc_under_concurrent_writers(void **state)
{
	struct iom_machine *m = cma_machine(16, 12);
	struct iom_cma *cma = iom_cma_get(m, 0);
	struct writer w[NR_WRITERS];
	pthread_t tid[NR_WRITERS];
	atomic_int ready = 0;
	atomic_bool first_done = false, stop = false;
	unsigned long mig0, ok = 0, r;
	int i;

	(void)state;
	assert_non_null(cma);
	mig0 = iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS);
	for (i = 0; i < NR_WRITERS; i++) {
		w[i] = (struct writer){ .m = m, .id = i + 1, .ready = &ready,
				      .first_done = &first_done, .stop = &stop };
		assert_int_equal(pthread_create(&tid[i], NULL, writer_fn, &w[i]), 0);
	}
	while (atomic_load(&ready) < NR_WRITERS)
		sched_yield();

	for (r = 0; r < CMA_ROUNDS; r++) {
		struct iom_page *pages = iom_cma_alloc(cma, area_count(cma), 0, true);

		if (r == 0) {
			assert_non_null(pages);
			assert_true(iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS) > mig0);
		}
		if (!pages)
			continue;
		ok++;
		assert_int_equal(iom_page_to_pfn(m, pages), area_base(cma));
		assert_int_equal(iom_cma_used_pages(cma), area_count(cma));
		assert_int_equal(iom_cma_release(cma, pages, area_count(cma)), 0);
		atomic_store(&first_done, true);
	}
	atomic_store(&stop, true);
	for (i = 0; i < NR_WRITERS; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);

	for (i = 0; i < NR_WRITERS; i++) {
		assert_int_equal(w[i].err, 0);
		assert_int_equal(w[i].bad, 0);
		assert_true(w[i].rounds >= WRITER_ROUNDS);
	}
	assert_true(ok >= 1);
	assert_true(iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS) > mig0);
	assert_int_equal(iom_cma_used_pages(cma), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cma_alloc_whole_area_chunks_and_again),
		cmocka_unit_test(cma_bad_requests_change_nothing),
		cmocka_unit_test(cma_alloc_checks_poisoned_free_pages),
		cmocka_unit_test(cma_alloc_migrates_process_pages_out),
		cmocka_unit_test(cma_data_check_fails_without_the_copy),
		cmocka_unit_test(pinned_page_makes_the_range_busy),
		cmocka_unit_test(short_term_pin_busy_long_term_pin_moves_out),
		cmocka_unit_test(alloc_contig_range_on_movable_blocks),
		cmocka_unit_test(cma_alloc_under_concurrent_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
