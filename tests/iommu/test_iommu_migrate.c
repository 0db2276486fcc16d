/* SPDX-License-Identifier: MIT */
/*
 * Migration of IOMMU-mapped pages under live DMA (src/iommu/iommu-migrate.c).
 *
 * Four device threads on two devices of one UNMANAGED domain write
 * sequence-stamped 64-byte records through the IOMMU (bursts of 1 to 16
 * records, a quarter of them crossing a page boundary) and read their own
 * records back, while the main thread moves every page back and forth
 * between two sets of physical pages in every mode: iom_iommu_migrate()
 * one page a call and the whole range a call, iom_iommu_migrate_ranges()
 * in BLOCK mode (all ranges in one batch), PER_PAGE (batches of 8) and
 * NONBLOCK (batches of 16 and the whole range as one range); with 64
 * pages of 4 KiB (behind the default IOTLB, then behind a 16-entry random
 * one, where most accesses walk the table and fills race the
 * invalidations), two hot pages every thread hammers (as many switches
 * as the time allows), and one 2 MiB block. The program proves:
 *  - no write is lost: every record, read back by its writer at any time
 *    and at the end through a device and straight from the page the
 *    domain maps, holds exactly the last sequence number its write
 *    acknowledged, and is whole (no torn or half-migrated burst);
 *  - no write lands in an old page after the switch: each old page is
 *    filled with poison as soon as the migration returns, and the poison
 *    is intact when the page is next used as a destination and at the end;
 *  - no transaction fails, every migration returns 0, and the NONBLOCK
 *    mode really runs its protocol (write faults, re-copies, more than one
 *    round);
 *  - everything is given back: the machine's free pages return to their
 *    count before the test, no table page is left, no bug was reported;
 *  - the negative control: with iom_iommu_set_skip_invalidation() the
 *    same checker reports stray and lost writes (devices keep stale IOTLB
 *    entries for the old pages), deterministically with one thread, with
 *    the device threads parked while the main thread migrates and checks
 *    (race-free, so it also runs under ThreadSanitizer), and fully
 *    concurrently (not under ThreadSanitizer: there the stray writes are
 *    real data races that TSan would report before the checker does).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#include <iommig/io-pgtable.h>
#include <iommig/iommu.h>
#include <iommig/mm.h>
#include <iommig/rcu.h>

#include "iommu/iommu-priv.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define PG		IOM_PAGE_SIZE
#define SZ_2M		(2UL << 20)
#define REC		64		/* bytes per record */
#define RUN		16		/* records per run; runs start 8 records early */
#define NTHREADS	4
#define NDEVS		2
#define IOVA_BASE	0x40000000UL	/* 1 GiB: 2 MiB aligned */
#define POISON		0xd5

/* Rounds (full switches of every page) per scenario, and a time cap. */
#if UNDER_TSAN
#define ROUNDS_PER_MODE	25
#define HOT_ROUNDS	2000
#define MAX_SECONDS	6.0
#else
#define ROUNDS_PER_MODE	40
#define HOT_ROUNDS	20000
#define MAX_SECONDS	6.0
#endif

static struct test_log tlog;
static unsigned char poison_page[PG];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ---- records -------------------------------------------------------------- */

struct rec {
	uint32_t owner;		/* the thread that owns the slot */
	uint32_t slot;		/* its index in the region */
	uint64_t seq;		/* the owner's write sequence number */
	uint64_t check[6];	/* a function of slot, seq and the word */
};
_Static_assert(sizeof(struct rec) == REC, "a record is 64 bytes");

static uint64_t rec_word(uint32_t slot, uint64_t seq, unsigned int i)
{
	uint64_t s = ((uint64_t)slot << 40) ^ (seq * 0x100000001b3ULL) ^ i;

	return rnd(&s);
}

static void rec_fill(struct rec *r, unsigned int owner, uint32_t slot, uint64_t seq)
{
	r->owner = owner;
	r->slot = slot;
	r->seq = seq;
	for (unsigned int i = 0; i < 6; i++)
		r->check[i] = rec_word(slot, seq, i);
}

static bool rec_whole(const struct rec *r, unsigned int owner, uint32_t slot)
{
	if (r->owner != owner || r->slot != slot)
		return false;
	for (unsigned int i = 0; i < 6; i++)
		if (r->check[i] != rec_word(slot, r->seq, i))
			return false;
	return true;
}

/*
 * Run q covers records [16q - 8, 16q + 8) of the region (clipped): with 64
 * records a page, every fourth run crosses a page boundary. Its owner
 * rotates so that every thread owns crossing runs.
 */
static unsigned int run_owner(size_t q)
{
	return (unsigned int)((q + q / 4) % NTHREADS);
}

static unsigned int slot_owner(size_t slot)
{
	return run_owner((slot + RUN / 2) / RUN);
}

