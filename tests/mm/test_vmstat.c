/* SPDX-License-Identifier: MIT */
/*
 * mm/vmstat.c: the fragmentation formulas on hand-made counts, and the
 * reports (/proc/buddyinfo, pagetypeinfo, vmstat, zoneinfo, extfrag) of
 * tiny machines whose free lists the test puts into a known shape.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "mm/internal.h"

#define KIB(x) ((uint64_t)(x) << 10)

/*
 * One MAX_ORDER block of 8 pages (max_order 3) in two pageblocks of 4
 * (pageblock_order 2), watermarks off: every free page is visible.
 */
static struct iom_machine *tiny_machine(uint64_t mem, unsigned int nr_nodes,
					uint64_t movable)
{
	struct iom_machine_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = mem;
	cfg.nr_nodes = nr_nodes;
	cfg.movable_size = movable;
	cfg.max_order = 3;
	cfg.pageblock_order = 2;
	return test_machine(0, NULL, &cfg);
}

/* The whole report as a string (freed by the caller). */
static char *read_report(struct iom_machine *m, enum iom_proc_file file)
{
	ssize_t len = iom_proc_read(m, file, NULL, 0);
	char *buf;

	assert_true(len >= 0);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(iom_proc_read(m, file, buf, (size_t)len + 1), len);
	assert_int_equal(strlen(buf), (size_t)len);
	return buf;
}

static void assert_report(struct iom_machine *m, enum iom_proc_file file,
			  const char *expected)
{
	char *text = read_report(m, file);

	assert_string_equal(text, expected);
	free(text);
}

static void assert_report_contains(struct iom_machine *m,
				   enum iom_proc_file file, const char *needle)
{
	char *text = read_report(m, file);

	if (!strstr(text, needle))
		fail_msg("report %d lacks \"%s\":\n%s", (int)file, needle, text);
	free(text);
}

/*
 * Allocate all 8 pages of a tiny machine as order-0 pages and return them
 * indexed by pfn, so the test can free exactly the pages it wants.
 */
static void alloc_all_by_pfn(struct iom_machine *m, iom_gfp_t gfp,
			     struct iom_page *by_pfn[8])
{
	int i;

	memset(by_pfn, 0, 8 * sizeof(by_pfn[0]));
	for (i = 0; i < 8; i++) {
		struct iom_page *page = iom_alloc_pages(m, gfp, 0);
		unsigned long pfn;

		assert_non_null(page);
		pfn = iom_page_to_pfn(m, page);
		assert_true(pfn < 8);
		assert_null(by_pfn[pfn]);
		by_pfn[pfn] = page;
	}
}

static void free_pfns(struct iom_machine *m, struct iom_page *by_pfn[8],
		      const unsigned long *pfns, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		assert_int_equal(iom___free_pages(m, by_pfn[pfns[i]], 0), 0);
		by_pfn[pfns[i]] = NULL;
	}
	/* Freed order-0 pages sit in this thread's cache until drained. */
	iom_drain_local_pages(m);
}

/*
 * Free pfns 2, 3, 5 and 7 of 8: 2+3 merge into one order-1 block, 5 and 7
 * stay order 0 because their buddies 4 and 6 are allocated.
 */
static const unsigned long pattern_pfns[] = { 2, 3, 5, 7 };
static const unsigned long rest_pfns[] = { 0, 1, 4, 6 };

/* ---- names -------------------------------------------------------------- */

static void vm_event_names_are_the_kernel_counters(void **state)
{
	(void)state;
	assert_string_equal(iom_vm_event_name(IOM_PGALLOC_NORMAL),
			    "pgalloc_normal");
	assert_string_equal(iom_vm_event_name(IOM_PGFREE), "pgfree");
	assert_string_equal(iom_vm_event_name(IOM_EXTFRAG_EVENTS),
			    "mm_page_alloc_extfrag");
	assert_string_equal(iom_vm_event_name(IOM_EXTFRAG_CHANGE_OWNERSHIP),
			    "mm_page_alloc_extfrag_change_ownership");
	assert_string_equal(iom_vm_event_name(IOM_DRAIN_ALL_PAGES),
			    "drain_all_pages");
	assert_null(iom_vm_event_name(-1));
	assert_null(iom_vm_event_name(IOM_NR_VM_EVENT_ITEMS));
	assert_int_equal(iom_vm_event_count(NULL, IOM_PGFREE), 0);
}

