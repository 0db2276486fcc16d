/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench - where a benchmark machine's metadata lives (DESIGN.md §9):
 * a fresh jemalloc arena per machine, so jemalloc's per-arena statistics
 * are the machine's memory cost (allocated, resident, mapped). Without
 * jemalloc (sanitizer builds) a malloc-based mem_ops that only counts bytes.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifdef IOMMIG_BENCH_JEMALLOC
#include <jemalloc/jemalloc.h>

struct bench_arena {
	unsigned int idx;
};

static void *arena_alloc(void *priv, size_t size, size_t align, bool zero)
{
	struct bench_arena *a = priv;
	int flags = MALLOCX_ARENA(a->idx) | MALLOCX_TCACHE_NONE;

	if (zero)
		flags |= MALLOCX_ZERO;
	if (align > 1)
		flags |= MALLOCX_ALIGN(align);
	return mallocx(size ? size : 1, flags);
}

static void arena_free(void *priv, void *ptr, size_t size)
{
	if (ptr)
		dallocx(ptr, MALLOCX_TCACHE_NONE);
}

int bench_arena_create(struct bench_arena **ap)
{
	struct bench_arena *a = calloc(1, sizeof(*a));
	size_t sz = sizeof(a->idx);
	int err;

	if (!a)
		return -ENOMEM;
	err = mallctl("arenas.create", &a->idx, &sz, NULL, 0);
	if (err) {
		free(a);
		return -err;
	}
	*ap = a;
	return 0;
}

void bench_arena_mem_ops(struct bench_arena *a, struct iom_mem_ops *ops)
{
	ops->alloc = arena_alloc;
	ops->free = arena_free;
	ops->priv = a;
}

/* Read "stats.arenas.<idx>.<leaf>", a size_t. */
static int read_size(unsigned int idx, const char *leaf, long long *out)
{
	char name[96];
	size_t v, sz = sizeof(v);
	int err;

	snprintf(name, sizeof(name), "stats.arenas.%u.%s", idx, leaf);
	err = mallctl(name, &v, &sz, NULL, 0);
	if (err)
		return -err;
	*out = (long long)v;
	return 0;
}

int bench_arena_stats(struct bench_arena *a, struct bench_arena_stats *out)
{
	uint64_t epoch = 1;
	size_t sz;
	long long small, large;
	bool stats;
	int err;

	sz = sizeof(stats);
	if (mallctl("config.stats", &stats, &sz, NULL, 0) || !stats)
		return -ENOTSUP;
	/* Statistics are a snapshot taken at the last epoch increment. */
	sz = sizeof(epoch);
	err = mallctl("epoch", &epoch, &sz, &epoch, sizeof(epoch));
	if (err)
		return -err;
	if ((err = read_size(a->idx, "small.allocated", &small)) ||
	    (err = read_size(a->idx, "large.allocated", &large)) ||
	    (err = read_size(a->idx, "resident", &out->resident)) ||
	    (err = read_size(a->idx, "mapped", &out->mapped)))
		return err;
	out->allocated = small + large;
	return 0;
}

void bench_arena_destroy(struct bench_arena *a)
{
	char name[64];

	if (!a)
		return;
	/* Returns the arena's memory to the system; fails if still in use. */
	snprintf(name, sizeof(name), "arena.%u.destroy", a->idx);
	if (mallctl(name, NULL, NULL, NULL, 0))
		bench_error("jemalloc arena %u could not be destroyed", a->idx);
	free(a);
}

const char *bench_arena_version(void)
{
	static char buf[64];
	const char *v = NULL;
	size_t sz = sizeof(v);

	if (mallctl("version", &v, &sz, NULL, 0) || !v)
		v = JEMALLOC_VERSION;
	/* "5.3.0-0-g54eaed1d8b56..." -> keep the short hash. */
	snprintf(buf, sizeof(buf), "%.22s", v);
	return buf;
}

#else /* !IOMMIG_BENCH_JEMALLOC */
#include <gnu/libc-version.h>

/* Counts what is allocated; the host's own numbers are not per machine. */
struct bench_arena {
	atomic_llong allocated;
};

/*
 * calloc() keeps large zeroed blocks untouched (fresh mmap), as jemalloc
 * does, so RSS still says what the machine really touched. The pointer
 * malloc gave is kept just below the aligned block.
 */
static void *arena_alloc(void *priv, size_t size, size_t align, bool zero)
{
	struct bench_arena *a = priv;
	size_t total;
	uintptr_t p;
	void *raw;

	if (align < 16)
		align = 16;
	if (size > SIZE_MAX - align - sizeof(void *))
		return NULL;
	total = size + align + sizeof(void *);
	raw = zero ? calloc(1, total) : malloc(total);
	if (!raw)
		return NULL;
	p = ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
	((void **)p)[-1] = raw;
	atomic_fetch_add_explicit(&a->allocated, (long long)size,
				  memory_order_relaxed);
	return (void *)p;
}

static void arena_free(void *priv, void *ptr, size_t size)
{
	struct bench_arena *a = priv;

	if (!ptr)
		return;
	atomic_fetch_sub_explicit(&a->allocated, (long long)size,
				  memory_order_relaxed);
	free(((void **)ptr)[-1]);
}

int bench_arena_create(struct bench_arena **ap)
{
	struct bench_arena *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	*ap = a;
	return 0;
}

void bench_arena_mem_ops(struct bench_arena *a, struct iom_mem_ops *ops)
{
	ops->alloc = arena_alloc;
	ops->free = arena_free;
	ops->priv = a;
}

int bench_arena_stats(struct bench_arena *a, struct bench_arena_stats *out)
{
	out->allocated = atomic_load(&a->allocated);
	out->resident = -1;
	out->mapped = -1;
	return 0;
}

void bench_arena_destroy(struct bench_arena *a)
{
	free(a);
}

const char *bench_arena_version(void)
{
	static char buf[32];

	snprintf(buf, sizeof(buf), "glibc %s", gnu_get_libc_version());
	return buf;
}
#endif