static void run_bounds(size_t q, size_t nr_recs, size_t *lo, size_t *hi)
{
	*lo = q * RUN >= RUN / 2 ? q * RUN - RUN / 2 : 0;
	*hi = q * RUN + RUN / 2 < nr_recs ? q * RUN + RUN / 2 : nr_recs;
}

/* ---- the scenario ---------------------------------------------------------- */

enum mode {
	M_SEED_PAGE,		/* iom_iommu_migrate(), one leaf a call */
	M_SEED_WHOLE,		/* iom_iommu_migrate(), the whole region */
	M_BLOCK_BATCH,		/* BLOCK, every leaf a range, one call */
	M_PER_PAGE,		/* PER_PAGE, batches of 8 leaves */
	M_NONBLOCK_BATCH,	/* NONBLOCK, batches of 16 leaves */
	M_NONBLOCK_WHOLE,	/* NONBLOCK, the region as one range */
	NR_MODES
};

static const char *const mode_name[NR_MODES] = {
	"seed/page", "seed/whole", "block/batch", "per-page/8", "nonblock/16",
	"nonblock/whole",
};

struct scen {
	/* what to run */
	const char *name;
	unsigned int unit;		/* pages per leaf: 1 or 512 */
	unsigned int npages;		/* 4 KiB pages in the region */
	const enum mode *modes;
	unsigned int nr_modes;
	unsigned int rounds;
	bool skip;			/* negative control */
	bool lockstep;			/* devices parked while migrating */
	double progress_s;		/* how long to wait for device progress */
	unsigned int iotlb_entries;	/* 0: the default 2048 x 8 ways, LRU */
	double max_s;			/* stop after this long (each mode ran once) */
	unsigned long free0;		/* the machine's free pages at the start */

	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d;
	struct iom_device *dev[NDEVS];
	struct iom_page *blk[2];	/* the two page sets */
	uint64_t pa[2];
	unsigned int order;
	unsigned char *cur;		/* per page: the set it is mapped to */
	size_t size, nr_recs, nr_runs;
	unsigned long iova;
	_Atomic uint64_t *acked;	/* per slot: last acknowledged seq */

	/* device threads */
	atomic_bool stop, pause;
	atomic_uint parked;
	_Atomic uint64_t writes, reads, fail, lost_seen, torn_seen;

	/* main thread */
	int mig_err;
	const char *mig_err_mode;
	uint64_t stray_pages, stray_bytes;
	uint64_t calls[NR_MODES], switches;
	double mode_s[NR_MODES];
	bool want_faults;
	/* NONBLOCK totals */
	uint64_t nb_calls, nb_multi_round, nb_recopied, nb_write_faults;
	uint64_t nb_final_dirty, nb_stop_ns_max;
	unsigned int nb_rounds_max;
};

struct dthread {
	struct scen *s;
	unsigned int idx;
	pthread_t th;
	uint64_t seq, rng;
	size_t *runs;
	size_t nr_runs;
};

static char *host(struct scen *s, uint64_t pa)
{
	struct iom_page *p = iom_phys_to_page(s->m, pa);

	return (char *)iom_page_address(s->m, p) + (pa & (PG - 1));
}

static uint64_t dev_total_migrate_faults(struct scen *s)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < NDEVS; i++) {
		struct iom_device_stats st;

		if (!iom_device_get_stats(s->dev[i], &st))
			n += st.migrate_faults;
	}
	return n;
}

/* ---- device threads (never assert: count, the main thread checks) ---------- */

static void park(struct scen *s)
{
	atomic_fetch_add(&s->parked, 1);
	while (atomic_load(&s->pause) && !atomic_load(&s->stop))
		sched_yield();
	atomic_fetch_sub(&s->parked, 1);
}

static void pick(struct dthread *t, size_t *a, size_t *b)
{
	size_t q = t->runs[rnd(&t->rng) % t->nr_runs], lo, hi;

	run_bounds(q, t->s->nr_recs, &lo, &hi);
	if (rnd(&t->rng) % 4 == 0) {
		*a = lo;
		*b = hi;
	} else {
		*a = lo + rnd(&t->rng) % (hi - lo);
		*b = *a + 1 + rnd(&t->rng) % (hi - *a);
	}
}