/* ---- the formulas ------------------------------------------------------- */

static void contig_page_info_counts_pages_and_suitable_blocks(void **state)
{
	const unsigned long nr_free[] = { 4, 2, 0, 1 };
	struct iom_contig_page_info info;

	(void)state;
	iom_fill_contig_page_info(nr_free, 3, 2, &info);
	assert_int_equal(info.free_pages, 4 + 2 * 2 + 8);
	assert_int_equal(info.free_blocks_total, 7);
	assert_int_equal(info.free_blocks_suitable, 2); /* one order 3 = 2 x order 2 */

	iom_fill_contig_page_info(nr_free, 3, 0, &info);
	assert_int_equal(info.free_blocks_suitable, 16);
	/* An order above every free block: nothing suitable. */
	iom_fill_contig_page_info(nr_free, 3, 4, &info);
	assert_int_equal(info.free_blocks_suitable, 0);
	assert_int_equal(info.free_pages, 16);
}

static void unusable_index_is_share_of_free_pages_in_small_blocks(void **state)
{
	const unsigned long nr_free[] = { 4, 2, 0, 1 };
	struct iom_contig_page_info info;
	unsigned int order;
	/* 16 free pages; usable at order 1: 2x2 + 8 = 12, order 2 and 3: 8. */
	const int expected[] = { 0, 250, 500, 500 };

	(void)state;
	for (order = 0; order <= 3; order++) {
		iom_fill_contig_page_info(nr_free, 3, order, &info);
		assert_int_equal(iom_unusable_free_index(order, &info),
				 expected[order]);
	}
}

static void unusable_index_is_1000_when_nothing_is_free(void **state)
{
	const unsigned long nr_free[] = { 0, 0, 0, 0 };
	struct iom_contig_page_info info;

	(void)state;
	iom_fill_contig_page_info(nr_free, 3, 0, &info);
	assert_int_equal(info.free_pages, 0);
	assert_int_equal(iom_unusable_free_index(0, &info), 1000);
	assert_int_equal(iom_fragmentation_index(0, &info), 0);
	assert_int_equal(iom_unusable_free_index(0, NULL), 1000);
	assert_int_equal(iom_fragmentation_index(0, NULL), 0);
}

static void fragmentation_index_cases(void **state)
{
	struct iom_contig_page_info info;

	(void)state;
	/* A suitable block is free: not a failure at all. */
	{
		const unsigned long nr_free[] = { 4, 2, 0, 1 };

		iom_fill_contig_page_info(nr_free, 3, 2, &info);
		assert_int_equal(iom_fragmentation_index(2, &info), -1000);
	}
	/*
	 * 2 order-0 + 1 order-1 = 4 free pages in 3 blocks. Order 2 wants
	 * 4 pages: 1000 - (1000 + 4000/4) / 3 = 1000 - 666 = 334. Order 3:
	 * 1000 - (1000 + 4000/8) / 3 = 500.
	 */
	{
		const unsigned long nr_free[] = { 2, 1, 0, 0 };

		iom_fill_contig_page_info(nr_free, 3, 2, &info);
		assert_int_equal(iom_fragmentation_index(2, &info), 334);
		iom_fill_contig_page_info(nr_free, 3, 3, &info);
		assert_int_equal(iom_fragmentation_index(3, &info), 500);
	}
	/* Lots of free memory in tiny blocks: close to 1000. */
	{
		const unsigned long nr_free[] = { 1000, 0, 0, 0 };

		iom_fill_contig_page_info(nr_free, 3, 3, &info);
		/* 1000 - (1000 + 1000000/8) / 1000 = 1000 - 126 */
		assert_int_equal(iom_fragmentation_index(3, &info), 874);
	}
	/* One page almost big enough: the kernel's formula goes negative. */
	{
		const unsigned long nr_free[] = { 1, 0 };

		iom_fill_contig_page_info(nr_free, 1, 1, &info);
		assert_int_equal(iom_fragmentation_index(1, &info), -500);
	}
}

