/* SPDX-License-Identifier: MIT */
/*
 * The machine: defaults, configuration errors (each named in a message and
 * leaking nothing), the metadata hook, pfn/page/phys/content arithmetic,
 * a 64 GiB machine on a small host, and two machines side by side.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "mm/internal.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static struct test_log tlog;

/* A metadata hook that counts what is outstanding. */
struct counting_ops {
	long outstanding_bytes;
	long outstanding_allocs;
	long fail_after;	/* fail the Nth allocation; -1: never */
};

static void *count_alloc(void *priv, size_t size, size_t align, bool zero)
{
	struct counting_ops *c = priv;
	void *p;

	if (c->fail_after == 0)
		return NULL;
	if (c->fail_after > 0)
		c->fail_after--;
	if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size))
		return NULL;
	if (zero)
		memset(p, 0, size);
	c->outstanding_bytes += (long)size;
	c->outstanding_allocs++;
	return p;
}

static void count_free(void *priv, void *ptr, size_t size)
{
	struct counting_ops *c = priv;

	c->outstanding_bytes -= (long)size;
	c->outstanding_allocs--;
	free(ptr);
}

static void struct_page_fits_in_64_bytes(void **state)
{
	assert_true(sizeof(struct iom_page) <= 64);
}

static void defaults_are_the_kernels(void **state)
{
	struct iom_machine_config cfg;
	struct iom_machine *m;

	iom_machine_config_init(&cfg);
	assert_int_equal(cfg.mem_size, GiB);
	assert_int_equal(cfg.pageblock_order, 9);
	assert_int_equal(cfg.max_order, 10);
	assert_int_equal(cfg.nr_nodes, 1);
	assert_int_equal(iom_machine_create(NULL, &m), 0);
	assert_int_equal(iom_pageblock_order(m), 9);
	assert_int_equal(iom_max_order(m), 10);
	assert_int_equal(iom_nr_nodes(m), 1);
	assert_int_equal(iom_end_pfn(m) - iom_first_pfn(m), GiB >> 12);
	iom_machine_get_config(m, &cfg);
	assert_int_equal(cfg.min_free_kbytes, 4096);	/* sqrt(1 GiB in kB * 16) */
	assert_non_null(iom_version_string());
	iom_machine_destroy(m);
	iom_machine_destroy(NULL);
}

static void bad_configs_are_refused_by_name(void **state)
{
	static const struct {
		const char *field;
		struct iom_machine_config cfg;
	} bad[] = {
		{ "mem_size", { .mem_size = 3 * MiB } },
		{ "nr_nodes", { .mem_size = 16 * MiB, .nr_nodes = 17 } },
		{ "mem_size", { .mem_size = 12 * MiB, .nr_nodes = 2 } },
		{ "max_order", { .max_order = 21 } },
		{ "pageblock_order", { .pageblock_order = 11 } },
		{ "movable_size", { .mem_size = 16 * MiB, .movable_size = 2 * MiB } },
		{ "movable_size", { .mem_size = 16 * MiB, .movable_size = 16 * MiB } },
		{ "phys_base", { .mem_size = 16 * MiB, .phys_base = 4096 } },
		{ "nr_cma_areas", { .mem_size = 16 * MiB, .nr_cma_areas = 9 } },
		{ "pcp_high", { .mem_size = 16 * MiB, .pcp_batch = 8, .pcp_high = 4 } },
		{ "mem_ops", { .mem_size = 16 * MiB, .mem_ops = { .alloc = count_alloc } } },
	};
	struct counting_ops counts = { .fail_after = -1 };
	struct iom_machine *m = (struct iom_machine *)&counts;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct iom_machine_config cfg = bad[i].cfg;

		cfg.log = test_log_hook;
		cfg.log_priv = &tlog;
		test_log_reset(&tlog);
		m = (struct iom_machine *)&counts;
		assert_int_equal(iom_machine_create(&cfg, &m), -EINVAL);
		assert_null(m);
		assert_true(test_log_contains(&tlog, bad[i].field));
	}
	assert_int_equal(iom_machine_create(NULL, NULL), -EINVAL);
}

