/* SPDX-License-Identifier: MIT */
/*
 * The RCU radix tree (src/mm/radix-tree.c): shape (grow, shrink, the lone
 * item at index 0), tags and their propagation, gang lookups, allocation
 * failure, deferred freeing, and RCU readers racing a writer.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#include <iommig/radix-tree.h>
#include <iommig/rcu.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Items are addresses inside this array: 8-byte aligned, never freed. */
static unsigned long item_pool[8192];

static void *item(unsigned long i)
{
	return &item_pool[i % ARRAY_SIZE(item_pool)];
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* All items of @root in index order (gang lookups of @chunk at a time). */
static unsigned int collect(const struct iom_radix_tree_root *root,
			    void **items, unsigned long *indices,
			    unsigned int max, unsigned int chunk, int tag)
{
	unsigned long next = 0;
	unsigned int n = 0, got;

	for (;;) {
		unsigned int want = max - n < chunk ? max - n : chunk;

		if (!want)
			break;
		got = tag < 0 ?
			iom_radix_tree_gang_lookup(root, items + n, indices + n,
						   next, want) :
			iom_radix_tree_gang_lookup_tag(root, items + n,
						       indices + n, next, want,
						       (unsigned int)tag);
		n += got;
		if (got < want || indices[n - 1] == ULONG_MAX)
			break;
		next = indices[n - 1] + 1;
	}
	return n;
}

/* ---- shape ------------------------------------------------------------ */

static void empty_tree_has_nothing(void **state)
{
	struct iom_radix_tree_root root;
	void *res[4];
	unsigned long idx[4];

	iom_radix_tree_init(&root, NULL);
	assert_true(iom_radix_tree_empty(&root));
	assert_null(iom_radix_tree_lookup(&root, 0));
	assert_null(iom_radix_tree_lookup(&root, ULONG_MAX));
	assert_null(iom_radix_tree_lookup_slot(&root, 0));
	assert_null(iom_radix_tree_delete(&root, 0));
	assert_int_equal(iom_radix_tree_tag_set(&root, 0, 0), -ENOENT);
	assert_int_equal(iom_radix_tree_tag_clear(&root, 0, 0), -ENOENT);
	assert_false(iom_radix_tree_tag_get(&root, 0, 0));
	assert_false(iom_radix_tree_tagged(&root, 0));
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx, 0, 4), 0);
	assert_int_equal(root.height, 0);
}

static void item_at_index_zero_lives_in_the_root(void **state)
{
	struct iom_radix_tree_root root;

	iom_radix_tree_init(&root, NULL);
	assert_int_equal(iom_radix_tree_insert(&root, 0, item(1)), 0);
	assert_ptr_equal(root.rnode, item(1));	/* no node at all */
	assert_int_equal(root.height, 0);
	assert_false(iom_radix_tree_empty(&root));
	assert_ptr_equal(iom_radix_tree_lookup(&root, 0), item(1));
	assert_null(iom_radix_tree_lookup(&root, 1));
	assert_ptr_equal(iom_radix_tree_lookup_slot(&root, 0), (void **)&root.rnode);
	assert_ptr_equal(iom_radix_tree_delete(&root, 0), item(1));
	assert_true(iom_radix_tree_empty(&root));
}

static void insert_lookup_delete_at_sparse_and_dense_indices(void **state)
{
	static const unsigned long sparse[] = {
		0, 1, 63, 64, 65, 4095, 4096, 262143, 262144, 1UL << 30,
		(1UL << 36) + 7, 1UL << 59, (1UL << 60) - 1, 1UL << 60,
		ULONG_MAX - 64, ULONG_MAX - 1, ULONG_MAX,
	};
	unsigned long all[ARRAY_SIZE(sparse) + 1000];
	unsigned int n = 0, i, j;
	struct iom_radix_tree_root root;
	uint64_t seed = 12345;

	for (i = 0; i < ARRAY_SIZE(sparse); i++)
		all[n++] = sparse[i];
	for (i = 0; i < 1000; i++)
		all[n++] = 100000 + i;	/* dense, across 16 leaves */

	iom_radix_tree_init(&root, NULL);
	for (i = 0; i < n; i++)
		assert_int_equal(iom_radix_tree_insert(&root, all[i], item(i)), 0);
	assert_int_equal(root.height, 11);
	for (i = 0; i < n; i++)
		assert_ptr_equal(iom_radix_tree_lookup(&root, all[i]), item(i));
	/* Neighbours that were never inserted. */
	assert_null(iom_radix_tree_lookup(&root, 2));
	assert_null(iom_radix_tree_lookup(&root, 4097));
	assert_null(iom_radix_tree_lookup(&root, 99999));
	assert_null(iom_radix_tree_lookup(&root, 101000));
	assert_null(iom_radix_tree_lookup(&root, ULONG_MAX - 2));

	/* Delete in random order; the others stay. */
	for (i = n; i > 1; i--) {
		unsigned int k = (unsigned int)(rng_next(&seed) % i);
		unsigned long ti = all[k];

		all[k] = all[i - 1];
		all[i - 1] = ti;
	}
	for (i = 0; i < n; i++) {
		void *got = iom_radix_tree_lookup(&root, all[i]);

		assert_non_null(got);
		assert_ptr_equal(iom_radix_tree_delete(&root, all[i]), got);
		assert_null(iom_radix_tree_lookup(&root, all[i]));
		assert_null(iom_radix_tree_delete(&root, all[i]));
		if (i % 97 == 0)
			for (j = i + 1; j < n; j++)
				assert_non_null(iom_radix_tree_lookup(&root, all[j]));
	}
	assert_true(iom_radix_tree_empty(&root));
	assert_int_equal(root.height, 0);
	assert_false(iom_radix_tree_tagged(&root, 0));
}