/* ---- reports of a machine in a known state ------------------------------ */

static void buddyinfo_of_fresh_machine_is_one_max_order_block(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);

	(void)state;
	assert_non_null(m);
	assert_report(m, IOM_PROC_BUDDYINFO,
		      "Node 0, zone   Normal      0      0      0      1 \n");
	iom_machine_destroy(m);
}

static void buddyinfo_shows_blocks_left_by_frees(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);
	struct iom_page *pages[8];

	(void)state;
	assert_non_null(m);
	alloc_all_by_pfn(m, IOM_GFP_KERNEL, pages);
	iom_drain_local_pages(m);
	assert_report(m, IOM_PROC_BUDDYINFO,
		      "Node 0, zone   Normal      0      0      0      0 \n");

	free_pfns(m, pages, pattern_pfns, 4);
	assert_report(m, IOM_PROC_BUDDYINFO,
		      "Node 0, zone   Normal      2      1      0      0 \n");
	/*
	 * 4 free pages: all usable at order 0, the order-1 block's 2 at
	 * order 1, none above.
	 */
	assert_report(m, IOM_DEBUGFS_UNUSABLE_INDEX,
		      "Node 0, zone   Normal 0.000 0.500 1.000 1.000 \n");
	assert_report(m, IOM_DEBUGFS_EXTFRAG_INDEX,
		      "Node 0, zone   Normal -1.000 -1.000  0.334  0.500 \n");

	free_pfns(m, pages, rest_pfns, 4);
	assert_report(m, IOM_PROC_BUDDYINFO,
		      "Node 0, zone   Normal      0      0      0      1 \n");
	assert_report(m, IOM_DEBUGFS_UNUSABLE_INDEX,
		      "Node 0, zone   Normal 0.000 0.000 0.000 0.000 \n");
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

static void buddyinfo_lists_every_node_and_populated_zone(void **state)
{
	struct iom_machine *m;

	(void)state;
	/* Two nodes of 64 KiB, each with 32 KiB of ZONE_MOVABLE on top. */
	m = tiny_machine(KIB(128), 2, KIB(64));
	assert_non_null(m);
	assert_report(m, IOM_PROC_BUDDYINFO,
		      "Node 0, zone   Normal      0      0      0      1 \n"
		      "Node 0, zone  Movable      0      0      0      1 \n"
		      "Node 1, zone   Normal      0      0      0      1 \n"
		      "Node 1, zone  Movable      0      0      0      1 \n");
	iom_machine_destroy(m);

	/* No ZONE_MOVABLE: the empty zone is not listed. */
	m = tiny_machine(KIB(64), 2, 0);
	assert_non_null(m);
	assert_report(m, IOM_PROC_BUDDYINFO,
		      "Node 0, zone   Normal      0      0      0      1 \n"
		      "Node 1, zone   Normal      0      0      0      1 \n");
	iom_machine_destroy(m);
}

static const char pagetypeinfo_head[] =
	"Page block order: 2\n"
	"Pages per block:  4\n"
	"\n"
	"Free pages count per migrate type at order       0      1      2      3 \n";

static const char pagetypeinfo_blocks_head[] =
	"\n"
	"Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic          CMA      Isolate \n";