static void *device_thread(void *arg)
{
	struct dthread *t = arg;
	struct scen *s = t->s;
	struct iom_device *dev = s->dev[t->idx % NDEVS];
	struct rec buf[RUN];
	unsigned long op = 0;

	while (!atomic_load(&s->stop)) {
		size_t a, b;
		uint64_t seq;

		if (atomic_load(&s->pause)) {
			park(s);
			continue;
		}
		pick(t, &a, &b);
		seq = ++t->seq;
		for (size_t i = a; i < b; i++)
			rec_fill(&buf[i - a], t->idx, (uint32_t)i, seq);
		if (iom_device_dma_write(dev, s->iova + a * REC, buf, (b - a) * REC)) {
			atomic_fetch_add(&s->fail, 1);
		} else {
			for (size_t i = a; i < b; i++)
				atomic_store_explicit(&s->acked[i], seq, memory_order_relaxed);
		}
		atomic_fetch_add(&s->writes, 1);
		if (++op % 3)
			continue;
		/* read back some of its own records: exactly what it acknowledged */
		pick(t, &a, &b);
		if (iom_device_dma_read(dev, s->iova + a * REC, buf, (b - a) * REC)) {
			atomic_fetch_add(&s->fail, 1);
			continue;
		}
		atomic_fetch_add(&s->reads, 1);
		for (size_t i = a; i < b; i++) {
			uint64_t want = atomic_load_explicit(&s->acked[i], memory_order_relaxed);

			if (!rec_whole(&buf[i - a], t->idx, (uint32_t)i))
				atomic_fetch_add(&s->torn_seen, 1);
			else if (buf[i - a].seq != want)
				atomic_fetch_add(&s->lost_seen, 1);
		}
	}
	return NULL;
}

/* ---- the main thread: migrate and check ------------------------------------ */

/* Count non-poison bytes in pages [p0, p0 + n) of set @set. */
static void check_poison(struct scen *s, int set, unsigned int p0, unsigned int n)
{
	for (unsigned int p = p0; p < p0 + n; p++) {
		const unsigned char *h = (const unsigned char *)host(s, s->pa[set] + (uint64_t)p * PG);

		if (!memcmp(h, poison_page, PG))
			continue;
		s->stray_pages++;
		for (size_t i = 0; i < PG; i++)
			s->stray_bytes += h[i] != POISON;
	}
}

static void fill_poison(struct scen *s, int set, unsigned int p0, unsigned int n)
{
	memset(host(s, s->pa[set] + (uint64_t)p0 * PG), POISON, (size_t)n * PG);
}

struct mig_ctx {
	struct scen *s;
	const struct iom_iommu_migrate_range *r;
	const uint64_t *src;
	bool nonblock, waited;
	uint64_t faults0;
};

static void copy_range(void *priv, unsigned int idx, size_t off, size_t len)
{
	struct mig_ctx *c = priv;
	struct scen *s = c->s;

	memcpy(host(s, c->r[idx].paddr + off), host(s, c->src[idx] + off), len);
	/*
	 * Until a NONBLOCK migration has seen a write fault, let the devices
	 * write while the first leaf is being copied: the others are
	 * fault-on-write now, so the protocol's fault and re-copy paths run.
	 */
	if (c->nonblock && !c->waited && s->want_faults) {
		double t0 = now_s();

		c->waited = true;
		while (dev_total_migrate_faults(s) == c->faults0 && now_s() - t0 < 0.2)
			sched_yield();
	}
}

struct seed_ctx {
	struct scen *s;
	uint64_t src, dst;
	size_t size;
};

static void seed_copy(void *priv)
{
	struct seed_ctx *c = priv;

	memcpy(host(c->s, c->dst), host(c->s, c->src), c->size);
}

/*
 * Migrate pages [p0, p0 + n) to the other set: as one range or as one
 * range per leaf, through iom_iommu_migrate() (@seed) or
 * iom_iommu_migrate_ranges() in @mm. Checks the destination's poison
 * first, poisons the old pages after.
 */
static int migrate_call(struct scen *s, enum mode mode, bool seed,
			enum iom_iommu_migrate_mode mm, unsigned int p0,
			unsigned int n, bool per_leaf)
{
	struct iom_iommu_migrate_range r[64];
	uint64_t src[64];
	int from = s->cur[p0], to = 1 - from, ret;
	unsigned int nr = per_leaf ? n / s->unit : 1;
	size_t rsize = (size_t)(per_leaf ? s->unit : n) * PG;

	if (nr > 64)
		return -E2BIG;
	for (unsigned int p = p0; p < p0 + n; p++)
		if (s->cur[p] != from)
			return -EINVAL;
	check_poison(s, to, p0, n);
	for (unsigned int i = 0; i < nr; i++) {
		uint64_t off = (uint64_t)p0 * PG + (uint64_t)i * rsize;

		r[i].iova = s->iova + off;
		r[i].paddr = s->pa[to] + off;
		r[i].size = rsize;
		src[i] = s->pa[from] + off;
	}
	if (seed) {
		struct seed_ctx c = { s, src[0], r[0].paddr, rsize };

		ret = iom_iommu_migrate(s->d, r[0].iova, r[0].paddr, rsize, seed_copy, &c);
	} else {
		struct mig_ctx c = { s, r, src, mm == IOM_IOMMU_MIGRATE_NONBLOCK, false, 0 };
		struct iom_iommu_migrate_stats st;

		if (c.nonblock && s->want_faults)
			c.faults0 = dev_total_migrate_faults(s);
		ret = iom_iommu_migrate_ranges(s->d, r, nr, mm, copy_range, &c, &st);
		if (!ret && c.nonblock) {
			s->nb_calls++;
			s->nb_multi_round += st.rounds > 1;
			s->nb_recopied += st.recopied;
			s->nb_write_faults += st.write_faults;
			s->nb_final_dirty += st.final_dirty;
			if (st.rounds > s->nb_rounds_max)
				s->nb_rounds_max = st.rounds;
			if (st.stop_ns > s->nb_stop_ns_max)
				s->nb_stop_ns_max = st.stop_ns;
			if (s->nb_write_faults && s->nb_recopied)
				s->want_faults = false;
		}
	}
	if (ret)
		return ret;
	memset(s->cur + p0, to, n);
	fill_poison(s, from, p0, n);
	s->calls[mode]++;
	s->switches += n;
	return 0;
}