static void tree_grows_and_shrinks_with_its_largest_index(void **state)
{
	struct iom_radix_tree_root root;

	iom_radix_tree_init(&root, NULL);
	assert_int_equal(iom_radix_tree_insert(&root, 0, item(0)), 0);
	assert_int_equal(root.height, 0);
	assert_int_equal(iom_radix_tree_insert(&root, 63, item(63)), 0);
	assert_int_equal(root.height, 1);
	assert_int_equal(iom_radix_tree_insert(&root, 64, item(64)), 0);
	assert_int_equal(root.height, 2);
	assert_int_equal(iom_radix_tree_insert(&root, 4096, item(4096)), 0);
	assert_int_equal(root.height, 3);
	assert_int_equal(iom_radix_tree_insert(&root, ULONG_MAX, item(5)), 0);
	assert_int_equal(root.height, 11);

	assert_ptr_equal(iom_radix_tree_delete(&root, ULONG_MAX), item(5));
	assert_int_equal(root.height, 3);
	assert_ptr_equal(iom_radix_tree_delete(&root, 4096), item(4096));
	assert_int_equal(root.height, 2);
	assert_ptr_equal(iom_radix_tree_delete(&root, 64), item(64));
	assert_int_equal(root.height, 1);
	assert_ptr_equal(iom_radix_tree_delete(&root, 63), item(63));
	/* Back to the lone item in the root. */
	assert_int_equal(root.height, 0);
	assert_ptr_equal(root.rnode, item(0));
	assert_ptr_equal(iom_radix_tree_lookup(&root, 0), item(0));

	/* A tree that starts high: only the path to the index is built. */
	assert_ptr_equal(iom_radix_tree_delete(&root, 0), item(0));
	assert_int_equal(iom_radix_tree_insert(&root, 1UL << 40, item(7)), 0);
	assert_int_equal(root.height, 7);
	assert_int_equal(iom_radix_tree_insert(&root, 0, item(8)), 0);
	assert_int_equal(root.height, 7);
	/* Deleting the high index leaves index 0, which shrinks to the root. */
	assert_ptr_equal(iom_radix_tree_delete(&root, 1UL << 40), item(7));
	assert_int_equal(root.height, 0);
	assert_ptr_equal(root.rnode, item(8));
	assert_ptr_equal(iom_radix_tree_delete(&root, 0), item(8));
	assert_true(iom_radix_tree_empty(&root));

	/* A root node that has only slot 1 does not shrink. */
	assert_int_equal(iom_radix_tree_insert(&root, 64, item(64)), 0);
	assert_int_equal(iom_radix_tree_insert(&root, 65, item(65)), 0);
	assert_int_equal(root.height, 2);
	assert_ptr_equal(iom_radix_tree_delete(&root, 65), item(65));
	assert_int_equal(root.height, 2);
	assert_ptr_equal(iom_radix_tree_delete(&root, 64), item(64));
	assert_true(iom_radix_tree_empty(&root));
	iom_rcu_barrier();
}

static void insert_at_an_occupied_index_returns_eexist(void **state)
{
	struct iom_radix_tree_root root;

	iom_radix_tree_init(&root, NULL);
	assert_int_equal(iom_radix_tree_insert(&root, 0, item(1)), 0);
	assert_int_equal(iom_radix_tree_insert(&root, 0, item(2)), -EEXIST);
	assert_int_equal(iom_radix_tree_insert(&root, 1000, item(3)), 0);
	assert_int_equal(iom_radix_tree_insert(&root, 1000, item(4)), -EEXIST);
	assert_int_equal(iom_radix_tree_insert(&root, 0, item(5)), -EEXIST);
	assert_ptr_equal(iom_radix_tree_lookup(&root, 0), item(1));
	assert_ptr_equal(iom_radix_tree_lookup(&root, 1000), item(3));
	iom_radix_tree_delete(&root, 0);
	iom_radix_tree_delete(&root, 1000);
	assert_true(iom_radix_tree_empty(&root));
}

static void null_and_misaligned_items_are_rejected(void **state)
{
	struct iom_radix_tree_root root;
	char *p = (char *)item(0);
	void **slot;

	iom_radix_tree_init(&root, NULL);
	assert_int_equal(iom_radix_tree_insert(&root, 5, NULL), -EINVAL);
	assert_int_equal(iom_radix_tree_insert(&root, 5, p + 1), -EINVAL);
	assert_int_equal(iom_radix_tree_insert(&root, 5, p + 2), -EINVAL);
	assert_int_equal(iom_radix_tree_insert(&root, 0, p + 3), -EINVAL);
	assert_true(iom_radix_tree_empty(&root));
	assert_int_equal(iom_radix_tree_insert(NULL, 5, p), -EINVAL);

	assert_int_equal(iom_radix_tree_insert(&root, 5, p), 0);
	slot = iom_radix_tree_lookup_slot(&root, 5);
	assert_non_null(slot);
	assert_int_equal(iom_radix_tree_replace_slot(&root, slot, NULL), -EINVAL);
	assert_int_equal(iom_radix_tree_replace_slot(&root, slot, p + 1), -EINVAL);
	assert_int_equal(iom_radix_tree_replace_slot(&root, NULL, p), -EINVAL);
	assert_ptr_equal(iom_radix_tree_lookup(&root, 5), p);

	/* Bad tags. */
	assert_int_equal(iom_radix_tree_tag_set(&root, 5, IOM_RADIX_TREE_MAX_TAGS), -EINVAL);
	assert_int_equal(iom_radix_tree_tag_clear(&root, 5, 99), -EINVAL);
	assert_false(iom_radix_tree_tag_get(&root, 5, 99));
	assert_false(iom_radix_tree_tagged(&root, 99));

	/* A NULL tree is an error, not a crash. */
	assert_null(iom_radix_tree_lookup(NULL, 5));
	assert_null(iom_radix_tree_delete(NULL, 5));
	assert_int_equal(iom_radix_tree_tag_set(NULL, 5, 0), -EINVAL);
	assert_true(iom_radix_tree_empty(NULL));
	assert_null(iom_radix_tree_deref_slot(NULL));

	iom_radix_tree_delete(&root, 5);
	assert_true(iom_radix_tree_empty(&root));
}