static void pagetypeinfo_of_fresh_machine(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);
	char expected[4096];

	(void)state;
	assert_non_null(m);
	/* Boot memory is MIGRATE_MOVABLE, as memmap_init() makes it. */
	snprintf(expected, sizeof(expected), "%s%s%s",
		 pagetypeinfo_head,
		 "Node    0, zone   Normal, type    Unmovable      0      0      0      0 \n"
		 "Node    0, zone   Normal, type      Movable      0      0      0      1 \n"
		 "Node    0, zone   Normal, type  Reclaimable      0      0      0      0 \n"
		 "Node    0, zone   Normal, type   HighAtomic      0      0      0      0 \n"
		 "Node    0, zone   Normal, type          CMA      0      0      0      0 \n"
		 "Node    0, zone   Normal, type      Isolate      0      0      0      0 \n",
		 pagetypeinfo_blocks_head);
	strcat(expected,
	       "Node 0, zone   Normal            0            2            0            0            0            0 \n");
	assert_report(m, IOM_PROC_PAGETYPEINFO, expected);
	iom_machine_destroy(m);
}

static void pagetypeinfo_counts_free_blocks_per_migratetype(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);
	struct iom_page *pages[8];
	char expected[4096];

	(void)state;
	assert_non_null(m);
	/* Movable allocations take movable blocks: no fallback, no stealing. */
	alloc_all_by_pfn(m, IOM_GFP_HIGHUSER_MOVABLE, pages);
	free_pfns(m, pages, pattern_pfns, 4);

	snprintf(expected, sizeof(expected), "%s%s%s",
		 pagetypeinfo_head,
		 "Node    0, zone   Normal, type    Unmovable      0      0      0      0 \n"
		 "Node    0, zone   Normal, type      Movable      2      1      0      0 \n"
		 "Node    0, zone   Normal, type  Reclaimable      0      0      0      0 \n"
		 "Node    0, zone   Normal, type   HighAtomic      0      0      0      0 \n"
		 "Node    0, zone   Normal, type          CMA      0      0      0      0 \n"
		 "Node    0, zone   Normal, type      Isolate      0      0      0      0 \n",
		 pagetypeinfo_blocks_head);
	strcat(expected,
	       "Node 0, zone   Normal            0            2            0            0            0            0 \n");
	assert_report(m, IOM_PROC_PAGETYPEINFO, expected);

	free_pfns(m, pages, rest_pfns, 4);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

/*
 * The free-list walk stops at 100000 entries and prints ">100000", as the
 * kernel's does under its spinlock. A real list that long would need 400 MB
 * of simulated memory, so the test links dummy entries into an empty list
 * the allocator never touches here (RECLAIMABLE at order 0) and takes them
 * out again before anything else runs.
 */
static void pagetypeinfo_caps_long_free_lists(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);
	struct list_head *fake, *list;
	struct zone *zone;
	size_t i, n = 100005;

	(void)state;
	assert_non_null(m);
	zone = &m->node_data[0]->node_zones[IOM_ZONE_NORMAL];
	list = &zone->free_area[0].free_list[IOM_MIGRATE_RECLAIMABLE];
	assert_true(list_empty(list));
	fake = calloc(n, sizeof(*fake));
	assert_non_null(fake);
	for (i = 0; i < n; i++)
		list_add_tail(&fake[i], list);

	assert_report_contains(m, IOM_PROC_PAGETYPEINFO,
			       "Node    0, zone   Normal, type  Reclaimable >100000      0      0      0 \n");

	INIT_LIST_HEAD(list);
	free(fake);
	assert_report_contains(m, IOM_PROC_PAGETYPEINFO,
			       "Node    0, zone   Normal, type  Reclaimable      0      0      0      0 \n");
	iom_machine_destroy(m);
}

static void zoneinfo_prints_populated_and_empty_zones(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);

	(void)state;
	assert_non_null(m);
	assert_report_contains(m, IOM_PROC_ZONEINFO,
			       "Node 0, zone   Normal\n"
			       "  pages free     8\n"
			       "        boost    0\n"
			       "        min      0\n");
	assert_report_contains(m, IOM_PROC_ZONEINFO,
			       "\n        spanned  8\n"
			       "        present  8\n"
			       "        managed  8\n"
			       "        cma      0\n"
			       "        protection: (");
	assert_report_contains(m, IOM_PROC_ZONEINFO,
			       ")\n      nr_free_pages 8\n"
			       "      nr_free_cma  0\n"
			       "  node_unreclaimable:  0\n"
			       "  start_pfn:           0\n"
			       "Node 0, zone  Movable\n"
			       "  pages free     0\n");
	/* An empty zone ends after its protection line. */
	{
		char *text = read_report(m, IOM_PROC_ZONEINFO);
		const char *movable = strstr(text, "zone  Movable");

		assert_non_null(movable);
		assert_null(strstr(movable, "nr_free_pages"));
		assert_int_equal(text[strlen(text) - 1], '\n');
		assert_int_equal(text[strlen(text) - 2], ')');
		free(text);
	}
	iom_machine_destroy(m);
}