/* One round: every page moves to the other set, in @mode. */
static int migrate_round(struct scen *s, enum mode mode)
{
	unsigned int u = s->unit, n = s->npages, step;
	int ret = 0;

	switch (mode) {
	case M_SEED_PAGE:
		for (unsigned int p = 0; p < n && !ret; p += u)
			ret = migrate_call(s, mode, true, IOM_IOMMU_MIGRATE_BLOCK, p, u, false);
		return ret;
	case M_SEED_WHOLE:
		return migrate_call(s, mode, true, IOM_IOMMU_MIGRATE_BLOCK, 0, n, false);
	case M_BLOCK_BATCH:
		return migrate_call(s, mode, false, IOM_IOMMU_MIGRATE_BLOCK, 0, n, true);
	case M_PER_PAGE:
	case M_NONBLOCK_BATCH:
		step = (mode == M_PER_PAGE ? 8 : 16) * u;
		if (step > n)
			step = n;
		for (unsigned int p = 0; p < n && !ret; p += step)
			ret = migrate_call(s, mode, false, mode == M_PER_PAGE ?
					   IOM_IOMMU_MIGRATE_PER_PAGE : IOM_IOMMU_MIGRATE_NONBLOCK,
					   p, step, true);
		return ret;
	case M_NONBLOCK_WHOLE:
		return migrate_call(s, mode, false, IOM_IOMMU_MIGRATE_NONBLOCK, 0, n, false);
	default:
		return -EINVAL;
	}
}

static void pause_devices(struct scen *s)
{
	atomic_store(&s->pause, true);
	while (atomic_load(&s->parked) != NTHREADS)
		sched_yield();
}

static void resume_devices(struct scen *s)
{
	atomic_store(&s->pause, false);
}

/* Let the devices make @n more writes (bounded). */
static void wait_progress(struct scen *s, uint64_t n, double max_s)
{
	uint64_t w0 = atomic_load(&s->writes);
	double t0 = now_s();

	while (atomic_load(&s->writes) - w0 < n && now_s() - t0 < max_s)
		sched_yield();
}

/* ---- setup, final check, teardown ------------------------------------------ */

static unsigned long free_pages_now(struct iom_machine *m)
{
	unsigned long n = 0;

	iom_drain_all_pages(m);
	for (int z = IOM_ZONE_NORMAL; z <= IOM_ZONE_MOVABLE; z++) {
		struct iom_zone_info zi;

		if (!iom_zone_info(m, 0, z, &zi))
			n += zi.nr_free_pages;
	}
	return n;
}