static void replace_slot_keeps_tags(void **state)
{
	struct iom_radix_tree_root root;
	void *res[4];
	unsigned long idx[4];
	void **slot;

	iom_radix_tree_init(&root, NULL);
	assert_int_equal(iom_radix_tree_insert(&root, 5, item(5)), 0);
	assert_int_equal(iom_radix_tree_insert(&root, 70, item(70)), 0);
	assert_int_equal(iom_radix_tree_tag_set(&root, 70, IOM_PAGECACHE_TAG_DIRTY), 0);

	slot = iom_radix_tree_lookup_slot(&root, 70);
	assert_ptr_equal(iom_radix_tree_deref_slot(slot), item(70));
	assert_int_equal(iom_radix_tree_replace_slot(&root, slot, item(71)), 0);
	assert_ptr_equal(iom_radix_tree_lookup(&root, 70), item(71));
	assert_true(iom_radix_tree_tag_get(&root, 70, IOM_PAGECACHE_TAG_DIRTY));
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&root, res, idx, 0, 4,
							IOM_PAGECACHE_TAG_DIRTY), 1);
	assert_ptr_equal(res[0], item(71));
	assert_int_equal(idx[0], 70);

	/* The item count is unchanged: one delete each empties the tree. */
	iom_radix_tree_delete(&root, 5);
	iom_radix_tree_delete(&root, 70);
	assert_true(iom_radix_tree_empty(&root));

	/* The lone item in the root, with its tag. */
	assert_int_equal(iom_radix_tree_insert(&root, 0, item(0)), 0);
	assert_int_equal(iom_radix_tree_tag_set(&root, 0, IOM_PAGECACHE_TAG_TOWRITE), 0);
	slot = iom_radix_tree_lookup_slot(&root, 0);
	assert_int_equal(iom_radix_tree_replace_slot(&root, slot, item(1)), 0);
	assert_ptr_equal(iom_radix_tree_lookup(&root, 0), item(1));
	assert_true(iom_radix_tree_tag_get(&root, 0, IOM_PAGECACHE_TAG_TOWRITE));
	iom_radix_tree_delete(&root, 0);
	assert_false(iom_radix_tree_tagged(&root, IOM_PAGECACHE_TAG_TOWRITE));
	iom_rcu_barrier();
}

/* ---- tags ----------------------------------------------------------------- */

static void tags_propagate_to_the_root_and_clear_with_the_last(void **state)
{
	const unsigned int D = IOM_PAGECACHE_TAG_DIRTY, W = IOM_PAGECACHE_TAG_WRITEBACK;
	struct iom_radix_tree_root root;
	void *res[8];
	unsigned long idx[8];

	iom_radix_tree_init(&root, NULL);
	assert_int_equal(iom_radix_tree_insert(&root, 1, item(1)), 0);
	assert_int_equal(iom_radix_tree_insert(&root, 100, item(100)), 0);
	assert_int_equal(iom_radix_tree_insert(&root, 300000, item(3)), 0);
	assert_int_equal(iom_radix_tree_tag_set(&root, 7, D), -ENOENT);

	assert_int_equal(iom_radix_tree_tag_set(&root, 100, D), 0);
	assert_int_equal(iom_radix_tree_tag_set(&root, 300000, D), 0);
	assert_int_equal(iom_radix_tree_tag_set(&root, 300000, D), 0); /* idempotent */
	assert_true(iom_radix_tree_tagged(&root, D));
	assert_false(iom_radix_tree_tagged(&root, W));
	assert_true(iom_radix_tree_tag_get(&root, 100, D));
	assert_false(iom_radix_tree_tag_get(&root, 1, D));
	assert_false(iom_radix_tree_tag_get(&root, 100, W));
	assert_false(iom_radix_tree_tag_get(&root, 101, D));

	/* One tagged item left: the root keeps the tag. */
	assert_int_equal(iom_radix_tree_tag_clear(&root, 100, D), 0);
	assert_false(iom_radix_tree_tag_get(&root, 100, D));
	assert_true(iom_radix_tree_tagged(&root, D));
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&root, res, idx, 0, 8, D), 1);
	assert_int_equal(idx[0], 300000);
	/* The last one: cleared up every level to the root. */
	assert_int_equal(iom_radix_tree_tag_clear(&root, 300000, D), 0);
	assert_false(iom_radix_tree_tagged(&root, D));
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&root, res, idx, 0, 8, D), 0);
	assert_int_equal(iom_radix_tree_tag_clear(&root, 300000, D), 0); /* no-op */
	assert_int_equal(iom_radix_tree_tag_clear(&root, 7, D), -ENOENT);

	/* Deleting a tagged item takes its tags away. */
	assert_int_equal(iom_radix_tree_tag_set(&root, 1, W), 0);
	assert_int_equal(iom_radix_tree_tag_set(&root, 1, D), 0);
	iom_radix_tree_delete(&root, 1);
	assert_false(iom_radix_tree_tagged(&root, W));
	assert_false(iom_radix_tree_tagged(&root, D));
	assert_int_equal(iom_radix_tree_insert(&root, 1, item(1)), 0);
	assert_false(iom_radix_tree_tag_get(&root, 1, W));

	iom_radix_tree_delete(&root, 1);
	iom_radix_tree_delete(&root, 100);
	iom_radix_tree_delete(&root, 300000);
	assert_true(iom_radix_tree_empty(&root));
	iom_rcu_barrier();
}

static void tags_survive_grow_and_shrink(void **state)
{
	const unsigned int D = IOM_PAGECACHE_TAG_DIRTY;
	struct iom_radix_tree_root root;
	void *res[4];
	unsigned long idx[4];

	iom_radix_tree_init(&root, NULL);
	assert_int_equal(iom_radix_tree_insert(&root, 0, item(0)), 0);
	assert_int_equal(iom_radix_tree_tag_set(&root, 0, D), 0);
	/* Grow: the lone item goes into a node and keeps its tag. */
	assert_int_equal(iom_radix_tree_insert(&root, 1UL << 20, item(9)), 0);
	assert_true(iom_radix_tree_tag_get(&root, 0, D));
	assert_false(iom_radix_tree_tag_get(&root, 1UL << 20, D));
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&root, res, idx, 0, 4, D), 1);
	assert_int_equal(idx[0], 0);
	/* Shrink back into the root: still tagged. */
	iom_radix_tree_delete(&root, 1UL << 20);
	assert_int_equal(root.height, 0);
	assert_true(iom_radix_tree_tag_get(&root, 0, D));
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&root, res, idx, 0, 4, D), 1);
	assert_int_equal(iom_radix_tree_tag_clear(&root, 0, D), 0);
	assert_false(iom_radix_tree_tagged(&root, D));
	iom_radix_tree_delete(&root, 0);
	iom_rcu_barrier();
}

/* ---- gang lookups ---------------------------------------------------------- */