static unsigned long vmstat_value(struct iom_machine *m, const char *name)
{
	char *text = read_report(m, IOM_PROC_VMSTAT), *line;
	char key[64];
	unsigned long v = 0;
	bool found = false;

	snprintf(key, sizeof(key), "%s ", name);
	for (line = text; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (!strncmp(line, key, strlen(key))) {
			v = strtoul(line + strlen(key), NULL, 10);
			found = true;
			break;
		}
	}
	free(text);
	if (!found)
		fail_msg("/proc/vmstat has no %s", name);
	return v;
}

static void vmstat_counts_pages_allocated_and_freed(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);
	unsigned long alloc0, free0;
	struct iom_page *p0, *p2;

	(void)state;
	assert_non_null(m);
	assert_int_equal(vmstat_value(m, "nr_free_pages"), 8);
	assert_int_equal(vmstat_value(m, "nr_free_cma"), 0);
	alloc0 = iom_vm_event_count(m, IOM_PGALLOC_NORMAL);
	free0 = iom_vm_event_count(m, IOM_PGFREE);

	/* Counted in pages, as the kernel's PGALLOC and PGFREE. */
	p2 = iom_alloc_pages(m, IOM_GFP_KERNEL, 2);
	assert_non_null(p2);
	p0 = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_non_null(p0);
	assert_int_equal(iom_vm_event_count(m, IOM_PGALLOC_NORMAL), alloc0 + 5);
	assert_int_equal(iom_vm_event_count(m, IOM_PGALLOC_MOVABLE), 0);
	assert_int_equal(vmstat_value(m, "pgalloc_normal"), alloc0 + 5);

	assert_int_equal(iom___free_pages(m, p2, 2), 0);
	assert_int_equal(iom___free_pages(m, p0, 0), 0);
	assert_int_equal(iom_vm_event_count(m, IOM_PGFREE), free0 + 5);
	assert_int_equal(vmstat_value(m, "pgfree"), free0 + 5);

	iom_drain_local_pages(m);
	assert_int_equal(vmstat_value(m, "nr_free_pages"), 8);
	assert_int_equal(iom_vm_event_count(m, -1), 0);
	assert_int_equal(iom_vm_event_count(m, IOM_NR_VM_EVENT_ITEMS), 0);
	iom_machine_destroy(m);
}

struct worker {
	struct iom_machine *m;
	int nr;
	int allocated, freed;	/* checked by the main thread */
};

static void *alloc_free_worker(void *arg)
{
	struct worker *w = arg;
	struct iom_page *pages[8];
	int i;

	for (i = 0; i < w->nr; i++) {
		pages[i] = iom_alloc_pages(w->m, IOM_GFP_KERNEL, 0);
		if (pages[i])
			w->allocated++;
	}
	for (i = 0; i < w->nr; i++)
		if (pages[i] && !iom___free_pages(w->m, pages[i], 0))
			w->freed++;
	return NULL;
}

/*
 * Events of threads that have exited still count: the first worker's set
 * stays on the machine, dead, until the second worker's new set makes the
 * machine prune it into events_of_dead.
 */