static void setup(struct scen *s)
{
	struct rec *recs;

	s->m = test_machine(64, &tlog, NULL);
	assert_non_null(s->m);
	s->free0 = free_pages_now(s->m);
	s->size = (size_t)s->npages * PG;
	s->nr_recs = s->size / REC;
	s->nr_runs = s->nr_recs / RUN + 1;
	s->iova = IOVA_BASE;
	s->order = (unsigned int)__builtin_ctz(s->npages);
	assert_int_equal(1U << s->order, s->npages);
	if (s->iotlb_entries) {
		struct iom_iommu_config cfg;

		/* a tiny random IOTLB: most accesses walk, fills race invalidations */
		iom_iommu_config_init(&cfg);
		cfg.iotlb_entries = s->iotlb_entries;
		cfg.iotlb_ways = 4;
		cfg.iotlb_replacement = IOM_IOTLB_RANDOM;
		assert_int_equal(iom_iommu_create(s->m, &cfg, &s->iommu), 0);
	} else {
		assert_int_equal(iom_iommu_create(s->m, NULL, &s->iommu), 0);
	}
	s->d = iom_iommu_domain_alloc(s->iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(s->d);
	for (int i = 0; i < NDEVS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "dev%d", i);
		assert_int_equal(iom_device_create(s->iommu, name, &s->dev[i]), 0);
		assert_int_equal(iom_iommu_attach_device(s->d, s->dev[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		s->blk[i] = iom_alloc_pages(s->m, IOM_GFP_KERNEL, s->order);
		assert_non_null(s->blk[i]);
		s->pa[i] = iom_page_to_phys(s->m, s->blk[i]);
	}
	s->cur = calloc(s->npages, 1);
	s->acked = calloc(s->nr_recs, sizeof(*s->acked));
	assert_non_null(s->cur);
	assert_non_null(s->acked);
	/* set 0 holds every record at seq 0 and is mapped; set 1 is poison */
	recs = (struct rec *)host(s, s->pa[0]);
	for (size_t i = 0; i < s->nr_recs; i++)
		rec_fill(&recs[i], slot_owner(i), (uint32_t)i, 0);
	fill_poison(s, 1, 0, s->npages);
	assert_int_equal(iom_iommu_map(s->d, s->iova, s->pa[0], s->size,
				       IOM_IOMMU_READ | IOM_IOMMU_WRITE), 0);
	if (s->unit > 1) {
		struct iom_io_pgtable_walk_data w;

		assert_int_equal(iom_io_pgtable_walk(iom_iommu_domain_pgtable(s->d), s->iova, &w), 0);
		assert_int_equal(w.size, (size_t)s->unit * PG);
	}
}

struct final {
	uint64_t lost, phantom, torn, bad_map, read_err, dev_failed;
};

static void check_rec(struct scen *s, const struct rec *r, size_t slot, struct final *f)
{
	uint64_t want = atomic_load(&s->acked[slot]);

	if (!rec_whole(r, slot_owner(slot), (uint32_t)slot))
		f->torn++;
	else if (r->seq < want)
		f->lost++;
	else if (r->seq > want)
		f->phantom++;
}

/* After the threads joined: records, mappings, spare pages' poison. */
static void final_check(struct scen *s, struct final *f)
{
	struct rec *buf = malloc(s->size);

	memset(f, 0, sizeof(*f));
	assert_non_null(buf);
	if (iom_device_dma_read(s->dev[0], s->iova, buf, s->size))
		f->read_err++;
	for (size_t i = 0; i < s->nr_recs; i++) {
		unsigned long iova = s->iova + i * REC;
		unsigned int p = (unsigned int)(i * REC / PG);
		uint64_t pa = iom_iommu_iova_to_phys(s->d, iova);

		if (pa != s->pa[s->cur[p]] + i * REC) {
			f->bad_map++;
			continue;
		}
		check_rec(s, (const struct rec *)host(s, pa), i, f);
		if (!f->read_err)
			check_rec(s, &buf[i], i, f);
	}
	for (unsigned int p = 0; p < s->npages; p++)
		check_poison(s, 1 - s->cur[p], p, 1);
	for (int i = 0; i < NDEVS; i++) {
		struct iom_device_stats st;

		assert_int_equal(iom_device_get_stats(s->dev[i], &st), 0);
		f->dev_failed += st.failed;
	}
	free(buf);
}

static void teardown(struct scen *s)
{
	for (int i = 0; i < NDEVS; i++) {
		assert_int_equal(iom_iommu_detach_device(s->d, s->dev[i]), 0);
		assert_int_equal(iom_device_destroy(s->dev[i]), 0);
	}
	assert_int_equal(iom_iommu_domain_free(s->d), 0);
	assert_int_equal(iom_iommu_destroy(s->iommu), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(iom___free_pages(s->m, s->blk[i], s->order), 0);
	iom_rcu_barrier();
	assert_int_equal(iom_io_pgtable_machine_pages(s->m), 0);
	assert_int_equal(free_pages_now(s->m), s->free0);
	assert_int_equal(iom_machine_bug_count(s->m), 0);
	free(s->cur);
	free((void *)s->acked);
	iom_machine_destroy(s->m);
}

/*
 * Run @s on a machine of its own: start the device threads, migrate round
 * after round, stop them, check, tear down (asserting nothing leaked).
 * Leaves the verdict in @s and @f; the caller asserts it.
 */
static void run(struct scen *s, struct final *f)
{
	struct dthread t[NTHREADS];
	double t0, elapsed;
	unsigned int round;

	memset(poison_page, POISON, sizeof(poison_page));
	setup(s);
	s->want_faults = s->unit == 1 && !s->skip;
	for (unsigned int i = 0; i < NTHREADS; i++) {
		t[i].s = s;
		t[i].idx = i;
		t[i].seq = 0;
		t[i].rng = 0x1234567ULL * (i + 1);
		t[i].runs = malloc(s->nr_runs * sizeof(size_t));
		assert_non_null(t[i].runs);
		t[i].nr_runs = 0;
		for (size_t q = 0; q < s->nr_runs; q++)
			if (run_owner(q) == i)
				t[i].runs[t[i].nr_runs++] = q;
	}
	if (s->skip)
		iom_iommu_set_skip_invalidation(s->iommu, true);
	for (unsigned int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i].th, NULL, device_thread, &t[i]), 0);
	/* devices warm: their translations are in the IOTLB */
	wait_progress(s, 64, 20.0);

	t0 = now_s();
	for (round = 0; round < s->rounds; round++) {
		enum mode mode = s->modes[round % s->nr_modes];
		double tm;
		int ret;

		if (s->lockstep)
			pause_devices(s);
		tm = now_s();
		ret = migrate_round(s, mode);
		s->mode_s[mode] += now_s() - tm;
		if (s->lockstep)
			resume_devices(s);
		if (ret) {
			s->mig_err = ret;
			s->mig_err_mode = mode_name[mode];
			break;
		}
		wait_progress(s, 4 * NTHREADS, s->progress_s);
		if (round + 1 >= s->nr_modes && now_s() - t0 > s->max_s) {
			round++;
			break;
		}
	}
	/* NONBLOCK must have shown its protocol: a few more tries if not yet */
	while (!s->mig_err && s->want_faults && s->nb_calls && now_s() - t0 < 3 * s->max_s) {
		int ret = migrate_round(s, M_NONBLOCK_WHOLE);

		if (ret) {
			s->mig_err = ret;
			s->mig_err_mode = mode_name[M_NONBLOCK_WHOLE];
			break;
		}
		round++;
	}
	elapsed = now_s() - t0;
	atomic_store(&s->stop, true);
	for (unsigned int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i].th, NULL);
		free(t[i].runs);
	}
	if (s->skip)
		iom_iommu_set_skip_invalidation(s->iommu, false);
	final_check(s, f);

	print_message("%s: %u rounds, %llu page switches in %.2f s; device writes %llu "
		      "reads %llu failed %llu\n", s->name, round,
		      (unsigned long long)s->switches, elapsed,
		      (unsigned long long)atomic_load(&s->writes),
		      (unsigned long long)atomic_load(&s->reads),
		      (unsigned long long)atomic_load(&s->fail));
	for (int i = 0; i < NR_MODES; i++)
		if (s->calls[i])
			print_message("  %-15s %llu calls, %.3f s\n", mode_name[i],
				      (unsigned long long)s->calls[i], s->mode_s[i]);
	if (s->nb_calls)
		print_message("  nonblock: %llu calls, %llu with >1 round (max %u), "
			      "write faults %llu, recopied %llu B, final dirty %llu B, "
			      "max stop %.1f us\n", (unsigned long long)s->nb_calls,
			      (unsigned long long)s->nb_multi_round, s->nb_rounds_max,
			      (unsigned long long)s->nb_write_faults,
			      (unsigned long long)s->nb_recopied,
			      (unsigned long long)s->nb_final_dirty,
			      (double)s->nb_stop_ns_max / 1000.0);
	print_message("  checker: lost seen %llu, torn seen %llu; final lost %llu phantom %llu "
		      "torn %llu bad map %llu; stray pages %llu (%llu bytes)\n",
		      (unsigned long long)atomic_load(&s->lost_seen),
		      (unsigned long long)atomic_load(&s->torn_seen),
		      (unsigned long long)f->lost, (unsigned long long)f->phantom,
		      (unsigned long long)f->torn, (unsigned long long)f->bad_map,
		      (unsigned long long)s->stray_pages, (unsigned long long)s->stray_bytes);
	teardown(s);
}

