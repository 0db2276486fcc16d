/* SPDX-License-Identifier: MIT */
/*
 * The LRU lists and page reclaim: list membership and promotion, isolation
 * and putback, freeing an LRU page, and reclaim of clean page-cache pages
 * that lets a file larger than memory be written and read back intact.
 * The concurrent test proves that speculative lookups racing with reclaim
 * only ever see a live page holding the right content.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mm_util.h"

#define MiB (1ULL << 20)

static struct test_log tlog;

static struct iom_machine *machine(uint64_t mem, bool watermarks)
{
	struct iom_machine_config cfg = { 0 };

	cfg.mem_size = mem;
	cfg.page_poison = 1;
	if (watermarks)	/* what the kernel's formula gives for 16 MiB */
		cfg.min_free_kbytes = 4 * 128;
	return test_machine(0, &tlog, &cfg);
}

static void lru_lists_follow_accesses(void **state)
{
	struct iom_machine *m = machine(8 * MiB, false);
	struct iom_page *file = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	struct iom_page *anon = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	unsigned long before = test_nr_free(m);

	iom_SetPageSwapBacked(anon);
	iom_lru_cache_add(m, file);
	iom_lru_cache_add(m, anon);
	assert_true(iom_PageLRU(file));
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_INACTIVE_FILE), 1);
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_INACTIVE_ANON), 1);
	/* Adding twice is refused with a warning and changes nothing. */
	test_log_reset(&tlog);
	iom_lru_cache_add(m, file);
	assert_true(test_log_contains(&tlog, "already on an LRU"));
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_INACTIVE_FILE), 1);

	/* First access: referenced; second: active. */
	iom_mark_page_accessed(m, file);
	assert_true(iom_PageReferenced(file));
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_ACTIVE_FILE), 0);
	iom_mark_page_accessed(m, file);
	assert_true(iom_PageActive(file));
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_ACTIVE_FILE), 1);
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_INACTIVE_FILE), 0);
	assert_int_equal(iom_vm_event_count(m, IOM_PGACTIVATE), 1);

	/* Isolation takes it off with a reference; putback undoes both. */
	assert_int_equal(iom_isolate_lru_page(m, file), 0);
	assert_false(iom_PageLRU(file));
	assert_int_equal(iom_page_ref_count(file), 2);
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_ACTIVE_FILE), 0);
	assert_int_equal(iom_isolate_lru_page(m, file), -EBUSY);
	iom_putback_lru_page(m, file);
	assert_true(iom_PageLRU(file));
	assert_int_equal(iom_page_ref_count(file), 1);
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_ACTIVE_FILE), 1);

	/* Freeing an LRU page takes it off the list: no bad page. */
	assert_int_equal(iom___free_pages(m, file, 0), 0);
	assert_int_equal(iom___free_pages(m, anon, 0), 0);
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_ACTIVE_FILE), 0);
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_INACTIVE_ANON), 0);
	assert_int_equal(test_nr_free(m), before + 2);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

static void fill_pattern(unsigned char *buf, size_t len, uint64_t pos)
{
	size_t i;

	for (i = 0; i < len; i += 8) {
		uint64_t v = (pos + i) * 0x9e3779b97f4a7c15ULL;

		memcpy(buf + i, &v, 8);
	}
}

/* A 48 MiB file through a 16 MiB machine: reclaim must make room. */
static void file_larger_than_memory_round_trips_through_reclaim(void **state)
{
	struct iom_machine *m = machine(16 * MiB, true);
	const uint64_t fsize = 48 * MiB, chunk = 1 * MiB;
	unsigned char *buf = malloc(chunk), *want = malloc(chunk);
	struct iom_inode *inode;
	uint64_t pos;
	unsigned long before = test_nr_free(m);

	assert_int_equal(iom_inode_create(m, fsize, &inode), 0);
	for (pos = 0; pos < fsize; pos += chunk) {
		fill_pattern(buf, chunk, pos);
		assert_int_equal(iom_file_write(inode, pos, buf, chunk), (ssize_t)chunk);
		/* writeback makes the pages clean, hence reclaimable */
		assert_true(iom_file_sync(inode) > 0);
	}
	/* kswapd's work (inline) kept free memory above min: it did most */
	assert_true(iom_vm_event_count(m, IOM_PGSTEAL_KSWAPD) > 0);
	assert_true(iom_vm_event_count(m, IOM_PAGEOUTRUN) > 0);
	{
		struct iom_zone_info zi;

		assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi), 0);
		assert_true(zi.nr_free_pages >= zi.watermark_min);
	}
	assert_true(iom_inode_mapping(inode)->nrpages < fsize / IOM_PAGE_SIZE);
	for (pos = 0; pos < fsize; pos += chunk) {
		fill_pattern(want, chunk, pos);
		assert_int_equal(iom_file_read(inode, pos, buf, chunk), (ssize_t)chunk);
		assert_memory_equal(buf, want, chunk);
	}
	assert_int_equal(iom_inode_destroy(inode), 0);
	assert_int_equal(test_nr_free(m), before);
	assert_int_equal(iom_machine_bug_count(m), 0);
	free(buf);
	free(want);
	iom_machine_destroy(m);
}

