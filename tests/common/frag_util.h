/* SPDX-License-Identifier: MIT */
/*
 * A fragmented machine for the compaction tests (test_compaction.c,
 * test_kcompactd.c): a 16 MiB machine whose one zone is filled with
 * sequence-stamped anonymous pages, of which those at odd pfns are then
 * unmapped: every other page in use, all movable, no free block above
 * order 0. Plus the writer threads that stamp the pages while compaction
 * moves them. Header-only, as mm_util.h.
 */
#ifndef IOMMIG_TEST_FRAG_UTIL_H
#define IOMMIG_TEST_FRAG_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/compaction.h>

#include "mm_util.h"

#define FRAG_PG IOM_PAGE_SIZE

struct frag {
	struct iom_machine *m;
	struct iom_mm *mm;
	int zt;				/* the populated zone */
	uint64_t base;
	unsigned long nr;		/* pages mapped */
	bool *live;			/* page i still mapped */
	unsigned long *pfn;		/* its pfn after fragmentation */
	uint64_t *seq;			/* the last stamp's sequence number */
	unsigned long nr_live;
};

/* The content of the page at @addr with sequence number @seq. */
static inline void frag_stamp(uint64_t addr, uint64_t seq, uint64_t *buf)
{
	size_t i;

	buf[0] = seq;
	for (i = 1; i < FRAG_PG / sizeof(uint64_t); i++)
		buf[i] = (addr + (seq << 40)) * 2654435761u + i;
}

/* The pfn mapped at page @i. */
static inline unsigned long frag_pfn_at(struct frag *f, unsigned long i)
{
	struct iom_page *page = test_get_page_at(f->mm, f->base + i * FRAG_PG);
	unsigned long pfn = iom_page_to_pfn(f->m, page);

	assert_int_equal(iom_put_page(f->m, page), 0);
	return pfn;
}

static inline void frag_check_stamps(struct frag *f)
{
	static uint64_t want[FRAG_PG / sizeof(uint64_t)],
			got[FRAG_PG / sizeof(uint64_t)];
	unsigned long i;

	for (i = 0; i < f->nr; i++) {
		uint64_t a = f->base + i * FRAG_PG;

		if (!f->live[i])
			continue;
		frag_stamp(a, f->seq[i], want);
		assert_int_equal(iom_read(f->mm, a, got, FRAG_PG), 0);
		assert_memory_equal(got, want, FRAG_PG);
	}
}

/*
 * Free blocks of order 9 or more in zone @zt of node 0, after draining the
 * caches: their pages if @pages, else how many blocks.
 */
static inline unsigned long frag_order9_free(struct iom_machine *m, int zt,
					     bool pages)
{
	struct iom_zone_info zi;
	unsigned long n = 0;
	unsigned int o;

	iom_drain_all_pages(m);
	assert_int_equal(iom_zone_info(m, 0, zt, &zi), 0);
	for (o = 9; o <= iom_max_order(m) && o < 32; o++)
		n += pages ? zi.nr_free[o] << o : zi.nr_free[o];
	return n;
}

static inline unsigned long frag_order9_free_pages(struct iom_machine *m, int zt)
{
	return frag_order9_free(m, zt, true);
}

static inline unsigned long frag_order9_free_blocks(struct iom_machine *m, int zt)
{
	return frag_order9_free(m, zt, false);
}

/* Live pages that are no longer where frag_create() left them. */
static inline unsigned long frag_nr_moved(struct frag *f)
{
	unsigned long i, moved = 0;

	for (i = 0; i < f->nr; i++)
		if (f->live[i] && frag_pfn_at(f, i) != f->pfn[i])
			moved++;
	return moved;
}

/*
 * Build the fragmented machine: @cfg (NULL: defaults) with 16 MiB and
 * messages into @log; watermarks off as test_machine() makes them.
 */
static inline void frag_create(struct frag *f, struct iom_machine_config *cfg,
			       struct test_log *log)
{
	static uint64_t buf[FRAG_PG / sizeof(uint64_t)];
	struct iom_machine_config c;
	struct iom_zone_info zi;
	unsigned long i, avail, faulted = 0;
	int zt;