static void assert_clean(struct scen *s, const struct final *f)
{
	if (s->mig_err)
		print_message("migration in mode %s returned %d\n", s->mig_err_mode, s->mig_err);
	assert_int_equal(s->mig_err, 0);
	assert_int_equal(atomic_load(&s->fail), 0);
	assert_int_equal(f->dev_failed, 0);
	assert_int_equal(f->read_err, 0);
	assert_int_equal(atomic_load(&s->lost_seen), 0);
	assert_int_equal(atomic_load(&s->torn_seen), 0);
	assert_int_equal(f->bad_map, 0);
	assert_int_equal(f->lost, 0);
	assert_int_equal(f->phantom, 0);
	assert_int_equal(f->torn, 0);
	assert_int_equal(s->stray_pages, 0);
	/* the devices ran during the migrations */
	assert_true(atomic_load(&s->writes) > s->rounds);
	assert_true(atomic_load(&s->reads) > 0);
	for (unsigned int i = 0; i < s->nr_modes; i++)
		assert_true(s->calls[s->modes[i]] > 0);
	assert_int_equal(tlog.nr_warn + tlog.nr_err, 0);
}

/* ---- the tests -------------------------------------------------------------- */

static const enum mode all_modes[] = {
	M_SEED_PAGE, M_SEED_WHOLE, M_BLOCK_BATCH, M_PER_PAGE, M_NONBLOCK_BATCH,
	M_NONBLOCK_WHOLE,
};