static void reclaim_keeps_dirty_pages_and_active_ones_longer(void **state)
{
	struct iom_machine *m = machine(16 * MiB, false);
	struct iom_inode *inode;
	unsigned char b = 7;
	unsigned long n;

	assert_int_equal(iom_inode_create(m, 16 * IOM_PAGE_SIZE, &inode), 0);
	for (n = 0; n < 16; n++)
		assert_int_equal(iom_file_write(inode, n * IOM_PAGE_SIZE, &b, 1), 1);
	/* All dirty: nothing to reclaim. */
	assert_int_equal(iom_shrink_page_cache(m, -1, 16), 0);
	assert_int_equal(iom_inode_mapping(inode)->nrpages, 16);
	assert_int_equal(iom_file_sync(inode), 16);
	/* Clean now. Pages 0..3 were read again: promoted to the active list. */
	for (n = 0; n < 4; n++)
		assert_int_equal(iom_file_read(inode, n * IOM_PAGE_SIZE, &b, 1), 1);
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_ACTIVE_FILE), 4);
	/* Reclaim of 12 takes the inactive ones, oldest first. */
	assert_int_equal(iom_shrink_page_cache(m, 0, 12), 12);
	assert_int_equal(iom_inode_mapping(inode)->nrpages, 4);
	for (n = 0; n < 4; n++) {
		struct iom_page *p = iom_find_get_page(iom_inode_mapping(inode), n);

		assert_non_null(p);
		iom_put_page(m, p);
	}
	/* Then the active list is aged and those go too. */
	assert_int_equal(iom_shrink_page_cache(m, 0, 16), 4);
	assert_int_equal(iom_inode_mapping(inode)->nrpages, 0);
	/* The content survived on the file's disk. */
	assert_int_equal(iom_file_read(inode, 5 * IOM_PAGE_SIZE, &b, 1), 1);
	assert_int_equal(b, 7);
	assert_int_equal(iom_inode_destroy(inode), 0);
	iom_machine_destroy(m);
}

/* ---- speculative lookups racing with reclaim ---------------------------- */

#define NR_INDEX 256

struct racer {
	struct iom_machine *m;
	struct iom_address_space *mapping;
	atomic_int *stop;
	unsigned long found, bad_content, bad_identity;
};

static void *lookup_racer(void *arg)
{
	struct racer *r = arg;
	unsigned long i = 0;

	iom_rcu_register_thread();
	while (!atomic_load(r->stop)) {
		unsigned long index = (i++ * 17) % NR_INDEX;
		struct iom_page *p = iom_find_get_page(r->mapping, index);
		uint64_t stamp;

		if (!p)
			continue;
		r->found++;
		/* With our reference the page cannot be freed or poisoned. */
		memcpy(&stamp, iom_page_address(r->m, p), sizeof(stamp));
		if (stamp != index + 1)
			r->bad_content++;
		if (p->index != index)
			r->bad_identity++;
		iom_put_page(r->m, p);
	}
	iom_rcu_unregister_thread();
	return NULL;
}

static void speculative_lookups_race_with_reclaim(void **state)
{
	struct iom_machine *m = machine(16 * MiB, false);
	struct iom_inode *inode;
	struct racer r[2];
	pthread_t t[2];
	atomic_int stop = 0;
	unsigned long index, round, reclaimed = 0;
	int i;

	assert_int_equal(iom_inode_create(m, NR_INDEX * IOM_PAGE_SIZE, &inode), 0);
	for (index = 0; index < NR_INDEX; index++) {
		uint64_t stamp = index + 1;

		assert_int_equal(iom_file_write(inode, index * IOM_PAGE_SIZE, &stamp,
						sizeof(stamp)), sizeof(stamp));
	}
	iom_file_sync(inode);
	for (i = 0; i < 2; i++) {
		r[i] = (struct racer){ .m = m, .mapping = iom_inode_mapping(inode),
				       .stop = &stop };
		assert_int_equal(pthread_create(&t[i], NULL, lookup_racer, &r[i]), 0);
	}
	/* Reclaim everything, read it back in, again and again. */
	for (round = 0; round < 40; round++) {
		uint64_t stamp;

		reclaimed += iom_shrink_page_cache(m, -1, NR_INDEX);
		for (index = 0; index < NR_INDEX; index += 3)
			assert_int_equal(iom_file_read(inode, index * IOM_PAGE_SIZE, &stamp,
						       sizeof(stamp)), sizeof(stamp));
	}
	atomic_store(&stop, 1);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_true(reclaimed > 0);
	for (i = 0; i < 2; i++) {
		assert_true(r[i].found > 0);
		assert_int_equal(r[i].bad_content, 0);
		assert_int_equal(r[i].bad_identity, 0);
	}
	assert_int_equal(iom_inode_destroy(inode), 0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lru_lists_follow_accesses),
		cmocka_unit_test(file_larger_than_memory_round_trips_through_reclaim),
		cmocka_unit_test(reclaim_keeps_dirty_pages_and_active_ones_longer),
		cmocka_unit_test(speculative_lookups_race_with_reclaim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