	memset(f, 0, sizeof(*f));
	if (cfg)
		c = *cfg;
	else
		memset(&c, 0, sizeof(c));
	c.mem_size = 16 << 20;
	f->m = test_machine(16, log, &c);
	assert_non_null(f->m);
	assert_int_equal(iom_nr_nodes(f->m), 1);
	f->zt = -1;
	for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
		assert_int_equal(iom_zone_info(f->m, 0, zt, &zi), 0);
		if (zi.populated) {
			assert_int_equal(f->zt, -1);
			f->zt = zt;
		}
	}
	assert_true(f->zt >= 0);
	assert_int_equal(iom_mm_create(f->m, &f->mm), 0);

	avail = test_nr_free(f->m);
	f->nr = avail;
	f->base = test_mmap(f->mm, 0, f->nr * FRAG_PG,
			    IOM_PROT_READ | IOM_PROT_WRITE,
			    IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	f->live = calloc(f->nr, sizeof(*f->live));
	f->pfn = calloc(f->nr, sizeof(*f->pfn));
	f->seq = calloc(f->nr, sizeof(*f->seq));
	assert_non_null(f->live);
	assert_non_null(f->pfn);
	assert_non_null(f->seq);
	for (i = 0; i < f->nr; i++) {
		uint64_t a = f->base + i * FRAG_PG;

		frag_stamp(a, 0, buf);
		if (iom_write(f->mm, a, buf, FRAG_PG) != 0)
			break;
		f->live[i] = true;
		faulted++;
	}
	/* the zone is full */
	assert_true(faulted + 16 >= avail);
	assert_true(test_nr_free(f->m) <= 16);
	/* too little free memory to compact for order 9 */
	assert_int_equal(iom_compaction_suitable(f->m, 0, f->zt, 9),
			 IOM_COMPACT_SKIPPED);

	for (i = 0; i < f->nr; i++) {
		if (!f->live[i])
			continue;
		f->pfn[i] = frag_pfn_at(f, i);
		if (f->pfn[i] & 1) {
			assert_int_equal(iom_munmap(f->mm, f->base + i * FRAG_PG,
						    FRAG_PG), 0);
			f->live[i] = false;
		} else {
			f->nr_live++;
		}
	}
	assert_true(f->nr_live > 1000);
	assert_int_equal(frag_order9_free_blocks(f->m, f->zt), 0);
	frag_check_stamps(f);
}

/* Unmap everything: every page is free again, nothing was reported. */
static inline void frag_destroy(struct frag *f)
{
	iom_mm_destroy(f->mm);
	test_assert_machine_clean(f->m);
	iom_machine_destroy(f->m);
	free(f->live);
	free(f->pfn);
	free(f->seq);
}

/*
 * A writer thread: stamps its share of the live pages (every
 * @nr_threads-th from @id) with rising sequence numbers, whole pages,
 * reading each back at once, until *@stop and at least two rounds.
 * Never asserts: counts what went wrong in @errors.
 */
struct frag_writer {
	pthread_t thread;
	struct frag *f;
	unsigned int id, nr_threads;
	atomic_bool *stop;
	unsigned long errors, rounds;
};

static inline void *frag_writer_fn(void *arg)
{
	struct frag_writer *w = arg;
	struct frag *f = w->f;
	uint64_t *buf = malloc(FRAG_PG), *got = malloc(FRAG_PG);
	unsigned long i;

	if (!buf || !got) {
		w->errors++;
		goto out;
	}
	iom_set_numa_node(f->m, 0);
	while (!atomic_load(w->stop) || w->rounds < 2) {
		for (i = w->id; i < f->nr; i += w->nr_threads) {
			uint64_t a = f->base + i * FRAG_PG;

			if (!f->live[i])
				continue;
			frag_stamp(a, f->seq[i] + 1, buf);
			if (iom_write(f->mm, a, buf, FRAG_PG) != 0) {
				w->errors++;
				continue;
			}
			f->seq[i]++;
			if (iom_read(f->mm, a, got, FRAG_PG) != 0 ||
			    memcmp(got, buf, FRAG_PG) != 0)
				w->errors++;
		}
		w->rounds++;
	}
out:
	free(buf);
	free(got);
	return NULL;
}

/* Start @n writers on @f; they stop once *@stop is set. */
static inline void frag_writers_start(struct frag_writer *w, unsigned int n,
				      struct frag *f, atomic_bool *stop)
{
	unsigned int t;

	for (t = 0; t < n; t++) {
		w[t] = (struct frag_writer){ .f = f, .id = t, .nr_threads = n,
					     .stop = stop };
		assert_int_equal(pthread_create(&w[t].thread, NULL,
						frag_writer_fn, &w[t]), 0);
	}
}

/* Stop and join them; each did two rounds or more without an error. */
static inline void frag_writers_stop(struct frag_writer *w, unsigned int n,
				     atomic_bool *stop)
{
	unsigned int t;

	atomic_store(stop, true);
	for (t = 0; t < n; t++) {
		assert_int_equal(pthread_join(w[t].thread, NULL), 0);
		assert_int_equal(w[t].errors, 0);
		assert_true(w[t].rounds >= 2);
	}
}

#endif