static void vm_event_count_includes_exited_threads(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);
	struct worker w[2] = { { .nr = 3 }, { .nr = 2 } };
	unsigned long alloc0, free0;
	pthread_t t;
	int i;

	(void)state;
	assert_non_null(m);
	alloc0 = iom_vm_event_count(m, IOM_PGALLOC_NORMAL);
	free0 = iom_vm_event_count(m, IOM_PGFREE);
	for (i = 0; i < 2; i++) {
		w[i].m = m;
		assert_int_equal(pthread_create(&t, NULL, alloc_free_worker,
						&w[i]), 0);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(w[i].allocated, w[i].nr);
		assert_int_equal(w[i].freed, w[i].nr);
	}
	assert_int_equal(iom_vm_event_count(m, IOM_PGALLOC_NORMAL), alloc0 + 5);
	assert_int_equal(iom_vm_event_count(m, IOM_PGFREE), free0 + 5);
	assert_int_equal(vmstat_value(m, "pgalloc_normal"), alloc0 + 5);
	/* The exited threads' caches went back to the buddy allocator. */
	assert_int_equal(vmstat_value(m, "nr_free_pages"), 8);
	iom_machine_destroy(m);
}

static void zone_info_snapshots_a_zone(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);
	struct iom_page *pages[8];
	struct iom_zone_info zi;

	(void)state;
	assert_non_null(m);
	assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi), 0);
	assert_true(zi.populated);
	assert_int_equal(zi.nid, 0);
	assert_int_equal(zi.zone_type, IOM_ZONE_NORMAL);
	assert_int_equal(zi.zone_start_pfn, 0);
	assert_int_equal(zi.spanned_pages, 8);
	assert_int_equal(zi.nr_free_pages, 8);
	assert_int_equal(zi.nr_free[3], 1);
	assert_int_equal(zi.nr_free_type[3][IOM_MIGRATE_MOVABLE], 1);
	assert_int_equal(zi.nr_blocks_type[IOM_MIGRATE_MOVABLE], 2);

	alloc_all_by_pfn(m, IOM_GFP_HIGHUSER_MOVABLE, pages);
	free_pfns(m, pages, pattern_pfns, 4);
	assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi), 0);
	assert_int_equal(zi.nr_free_pages, 4);
	assert_int_equal(zi.nr_free[0], 2);
	assert_int_equal(zi.nr_free[1], 1);
	assert_int_equal(zi.nr_free[3], 0);
	assert_int_equal(zi.nr_free_type[0][IOM_MIGRATE_MOVABLE], 2);
	assert_int_equal(zi.nr_free_type[1][IOM_MIGRATE_MOVABLE], 1);
	free_pfns(m, pages, rest_pfns, 4);

	assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_MOVABLE, &zi), 0);
	assert_false(zi.populated);
	assert_int_equal(zi.spanned_pages, 0);
	assert_int_equal(zi.nr_free_pages, 0);

	assert_int_equal(iom_zone_info(m, 1, IOM_ZONE_NORMAL, &zi), -EINVAL);
	assert_int_equal(iom_zone_info(m, -1, IOM_ZONE_NORMAL, &zi), -EINVAL);
	assert_int_equal(iom_zone_info(m, 0, IOM_MAX_NR_ZONES, &zi), -EINVAL);
	assert_int_equal(iom_zone_info(m, 0, -1, &zi), -EINVAL);
	assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, NULL), -EINVAL);
	assert_int_equal(iom_zone_info(NULL, 0, IOM_ZONE_NORMAL, &zi), -EINVAL);
	iom_machine_destroy(m);
}

struct churn {
	struct iom_machine *m;
	atomic_int *stop;
	unsigned int seed;
	atomic_ulong rounds;
};

/* Allocate and free blocks of mixed orders and types until told to stop. */
static void *churn_worker(void *arg)
{
	struct churn *c = arg;
	struct { struct iom_page *page; unsigned int order; } held[16];
	int n = 0;

	memset(held, 0, sizeof(held));
	while (!atomic_load(c->stop)) {
		unsigned int r = rand_r(&c->seed);

		if (n < 16 && (r & 1)) {
			unsigned int order = (r >> 1) % 4;
			iom_gfp_t gfp = (r & 0x20) ? IOM_GFP_HIGHUSER_MOVABLE
						   : IOM_GFP_KERNEL;
			struct iom_page *page = iom_alloc_pages(c->m, gfp |
						IOM___GFP_NOWARN, order);

			if (page) {
				held[n].page = page;
				held[n].order = order;
				n++;
			}
		} else if (n) {
			n--;
			iom___free_pages(c->m, held[n].page, held[n].order);
		}
		if ((r & 0xff) == 0)
			iom_drain_local_pages(c->m);
		atomic_fetch_add_explicit(&c->rounds, 1, memory_order_relaxed);
	}
	while (n--)
		iom___free_pages(c->m, held[n].page, held[n].order);
	return NULL;
}