static const enum mode block_modes[] = {
	M_SEED_WHOLE, M_BLOCK_BATCH, M_PER_PAGE, M_NONBLOCK_WHOLE,
};

static void scen_init(struct scen *s, const char *name, unsigned int unit,
		      unsigned int npages, const enum mode *modes, unsigned int nr_modes)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->unit = unit;
	s->npages = npages;
	s->modes = modes;
	s->nr_modes = nr_modes;
	s->rounds = nr_modes * ROUNDS_PER_MODE;
	s->progress_s = 1.0;
	s->max_s = MAX_SECONDS;
}

static void pages_4k_all_modes(void **state)
{
	struct scen s;
	struct final f;

	(void)state;
	scen_init(&s, "64 x 4 KiB", 1, 64, all_modes, NR_MODES);
	run(&s, &f);
	assert_clean(&s, &f);
	/* NONBLOCK ran its protocol, not just the final stop */
	assert_true(s.nb_write_faults > 0);
	assert_true(s.nb_recopied > 0);
	assert_true(s.nb_rounds_max > 1);
}

static void pages_4k_small_iotlb(void **state)
{
	struct scen s;
	struct final f;

	(void)state;
	scen_init(&s, "64 x 4 KiB, 16-entry IOTLB", 1, 64, all_modes, NR_MODES);
	s.iotlb_entries = 16;
	run(&s, &f);
	assert_clean(&s, &f);
	assert_true(s.nb_write_faults > 0);
}

static const enum mode hot_modes[] = {
	M_NONBLOCK_BATCH, M_NONBLOCK_WHOLE, M_PER_PAGE, M_SEED_PAGE,
};

/*
 * Two hot pages, every thread on them, behind a tiny IOTLB: every
 * invalidation catches devices in the middle of a walk, which is where
 * a fill that raced with the invalidation would leave a stale entry.
 */
static void hot_pages_many_switches(void **state)
{
	struct scen s;
	struct final f;

	(void)state;
	scen_init(&s, "2 hot pages, 16-entry IOTLB", 1, 2, hot_modes,
		  sizeof(hot_modes) / sizeof(hot_modes[0]));
	s.iotlb_entries = 16;
	s.rounds = HOT_ROUNDS;
	s.max_s = MAX_SECONDS / 2;
	run(&s, &f);
	assert_clean(&s, &f);
}

static void block_2m_all_modes(void **state)
{
	struct scen s;
	struct final f;

	(void)state;
	scen_init(&s, "2 MiB block", 512, 512, block_modes,
		  sizeof(block_modes) / sizeof(block_modes[0]));
	run(&s, &f);
	assert_clean(&s, &f);
}

/* ---- the negative control ---------------------------------------------------- */

static const enum mode neg_modes[] = { M_SEED_PAGE, M_BLOCK_BATCH };

static const enum mode neg_modes_concurrent[] = {
	M_SEED_PAGE, M_BLOCK_BATCH, M_NONBLOCK_BATCH,
};

/*
 * What the checker must report when invalidations are skipped. The
 * IOTLB then keeps every translation a device used, whatever the table
 * says: after a switch the devices go on writing into the old page
 * (poisoned: a stray write), and the page the domain now maps misses
 * those writes (lost). With an odd number of rounds the region ends
 * mapped to the set it did not start in, where the stale entries of the
 * warm-up do not point, so both show up after the last round.
 */
static void assert_caught(struct scen *s, const struct final *f)
{
	assert_int_equal(s->mig_err, 0);
	assert_int_equal(atomic_load(&s->fail), 0);
	assert_true(s->stray_pages > 0);
	/* lost, or read back damaged (a read that found the poison) */
	assert_true(f->lost + f->torn + atomic_load(&s->lost_seen) +
		    atomic_load(&s->torn_seen) > 0);
}

/*
 * The device threads park while the main thread migrates and checks the
 * poison, so no device access races with the checker's: deterministic,
 * and clean under ThreadSanitizer.
 */
static void skip_invalidation_caught_lockstep(void **state)
{
	struct scen s;
	struct final f;

	(void)state;
	scen_init(&s, "skip invalidation, lockstep", 1, 64, neg_modes,
		  sizeof(neg_modes) / sizeof(neg_modes[0]));
	s.skip = true;
	s.lockstep = true;
	s.rounds = 5;
	s.progress_s = 30.0;
	run(&s, &f);
	assert_caught(&s, &f);
}

/*
 * The same, fully concurrent (the checker of the positive tests as is).
 * Not under ThreadSanitizer: a stray write is a real race with the
 * checker's poisoning, which TSan reports before the checker can.
 */