static void gang_lookup_is_in_index_order_across_nodes(void **state)
{
	enum { N = 1000 };
	struct iom_radix_tree_root root;
	void *res[N + 8];
	unsigned long idx[N + 8];
	unsigned int i, n, chunk;

	iom_radix_tree_init(&root, NULL);
	for (i = 0; i < N; i++)	/* 37 apart: every leaf boundary is crossed */
		assert_int_equal(iom_radix_tree_insert(&root, 5000 + 37UL * i,
						       item(i)), 0);
	for (chunk = 1; chunk <= 64; chunk = chunk * 3 + 1) {
		memset(idx, 0, sizeof(idx));
		n = collect(&root, res, idx, N + 8, chunk, -1);
		assert_int_equal(n, N);
		for (i = 0; i < N; i++) {
			assert_int_equal(idx[i], 5000 + 37UL * i);
			assert_ptr_equal(res[i], item(i));
		}
	}
	/* Limits and starting points. */
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx, 0, 1), 1);
	assert_int_equal(idx[0], 5000);
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx, 5001, 3), 3);
	assert_int_equal(idx[0], 5037);
	assert_int_equal(idx[2], 5111);
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, NULL, 5001, 3), 3);
	assert_ptr_equal(res[0], item(1));
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx,
						    5000 + 37UL * (N - 1), 8), 1);
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx,
						    5001 + 37UL * (N - 1), 8), 0);
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx, ULONG_MAX, 8), 0);
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx, 0, 0), 0);

	for (i = 0; i < N; i++)
		iom_radix_tree_delete(&root, 5000 + 37UL * i);
	assert_true(iom_radix_tree_empty(&root));
	iom_rcu_barrier();
}

static void gang_lookup_stops_at_the_top_of_the_index_space(void **state)
{
	struct iom_radix_tree_root root;
	void *res[8];
	unsigned long idx[8];

	iom_radix_tree_init(&root, NULL);
	assert_int_equal(iom_radix_tree_insert(&root, 0, item(0)), 0);
	assert_int_equal(iom_radix_tree_insert(&root, ULONG_MAX - 64, item(1)), 0);
	assert_int_equal(iom_radix_tree_insert(&root, ULONG_MAX, item(2)), 0);
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx, 0, 8), 3);
	assert_int_equal(idx[0], 0);
	assert_int_equal(idx[1], ULONG_MAX - 64);
	assert_int_equal(idx[2], ULONG_MAX);
	/* No wrap back to index 0. */
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx, ULONG_MAX - 10, 8), 1);
	assert_int_equal(idx[0], ULONG_MAX);
	assert_int_equal(iom_radix_tree_gang_lookup(&root, res, idx, 1, 8), 2);
	assert_int_equal(iom_radix_tree_tag_set(&root, ULONG_MAX, 1), 0);
	assert_int_equal(iom_radix_tree_tag_set(&root, 0, 1), 0);
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&root, res, idx, 1, 8, 1), 1);
	assert_int_equal(idx[0], ULONG_MAX);
	iom_radix_tree_delete(&root, 0);
	iom_radix_tree_delete(&root, ULONG_MAX - 64);
	iom_radix_tree_delete(&root, ULONG_MAX);
	assert_true(iom_radix_tree_empty(&root));
	iom_rcu_barrier();
}

static void gang_lookup_tag_returns_only_tagged_items_in_order(void **state)
{
	enum { N = 5000 };
	const unsigned int T = IOM_PAGECACHE_TAG_TOWRITE;
	struct iom_radix_tree_root root;
	void *res[N];
	unsigned long idx[N];
	unsigned int i, n, chunk, expect = 0;

	iom_radix_tree_init(&root, NULL);
	for (i = 0; i < N; i++)
		assert_int_equal(iom_radix_tree_insert(&root, i, item(i)), 0);
	for (i = 0; i < N; i += 97, expect++)
		assert_int_equal(iom_radix_tree_tag_set(&root, i, T), 0);
	for (chunk = 1; chunk <= 16; chunk += 6) {
		n = collect(&root, res, idx, N, chunk, (int)T);
		assert_int_equal(n, expect);
		for (i = 0; i < n; i++) {
			assert_int_equal(idx[i], 97UL * i);
			assert_ptr_equal(res[i], item(97UL * i));
		}
	}
	/* Other tags see nothing. */
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&root, res, idx, 0, 8,
							IOM_PAGECACHE_TAG_DIRTY), 0);
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&root, res, idx, 0, 8, 3), 0);
	/* Starting inside a gap between tagged items. */
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&root, res, idx, 98, 2, T), 2);
	assert_int_equal(idx[0], 194);
	assert_int_equal(idx[1], 291);
	for (i = 0; i < N; i++)
		iom_radix_tree_delete(&root, i);
	assert_true(iom_radix_tree_empty(&root));
	assert_false(iom_radix_tree_tagged(&root, T));
	iom_rcu_barrier();
}

/*
 * Random inserts, deletes, replaces and tag changes on a pool of indices
 * at every scale, checked after each step against a plain array model.
 */