/*
 * A zone snapshot is taken under the zone lock, so while other threads
 * allocate and free, every snapshot must still add up: the blocks per
 * order match the pages NR_FREE_PAGES counts, and the per-type list
 * lengths match the per-order counts.
 */
static void zone_info_is_consistent_under_churn(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(256), 1, 0);
	atomic_int stop = 0;
	struct churn c[2];
	pthread_t t[2];
	unsigned long bad_total = 0, bad_types = 0, snapshots = 0;
	int i;

	(void)state;
	assert_non_null(m);
	for (i = 0; i < 2; i++) {
		c[i] = (struct churn){ .m = m, .stop = &stop, .seed = 7u + i };
		assert_int_equal(pthread_create(&t[i], NULL, churn_worker,
						&c[i]), 0);
	}
	/* At least 2000 snapshots, and on until both workers have churned. */
	for (snapshots = 0; snapshots < 2000 || atomic_load(&c[0].rounds) < 100 ||
			    atomic_load(&c[1].rounds) < 100; snapshots++) {
		struct iom_zone_info zi;
		unsigned long pages = 0, order_blocks;
		unsigned int order;
		int mt;

		if (iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi))
			break;
		for (order = 0; order <= 3; order++) {
			pages += zi.nr_free[order] << order;
			order_blocks = 0;
			for (mt = 0; mt < IOM_MIGRATE_TYPES; mt++)
				order_blocks += zi.nr_free_type[order][mt];
			if (order_blocks != zi.nr_free[order])
				bad_types++;
		}
		if (pages != zi.nr_free_pages)
			bad_total++;
		if (snapshots % 100 == 0) {
			char buf[256];

			iom_proc_read(m, IOM_PROC_BUDDYINFO, buf, sizeof(buf));
		}
	}
	atomic_store(&stop, 1);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);

	assert_true(snapshots >= 2000);
	assert_true(atomic_load(&c[0].rounds) >= 100 && atomic_load(&c[1].rounds) >= 100);
	assert_int_equal(bad_total, 0);
	assert_int_equal(bad_types, 0);
	iom_drain_all_pages(m);
	assert_int_equal(vmstat_value(m, "nr_free_pages"), 64);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

/* ---- the read/show interface -------------------------------------------- */

static void proc_read_truncates_like_snprintf(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);
	char *full, buf[16];
	ssize_t len;

	(void)state;
	assert_non_null(m);
	full = read_report(m, IOM_PROC_BUDDYINFO);
	len = (ssize_t)strlen(full);
	assert_true(len > (ssize_t)sizeof(buf));

	assert_int_equal(iom_proc_read(m, IOM_PROC_BUDDYINFO, NULL, 0), len);

	memset(buf, 'x', sizeof(buf));
	assert_int_equal(iom_proc_read(m, IOM_PROC_BUDDYINFO, buf, sizeof(buf)),
			 len);
	assert_int_equal(buf[sizeof(buf) - 1], '\0');
	assert_memory_equal(buf, full, sizeof(buf) - 1);

	memset(buf, 'x', sizeof(buf));
	assert_int_equal(iom_proc_read(m, IOM_PROC_BUDDYINFO, buf, 1), len);
	assert_int_equal(buf[0], '\0');
	assert_int_equal(buf[1], 'x');

	/* Exactly the length: all but the last byte, then the NUL. */
	{
		char *exact = malloc((size_t)len);

		assert_non_null(exact);
		assert_int_equal(iom_proc_read(m, IOM_PROC_BUDDYINFO, exact,
					       (size_t)len), len);
		assert_int_equal(exact[len - 1], '\0');
		assert_memory_equal(exact, full, (size_t)len - 1);
		free(exact);
	}
	free(full);
	iom_machine_destroy(m);
}