static void skip_invalidation_caught_concurrent(void **state)
{
	struct scen s;
	struct final f;

	(void)state;
	if (UNDER_TSAN) {
		print_message("skipped under ThreadSanitizer (the lockstep variant runs)\n");
		skip();
	}
	scen_init(&s, "skip invalidation, concurrent", 1, 64, neg_modes_concurrent,
		  sizeof(neg_modes_concurrent) / sizeof(neg_modes_concurrent[0]));
	s.skip = true;
	s.rounds = 9;
	s.progress_s = 30.0;
	run(&s, &f);
	assert_caught(&s, &f);
}

struct buf_copy {
	void *dst;
	const void *src;
	size_t len;
};

static void buf_copy_cb(void *priv)
{
	struct buf_copy *c = priv;

	memcpy(c->dst, c->src, c->len);
}

/*
 * One thread, step by step: a device caches a translation, the page
 * migrates, the next write reaches the new page; with invalidation
 * skipped, it reaches the old page instead, and a read returns it from
 * there; invalidating everything ends it.
 */
static void skip_invalidation_single_thread(void **state)
{
	const unsigned long iova = IOVA_BASE;
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d;
	struct iom_device *dev;
	struct iom_page *pg[2];
	unsigned char *h[2];
	uint64_t pa[2];
	struct buf_copy c;
	unsigned long free0;
	char got[8];

	(void)state;
	assert_non_null(m);
	free0 = free_pages_now(m);
	memset(poison_page, POISON, sizeof(poison_page));
	assert_int_equal(iom_iommu_create(m, NULL, &iommu), 0);
	d = iom_iommu_domain_alloc(iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(d);
	assert_int_equal(iom_device_create(iommu, "dev", &dev), 0);
	assert_int_equal(iom_iommu_attach_device(d, dev), 0);
	for (int i = 0; i < 2; i++) {
		pg[i] = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
		assert_non_null(pg[i]);
		pa[i] = iom_page_to_phys(m, pg[i]);
		h[i] = iom_page_address(m, pg[i]);
		memset(h[i], POISON, PG);
	}
	assert_int_equal(iom_iommu_map(d, iova, pa[0], PG, IOM_IOMMU_READ | IOM_IOMMU_WRITE), 0);

	/* invalidation on: the write after the switch reaches the new page */
	assert_int_equal(iom_device_dma_write(dev, iova + 100, "one", 4), 0);
	c = (struct buf_copy){ h[1], h[0], PG };
	assert_int_equal(iom_iommu_migrate(d, iova, pa[1], PG, buf_copy_cb, &c), 0);
	memset(h[0], POISON, PG);
	assert_int_equal(iom_device_dma_write(dev, iova + 200, "two", 4), 0);
	assert_string_equal((char *)h[1] + 100, "one");
	assert_string_equal((char *)h[1] + 200, "two");
	assert_memory_equal(h[0], poison_page, PG);

	/* invalidation skipped: the IOTLB keeps iova -> page 1 */
	iom_iommu_set_skip_invalidation(iommu, true);
	c = (struct buf_copy){ h[0], h[1], PG };
	assert_int_equal(iom_iommu_migrate(d, iova, pa[0], PG, buf_copy_cb, &c), 0);
	memset(h[1], POISON, PG);
	assert_int_equal(iom_iommu_iova_to_phys(d, iova), pa[0]);
	assert_int_equal(iom_device_dma_write(dev, iova + 300, "three", 6), 0);
	assert_string_equal((char *)h[1] + 300, "three");	/* stray */
	assert_memory_not_equal(h[1], poison_page, PG);
	assert_memory_equal(h[0] + 300, poison_page, 6);	/* lost */
	assert_int_equal(iom_device_dma_read(dev, iova + 300, got, 6), 0);
	assert_string_equal(got, "three");			/* from the old page */

	/* switch off and invalidate: back to the table's translation */
	iom_iommu_set_skip_invalidation(iommu, false);
	iom_iommu_invalidate_all(iommu);
	assert_int_equal(iom_device_dma_write(dev, iova + 400, "four", 5), 0);
	assert_string_equal((char *)h[0] + 400, "four");
	assert_memory_equal(h[1] + 400, poison_page, 5);

	assert_int_equal(iom_iommu_detach_device(d, dev), 0);
	assert_int_equal(iom_device_destroy(dev), 0);
	assert_int_equal(iom_iommu_domain_free(d), 0);
	assert_int_equal(iom_iommu_destroy(iommu), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(iom___free_pages(m, pg[i], 0), 0);
	iom_rcu_barrier();
	assert_int_equal(iom_io_pgtable_machine_pages(m), 0);
	assert_int_equal(free_pages_now(m), free0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pages_4k_all_modes),
		cmocka_unit_test(pages_4k_small_iotlb),
		cmocka_unit_test(hot_pages_many_switches),
		cmocka_unit_test(block_2m_all_modes),
		cmocka_unit_test(skip_invalidation_single_thread),
		cmocka_unit_test(skip_invalidation_caught_lockstep),
		cmocka_unit_test(skip_invalidation_caught_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