static void random_operations_match_a_model(void **state)
{
	enum { POOL = 600, STEPS = 6000 };
	struct iom_radix_tree_root root;
	unsigned long *pool = calloc(POOL, sizeof(*pool));
	void **model = calloc(POOL, sizeof(*model));
	unsigned int *mtags = calloc(POOL, sizeof(*mtags));
	void **res = calloc(POOL, sizeof(*res));
	unsigned long *idx = calloc(POOL, sizeof(*idx));
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	unsigned int i, step, t;

	assert_non_null(pool);
	assert_non_null(model);
	assert_non_null(mtags);
	assert_non_null(res);
	assert_non_null(idx);
	/* Sorted distinct indices: dense runs at several scales, then the top. */
	for (i = 0; i < POOL; i++) {
		if (i < 200)
			pool[i] = i;
		else if (i < 400)
			pool[i] = 10000 + 61UL * (i - 200);
		else if (i < 590)
			pool[i] = (1UL << 34) + 4099UL * (i - 400);
		else
			pool[i] = ULONG_MAX - (POOL - 1 - i);
	}
	iom_radix_tree_init(&root, NULL);
	for (step = 0; step < STEPS; step++) {
		unsigned int k = (unsigned int)(rng_next(&seed) % POOL);
		unsigned int op = (unsigned int)(rng_next(&seed) % 8);
		unsigned int tag = (unsigned int)(rng_next(&seed) % 3);
		void *it = item(step);
		unsigned int n, expect;

		/* Big deletes now and then so the tree shrinks. */
		if (step % 1500 == 1499) {
			for (i = 1; i < POOL; i++) {
				iom_radix_tree_delete(&root, pool[i]);
				model[i] = NULL;
				mtags[i] = 0;
			}
			assert_int_equal(root.height, 0);	/* shrunk to index 0 */
		}
		if (op < 3) {
			int err = iom_radix_tree_insert(&root, pool[k], it);

			assert_int_equal(err, model[k] ? -EEXIST : 0);
			if (!err)
				model[k] = it;
		} else if (op < 5) {
			assert_ptr_equal(iom_radix_tree_delete(&root, pool[k]), model[k]);
			model[k] = NULL;
			mtags[k] = 0;
		} else if (op == 5) {
			void **slot = iom_radix_tree_lookup_slot(&root, pool[k]);

			assert_true(!slot == !model[k]);
			if (slot) {
				assert_int_equal(iom_radix_tree_replace_slot(&root, slot, it), 0);
				model[k] = it;
			}
		} else if (op == 6) {
			assert_int_equal(iom_radix_tree_tag_set(&root, pool[k], tag),
					 model[k] ? 0 : -ENOENT);
			if (model[k])
				mtags[k] |= 1u << tag;
		} else {
			assert_int_equal(iom_radix_tree_tag_clear(&root, pool[k], tag),
					 model[k] ? 0 : -ENOENT);
			mtags[k] &= ~(1u << tag);
		}

		assert_ptr_equal(iom_radix_tree_lookup(&root, pool[k]), model[k]);
		if (step % 50)
			continue;
		/* Whole-tree check. */
		n = collect(&root, res, idx, POOL, 17, -1);
		for (i = 0, expect = 0; i < POOL; i++) {
			if (!model[i])
				continue;
			assert_true(expect < n);
			assert_int_equal(idx[expect], pool[i]);
			assert_ptr_equal(res[expect], model[i]);
			expect++;
		}
		assert_int_equal(n, expect);
		assert_true(iom_radix_tree_empty(&root) == (n == 0));
		for (t = 0; t < 3; t++) {
			n = collect(&root, res, idx, POOL, 5, (int)t);
			for (i = 0, expect = 0; i < POOL; i++) {
				bool tagged = model[i] && (mtags[i] & (1u << t));

				assert_true(iom_radix_tree_tag_get(&root, pool[i], t) == tagged);
				if (!tagged)
					continue;
				assert_true(expect < n);
				assert_int_equal(idx[expect], pool[i]);
				expect++;
			}
			assert_int_equal(n, expect);
			assert_true(iom_radix_tree_tagged(&root, t) == (expect > 0));
		}
	}
	for (i = 0; i < POOL; i++)
		iom_radix_tree_delete(&root, pool[i]);
	assert_true(iom_radix_tree_empty(&root));
	assert_int_equal(root.height, 0);
	iom_rcu_barrier();
	free(pool);
	free(model);
	free(mtags);
	free(res);
	free(idx);
}

/* ---- allocation: failure, accounting, deferred free -------------------------- */

/* A metadata hook that counts, and can fail the Nth allocation from now. */
struct counting_ops {
	atomic_long bytes;	/* outstanding */
	atomic_ulong allocs, frees;
	atomic_long fail_in;	/* 0: never fail */
};

static void *counting_alloc(void *priv, size_t size, size_t align, bool zero)
{
	struct counting_ops *c = priv;
	void *p;

	if (atomic_load(&c->fail_in) > 0 && atomic_fetch_sub(&c->fail_in, 1) == 1)
		return NULL;
	if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size))
		return NULL;
	if (zero)
		memset(p, 0, size);
	atomic_fetch_add(&c->bytes, (long)size);
	atomic_fetch_add(&c->allocs, 1);
	return p;
}

static void counting_free(void *priv, void *ptr, size_t size)
{
	struct counting_ops *c = priv;

	atomic_fetch_sub(&c->bytes, (long)size);
	atomic_fetch_add(&c->frees, 1);
	free(ptr);
}

static struct iom_machine *counting_machine(struct counting_ops *c)
{
	struct iom_machine_config cfg;
	struct iom_machine *m;

	memset(c, 0, sizeof(*c));
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = 16ULL << 20;
	cfg.mem_ops.alloc = counting_alloc;
	cfg.mem_ops.free = counting_free;
	cfg.mem_ops.priv = c;
	m = test_machine(16, NULL, &cfg);
	assert_non_null(m);
	return m;
}

static void failed_insert_leaves_the_tree_unchanged_and_leaks_nothing(void **state)
{
	static const unsigned long targets[] = { ULONG_MAX, 1UL << 40, 4096 * 64 + 5, 200000 };
	struct counting_ops c;
	struct iom_machine *m = counting_machine(&c);
	struct iom_radix_tree_root root;
	void *res[64], *res2[64];
	unsigned long idx[64], idx2[64];
	unsigned int n, n2, t, fail_at, failures;
	unsigned long allocs;

	iom_radix_tree_init(&root, m);

	/* An empty tree, then one holding a lone item, then a real tree. */
	for (t = 0; t < ARRAY_SIZE(targets); t++) {
		if (t == 1)
			assert_int_equal(iom_radix_tree_insert(&root, 0, item(0)), 0);
		if (t == 2)
			assert_int_equal(iom_radix_tree_insert(&root, 100, item(100)), 0);

		failures = 0;
		for (fail_at = 1;; fail_at++) {
			long bytes = atomic_load(&c.bytes);
			unsigned int height = root.height;
			void *rnode = root.rnode;
			int err;

			n = iom_radix_tree_gang_lookup(&root, res, idx, 0, 64);
			allocs = atomic_load(&c.allocs);
			atomic_store(&c.fail_in, (long)fail_at);
			err = iom_radix_tree_insert(&root, targets[t], item(t + 1));
			if (!err)
				break;
			atomic_store(&c.fail_in, 0);
			failures++;
			assert_int_equal(err, -ENOMEM);
			/* Unchanged, and every preloaded node went back at once. */
			assert_int_equal(atomic_load(&c.bytes), bytes);
			assert_int_equal(root.height, height);
			assert_ptr_equal(root.rnode, rnode);
			assert_null(iom_radix_tree_lookup(&root, targets[t]));
			n2 = iom_radix_tree_gang_lookup(&root, res2, idx2, 0, 64);
			assert_int_equal(n2, n);
			assert_memory_equal(res2, res, n * sizeof(void *));
			assert_memory_equal(idx2, idx, n * sizeof(unsigned long));
		}
		atomic_store(&c.fail_in, 0);
		/* Each node the insert needed was a failure point. */
		assert_true(failures >= 1);
		assert_int_equal(atomic_load(&c.allocs) - allocs, failures);
		if (t == 0)
			assert_int_equal(failures, 11);	/* every level */
		assert_ptr_equal(iom_radix_tree_lookup(&root, targets[t]), item(t + 1));
	}
	/* A path that exists needs no allocation, so cannot fail. */
	atomic_store(&c.fail_in, 1);
	assert_int_equal(iom_radix_tree_insert(&root, 70, item(70)), 0);
	assert_int_equal(atomic_load(&c.fail_in), 1);
	atomic_store(&c.fail_in, 0);
	iom_radix_tree_delete(&root, 70);
	iom_radix_tree_delete(&root, 0);
	iom_radix_tree_delete(&root, 100);
	for (t = 0; t < ARRAY_SIZE(targets); t++)
		iom_radix_tree_delete(&root, targets[t]);
	assert_true(iom_radix_tree_empty(&root));
	iom_machine_destroy(m);	/* waits for the deferred frees */
	assert_int_equal(atomic_load(&c.bytes), 0);
	assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
}