static void proc_rejects_bad_arguments(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(32), 1, 0);
	char buf[64];

	(void)state;
	assert_non_null(m);
	assert_int_equal(iom_proc_read(m, IOM_NR_PROC_FILES, buf, sizeof(buf)),
			 -EINVAL);
	assert_int_equal(iom_proc_read(m, (enum iom_proc_file)-1, buf,
				       sizeof(buf)), -EINVAL);
	assert_int_equal(iom_proc_read(NULL, IOM_PROC_BUDDYINFO, buf,
				       sizeof(buf)), -EINVAL);
	assert_int_equal(iom_proc_read(m, IOM_PROC_BUDDYINFO, NULL, 8),
			 -EINVAL);
	assert_int_equal(iom_proc_show(m, IOM_NR_PROC_FILES, stdout), -EINVAL);
	assert_int_equal(iom_proc_show(m, IOM_PROC_BUDDYINFO, NULL), -EINVAL);
	assert_int_equal(iom_proc_show(NULL, IOM_PROC_BUDDYINFO, stdout),
			 -EINVAL);
	iom_machine_destroy(m);
}

static void proc_show_writes_the_bytes_proc_read_returns(void **state)
{
	struct iom_machine *m = tiny_machine(KIB(64), 1, KIB(32));
	struct iom_page *page;
	int file;

	(void)state;
	assert_non_null(m);
	/* Something other than a fresh state. */
	page = iom_alloc_pages(m, IOM_GFP_KERNEL, 1);
	assert_non_null(page);

	for (file = 0; file < IOM_NR_PROC_FILES; file++) {
		char *text = read_report(m, (enum iom_proc_file)file);
		size_t len = strlen(text);
		FILE *f = tmpfile();
		char *back;

		assert_non_null(f);
		assert_true(len > 0);
		assert_int_equal(iom_proc_show(m, (enum iom_proc_file)file, f),
				 (int)len);
		assert_int_equal(ftell(f), (long)len);
		rewind(f);
		back = malloc(len + 1);
		assert_non_null(back);
		assert_int_equal(fread(back, 1, len + 1, f), len);
		assert_memory_equal(back, text, len);
		free(back);
		fclose(f);
		free(text);
	}
	assert_int_equal(iom___free_pages(m, page, 1), 0);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vm_event_names_are_the_kernel_counters),
		cmocka_unit_test(contig_page_info_counts_pages_and_suitable_blocks),
		cmocka_unit_test(unusable_index_is_share_of_free_pages_in_small_blocks),
		cmocka_unit_test(unusable_index_is_1000_when_nothing_is_free),
		cmocka_unit_test(fragmentation_index_cases),
		cmocka_unit_test(buddyinfo_of_fresh_machine_is_one_max_order_block),
		cmocka_unit_test(buddyinfo_shows_blocks_left_by_frees),
		cmocka_unit_test(buddyinfo_lists_every_node_and_populated_zone),
		cmocka_unit_test(pagetypeinfo_of_fresh_machine),
		cmocka_unit_test(pagetypeinfo_counts_free_blocks_per_migratetype),
		cmocka_unit_test(pagetypeinfo_caps_long_free_lists),
		cmocka_unit_test(zoneinfo_prints_populated_and_empty_zones),
		cmocka_unit_test(vmstat_counts_pages_allocated_and_freed),
		cmocka_unit_test(vm_event_count_includes_exited_threads),
		cmocka_unit_test(zone_info_snapshots_a_zone),
		cmocka_unit_test(zone_info_is_consistent_under_churn),
		cmocka_unit_test(proc_read_truncates_like_snprintf),
		cmocka_unit_test(proc_rejects_bad_arguments),
		cmocka_unit_test(proc_show_writes_the_bytes_proc_read_returns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