static void metadata_goes_through_the_hook_and_all_returns(void **state)
{
	struct counting_ops counts = { .fail_after = -1 };
	struct iom_machine_config cfg = { 0 };
	struct iom_machine_memcost cost;
	struct iom_machine *m;
	struct iom_page *p;

	cfg.mem_size = 64 * MiB;
	cfg.mem_ops.alloc = count_alloc;
	cfg.mem_ops.free = count_free;
	cfg.mem_ops.priv = &counts;
	assert_int_equal(iom_machine_create(&cfg, &m), 0);
	assert_true(counts.outstanding_allocs > 0);
	iom_machine_memcost(m, &cost);
	assert_int_equal(cost.metadata_bytes, counts.outstanding_bytes);
	assert_true(cost.metadata_peak >= cost.metadata_bytes);
	assert_int_equal(cost.nr_pages, 16384);
	assert_int_equal(cost.arena_bytes, 64 * MiB);
	/* mem_map dominates: about one struct iom_page per page */
	assert_true(cost.metadata_bytes >= 16384 * sizeof(struct iom_page));
	assert_true(cost.metadata_bytes < 16384 * 64 + 64 * 1024);
	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_non_null(p);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	iom_machine_destroy(m);
	assert_int_equal(counts.outstanding_allocs, 0);
	assert_int_equal(counts.outstanding_bytes, 0);
}

static void failed_metadata_allocation_leaks_nothing(void **state)
{
	struct counting_ops counts;
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	long n;

	cfg.mem_size = 16 * MiB;
	cfg.mem_ops.alloc = count_alloc;
	cfg.mem_ops.free = count_free;
	cfg.mem_ops.priv = &counts;
	/* Fail the 1st, 2nd, ... allocation until creation succeeds. */
	for (n = 0; n < 64; n++) {
		int ret;

		memset(&counts, 0, sizeof(counts));
		counts.fail_after = n;
		ret = iom_machine_create(&cfg, &m);
		if (ret == 0) {
			iom_machine_destroy(m);
			assert_int_equal(counts.outstanding_allocs, 0);
			break;
		}
		assert_int_equal(ret, -ENOMEM);
		assert_int_equal(counts.outstanding_allocs, 0);
		assert_int_equal(counts.outstanding_bytes, 0);
	}
	assert_true(n > 2 && n < 64);
}

static void pfn_page_phys_and_content_agree(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	unsigned long first, end, pfn;
	struct iom_page *p;
	char *a, *b;

	cfg.mem_size = 16 * MiB;
	cfg.phys_base = 4 * GiB;
	m = test_machine(0, &tlog, &cfg);
	assert_non_null(m);
	first = iom_first_pfn(m);
	end = iom_end_pfn(m);
	assert_int_equal(first, (4 * GiB) >> 12);
	assert_int_equal(end - first, 4096);
	for (pfn = first; pfn < end; pfn += 777) {
		p = iom_pfn_to_page(m, pfn);
		assert_non_null(p);
		assert_int_equal(iom_page_to_pfn(m, p), pfn);
		assert_int_equal(iom_page_to_phys(m, p), (uint64_t)pfn << 12);
		assert_ptr_equal(iom_phys_to_page(m, ((uint64_t)pfn << 12) + 123), p);
		a = iom_page_address(m, p);
		assert_ptr_equal(iom_virt_to_page(m, a + 4095), p);
	}
	/* Content of consecutive pfns is contiguous. */
	a = iom_page_address(m, iom_pfn_to_page(m, first));
	b = iom_page_address(m, iom_pfn_to_page(m, first + 1));
	assert_ptr_equal(a + IOM_PAGE_SIZE, b);
	/* Outside memory: NULL and -1, never a crash. */
	assert_null(iom_pfn_to_page(m, first - 1));
	assert_null(iom_pfn_to_page(m, end));
	assert_false(iom_pfn_valid(m, end));
	assert_null(iom_phys_to_page(m, 0));
	assert_null(iom_virt_to_page(m, &cfg));
	assert_int_equal(iom_page_to_pfn(m, (struct iom_page *)&cfg), (unsigned long)-1);
	assert_int_equal(iom_page_to_phys(m, (struct iom_page *)&cfg), UINT64_MAX);
	assert_null(iom_page_address(m, (struct iom_page *)&cfg));
	/* An allocation's physical address matches its pfn. */
	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 4);
	assert_true(iom_page_to_phys(m, p) >= 4 * GiB);
	assert_int_equal(iom_page_to_phys(m, p) % (16 * IOM_PAGE_SIZE), 0);
	assert_int_equal(iom___free_pages(m, p, 4), 0);
	iom_machine_destroy(m);
}

static long rss_pages(void)
{
	long size, rss;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss;
}