static void deleted_nodes_are_freed_only_after_a_grace_period(void **state)
{
	enum { N = 10000 };
	struct counting_ops c;
	struct iom_machine *m = counting_machine(&c);
	struct iom_radix_tree_root root;
	struct iom_machine_memcost mc0, mc1;
	unsigned long allocs0, frees0, nodes;
	long bytes0;
	unsigned int i;

	iom_rcu_register_thread();
	iom_radix_tree_init(&root, m);
	bytes0 = atomic_load(&c.bytes);
	allocs0 = atomic_load(&c.allocs);
	iom_machine_memcost(m, &mc0);
	for (i = 0; i < N; i++)
		assert_int_equal(iom_radix_tree_insert(&root, 3UL * i, item(i)), 0);
	nodes = atomic_load(&c.allocs) - allocs0;
	/* 30000 indices: 469 leaves, 8 above them, one root. */
	assert_int_equal(nodes, 469 + 8 + 1);
	iom_machine_memcost(m, &mc1);
	assert_true(mc1.metadata_bytes > mc0.metadata_bytes);

	/* While this thread is a reader, nothing deleted may be freed. */
	frees0 = atomic_load(&c.frees);
	iom_rcu_read_lock();
	for (i = 0; i < N; i++)
		assert_ptr_equal(iom_radix_tree_delete(&root, 3UL * i), item(i));
	assert_true(iom_radix_tree_empty(&root));
	usleep(20000);	/* give the call_rcu thread every chance to be wrong */
	assert_int_equal(atomic_load(&c.frees), frees0);
	iom_rcu_read_unlock();

	iom_rcu_barrier();
	assert_int_equal(atomic_load(&c.frees) - frees0, nodes);
	assert_int_equal(atomic_load(&c.bytes), bytes0);
	iom_machine_memcost(m, &mc1);
	assert_int_equal(mc1.metadata_bytes, mc0.metadata_bytes);
	iom_rcu_unregister_thread();
	iom_machine_destroy(m);
	assert_int_equal(atomic_load(&c.bytes), 0);
}

/* ---- readers racing a writer -------------------------------------------------- */

/*
 * What it proves: two RCU readers doing lookups, lookup_slot + deref_slot,
 * tag_get and (tagged) gang lookups while a writer (holding a mutex) inserts,
 * deletes, replaces and tags, and repeatedly grows the tree to 11 levels and
 * shrinks it to the lone item at index 0 and to nothing:
 *  - every item a reader gets belongs to the index it asked for (or gang
 *    lookup reported), carries a generation the writer had published for
 *    that index, and is never torn (its fields are written before it is
 *    published, and agree with each other);
 *  - an index that was never inserted is never found;
 *  - gang lookups return strictly increasing indices at or after the start;
 *  - no reader touches a freed node: ASan (debug preset) reports any read of
 *    a freed node, TSan (tsan preset) any read not ordered before the free.
 * Workers never assert: they count failures, checked after join.
 */
#define CT_NR_INDEX	160
#define CT_GENS		72
#define CT_READERS	2

struct stamp {
	unsigned long index;
	unsigned long gen;
	unsigned long check;
	unsigned long pad;
};

struct ct {
	struct iom_radix_tree_root root;
	pthread_mutex_t lock;
	unsigned long index[CT_NR_INDEX];	/* sorted, distinct */
	unsigned long absent[64];		/* never inserted */
	struct stamp (*stamps)[CT_GENS];	/* [CT_NR_INDEX][CT_GENS] */
	atomic_ulong published[CT_NR_INDEX];	/* gens published so far */
	atomic_bool writer_done;
	atomic_ulong checks;		/* by all readers: the writer paces on it */
	atomic_ulong writer_ops;
};

static unsigned long stamp_check(unsigned long index, unsigned long gen)
{
	return (index * 0x9e3779b97f4a7c15UL) ^ (gen * 0xc2b2ae3d27d4eb4fUL) ^ 0x5a5a;
}

/* The slot of @index in the sorted set, or -1. */
static int ct_find(const struct ct *ct, unsigned long index)
{
	int lo = 0, hi = CT_NR_INDEX - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;

		if (ct->index[mid] == index)
			return mid;
		if (ct->index[mid] < index)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Is @p a published, whole stamp of @index? Never dereferences a stranger. */
static bool ct_valid(struct ct *ct, unsigned long index, const void *p)
{
	int k = ct_find(ct, index);
	const struct stamp *s = p, *base;
	unsigned long gen;

	if (k < 0)
		return false;
	base = ct->stamps[k];
	if (s < base || s >= base + CT_GENS ||
	    ((uintptr_t)s - (uintptr_t)base) % sizeof(*s))
		return false;
	gen = (unsigned long)(s - base);
	return s->index == index && s->gen == gen &&
	       s->check == stamp_check(index, gen) &&
	       gen < atomic_load_explicit(&ct->published[k], memory_order_acquire);
}

static struct ct *ct_create(void)
{
	struct ct *ct = calloc(1, sizeof(*ct));
	unsigned int i, n = 0;

	assert_non_null(ct);
	ct->stamps = calloc(CT_NR_INDEX, sizeof(*ct->stamps));
	assert_non_null(ct->stamps);
	/* Index 0 (the lone-item root), a dense run over a leaf boundary,
	 * sparse indices at every level, and the top of the index space. */
	for (i = 0; i < 96; i++)
		ct->index[n++] = i;
	for (i = 0; i < 40; i++)
		ct->index[n++] = 1000 + (1UL << (i % 20 + 10)) * (i < 20 ? 1 : 3);
	for (i = 0; i < 24; i++)
		ct->index[n++] = (1UL << (34 + i)) + i;
	assert_int_equal(n, CT_NR_INDEX);
	return ct;
}

static int cmp_ulong(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

	return (x > y) - (x < y);
}

static void ct_setup(struct ct *ct)
{
	unsigned int i, a = 0;
	unsigned long probe;

	qsort(ct->index, CT_NR_INDEX, sizeof(unsigned long), cmp_ulong);
	ct->index[CT_NR_INDEX - 1] = ULONG_MAX;
	for (i = 1; i < CT_NR_INDEX; i++)
		assert_true(ct->index[i - 1] < ct->index[i]);
	for (probe = 96; a < ARRAY_SIZE(ct->absent); probe = probe * 3 + 1) {
		if (ct_find(ct, probe) < 0)
			ct->absent[a++] = probe;
	}
	iom_radix_tree_init(&ct->root, NULL);
	assert_int_equal(pthread_mutex_init(&ct->lock, NULL), 0);
}

/* Under ct->lock: publish the next generation of set member @k. */
static struct stamp *ct_next_stamp(struct ct *ct, unsigned int k)
{
	unsigned long gen = atomic_load_explicit(&ct->published[k],
						 memory_order_relaxed);
	struct stamp *s;

	if (gen >= CT_GENS)
		return NULL;
	s = &ct->stamps[k][gen];
	s->index = ct->index[k];
	s->gen = gen;
	s->check = stamp_check(s->index, gen);
	/* Published before the tree can hand it out. */
	atomic_store_explicit(&ct->published[k], gen + 1, memory_order_release);
	return s;
}

struct ct_writer_state {
	struct ct *ct;
	bool present[CT_NR_INDEX];
	uint64_t seed;
	unsigned long bad;	/* tree calls that did not do what they should */
};

/* One operation on member @k under the lock. false: generations used up. */
static bool ct_write_one(struct ct_writer_state *w, unsigned int k, unsigned int op)
{
	struct ct *ct = w->ct;
	unsigned long index = ct->index[k];
	bool more = true;

	pthread_mutex_lock(&ct->lock);
	if (!w->present[k]) {
		struct stamp *s = ct_next_stamp(ct, k);

		if (!s)
			more = false;
		else if (iom_radix_tree_insert(&ct->root, index, s))
			w->bad++;
		else
			w->present[k] = true;
	} else if (op < 3) {
		void **slot = iom_radix_tree_lookup_slot(&ct->root, index);
		struct stamp *s = ct_next_stamp(ct, k);

		if (!s)
			more = false;
		else if (!slot || iom_radix_tree_replace_slot(&ct->root, slot, s))
			w->bad++;
	} else if (op < 5) {
		if (!iom_radix_tree_delete(&ct->root, index))
			w->bad++;
		w->present[k] = false;
	} else if (op < 7) {
		if (iom_radix_tree_tag_set(&ct->root, index, op - 5))
			w->bad++;
	} else {
		if (iom_radix_tree_tag_clear(&ct->root, index, 0))
			w->bad++;
	}
	pthread_mutex_unlock(&ct->lock);
	/*
	 * Every 64 operations, wait until the readers have done some work, so
	 * that they run during every stage of the tree's life on any host.
	 */
	if (atomic_fetch_add_explicit(&ct->writer_ops, 1, memory_order_relaxed) % 64 == 63) {
		unsigned long seen = atomic_load(&ct->checks);

		while (atomic_load(&ct->checks) < seen + 16)
			sched_yield();
	}
	return more;
}

static void ct_delete_one(struct ct_writer_state *w, unsigned int k)
{
	struct ct *ct = w->ct;

	if (!w->present[k])
		return;
	pthread_mutex_lock(&ct->lock);
	if (!iom_radix_tree_delete(&ct->root, ct->index[k]))
		w->bad++;
	w->present[k] = false;
	pthread_mutex_unlock(&ct->lock);
}

static void *ct_writer_fn(void *arg)
{
	struct ct_writer_state *w = arg;
	struct ct *ct = w->ct;
	unsigned int k, i;
	bool more = true;

	iom_rcu_register_thread();
	while (more) {
		/* Grow: the top index first, so the tree is 11 levels at once. */
		more = ct_write_one(w, CT_NR_INDEX - 1, 0);
		for (i = 0; i < 2 * CT_NR_INDEX && more; i++) {
			k = (unsigned int)(rng_next(&w->seed) % CT_NR_INDEX);
			more = ct_write_one(w, k, (unsigned int)(rng_next(&w->seed) % 8));
		}
		/* Shrink to the lone item at 0 (after replacing it), then to nothing. */
		for (k = 1; k < CT_NR_INDEX; k++)
			ct_delete_one(w, (k * 37) % (CT_NR_INDEX - 1) + 1);
		/*
		 * Index 0 alone lives in the root; a neighbour coming and going
		 * grows a leaf and shrinks it back (the RETRY case of a reader
		 * still in the old leaf).
		 */
		for (i = 0; i < 64 && more && w->present[0]; i++) {
			k = 1 + (unsigned int)(rng_next(&w->seed) % 63);
			more = ct_write_one(w, k, 0);
			ct_delete_one(w, k);
		}
		if (more && w->present[0])
			more = ct_write_one(w, 0, 0);
		ct_delete_one(w, 0);
	}
	for (k = 0; k < CT_NR_INDEX; k++)
		ct_delete_one(w, k);
	atomic_store(&ct->writer_done, true);
	iom_rcu_unregister_thread();
	return NULL;
}

struct ct_reader_state {
	struct ct *ct;
	uint64_t seed;
	unsigned long failures, checks, found;
};

static void ct_read_one(struct ct_reader_state *r)
{
	struct ct *ct = r->ct;
	void *res[16];
	unsigned long idx[16], start, index;
	unsigned int n, i, max, what = (unsigned int)(rng_next(&r->seed) % 6);
	void **slot;
	void *p;

	/* A quarter of the time index 0, the one that moves in and out of the root. */
	index = rng_next(&r->seed) % 4 ? ct->index[rng_next(&r->seed) % CT_NR_INDEX] : 0;
	iom_rcu_read_lock();
	switch (what) {
	case 0:
	case 1:
		p = iom_radix_tree_lookup(&ct->root, index);
		if (p) {
			r->found++;
			r->failures += !ct_valid(ct, index, p);
		}
		break;
	case 2:
		slot = iom_radix_tree_lookup_slot(&ct->root, index);
		p = iom_radix_tree_deref_slot(slot);
		if (p) {
			r->found++;
			r->failures += !ct_valid(ct, index, p);
		}
		(void)iom_radix_tree_tag_get(&ct->root, index, 0);
		break;
	case 3:
		p = iom_radix_tree_lookup(&ct->root,
					  ct->absent[rng_next(&r->seed) % 64]);
		r->failures += p != NULL;
		break;
	default:
		start = rng_next(&r->seed) & 1 ? index : rng_next(&r->seed) >>
			(rng_next(&r->seed) % 64);
		max = (unsigned int)(rng_next(&r->seed) % 16) + 1;
		n = what == 4 ?
			iom_radix_tree_gang_lookup(&ct->root, res, idx, start, max) :
			iom_radix_tree_gang_lookup_tag(&ct->root, res, idx, start,
						       max, 0);
		r->failures += n > max;
		for (i = 0; i < n && i < max; i++) {
			r->found++;
			r->failures += idx[i] < start ||
				       (i && idx[i] <= idx[i - 1]) ||
				       !ct_valid(ct, idx[i], res[i]);
		}
		break;
	}
	iom_rcu_read_unlock();
	r->checks++;
	atomic_fetch_add_explicit(&ct->checks, 1, memory_order_relaxed);
}

static void *ct_reader_fn(void *arg)
{
	struct ct_reader_state *r = arg;

	iom_rcu_register_thread();
	while (!atomic_load(&r->ct->writer_done))
		ct_read_one(r);
	iom_rcu_unregister_thread();
	return NULL;
}

static void ct_destroy(struct ct *ct)
{
	pthread_mutex_destroy(&ct->lock);
	free(ct->stamps);
	free(ct);
}

/* The checker itself: it must reject what a broken tree could hand out. */
static void checker_rejects_foreign_unpublished_and_torn_items(void **state)
{
	struct ct *ct = ct_create();
	struct stamp *s, fake;
	int k;

	ct_setup(ct);
	k = ct_find(ct, 70);
	assert_true(k >= 0);
	s = ct_next_stamp(ct, (unsigned int)k);
	assert_true(ct_valid(ct, 70, s));
	assert_false(ct_valid(ct, 71, s));		/* another index's item */
	assert_false(ct_valid(ct, 70, s + 1));		/* never published */
	assert_false(ct_valid(ct, 70, (char *)s + 8));	/* not an item */
	fake = *s;
	assert_false(ct_valid(ct, 70, &fake));		/* not from the set */
	s->check ^= 1;
	assert_false(ct_valid(ct, 70, s));		/* torn */
	s->check ^= 1;
	assert_false(ct_valid(ct, 12345678, s));	/* not in the set */
	ct_destroy(ct);
}

static void readers_see_only_published_items_while_a_writer_churns(void **state)
{
	struct ct *ct = ct_create();
	struct ct_writer_state w = { .ct = ct, .seed = 0x1234567 };
	struct ct_reader_state r[CT_READERS];
	pthread_t wt, rt[CT_READERS];
	unsigned long checks = 0, found = 0, failures = 0, k;
	unsigned int i;

	ct_setup(ct);
	for (i = 0; i < CT_READERS; i++) {
		r[i] = (struct ct_reader_state){ .ct = ct, .seed = 77 + i };
		assert_int_equal(pthread_create(&rt[i], NULL, ct_reader_fn, &r[i]), 0);
	}
	assert_int_equal(pthread_create(&wt, NULL, ct_writer_fn, &w), 0);
	pthread_join(wt, NULL);
	for (i = 0; i < CT_READERS; i++) {
		pthread_join(rt[i], NULL);
		checks += r[i].checks;
		found += r[i].found;
		failures += r[i].failures;
	}
	print_message("readers: %lu checks, %lu items checked; writer: %lu ops\n",
		      checks, found, atomic_load(&ct->writer_ops));
	assert_int_equal(w.bad, 0);
	assert_int_equal(failures, 0);
	/* The readers did race the writer, and found items while doing so. */
	assert_true(checks >= atomic_load(&ct->writer_ops) / 64 * 16);
	assert_true(found >= 100);
	for (k = 0; k < CT_NR_INDEX; k++)
		assert_true(atomic_load(&ct->published[k]) > 1);
	assert_true(iom_radix_tree_empty(&ct->root));
	iom_rcu_barrier();
	ct_destroy(ct);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_tree_has_nothing),
		cmocka_unit_test(item_at_index_zero_lives_in_the_root),
		cmocka_unit_test(insert_lookup_delete_at_sparse_and_dense_indices),
		cmocka_unit_test(tree_grows_and_shrinks_with_its_largest_index),
		cmocka_unit_test(insert_at_an_occupied_index_returns_eexist),
		cmocka_unit_test(null_and_misaligned_items_are_rejected),
		cmocka_unit_test(replace_slot_keeps_tags),
		cmocka_unit_test(tags_propagate_to_the_root_and_clear_with_the_last),
		cmocka_unit_test(tags_survive_grow_and_shrink),
		cmocka_unit_test(gang_lookup_is_in_index_order_across_nodes),
		cmocka_unit_test(gang_lookup_stops_at_the_top_of_the_index_space),
		cmocka_unit_test(gang_lookup_tag_returns_only_tagged_items_in_order),
		cmocka_unit_test(random_operations_match_a_model),
		cmocka_unit_test(failed_insert_leaves_the_tree_unchanged_and_leaks_nothing),
		cmocka_unit_test(deleted_nodes_are_freed_only_after_a_grace_period),
		cmocka_unit_test(checker_rejects_foreign_unpublished_and_torn_items),
		cmocka_unit_test(readers_see_only_published_items_while_a_writer_churns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