static void machine_of_64_gib_fits_on_a_small_host(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine_memcost cost;
	struct iom_machine *m;
	struct iom_page *p[4];
	long before = rss_pages(), after;
	int i;

	cfg.mem_size = 64 * GiB;
	m = test_machine(0, &tlog, &cfg);
	assert_non_null(m);
	iom_machine_memcost(m, &cost);
	assert_int_equal(cost.nr_pages, 16ULL << 20);
	assert_true(cost.metadata_bytes / cost.nr_pages <= 64);
	after = rss_pages();
	/* Only the free blocks' head pages of mem_map were touched. */
	assert_true((after - before) * 4096L < 512L * (long)MiB);
	for (i = 0; i < 4; i++) {
		p[i] = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, (unsigned int)i * 3);
		assert_non_null(p[i]);
		memset(iom_page_address(m, p[i]), i, IOM_PAGE_SIZE);
	}
	for (i = 0; i < 4; i++)
		assert_int_equal(iom___free_pages(m, p[i], (unsigned int)i * 3), 0);
	iom_machine_destroy(m);
}

/* ---- two machines ------------------------------------------------------- */

struct side {
	struct iom_machine *m;
	unsigned char fill;
	unsigned long allocs, bad;
};

static void *side_worker(void *arg)
{
	struct side *s = arg;
	struct iom_page *held[32];
	int i, j, n;

	for (i = 0; i < 2000; i++) {
		n = 0;
		for (j = 0; j < 32; j++) {
			held[n] = iom_alloc_pages(s->m, IOM_GFP_KERNEL, (unsigned int)j % 3);
			if (!held[n])
				continue;
			memset(iom_page_address(s->m, held[n]), s->fill,
			       IOM_PAGE_SIZE << (j % 3));
			s->allocs++;
			n++;
		}
		for (j = 0; j < n; j++) {
			unsigned char *c = iom_page_address(s->m, held[j]);
			unsigned int order = iom_compound_order(held[j]);
			size_t k;

			for (k = 0; k < (IOM_PAGE_SIZE << order); k += 511)
				if (c[k] != s->fill)
					s->bad++;
			if (iom___free_pages(s->m, held[j], order))
				s->bad++;
		}
	}
	return NULL;
}

static void two_machines_do_not_interfere(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct side a = { 0 }, b = { 0 }, a_main = { 0 };
	pthread_t ta, tb;
	struct iom_page *pa;

	cfg.mem_size = 16 * MiB;
	a.m = test_machine(0, NULL, &cfg);
	cfg.mem_size = 32 * MiB;
	cfg.nr_nodes = 2;
	b.m = test_machine(0, NULL, &cfg);
	assert_non_null(a.m);
	assert_non_null(b.m);
	a.fill = 0xa1;
	b.fill = 0xb2;
	pthread_create(&ta, NULL, side_worker, &a);
	pthread_create(&tb, NULL, side_worker, &b);
	/* The main thread uses machine a too, beside the thread on a. */
	a_main.m = a.m;
	a_main.fill = 0xc3;
	side_worker(&a_main);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a_main.bad, 0);
	assert_int_equal(a.bad, 0);
	assert_int_equal(b.bad, 0);
	assert_int_equal(iom_vm_event_count(a.m, IOM_PGALLOC_NORMAL),
			 iom_vm_event_count(a.m, IOM_PGFREE));
	assert_int_equal(iom_vm_event_count(b.m, IOM_PGALLOC_NORMAL),
			 iom_vm_event_count(b.m, IOM_PGFREE));
	assert_true(iom_vm_event_count(a.m, IOM_PGALLOC_NORMAL) !=
		    iom_vm_event_count(b.m, IOM_PGALLOC_NORMAL));
	/* A page of one machine is foreign to the other. */
	pa = iom_alloc_pages(a.m, IOM_GFP_KERNEL, 0);
	assert_int_equal(iom___free_pages(b.m, pa, 0), -EFAULT);
	assert_int_equal(iom_page_to_pfn(b.m, pa), (unsigned long)-1);
	assert_int_equal(iom___free_pages(a.m, pa, 0), 0);
	iom_drain_all_pages(a.m);
	iom_drain_all_pages(b.m);
	assert_int_equal(iom_check_free_lists(a.m, NULL), 0);
	assert_int_equal(iom_check_free_lists(b.m, NULL), 0);
	assert_int_equal(iom_machine_bug_count(a.m), 0);
	assert_int_equal(iom_machine_bug_count(b.m), 0);
	iom_machine_destroy(a.m);
	iom_machine_destroy(b.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(struct_page_fits_in_64_bytes),
		cmocka_unit_test(defaults_are_the_kernels),
		cmocka_unit_test(bad_configs_are_refused_by_name),
		cmocka_unit_test(metadata_goes_through_the_hook_and_all_returns),
		cmocka_unit_test(failed_metadata_allocation_leaks_nothing),
		cmocka_unit_test(pfn_page_phys_and_content_agree),
		cmocka_unit_test(machine_of_64_gib_fits_on_a_small_host),
		cmocka_unit_test(two_machines_do_not_interfere),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
