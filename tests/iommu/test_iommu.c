/* SPDX-License-Identifier: MIT */
/*
 * The IOMMU core (src/iommu/iommu.c, iommu-migrate.c, iommu-dma.c, iotlb.c),
 * one behaviour per test: a bad unit configuration is refused with a warning
 * naming the field, and a unit with domains or devices is not destroyed;
 * domain ids, attach/detach and their errors; a failed map leaves nothing
 * mapped and a map uses the largest sizes alignment allows; device DMA of
 * any length and alignment across 4 KiB pages, a 2 MiB block and leaf
 * boundaries lands in exactly the simulated bytes it should (checked in the
 * physical pages) and reads back; two domains that map the same IOVA stay
 * isolated while both translations are hot in the shared IOTLB; faults reach
 * the handler with the IOVA and the reason, are retried when fixed and fail
 * after bounded retries, and a write that faults half way moved exactly the
 * bytes before the faulting page; IOTLB hit/miss counts are exact (a 2 MiB
 * block is one entry), LRU evicts the least recently used way (a pattern
 * whose counts differ under FIFO) and RANDOM differs from LRU where LRU
 * thrashes; every invalidation command is counted; a strict unmap leaves no
 * usable translation, unmap_fast leaves one until iotlb_sync, and the test
 * can see a missing invalidation (skip switch); the IOVA of
 * iom_iommu_dma_map() stays below the domain's limit and the DMA mask; the
 * lazy flush queue holds an IOVA until a flush (queue full, explicit,
 * timeout), counts stale and stale-freed hits meanwhile, and dma_unmap
 * errors change nothing; block and unblock stall a device thread and nest;
 * iom_iommu_migrate()'s five steps seen from inside the copy callback, its
 * errors changing nothing, and iom_iommu_migrate_ranges() in each mode with
 * one sync per step whatever the number of ranges, each range keeping its
 * own permissions, PER_PAGE letting the rest of the domain run, -EBUSY for a
 * range being migrated, a NONBLOCK copy re-copying a leaf a device wrote
 * meanwhile, a 2 MiB block staying one block, and -ENOMEM putting the old
 * mapping back; no table page is leaked; and device thread sets count steps,
 * report errors and fill stall percentiles.
 *
 * Device threads here are plain pthreads that record what they saw; only the
 * main thread asserts, after joining them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mm_util.h"

#include <iommig/io-pgtable.h>
#include <iommig/iommu.h>
#include <iommig/rcu.h>

#include "iommu/iommu-priv.h"

#define SZ_4K	0x1000UL
#define SZ_2M	0x200000UL
#define SZ_1G	0x40000000UL

#define RW	(IOM_IOMMU_READ | IOM_IOMMU_WRITE)
#define RO	IOM_IOMMU_READ
#define WO	IOM_IOMMU_WRITE

/* how long a thread that should be stalled is given to (wrongly) finish */
#define SETTLE_US	50000

static struct test_log tlog;

/* ---- helpers ----------------------------------------------------------------- */

static struct iom_machine *machine(void)
{
	struct iom_machine *m = test_machine(32, &tlog, NULL);

	assert_non_null(m);
	return m;
}

/* A block of 2^order pages of the machine, its physical address and bytes. */
struct pg {
	struct iom_page *page;
	unsigned int order;
	uint64_t pa;
	unsigned char *va;
	size_t size;
};

static struct pg pg_alloc(struct iom_machine *m, unsigned int order, int fill)
{
	struct pg p;

	p.page = iom_alloc_pages(m, IOM_GFP_KERNEL, order);
	assert_non_null(p.page);
	p.order = order;
	p.pa = iom_page_to_phys(m, p.page);
	p.va = iom_page_address(m, p.page);
	assert_non_null(p.va);
	p.size = SZ_4K << order;
	assert_int_equal(p.pa & (p.size - 1), 0);	/* buddy blocks are aligned */
	memset(p.va, fill, p.size);
	return p;
}

static void pg_free(struct iom_machine *m, struct pg *p)
{
	assert_int_equal(iom___free_pages(m, p->page, p->order), 0);
	p->page = NULL;
}

/* The simulated byte at physical address @pa, found through its page. */
static unsigned char *host_at(struct iom_machine *m, uint64_t pa)
{
	struct iom_page *page = iom_phys_to_page(m, pa & ~(SZ_4K - 1));

	assert_non_null(page);
	return (unsigned char *)iom_page_address(m, page) + (pa & (SZ_4K - 1));
}

/* A machine, a unit, a domain and one device attached to it. */
struct fx {
	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d;
	struct iom_device *dev;
};

static void fx_init(struct fx *f, const struct iom_iommu_config *cfg,
		    enum iom_iommu_domain_type type)
{
	f->m = machine();
	assert_int_equal(iom_iommu_create(f->m, cfg, &f->iommu), 0);
	f->d = iom_iommu_domain_alloc(f->iommu, type);
	assert_non_null(f->d);
	assert_int_equal(iom_device_create(f->iommu, "dev0", &f->dev), 0);
	assert_int_equal(iom_iommu_attach_device(f->d, f->dev), 0);
}

static void fx_fini(struct fx *f)
{
	assert_int_equal(iom_iommu_detach_device(f->d, f->dev), 0);
	assert_int_equal(iom_device_destroy(f->dev), 0);
	assert_int_equal(iom_iommu_domain_free(f->d), 0);
	assert_int_equal(iom_iommu_destroy(f->iommu), 0);
	iom_rcu_barrier();
	assert_int_equal(iom_io_pgtable_machine_pages(f->m), 0);
	assert_int_equal(iom_machine_bug_count(f->m), 0);
	iom_machine_destroy(f->m);
}

static struct iom_iommu_stats ist(struct iom_iommu *iommu)
{
	struct iom_iommu_stats st;

	assert_int_equal(iom_iommu_get_stats(iommu, &st), 0);
	return st;
}

static struct iom_device_stats dst(struct iom_device *dev)
{
	struct iom_device_stats st;

	assert_int_equal(iom_device_get_stats(dev, &st), 0);
	return st;
}

static uint64_t inv_cmds(const struct iom_iommu_stats *s)
{
	return s->inv_page + s->inv_range + s->inv_domain + s->inv_all;
}

static unsigned char rd1(struct iom_device *dev, unsigned long iova, int *ret)
{
	unsigned char c = 0;

	*ret = iom_device_dma_read(dev, iova, &c, 1);
	return c;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- a DMA done by another thread -------------------------------------------- */

struct dma_job {
	struct iom_device *dev;
	unsigned long iova;
	unsigned char *buf;
	size_t len;
	bool write;
	pthread_t th;
	atomic_int started, done;
	int ret;
	uint64_t stall_ns;
};

static void *dma_job_main(void *arg)
{
	struct dma_job *j = arg;
	int r;

	atomic_store(&j->started, 1);
	if (j->write)
		r = iom_device_dma_write(j->dev, j->iova, j->buf, j->len);
	else
		r = iom_device_dma_read(j->dev, j->iova, j->buf, j->len);
	j->ret = r;
	j->stall_ns = iom_device_last_stall_ns();
	atomic_store(&j->done, 1);
	return NULL;
}

/* Start the job and wait until it is (or should be) inside its transaction. */
static int job_start(struct dma_job *j, struct iom_device *dev, unsigned long iova,
		     unsigned char *buf, size_t len, bool write)
{
	j->dev = dev;
	j->iova = iova;
	j->buf = buf;
	j->len = len;
	j->write = write;
	j->ret = 1;
	j->stall_ns = 0;
	atomic_store(&j->started, 0);
	atomic_store(&j->done, 0);
	if (pthread_create(&j->th, NULL, dma_job_main, j))
		return -1;
	while (!atomic_load(&j->started))
		sched_yield();
	return 0;
}

/* Wait up to @us for the job to finish; 1 if it did. */
static int job_wait_done(struct dma_job *j, long us)
{
	uint64_t end = mono_ns() + (uint64_t)us * 1000;

	while (!atomic_load(&j->done)) {
		if (mono_ns() > end)
			return 0;
		sleep_us(200);
	}
	return 1;
}

static void job_join(struct dma_job *j)
{
	pthread_join(j->th, NULL);
}

/* ---- 1. the unit --------------------------------------------------------------- */

static void test_config_defaults(void **state)
{
	struct iom_machine *m = machine();
	struct iom_iommu_config c;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d;
	const struct iom_io_pgtable_cfg *pc;

	(void)state;
	memset(&c, 0x5a, sizeof(c));
	iom_iommu_config_init(&c);
	assert_string_equal(c.name, "iommu");
	assert_int_equal(c.iotlb_entries, 2048);
	assert_int_equal(c.iotlb_ways, 8);
	assert_int_equal(c.iotlb_replacement, IOM_IOTLB_LRU);
	assert_int_equal(c.fq_size, 256);
	assert_int_equal(c.fq_timeout_us, 10000);
	assert_int_equal(c.pgsize_bitmap, SZ_4K | SZ_2M | SZ_1G);
	assert_int_equal(c.ias, 48);
	assert_int_equal(c.oas, 48);
	iom_iommu_config_init(NULL);

	/* NULL config: the defaults, seen through a domain's table */
	assert_int_equal(iom_iommu_create(m, NULL, &iommu), 0);
	d = iom_iommu_domain_alloc(iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(d);
	pc = iom_io_pgtable_get_cfg(iom_iommu_domain_pgtable(d));
	assert_int_equal(pc->pgsize_bitmap, SZ_4K | SZ_2M | SZ_1G);
	assert_int_equal(pc->ias, 48);
	assert_int_equal(pc->oas, 48);
	assert_int_equal(iom_iommu_domain_free(d), 0);
	assert_int_equal(iom_iommu_destroy(iommu), 0);

	/* a restricted config reaches the table */
	iom_iommu_config_init(&c);
	c.pgsize_bitmap = SZ_4K;
	c.ias = 39;
	c.oas = 40;
	c.name = "smmu0-with-a-very-long-name-that-is-cut";
	assert_int_equal(iom_iommu_create(m, &c, &iommu), 0);
	d = iom_iommu_domain_alloc(iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(d);
	pc = iom_io_pgtable_get_cfg(iom_iommu_domain_pgtable(d));
	assert_int_equal(pc->pgsize_bitmap, SZ_4K);
	assert_int_equal(pc->ias, 39);
	assert_int_equal(pc->oas, 40);
	/* 2 MiB-aligned map with only 4 KiB pages: 512 leaves, no block */
	{
		struct pg q = pg_alloc(m, 9, 0);
		unsigned long nr[IOM_IO_PGTABLE_MAX_LEVELS] = { 0 };

		assert_int_equal(iom_iommu_map(d, SZ_1G, q.pa, SZ_2M, RW), 0);
		assert_int_equal(iom_io_pgtable_nr_leaves(iom_iommu_domain_pgtable(d), nr), 512);
		assert_int_equal(nr[3], 512);
		/* beyond ias 39 */
		assert_int_equal(iom_iommu_map(d, 1UL << 39, q.pa, SZ_4K, RW), -ERANGE);
		assert_int_equal(iom_iommu_unmap(d, SZ_1G, SZ_2M), SZ_2M);
		pg_free(m, &q);
	}
	assert_int_equal(iom_iommu_domain_free(d), 0);
	assert_int_equal(iom_iommu_destroy(iommu), 0);
	assert_int_equal(iom_iommu_destroy(NULL), 0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

static void test_config_errors_name_the_field(void **state)
{
	static const struct {
		unsigned int entries, ways;
		int repl;
		unsigned int fq_size;
		unsigned long pgsize;
		unsigned int ias, oas;
		const char *msg;
	} bad[] = {
		{ 100, 8, 0, 0, 0, 0, 0, "iotlb_entries 100 is not a multiple of iotlb_ways 8" },
		{ 24, 8, 0, 0, 0, 0, 0, "3 sets is not a power of two" },
		{ 1U << 25, 8, 0, 0, 0, 0, 0, "iotlb_entries 33554432 is above 2^24" },
		{ 0, 0, 7, 0, 0, 0, 0, "unknown iotlb_replacement 7" },
		{ 0, 0, 0, 1, 0, 0, 0, "fq_size 1 is outside 2..65536" },
		{ 0, 0, 0, 65537, 0, 0, 0, "fq_size 65537 is outside" },
		{ 0, 0, 0, 0, SZ_2M | SZ_1G, 0, 0, "pgsize_bitmap 0x40200000 lacks 4 KiB" },
		{ 0, 0, 0, 0, 0, 31, 0, "ias 31 / oas 48 outside 32..48" },
		{ 0, 0, 0, 0, 0, 0, 49, "ias 48 / oas 49 outside 32..48" },
	};
	struct iom_machine *m = machine();
	struct iom_iommu *iommu;
	struct iom_iommu_config c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0, sizeof(c));
		c.iotlb_entries = bad[i].entries;
		c.iotlb_ways = bad[i].ways;
		c.iotlb_replacement = (enum iom_iotlb_replacement)bad[i].repl;
		c.fq_size = bad[i].fq_size;
		c.pgsize_bitmap = bad[i].pgsize;
		c.ias = bad[i].ias;
		c.oas = bad[i].oas;
		test_log_reset(&tlog);
		iommu = (struct iom_iommu *)0x1;
		assert_int_equal(iom_iommu_create(m, &c, &iommu), -EINVAL);
		assert_ptr_equal(iommu, (struct iom_iommu *)0x1);	/* untouched */
		assert_int_equal(tlog.nr_warn, 1);
		if (!test_log_contains(&tlog, bad[i].msg))
			fail_msg("case %zu: \"%s\" not in \"%s\"", i, bad[i].msg, tlog.text);
	}
	/* the edges that are fine */
	memset(&c, 0, sizeof(c));
	c.iotlb_entries = 16;
	c.iotlb_ways = 16;		/* one set, fully associative */
	c.fq_size = 2;
	c.ias = 32;
	c.oas = 32;
	assert_int_equal(iom_iommu_create(m, &c, &iommu), 0);
	assert_int_equal(iom_iommu_destroy(iommu), 0);
	assert_int_equal(iom_iommu_create(NULL, NULL, &iommu), -EINVAL);
	assert_int_equal(iom_iommu_create(m, NULL, NULL), -EINVAL);
	assert_int_equal(iom_iommu_get_stats(NULL, NULL), -EINVAL);
	iom_iommu_invalidate_all(NULL);
	iom_machine_destroy(m);
}

static void test_destroy_busy_frees_nothing(void **state)
{
	struct fx f;
	struct pg p;
	struct iom_iommu_domain *d2;
	unsigned char buf[16];

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 0, 0x11);
	assert_int_equal(iom_iommu_map(f.d, 0x100000, p.pa, SZ_4K, RW), 0);

	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_destroy(f.iommu), -EBUSY);
	assert_true(test_log_contains(&tlog, "destroy with 1 domains and 1 devices left"));
	/* everything still works (ASan would see a use after free) */
	assert_int_equal(iom_device_dma_read(f.dev, 0x100000, buf, sizeof(buf)), 0);
	assert_int_equal(buf[0], 0x11);

	/* devices only */
	assert_int_equal(iom_iommu_detach_device(f.d, f.dev), 0);
	assert_int_equal(iom_iommu_domain_free(f.d), 0);
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_destroy(f.iommu), -EBUSY);
	assert_true(test_log_contains(&tlog, "0 domains and 1 devices"));
	/* domains only */
	assert_int_equal(iom_device_destroy(f.dev), 0);
	d2 = iom_iommu_domain_alloc(f.iommu, IOM_IOMMU_DOMAIN_DMA);
	assert_non_null(d2);
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_destroy(f.iommu), -EBUSY);
	assert_true(test_log_contains(&tlog, "1 domains and 0 devices"));
	assert_int_equal(iom_iommu_map(d2, 0x200000, p.pa, SZ_4K, RW), 0);
	assert_int_equal(iom_iommu_iova_to_phys(d2, 0x200010), p.pa + 0x10);
	assert_int_equal(iom_iommu_domain_free(d2), 0);
	assert_int_equal(iom_iommu_destroy(f.iommu), 0);
	pg_free(f.m, &p);
	iom_rcu_barrier();
	assert_int_equal(iom_io_pgtable_machine_pages(f.m), 0);
	assert_int_equal(iom_machine_bug_count(f.m), 0);
	iom_machine_destroy(f.m);
}

/* ---- 2. domains and devices ------------------------------------------------------ */

static void test_domain_ids_and_types(void **state)
{
	struct iom_machine *m = machine();
	struct iom_iommu *a, *b;
	struct iom_iommu_domain *d1, *d2, *d3, *e1;

	(void)state;
	assert_int_equal(iom_iommu_create(m, NULL, &a), 0);
	assert_int_equal(iom_iommu_create(m, NULL, &b), 0);
	d1 = iom_iommu_domain_alloc(a, IOM_IOMMU_DOMAIN_UNMANAGED);
	d2 = iom_iommu_domain_alloc(a, IOM_IOMMU_DOMAIN_DMA);
	d3 = iom_iommu_domain_alloc(a, IOM_IOMMU_DOMAIN_DMA_FQ);
	e1 = iom_iommu_domain_alloc(b, IOM_IOMMU_DOMAIN_DMA);
	assert_non_null(d1);
	assert_non_null(d2);
	assert_non_null(d3);
	assert_non_null(e1);
	/* ids from 1, per unit */
	assert_int_equal(iom_iommu_domain_id(d1), 1);
	assert_int_equal(iom_iommu_domain_id(d2), 2);
	assert_int_equal(iom_iommu_domain_id(d3), 3);
	assert_int_equal(iom_iommu_domain_id(e1), 1);
	assert_int_equal(iom_iommu_domain_type(d1), IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_int_equal(iom_iommu_domain_type(d2), IOM_IOMMU_DOMAIN_DMA);
	assert_int_equal(iom_iommu_domain_type(d3), IOM_IOMMU_DOMAIN_DMA_FQ);
	assert_non_null(iom_iommu_domain_pgtable(d1));
	assert_ptr_not_equal(iom_iommu_domain_pgtable(d1), iom_iommu_domain_pgtable(d2));
	/* a freed id is the lowest free one again */
	assert_int_equal(iom_iommu_domain_free(d2), 0);
	d2 = iom_iommu_domain_alloc(a, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(d2);
	assert_int_equal(iom_iommu_domain_id(d2), 2);

	errno = 0;
	assert_null(iom_iommu_domain_alloc(a, (enum iom_iommu_domain_type)9));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(iom_iommu_domain_alloc(NULL, IOM_IOMMU_DOMAIN_DMA));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(iom_iommu_domain_id(NULL), 0);
	assert_null(iom_iommu_domain_pgtable(NULL));
	assert_int_equal(iom_iommu_domain_free(NULL), 0);

	assert_int_equal(iom_iommu_domain_free(d1), 0);
	assert_int_equal(iom_iommu_domain_free(d2), 0);
	assert_int_equal(iom_iommu_domain_free(d3), 0);
	assert_int_equal(iom_iommu_domain_free(e1), 0);
	assert_int_equal(iom_iommu_destroy(a), 0);
	assert_int_equal(iom_iommu_destroy(b), 0);
	iom_rcu_barrier();
	assert_int_equal(iom_io_pgtable_machine_pages(m), 0);
	iom_machine_destroy(m);
}

static void test_attach_detach_rules(void **state)
{
	struct fx f;
	struct iom_iommu *other;
	struct iom_iommu_domain *d2;
	struct iom_device *dev2, *odev, *x;
	struct pg p;
	unsigned char c;
	int r;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 0, 0x42);
	assert_int_equal(iom_iommu_map(f.d, 0x5000, p.pa, SZ_4K, RW), 0);
	assert_int_equal(iom_iommu_create(f.m, NULL, &other), 0);
	assert_int_equal(iom_device_create(other, "other-dev", &odev), 0);
	assert_int_equal(iom_device_create(f.iommu, "dev-with-a-name-longer-than-sixty-three-"
					   "bytes-is-cut-to-fit-in-the-device", &dev2), 0);
	assert_int_equal(strlen(iom_dev_name(dev2)), 63);
	assert_string_equal(iom_dev_name(f.dev), "dev0");
	assert_string_equal(iom_dev_name(NULL), "(null)");
	d2 = iom_iommu_domain_alloc(f.iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(d2);

	assert_ptr_equal(iom_iommu_get_domain_for_dev(f.dev), f.d);
	assert_null(iom_iommu_get_domain_for_dev(dev2));
	assert_null(iom_iommu_get_domain_for_dev(NULL));

	/* attached here already: 0, nothing changes */
	assert_int_equal(iom_iommu_attach_device(f.d, f.dev), 0);
	/* attached elsewhere: -EBUSY */
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_attach_device(d2, f.dev), -EBUSY);
	assert_true(test_log_contains(&tlog, "device dev0 is attached to domain 1 already"));
	assert_ptr_equal(iom_iommu_get_domain_for_dev(f.dev), f.d);
	/* a device of another unit: -EINVAL */
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_attach_device(f.d, odev), -EINVAL);
	assert_true(test_log_contains(&tlog, "device other-dev is behind iommu"));
	assert_null(iom_iommu_get_domain_for_dev(odev));
	assert_int_equal(iom_iommu_attach_device(NULL, f.dev), -EINVAL);
	assert_int_equal(iom_iommu_attach_device(f.d, NULL), -EINVAL);
	/* detach of a device not attached there */
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_detach_device(d2, f.dev), -EINVAL);
	assert_true(test_log_contains(&tlog, "detach of device dev0 that is not attached to domain 2"));
	assert_int_equal(iom_iommu_detach_device(f.d, dev2), -EINVAL);
	assert_int_equal(iom_iommu_detach_device(NULL, dev2), -EINVAL);
	assert_ptr_equal(iom_iommu_get_domain_for_dev(f.dev), f.d);
	/* still works after all those errors */
	c = rd1(f.dev, 0x5000, &r);
	assert_int_equal(r, 0);
	assert_int_equal(c, 0x42);

	/* domain_free and device_destroy refuse while attached, change nothing */
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_domain_free(f.d), -EBUSY);
	assert_true(test_log_contains(&tlog, "domain 1 freed with 1 devices attached"));
	test_log_reset(&tlog);
	assert_int_equal(iom_device_destroy(f.dev), -EBUSY);
	assert_true(test_log_contains(&tlog, "device dev0 destroyed while attached"));
	c = rd1(f.dev, 0x5000, &r);
	assert_int_equal(r, 0);
	assert_int_equal(c, 0x42);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, 0x5001), p.pa + 1);

	/* two devices on one domain; the last detach drops its IOTLB entries */
	assert_int_equal(iom_iommu_attach_device(f.d, dev2), 0);
	c = rd1(dev2, 0x5000, &r);
	assert_int_equal(r, 0);
	assert_int_equal(c, 0x42);
	{
		struct iom_iommu_stats s0 = ist(f.iommu), s1;

		assert_int_equal(iom_iommu_detach_device(f.d, dev2), 0);
		s1 = ist(f.iommu);
		assert_int_equal(s1.inv_domain, s0.inv_domain);	/* not the last */
		assert_int_equal(iom_iommu_detach_device(f.d, f.dev), 0);
		s1 = ist(f.iommu);
		assert_int_equal(s1.inv_domain, s0.inv_domain + 1);
		assert_int_equal(s1.iotlb_invalidated, s0.iotlb_invalidated + 1);
	}
	/* a detached device: -ENODEV, and it moved nothing */
	assert_null(iom_iommu_get_domain_for_dev(f.dev));
	c = 0x99;
	assert_int_equal(iom_device_dma_read(f.dev, 0x5000, &c, 1), -ENODEV);
	assert_int_equal(c, 0x99);
	assert_int_equal(iom_device_dma_write(f.dev, 0x5000, &c, 1), -ENODEV);
	assert_int_equal(p.va[0], 0x42);
	assert_int_equal(iom_device_dma_read(f.dev, 0x5000, &c, 0), -ENODEV);
	/* move to d2, which maps nothing: its own, empty view */
	assert_int_equal(iom_iommu_attach_device(d2, f.dev), 0);
	assert_int_equal(iom_device_dma_read(f.dev, 0x5000, &c, 1), -EFAULT);
	assert_int_equal(iom_device_dma_read(f.dev, 0x5000, &c, 0), 0);
	/* back: the first read after re-attach misses (entries were dropped) */
	assert_int_equal(iom_iommu_detach_device(d2, f.dev), 0);
	assert_int_equal(iom_iommu_attach_device(f.d, f.dev), 0);
	{
		struct iom_iommu_stats s0 = ist(f.iommu), s1;

		c = rd1(f.dev, 0x5000, &r);
		assert_int_equal(r, 0);
		s1 = ist(f.iommu);
		assert_int_equal(s1.iotlb_misses, s0.iotlb_misses + 1);
		assert_int_equal(s1.iotlb_hits, s0.iotlb_hits);
	}
	/* a destroyed device's counts stay in the unit's */
	{
		struct iom_iommu_stats s0 = ist(f.iommu), s1;

		assert_int_equal(iom_device_destroy(dev2), 0);
		s1 = ist(f.iommu);
		assert_int_equal(s1.iotlb_misses, s0.iotlb_misses);
		assert_int_equal(s1.iotlb_hits, s0.iotlb_hits);
	}
	assert_int_equal(iom_device_destroy(NULL), 0);
	assert_int_equal(iom_device_create(NULL, "x", &x), -EINVAL);
	assert_int_equal(iom_device_create(f.iommu, NULL, &x), -EINVAL);
	assert_int_equal(iom_device_create(f.iommu, "x", NULL), -EINVAL);
	assert_int_equal(iom_device_get_stats(NULL, NULL), -EINVAL);

	assert_int_equal(iom_device_destroy(odev), 0);
	assert_int_equal(iom_iommu_destroy(other), 0);
	assert_int_equal(iom_iommu_domain_free(d2), 0);
	pg_free(f.m, &p);
	fx_fini(&f);
}

static void test_dma_bad_args(void **state)
{
	struct fx f;
	struct pg p;
	struct iom_device_stats s0, s1;
	unsigned char buf[64];

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 0, 0x33);
	assert_int_equal(iom_iommu_map(f.d, 0x7000, p.pa, SZ_4K, RW), 0);
	s0 = dst(f.dev);
	test_log_reset(&tlog);
	assert_int_equal(iom_device_dma_read(f.dev, 0x7000, NULL, 8), -EINVAL);
	assert_int_equal(iom_device_dma_write(f.dev, 0x7000, NULL, 8), -EINVAL);
	assert_true(test_log_contains(&tlog, "NULL buffer"));
	test_log_reset(&tlog);
	assert_int_equal(iom_device_dma_read(f.dev, ~0UL - 10, buf, 12), -EINVAL);
	assert_int_equal(iom_device_dma_write(f.dev, ~0UL - 62, buf, 64), -EINVAL);
	assert_true(test_log_contains(&tlog, "the range wraps"));
	assert_int_equal(iom_device_dma_read(NULL, 0x7000, buf, 1), -EINVAL);
	/* the last byte of the address space is not a wrap (and is not mapped) */
	assert_int_equal(iom_device_dma_read(f.dev, ~0UL, buf, 1), -EFAULT);
	/* len 0: nothing to do, even with NULL */
	assert_int_equal(iom_device_dma_read(f.dev, 0x7000, NULL, 0), 0);
	s1 = dst(f.dev);
	/* bad arguments are not transactions; the unmapped read is one failure */
	assert_int_equal(s1.transactions, s0.transactions);
	assert_int_equal(s1.failed, s0.failed + 1);
	assert_int_equal(s1.faults, s0.faults + 1);
	assert_int_equal(p.va[0], 0x33);
	pg_free(f.m, &p);
	fx_fini(&f);
}

static void test_map_errors_change_nothing(void **state)
{
	const unsigned long X = 0x2000000;
	struct fx f;
	struct pg p, q;
	unsigned long nr[IOM_IO_PGTABLE_MAX_LEVELS];

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 2, 0);
	q = pg_alloc(f.m, 10, 0);	/* 4 MiB: two 2 MiB blocks */
	assert_int_equal(iom_iommu_map(f.d, X, p.pa, 2 * SZ_4K, RW), 0);

	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_map(f.d, X + 0x10000, p.pa, SZ_4K, 0), -EINVAL);
	assert_int_equal(iom_iommu_map(f.d, X + 0x10000, p.pa, SZ_4K, IOM_IOMMU_NOEXEC), -EINVAL);
	assert_true(test_log_contains(&tlog, "grants neither read nor write"));
	assert_int_equal(iom_iommu_map(f.d, X + 0x10001, p.pa, SZ_4K, RW), -EINVAL);
	assert_int_equal(iom_iommu_map(f.d, X + 0x10000, p.pa + 8, SZ_4K, RW), -EINVAL);
	assert_int_equal(iom_iommu_map(f.d, X + 0x10000, p.pa, 100, RW), -EINVAL);
	assert_int_equal(iom_iommu_map(f.d, X + 0x10000, p.pa, 0, RW), -EINVAL);
	assert_int_equal(iom_iommu_map(NULL, X + 0x10000, p.pa, SZ_4K, RW), -EINVAL);
	assert_int_equal(iom_iommu_map(f.d, 1UL << 48, p.pa, SZ_4K, RW), -ERANGE);
	assert_int_equal(iom_iommu_map(f.d, X + 0x10000, 1ULL << 48, SZ_4K, RW), -ERANGE);
	/* overlapping the second page: nothing of the call stays */
	assert_int_equal(iom_iommu_map(f.d, X + SZ_4K, p.pa + 2 * SZ_4K, 2 * SZ_4K, RW), -EEXIST);
	assert_int_equal(iom_iommu_map(f.d, X - SZ_4K, p.pa + 2 * SZ_4K, 2 * SZ_4K, RW), -EEXIST);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, X + SZ_4K), p.pa + SZ_4K);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, X + 2 * SZ_4K), 0);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, X - SZ_4K), 0);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, X + 0x10000), 0);
	memset(nr, 0, sizeof(nr));
	assert_int_equal(iom_io_pgtable_nr_leaves(iom_iommu_domain_pgtable(f.d), nr), 2);

	/* the largest sizes alignment allows */
	assert_int_equal(iom_iommu_map(f.d, SZ_1G, q.pa, 2 * SZ_2M, RW), 0);
	assert_int_equal(iom_iommu_map(f.d, 2 * SZ_1G, q.pa + SZ_4K, SZ_2M, RW), 0);
	memset(nr, 0, sizeof(nr));
	assert_int_equal(iom_io_pgtable_nr_leaves(iom_iommu_domain_pgtable(f.d), nr),
			 2 + 2 + 512);
	assert_int_equal(nr[2], 2);
	assert_int_equal(nr[3], 2 + 512);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, SZ_1G + SZ_2M + 7), q.pa + SZ_2M + 7);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, 2 * SZ_1G + SZ_2M - 1), q.pa + SZ_2M + SZ_4K - 1);
	assert_int_equal(iom_iommu_unmap(f.d, SZ_1G, 2 * SZ_2M), 2 * SZ_2M);
	assert_int_equal(iom_iommu_unmap(f.d, 2 * SZ_1G, SZ_2M), SZ_2M);
	assert_int_equal(iom_iommu_unmap(f.d, X, 2 * SZ_4K), 2 * SZ_4K);
	pg_free(f.m, &p);
	pg_free(f.m, &q);
	fx_fini(&f);
}

/* ---- 3. bytes: any length and alignment ---------------------------------------- */

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static void test_dma_any_length_and_alignment(void **state)
{
	/*
	 * [B-8K, B-4K) -> P0, [B-4K, B) -> P1 (4 KiB pages), [B, B+2M) -> Q
	 * (a 2 MiB block), [B+2M, B+2M+4K) -> P2: page, leaf and table
	 * boundaries in one window.
	 */
	const unsigned long B = 0x40000000UL + 0x3fe00000UL;	/* 2 MiB aligned */
	const unsigned long lo = B - 2 * SZ_4K;
	const size_t span = 2 * SZ_4K + SZ_2M + SZ_4K;
	struct fx f;
	struct pg p0, p1, q, p2;
	unsigned char *shadow, *buf;
	uint64_t seed = 12345, written = 0, rd = 0;
	struct iom_device_stats s0, s1;
	unsigned long nr[IOM_IO_PGTABLE_MAX_LEVELS] = { 0 };

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p0 = pg_alloc(f.m, 0, 0);
	p1 = pg_alloc(f.m, 0, 0);
	q = pg_alloc(f.m, 9, 0);
	p2 = pg_alloc(f.m, 0, 0);
	assert_int_equal(iom_iommu_map(f.d, lo, p0.pa, SZ_4K, RW), 0);
	assert_int_equal(iom_iommu_map(f.d, lo + SZ_4K, p1.pa, SZ_4K, RW), 0);
	assert_int_equal(iom_iommu_map(f.d, B, q.pa, SZ_2M, RW), 0);
	assert_int_equal(iom_iommu_map(f.d, B + SZ_2M, p2.pa, SZ_4K, RW), 0);
	assert_int_equal(iom_io_pgtable_nr_leaves(iom_iommu_domain_pgtable(f.d), nr), 4);
	assert_int_equal(nr[2], 1);
	assert_int_equal(nr[3], 3);
	shadow = calloc(1, span);
	buf = malloc(span);
	assert_non_null(shadow);
	assert_non_null(buf);

	/* one write across every boundary, from an odd offset to an odd end */
	for (size_t i = 0; i < span; i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	s0 = dst(f.dev);
	assert_int_equal(iom_device_dma_write(f.dev, lo + 100, buf, span - 100 - 3000), 0);
	memcpy(shadow + 100, buf, span - 100 - 3000);
	/* in the physical pages: before the start and after the end untouched */
	assert_int_equal(p0.va[99], 0);
	assert_int_equal(p0.va[100], buf[0]);
	assert_int_equal(memcmp(p0.va + 100, buf, SZ_4K - 100), 0);
	assert_int_equal(memcmp(p1.va, buf + SZ_4K - 100, SZ_4K), 0);
	assert_int_equal(memcmp(q.va, buf + 2 * SZ_4K - 100, SZ_2M), 0);
	assert_int_equal(memcmp(p2.va, buf + 2 * SZ_4K + SZ_2M - 100, SZ_4K - 3000), 0);
	assert_int_equal(p2.va[SZ_4K - 3000], 0);
	assert_int_equal(p2.va[SZ_4K - 1], 0);
	s1 = dst(f.dev);
	assert_int_equal(s1.bytes_written - s0.bytes_written, span - 3100);
	assert_int_equal(s1.transactions - s0.transactions, 1);

	/* seeded writes and reads of any length and alignment */
	for (int it = 0; it < 300; it++) {
		size_t off = lcg(&seed) % span;
		size_t len = 1 + lcg(&seed) % (it % 10 == 0 ? span - off : 3 * SZ_4K);

		if (off + len > span)
			len = span - off;
		if (it & 1) {
			for (size_t i = 0; i < len; i++)
				buf[i] = (unsigned char)lcg(&seed);
			assert_int_equal(iom_device_dma_write(f.dev, lo + off, buf, len), 0);
			memcpy(shadow + off, buf, len);
			written += len;
		} else {
			memset(buf, 0xee, len + 1 <= span ? len + 1 : len);
			assert_int_equal(iom_device_dma_read(f.dev, lo + off, buf, len), 0);
			if (memcmp(buf, shadow + off, len))
				fail_msg("read of %zu at +%zu differs", len, off);
			if (len < span)
				assert_int_equal(buf[len], 0xee);	/* no overrun */
			rd += len;
		}
	}
	/* every byte, through the physical address translation */
	for (size_t i = 0; i < span; i += 509) {
		uint64_t pa = iom_iommu_iova_to_phys(f.d, lo + i);

		assert_int_not_equal(pa, 0);
		assert_int_equal(*host_at(f.m, pa), shadow[i]);
	}
	assert_int_equal(memcmp(p0.va, shadow, SZ_4K), 0);
	assert_int_equal(memcmp(p1.va, shadow + SZ_4K, SZ_4K), 0);
	assert_int_equal(memcmp(q.va, shadow + 2 * SZ_4K, SZ_2M), 0);
	assert_int_equal(memcmp(p2.va, shadow + 2 * SZ_4K + SZ_2M, SZ_4K), 0);
	/* the whole window in one read */
	assert_int_equal(iom_device_dma_read(f.dev, lo, buf, span), 0);
	assert_int_equal(memcmp(buf, shadow, span), 0);
	rd += span;
	s1 = dst(f.dev);
	assert_int_equal(s1.bytes_written - s0.bytes_written, span - 3100 + written);
	assert_int_equal(s1.bytes_read - s0.bytes_read, rd);
	assert_int_equal(s1.failed, 0);
	assert_int_equal(s1.faults, 0);
	assert_int_equal(s1.transactions - s0.transactions, 1 + 300 + 1);

	free(shadow);
	free(buf);
	pg_free(f.m, &p0);
	pg_free(f.m, &p1);
	pg_free(f.m, &q);
	pg_free(f.m, &p2);
	fx_fini(&f);
}

/* ---- 4. isolation ------------------------------------------------------------------ */

static void test_domains_isolated_in_shared_iotlb(void **state)
{
	const unsigned long X = 0x12345000UL, Y = 0x22220000UL;
	struct fx f;
	struct iom_iommu_domain *db;
	struct iom_device *devb;
	struct pg pa, pb, py;
	unsigned char buf[SZ_4K];
	struct iom_iommu_stats s0, s1;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	db = iom_iommu_domain_alloc(f.iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(db);
	assert_int_equal(iom_device_create(f.iommu, "devB", &devb), 0);
	assert_int_equal(iom_iommu_attach_device(db, devb), 0);
	pa = pg_alloc(f.m, 0, 0xa0);
	pb = pg_alloc(f.m, 0, 0xb0);
	py = pg_alloc(f.m, 0, 0xc0);
	assert_int_equal(iom_iommu_map(f.d, X, pa.pa, SZ_4K, RW), 0);
	assert_int_equal(iom_iommu_map(db, X, pb.pa, SZ_4K, RW), 0);
	assert_int_equal(iom_iommu_map(db, Y, py.pa, SZ_4K, RW), 0);

	/* both translations hot */
	assert_int_equal(iom_device_dma_read(f.dev, X, buf, SZ_4K), 0);
	assert_int_equal(buf[0], 0xa0);
	assert_int_equal(iom_device_dma_read(devb, X, buf, SZ_4K), 0);
	assert_int_equal(buf[0], 0xb0);
	assert_int_equal(iom_device_dma_read(devb, Y, buf, 1), 0);

	s0 = ist(f.iommu);
	for (int i = 0; i < 4; i++) {
		memset(buf, 'A' + i, 100);
		assert_int_equal(iom_device_dma_write(f.dev, X + 50, buf, 100), 0);
		memset(buf, 'a' + i, 100);
		assert_int_equal(iom_device_dma_write(devb, X + 50, buf, 100), 0);
		/* each wrote only its own domain's page */
		assert_int_equal(pa.va[50], 'A' + i);
		assert_int_equal(pa.va[149], 'A' + i);
		assert_int_equal(pb.va[50], 'a' + i);
		assert_int_equal(pb.va[149], 'a' + i);
		assert_int_equal(pa.va[49], 0xa0);
		assert_int_equal(pb.va[150], 0xb0);
		assert_int_equal(iom_device_dma_read(f.dev, X + 50, buf, 1), 0);
		assert_int_equal(buf[0], 'A' + i);
		assert_int_equal(iom_device_dma_read(devb, X + 50, buf, 1), 0);
		assert_int_equal(buf[0], 'a' + i);
	}
	s1 = ist(f.iommu);
	/* all 16 from the IOTLB: both domains' entries live side by side */
	assert_int_equal(s1.iotlb_hits - s0.iotlb_hits, 16);
	assert_int_equal(s1.iotlb_misses, s0.iotlb_misses);

	/* Y is hot for domain B, not mapped in A: A faults, B's page unchanged */
	memset(buf, 0x77, 8);
	assert_int_equal(iom_device_dma_write(f.dev, Y, buf, 8), -EFAULT);
	assert_int_equal(iom_device_dma_read(f.dev, Y, buf, 8), -EFAULT);
	assert_int_equal(py.va[0], 0xc0);
	assert_int_equal(dst(f.dev).faults, 2);
	assert_int_equal(dst(devb).faults, 0);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, Y), 0);

	/* flushing A's entries leaves B's */
	s0 = ist(f.iommu);
	iom_iommu_flush_iotlb_all(f.d);
	assert_int_equal(iom_device_dma_read(devb, X, buf, 1), 0);
	assert_int_equal(iom_device_dma_read(f.dev, X, buf, 1), 0);
	s1 = ist(f.iommu);
	assert_int_equal(s1.iotlb_hits - s0.iotlb_hits, 1);
	assert_int_equal(s1.iotlb_misses - s0.iotlb_misses, 1);
	assert_int_equal(s1.iotlb_invalidated - s0.iotlb_invalidated, 1);

	assert_int_equal(iom_iommu_detach_device(db, devb), 0);
	assert_int_equal(iom_device_destroy(devb), 0);
	assert_int_equal(iom_iommu_domain_free(db), 0);
	pg_free(f.m, &pa);
	pg_free(f.m, &pb);
	pg_free(f.m, &py);
	fx_fini(&f);
}

/* ---- 5. faults ------------------------------------------------------------------------ */

struct fault_rec {
	int calls;
	unsigned long iova[32];
	int flags[32];
	struct iom_device *dev;
	struct iom_iommu_domain *domain;
	void *token;
	int action;		/* 0: fail, 1: map and retry, 2: "fixed" but not */
	uint64_t map_pa;
	int map_prot;
};

static int fault_handler(struct iom_iommu_domain *d, struct iom_device *dev,
			 unsigned long iova, int flags, void *token)
{
	struct fault_rec *r = token;

	if (r->calls < 32) {
		r->iova[r->calls] = iova;
		r->flags[r->calls] = flags;
	}
	r->calls++;
	r->dev = dev;
	r->domain = d;
	r->token = token;
	switch (r->action) {
	case 1:
		if (iom_iommu_map(d, iova & ~(SZ_4K - 1), r->map_pa, SZ_4K, r->map_prot))
			return -EIO;
		return 0;
	case 2:
		return 0;
	default:
		return -EIO;
	}
}

static void test_fault_without_handler_fails(void **state)
{
	struct fx f;
	struct iom_device_stats s;
	unsigned char c = 0;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	test_log_reset(&tlog);
	assert_int_equal(iom_device_dma_read(f.dev, 0xabc123, &c, 1), -EFAULT);
	assert_true(test_log_contains(&tlog, "dev0: unhandled read fault at iova 0xabc123 "
				      "(no translation), domain 1"));
	assert_int_equal(iom_device_dma_write(f.dev, 0xabc123, &c, 1), -EFAULT);
	assert_true(test_log_contains(&tlog, "unhandled write fault"));
	s = dst(f.dev);
	assert_int_equal(s.failed, 2);
	assert_int_equal(s.faults, 2);
	assert_int_equal(s.transactions, 0);
	fx_fini(&f);
}

static void test_fault_handler_sees_iova_and_reason(void **state)
{
	struct fx f;
	struct fault_rec r;
	struct pg ro, wo;
	unsigned char buf[16] = { 0 };
	struct iom_device_stats s;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	memset(&r, 0, sizeof(r));
	iom_iommu_set_fault_handler(f.d, fault_handler, &r);
	ro = pg_alloc(f.m, 0, 0x10);
	wo = pg_alloc(f.m, 0, 0x20);
	assert_int_equal(iom_iommu_map(f.d, 0x10000, ro.pa, SZ_4K, RO), 0);
	assert_int_equal(iom_iommu_map(f.d, 0x20000, wo.pa, SZ_4K, WO), 0);

	/* not present, write: the faulting byte's address */
	assert_int_equal(iom_device_dma_write(f.dev, 0x30123, buf, 4), -EFAULT);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.iova[0], 0x30123);
	assert_int_equal(r.flags[0], IOM_IOMMU_FAULT_WRITE | IOM_IOMMU_FAULT_NOT_PRESENT);
	assert_ptr_equal(r.dev, f.dev);
	assert_ptr_equal(r.domain, f.d);
	assert_ptr_equal(r.token, &r);
	/* not present, read */
	assert_int_equal(iom_device_dma_read(f.dev, 0x30000, buf, 4), -EFAULT);
	assert_int_equal(r.flags[1], IOM_IOMMU_FAULT_READ | IOM_IOMMU_FAULT_NOT_PRESENT);
	/* write to a read-only mapping; the read works (and is then cached) */
	assert_int_equal(iom_device_dma_read(f.dev, 0x10000, buf, 4), 0);
	assert_int_equal(iom_device_dma_write(f.dev, 0x10ffe, buf, 4), -EFAULT);
	assert_int_equal(r.calls, 3);
	assert_int_equal(r.iova[2], 0x10ffe);
	assert_int_equal(r.flags[2], IOM_IOMMU_FAULT_WRITE | IOM_IOMMU_FAULT_PERMISSION);
	assert_int_equal(ro.va[0xffe], 0x10);
	/* read of a write-only mapping */
	assert_int_equal(iom_device_dma_write(f.dev, 0x20000, buf, 4), 0);
	assert_int_equal(iom_device_dma_read(f.dev, 0x20008, buf, 4), -EFAULT);
	assert_int_equal(r.iova[3], 0x20008);
	assert_int_equal(r.flags[3], IOM_IOMMU_FAULT_READ | IOM_IOMMU_FAULT_PERMISSION);
	/* a crossing read faults at the first byte of the unmapped page */
	assert_int_equal(iom_device_dma_read(f.dev, 0x10ff0, buf, 16 + 0), 0);
	assert_int_equal(iom_device_dma_read(f.dev, 0x11ff8, buf, 16), -EFAULT);
	assert_int_equal(r.iova[4], 0x11ff8);
	s = dst(f.dev);
	assert_int_equal(s.faults, 5);
	assert_int_equal(s.failed, 5);
	assert_int_equal(r.calls, 5);
	/* removing the handler: back to unhandled */
	iom_iommu_set_fault_handler(f.d, NULL, NULL);
	assert_int_equal(iom_device_dma_read(f.dev, 0x30000, buf, 4), -EFAULT);
	assert_int_equal(r.calls, 5);
	iom_iommu_set_fault_handler(NULL, fault_handler, &r);
	pg_free(f.m, &ro);
	pg_free(f.m, &wo);
	fx_fini(&f);
}

static void test_fault_fixed_by_handler_is_retried(void **state)
{
	struct fx f;
	struct fault_rec r;
	struct pg p, ro;
	unsigned char buf[SZ_4K];
	struct iom_device_stats s;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 0, 0);
	memset(&r, 0, sizeof(r));
	r.action = 1;
	r.map_pa = p.pa;
	r.map_prot = RW;
	iom_iommu_set_fault_handler(f.d, fault_handler, &r);
	memset(buf, 0x5c, sizeof(buf));
	assert_int_equal(iom_device_dma_write(f.dev, 0x40000, buf, SZ_4K), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(memcmp(p.va, buf, SZ_4K), 0);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, 0x40000), p.pa);
	s = dst(f.dev);
	assert_int_equal(s.faults, 1);
	assert_int_equal(s.failed, 0);
	assert_int_equal(s.transactions, 1);
	assert_int_equal(s.stalls, 1);
	assert_true(s.stall_ns_total > 0);
	assert_true(iom_device_last_stall_ns() > 0);
	/* next time nothing faults, nothing stalls */
	assert_int_equal(iom_device_dma_read(f.dev, 0x40000, buf, 8), 0);
	assert_int_equal(iom_device_last_stall_ns(), 0);
	assert_int_equal(dst(f.dev).stalls, 1);

	/* a permission fault fixed by remapping writable */
	ro = pg_alloc(f.m, 0, 0x01);
	assert_int_equal(iom_iommu_map(f.d, 0x50000, ro.pa, SZ_4K, RO), 0);
	assert_int_equal(iom_device_dma_read(f.dev, 0x50000, buf, 1), 0);	/* cached RO */
	r.action = 3;	/* fail: check the first fault alone */
	assert_int_equal(iom_device_dma_write(f.dev, 0x50000, buf, 1), -EFAULT);
	assert_int_equal(r.flags[1], IOM_IOMMU_FAULT_WRITE | IOM_IOMMU_FAULT_PERMISSION);
	assert_int_equal(iom_iommu_unmap(f.d, 0x50000, SZ_4K), SZ_4K);
	r.action = 1;
	r.map_pa = ro.pa;
	buf[0] = 0x5d;
	assert_int_equal(iom_device_dma_write(f.dev, 0x50000, buf, 1), 0);
	assert_int_equal(ro.va[0], 0x5d);
	assert_int_equal(r.calls, 3);
	assert_int_equal(r.flags[2], IOM_IOMMU_FAULT_WRITE | IOM_IOMMU_FAULT_NOT_PRESENT);
	pg_free(f.m, &ro);
	pg_free(f.m, &p);
	fx_fini(&f);
}

static void test_fault_not_fixed_fails_after_bounded_retries(void **state)
{
	struct fx f;
	struct fault_rec r;
	unsigned char c = 0;
	struct iom_device_stats s;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	memset(&r, 0, sizeof(r));
	r.action = 2;	/* says fixed, fixes nothing */
	iom_iommu_set_fault_handler(f.d, fault_handler, &r);
	test_log_reset(&tlog);
	assert_int_equal(iom_device_dma_read(f.dev, 0x60000, &c, 1), -EFAULT);
	/* the first call and 16 retries (FAULT_MAX_RETRIES), then give up */
	assert_int_equal(r.calls, 17);
	for (int i = 0; i < 17; i++)
		assert_int_equal(r.iova[i], 0x60000);
	assert_true(test_log_contains(&tlog, "still faults after 16 retries"));
	s = dst(f.dev);
	assert_int_equal(s.faults, 17);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.stalls, 1);
	fx_fini(&f);
}

static void test_failed_write_moved_only_the_bytes_before(void **state)
{
	const unsigned long X = 0x800000;
	struct fx f;
	struct pg p[4];
	unsigned char buf[4 * SZ_4K];
	struct iom_device_stats s0, s1;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	for (int i = 0; i < 4; i++) {
		p[i] = pg_alloc(f.m, 0, 0x00);
		if (i != 2)
			assert_int_equal(iom_iommu_map(f.d, X + i * SZ_4K, p[i].pa, SZ_4K, RW), 0);
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i % 251 + 1);
	s0 = dst(f.dev);
	assert_int_equal(iom_device_dma_write(f.dev, X + 100, buf, sizeof(buf) - 200), -EFAULT);
	s1 = dst(f.dev);
	/* pages 0 and 1 got their bytes, page 2 is the hole, page 3 got none */
	assert_int_equal(p[0].va[99], 0);
	assert_int_equal(memcmp(p[0].va + 100, buf, SZ_4K - 100), 0);
	assert_int_equal(memcmp(p[1].va, buf + SZ_4K - 100, SZ_4K), 0);
	for (size_t i = 0; i < SZ_4K; i++)
		if (p[3].va[i] || p[2].va[i])
			fail_msg("byte %zu written past the fault", i);
	assert_int_equal(s1.bytes_written - s0.bytes_written, 2 * SZ_4K - 100);
	assert_int_equal(s1.transactions, s0.transactions);
	assert_int_equal(s1.failed - s0.failed, 1);
	/* a read that fails leaves the bytes before in the buffer too */
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(iom_device_dma_read(f.dev, X + SZ_4K, buf, 2 * SZ_4K), -EFAULT);
	assert_int_equal(memcmp(buf, p[1].va, SZ_4K), 0);
	assert_int_equal(buf[SZ_4K], 0xee);
	for (int i = 0; i < 4; i++)
		pg_free(f.m, &p[i]);
	fx_fini(&f);
}

/* ---- 6. IOTLB ---------------------------------------------------------------------------- */

static void test_iotlb_block_is_one_entry(void **state)
{
	const unsigned long B = 0x40000000UL;
	struct fx f;
	struct pg q, p;
	struct iom_iommu_stats s0, s1;
	unsigned char buf[64];
	int r;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	q = pg_alloc(f.m, 9, 0);
	p = pg_alloc(f.m, 0, 0);
	for (int i = 0; i < 512; i++)
		q.va[i * SZ_4K + 7] = (unsigned char)i;
	assert_int_equal(iom_iommu_map(f.d, B, q.pa, SZ_2M, RW), 0);
	assert_int_equal(iom_iommu_map(f.d, B + SZ_2M, p.pa, SZ_4K, RW), 0);

	s0 = ist(f.iommu);
	for (int i = 0; i < 512; i++) {
		unsigned char c = rd1(f.dev, B + i * SZ_4K + 7, &r);

		assert_int_equal(r, 0);
		assert_int_equal(c, (unsigned char)i);
	}
	s1 = ist(f.iommu);
	assert_int_equal(s1.iotlb_misses - s0.iotlb_misses, 1);
	assert_int_equal(s1.iotlb_hits - s0.iotlb_hits, 511);
	assert_int_equal(s1.walks - s0.walks, 1);
	/* a read across the block's end: one hit in the block, one miss after */
	s0 = s1;
	assert_int_equal(iom_device_dma_read(f.dev, B + SZ_2M - 32, buf, 64), 0);
	s1 = ist(f.iommu);
	assert_int_equal(s1.iotlb_hits - s0.iotlb_hits, 1);
	assert_int_equal(s1.iotlb_misses - s0.iotlb_misses, 1);
	/* the 4 KiB page is its own entry now */
	s0 = s1;
	assert_int_equal(iom_device_dma_read(f.dev, B + SZ_2M + 100, buf, 64), 0);
	s1 = ist(f.iommu);
	assert_int_equal(s1.iotlb_hits - s0.iotlb_hits, 1);
	assert_int_equal(s1.iotlb_misses, s0.iotlb_misses);
	assert_int_equal(s1.iotlb_evictions, 0);
	pg_free(f.m, &q);
	pg_free(f.m, &p);
	fx_fini(&f);
}

/* 16 entries in 8 sets of 2 ways: pages 8 apart share a set. */
static void small_tlb_fx(struct fx *f, enum iom_iotlb_replacement repl, struct pg *p,
			 unsigned long base)
{
	struct iom_iommu_config c;

	iom_iommu_config_init(&c);
	c.iotlb_entries = 16;
	c.iotlb_ways = 2;
	c.iotlb_replacement = repl;
	fx_init(f, &c, IOM_IOMMU_DOMAIN_UNMANAGED);
	*p = pg_alloc(f->m, 0, 0x3c);
	for (int k = 0; k < 3; k++)
		assert_int_equal(iom_iommu_map(f->d, base + k * 8 * SZ_4K, p->pa, SZ_4K, RW), 0);
}

static void test_iotlb_lru_evicts_least_recently_used(void **state)
{
	const unsigned long base = 0x1000000;
	const unsigned long A = base, B = base + 8 * SZ_4K, C = base + 16 * SZ_4K;
	const unsigned long seq[] = { A, B, A, C, A, B };
	/* LRU: C evicts B (A was used since), A hits, B evicts C */
	const int want_hit[] = { 0, 0, 1, 0, 1, 0 };
	struct fx f;
	struct pg p;
	struct iom_iommu_stats s0, s1;
	int r;

	(void)state;
	small_tlb_fx(&f, IOM_IOTLB_LRU, &p, base);
	for (size_t i = 0; i < 6; i++) {
		s0 = ist(f.iommu);
		assert_int_equal(rd1(f.dev, seq[i], &r), 0x3c);
		assert_int_equal(r, 0);
		s1 = ist(f.iommu);
		if ((int)(s1.iotlb_hits - s0.iotlb_hits) != want_hit[i])
			fail_msg("access %zu: %s, LRU wants a %s", i,
				 s1.iotlb_hits > s0.iotlb_hits ? "hit" : "miss",
				 want_hit[i] ? "hit" : "miss");
	}
	s1 = ist(f.iommu);
	/* (FIFO would give 1 hit and 5 misses: A is the oldest fill at C) */
	assert_int_equal(s1.iotlb_hits, 2);
	assert_int_equal(s1.iotlb_misses, 4);
	assert_int_equal(s1.iotlb_evictions, 2);

	/* cycling three pages through two ways (from the one not cached): LRU never hits */
	s0 = s1;
	for (int i = 0; i < 30; i++)
		assert_int_equal(rd1(f.dev, base + ((i + 2) % 3) * 8 * SZ_4K, &r), 0x3c);
	s1 = ist(f.iommu);
	assert_int_equal(s1.iotlb_hits - s0.iotlb_hits, 0);
	assert_int_equal(s1.iotlb_misses - s0.iotlb_misses, 30);
	assert_int_equal(s1.iotlb_evictions - s0.iotlb_evictions, 30);
	pg_free(f.m, &p);
	fx_fini(&f);
}

static void test_iotlb_random_replacement(void **state)
{
	const unsigned long base = 0x1000000;
	struct fx f;
	struct pg p;
	struct iom_iommu_stats s;
	int r;

	(void)state;
	small_tlb_fx(&f, IOM_IOTLB_RANDOM, &p, base);
	for (int i = 0; i < 300; i++)
		assert_int_equal(rd1(f.dev, base + (i % 3) * 8 * SZ_4K, &r), 0x3c);
	s = ist(f.iommu);
	assert_int_equal(s.iotlb_hits + s.iotlb_misses, 300);
	/* two fills find an empty way; every other miss evicts */
	assert_int_equal(s.iotlb_evictions, s.iotlb_misses - 2);
	/* where LRU hits never (above), random keeps the next page half the time */
	assert_true(s.iotlb_hits > 30);
	assert_true(s.iotlb_misses > 30);
	pg_free(f.m, &p);
	fx_fini(&f);
}

static void test_iotlb_invalidation_counters(void **state)
{
	struct fx f;
	struct pg p, q;
	struct iom_iommu_domain *d2;
	struct iom_device *dev2;
	struct iom_iommu_stats s0, s1;
	unsigned char buf[64];

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 2, 0x01);
	q = pg_alloc(f.m, 9, 0x02);
	assert_int_equal(iom_iommu_map(f.d, 0x100000, p.pa, 4 * SZ_4K, RW), 0);
	assert_int_equal(iom_iommu_map(f.d, 0x40000000, q.pa, SZ_2M, RW), 0);
	assert_int_equal(iom_device_dma_read(f.dev, 0x100000, buf, 1), 0);

	/* unmap of one cached page: one page command, one entry, one sync */
	s0 = ist(f.iommu);
	assert_int_equal(iom_iommu_unmap(f.d, 0x100000, SZ_4K), SZ_4K);
	s1 = ist(f.iommu);
	assert_int_equal(s1.inv_page - s0.inv_page, 1);
	assert_int_equal(inv_cmds(&s1) - inv_cmds(&s0), 1);
	assert_int_equal(s1.iotlb_invalidated - s0.iotlb_invalidated, 1);
	assert_int_equal(s1.inv_syncs - s0.inv_syncs, 1);
	assert_int_equal(s1.inv_sync_waits, s0.inv_sync_waits);

	/* unmap of three pages, two of them cached: one range command */
	assert_int_equal(iom_device_dma_read(f.dev, 0x101000, buf, 1), 0);
	assert_int_equal(iom_device_dma_read(f.dev, 0x103000, buf, 1), 0);
	s0 = ist(f.iommu);
	assert_int_equal(iom_iommu_unmap(f.d, 0x101000, 3 * SZ_4K), 3 * SZ_4K);
	s1 = ist(f.iommu);
	assert_int_equal(s1.inv_range - s0.inv_range, 1);
	assert_int_equal(inv_cmds(&s1) - inv_cmds(&s0), 1);
	assert_int_equal(s1.iotlb_invalidated - s0.iotlb_invalidated, 2);
	assert_int_equal(s1.inv_syncs - s0.inv_syncs, 1);

	/* unmap of nothing: no command, no sync */
	s0 = s1;
	assert_int_equal(iom_iommu_unmap(f.d, 0x100000, SZ_4K), 0);
	s1 = ist(f.iommu);
	assert_int_equal(inv_cmds(&s1), inv_cmds(&s0));
	assert_int_equal(s1.inv_syncs, s0.inv_syncs);

	/* flush_iotlb_all: a domain command dropping only this domain's entries */
	d2 = iom_iommu_domain_alloc(f.iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_int_equal(iom_device_create(f.iommu, "dev2", &dev2), 0);
	assert_int_equal(iom_iommu_attach_device(d2, dev2), 0);
	assert_int_equal(iom_iommu_map(d2, 0x100000, p.pa, SZ_4K, RW), 0);
	assert_int_equal(iom_device_dma_read(dev2, 0x100000, buf, 1), 0);
	assert_int_equal(iom_device_dma_read(f.dev, 0x40000000, buf, 1), 0);
	assert_int_equal(iom_device_dma_read(f.dev, 0x40100000, buf, 1), 0);	/* same block */
	s0 = ist(f.iommu);
	iom_iommu_flush_iotlb_all(f.d);
	s1 = ist(f.iommu);
	assert_int_equal(s1.inv_domain - s0.inv_domain, 1);
	assert_int_equal(inv_cmds(&s1) - inv_cmds(&s0), 1);
	assert_int_equal(s1.iotlb_invalidated - s0.iotlb_invalidated, 1);
	assert_int_equal(s1.inv_syncs - s0.inv_syncs, 1);
	iom_iommu_flush_iotlb_all(NULL);

	/* invalidate_all: one global command, a sync per domain */
	assert_int_equal(iom_device_dma_read(f.dev, 0x40000000, buf, 1), 0);
	s0 = ist(f.iommu);
	iom_iommu_invalidate_all(f.iommu);
	s1 = ist(f.iommu);
	assert_int_equal(s1.inv_all - s0.inv_all, 1);
	assert_int_equal(inv_cmds(&s1) - inv_cmds(&s0), 1);
	assert_int_equal(s1.iotlb_invalidated - s0.iotlb_invalidated, 2);
	assert_int_equal(s1.inv_syncs - s0.inv_syncs, 2);
	/* and both devices miss again */
	assert_int_equal(iom_device_dma_read(f.dev, 0x40000000, buf, 1), 0);
	assert_int_equal(iom_device_dma_read(dev2, 0x100000, buf, 1), 0);
	s0 = s1;
	s1 = ist(f.iommu);
	assert_int_equal(s1.iotlb_misses - s0.iotlb_misses, 2);
	assert_int_equal(s1.iotlb_hits, s0.iotlb_hits);

	/* unmap of a cached 2 MiB block: a range command */
	s0 = s1;
	assert_int_equal(iom_iommu_unmap(f.d, 0x40000000, SZ_2M), SZ_2M);
	s1 = ist(f.iommu);
	assert_int_equal(s1.inv_range - s0.inv_range, 1);
	assert_int_equal(s1.iotlb_invalidated - s0.iotlb_invalidated, 1);

	assert_int_equal(iom_iommu_detach_device(d2, dev2), 0);
	assert_int_equal(iom_device_destroy(dev2), 0);
	assert_int_equal(iom_iommu_domain_free(d2), 0);
	pg_free(f.m, &p);
	pg_free(f.m, &q);
	fx_fini(&f);
}

/* ---- 7. strict unmap, unmap_fast -------------------------------------------------------- */

static void test_strict_unmap_leaves_no_translation(void **state)
{
	const unsigned long X = 0x3000000;
	struct fx f;
	struct pg p, q;
	struct iom_iommu_stats s;
	unsigned char buf[8];
	int r;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 0, 0x61);
	assert_int_equal(iom_iommu_map(f.d, X, p.pa, SZ_4K, RW), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rd1(f.dev, X, &r), 0x61);
	assert_int_equal(iom_iommu_unmap(f.d, X, SZ_4K), SZ_4K);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, X), 0);
	assert_int_equal(iom_device_dma_read(f.dev, X, buf, 1), -EFAULT);
	assert_int_equal(iom_device_dma_write(f.dev, X, buf, 1), -EFAULT);
	s = ist(f.iommu);
	assert_int_equal(s.stale_hits, 0);
	assert_int_equal(s.iotlb_hits, 2);

	/* the same check sees a missing invalidation (test-only switch) */
	assert_int_equal(iom_iommu_map(f.d, X, p.pa, SZ_4K, RW), 0);
	assert_int_equal(rd1(f.dev, X, &r), 0x61);
	iom_iommu_set_skip_invalidation(f.iommu, true);
	assert_int_equal(iom_iommu_unmap(f.d, X, SZ_4K), SZ_4K);
	assert_int_equal(rd1(f.dev, X, &r), 0x61);
	assert_int_equal(r, 0);		/* the stale entry was used */
	iom_iommu_set_skip_invalidation(f.iommu, false);
	iom_iommu_flush_iotlb_all(f.d);
	assert_int_equal(iom_device_dma_read(f.dev, X, buf, 1), -EFAULT);

	/* unmap of 4 KiB inside a 2 MiB block removes the whole block */
	q = pg_alloc(f.m, 9, 0x62);
	assert_int_equal(iom_iommu_map(f.d, 0x40000000, q.pa, SZ_2M, RW), 0);
	assert_int_equal(rd1(f.dev, 0x40000000 + SZ_2M - 1, &r), 0x62);
	assert_int_equal(iom_iommu_unmap(f.d, 0x40000000 + 5 * SZ_4K, SZ_4K), SZ_2M);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, 0x40000000), 0);
	assert_int_equal(iom_device_dma_read(f.dev, 0x40000000 + SZ_2M - 1, buf, 1), -EFAULT);
	assert_int_equal(iom_device_dma_read(f.dev, 0x40000000, buf, 1), -EFAULT);
	assert_int_equal(iom_iommu_unmap(NULL, X, SZ_4K), 0);
	pg_free(f.m, &p);
	pg_free(f.m, &q);
	fx_fini(&f);
}

static void test_unmap_fast_until_iotlb_sync(void **state)
{
	const unsigned long X = 0x3000000;
	struct fx f;
	struct pg p;
	struct iom_iommu_iotlb_gather g;
	struct iom_iommu_stats s0, s1;
	unsigned char buf[2 * SZ_4K];

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 1, 0x71);
	assert_int_equal(iom_iommu_map(f.d, X, p.pa, 2 * SZ_4K, RW), 0);
	assert_int_equal(iom_device_dma_read(f.dev, X, buf, 2 * SZ_4K), 0);

	iom_iommu_iotlb_gather_init(&g);
	s0 = ist(f.iommu);
	assert_int_equal(iom_iommu_unmap_fast(f.d, X, 2 * SZ_4K, &g), 2 * SZ_4K);
	assert_int_equal(g.start, X);
	assert_int_equal(g.end, X + 2 * SZ_4K - 1);
	assert_int_equal(g.pgsize, SZ_4K);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, X), 0);
	s1 = ist(f.iommu);
	assert_int_equal(inv_cmds(&s1), inv_cmds(&s0));	/* nothing invalidated yet */
	assert_int_equal(s1.inv_syncs, s0.inv_syncs);
	/* the device still uses the cached translations: the stale window */
	memset(buf, 0x72, sizeof(buf));
	assert_int_equal(iom_device_dma_write(f.dev, X + SZ_4K - 2, buf, 4), 0);
	assert_int_equal(p.va[SZ_4K - 2], 0x72);
	assert_int_equal(p.va[SZ_4K + 1], 0x72);
	s1 = ist(f.iommu);
	assert_int_equal(s1.iotlb_hits - s0.iotlb_hits, 2);
	assert_int_equal(s1.iotlb_misses, s0.iotlb_misses);

	iom_iommu_iotlb_sync(f.d, &g);
	s1 = ist(f.iommu);
	assert_int_equal(s1.inv_range - s0.inv_range, 1);
	assert_int_equal(s1.iotlb_invalidated - s0.iotlb_invalidated, 2);
	assert_int_equal(s1.inv_syncs - s0.inv_syncs, 1);
	assert_true(g.start > g.end);	/* the gather is empty again */
	assert_int_equal(iom_device_dma_read(f.dev, X, buf, 1), -EFAULT);
	assert_int_equal(iom_device_dma_read(f.dev, X + SZ_4K, buf, 1), -EFAULT);
	assert_int_equal(iom_iommu_unmap_fast(f.d, X, SZ_4K, NULL), 0);
	iom_iommu_iotlb_sync(f.d, NULL);
	pg_free(f.m, &p);
	fx_fini(&f);
}

/* ---- 8. the DMA API: IOVA and the flush queue -------------------------------------------- */

static void dma_fx(struct fx *f, enum iom_iommu_domain_type type, unsigned int fq_size,
		   unsigned int fq_timeout_us)
{
	struct iom_iommu_config c;

	iom_iommu_config_init(&c);
	c.fq_size = fq_size;
	c.fq_timeout_us = fq_timeout_us;
	fx_init(f, &c, type);
	assert_int_equal(iom_iommu_dma_init_domain(f->d, 0, 1ULL << 32), 0);
}

static void test_dma_init_domain_errors(void **state)
{
	struct fx f;
	struct iom_iommu_domain *d;
	unsigned long iova = 0;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_dma_init_domain(f.d, 0, 1ULL << 32), -EINVAL);
	assert_true(test_log_contains(&tlog, "domain 1 is unmanaged"));
	assert_int_equal(iom_iommu_dma_map(f.d, 0x1000, SZ_4K, RW, 0, &iova), -EINVAL);
	assert_int_equal(iom_iommu_dma_unmap(f.d, 0x1000, SZ_4K), -EINVAL);
	assert_int_equal(iom_iommu_dma_init_domain(NULL, 0, 1ULL << 32), -EINVAL);

	d = iom_iommu_domain_alloc(f.iommu, IOM_IOMMU_DOMAIN_DMA);
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_dma_init_domain(d, 0x1001000, 0x1000000), -EINVAL);
	assert_int_equal(iom_iommu_dma_init_domain(d, 0x1000000, 0x1000000), -EINVAL);
	assert_int_equal(iom_iommu_dma_init_domain(d, 0x1000800, 0x2000000), -EINVAL);
	assert_int_equal(iom_iommu_dma_init_domain(d, 0x1000000, 0x2000100), -EINVAL);
	assert_int_equal(iom_iommu_dma_init_domain(d, 0, (1ULL << 48) + SZ_4K), -EINVAL);
	assert_true(test_log_contains(&tlog, "bad IOVA space"));
	assert_int_equal(tlog.nr_warn, 5);
	/* not initialised by those */
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_dma_map(d, 0x1000, SZ_4K, RW, 0, &iova), -EINVAL);
	assert_true(test_log_contains(&tlog, "domain has no IOVA space"));
	assert_int_equal(iom_iommu_dma_init_domain(d, 0, 1ULL << 48), 0);
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_dma_init_domain(d, 0, 1ULL << 32), -EINVAL);
	assert_true(test_log_contains(&tlog, "initialised already"));
	assert_int_equal(iom_iommu_dma_map(d, 0x1000, 0, RW, 0, &iova), -EINVAL);
	assert_int_equal(iom_iommu_dma_map(d, 0x1000, SZ_4K, RW, 0, NULL), -EINVAL);
	assert_int_equal(iom_iommu_domain_free(d), 0);
	fx_fini(&f);
}

static void test_dma_map_respects_limits(void **state)
{
	struct fx f;
	struct pg p;
	unsigned long iova = 0, iova2 = 0;
	unsigned char c;
	int r;

	(void)state;
	dma_fx(&f, IOM_IOMMU_DOMAIN_DMA, 0, 0);
	p = pg_alloc(f.m, 1, 0);
	for (int i = 0; i < 2 * (int)SZ_4K; i++)
		p.va[i] = (unsigned char)(i / 7);
	/* top-down in [0, 4 GiB): the last page below 4 GiB */
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa, SZ_4K, RW, 0, &iova), 0);
	assert_int_equal(iova, (1UL << 32) - SZ_4K);
	/* below a 2 GiB DMA mask, size-aligned, with the offset in the page kept */
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa + 100, 2 * SZ_4K - 100, RW,
					   0x7fffffffULL, &iova2), 0);
	assert_true(iova2 + 2 * SZ_4K - 100 - 1 <= 0x7fffffffUL);
	assert_int_equal(iova2 & (SZ_4K - 1), 100);
	assert_int_equal((iova2 - 100) & (2 * SZ_4K - 1), 0);
	assert_int_equal(iova2 - 100, 0x80000000UL - 2 * SZ_4K);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, iova2), p.pa + 100);
	c = rd1(f.dev, iova2 + 5000, &r);
	assert_int_equal(r, 0);
	assert_int_equal(c, (unsigned char)((100 + 5000) / 7));
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova2, 2 * SZ_4K - 100), 0);
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova, SZ_4K), 0);
	pg_free(f.m, &p);
	fx_fini(&f);
}

static void test_dma_strict_unmap_frees_iova_at_once(void **state)
{
	struct fx f;
	struct pg p;
	unsigned long i1 = 0, i2 = 0;
	struct iom_iommu_stats s0, s1;
	unsigned char buf[4];
	int r;

	(void)state;
	dma_fx(&f, IOM_IOMMU_DOMAIN_DMA, 0, 0);
	p = pg_alloc(f.m, 0, 0x81);
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa, SZ_4K, RW, 0, &i1), 0);
	assert_int_equal(rd1(f.dev, i1, &r), 0x81);
	s0 = ist(f.iommu);
	assert_int_equal(iom_iommu_dma_unmap(f.d, i1, SZ_4K), 0);
	s1 = ist(f.iommu);
	assert_int_equal(s1.inv_page - s0.inv_page, 1);
	assert_int_equal(s1.iotlb_invalidated - s0.iotlb_invalidated, 1);
	assert_int_equal(s1.inv_syncs - s0.inv_syncs, 1);
	assert_int_equal(s1.fq_queued, 0);
	assert_int_equal(iom_device_dma_read(f.dev, i1, buf, 1), -EFAULT);
	/* the IOVA is free again at once: the same one comes back */
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa, SZ_4K, RW, 0, &i2), 0);
	assert_int_equal(i2, i1);
	assert_int_equal(rd1(f.dev, i2, &r), 0x81);
	assert_int_equal(iom_iommu_dma_unmap(f.d, i2, SZ_4K), 0);
	pg_free(f.m, &p);
	fx_fini(&f);
}

/* dma_unmap with a bad range: -EINVAL, reported, nothing changed. */
static void check_dma_unmap_errors(enum iom_iommu_domain_type type)
{
	struct fx f;
	struct pg p;
	unsigned long iova = 0;
	unsigned char buf[2 * SZ_4K];
	struct iom_iommu_stats s0, s1;

	dma_fx(&f, type, 0, 10000000);
	p = pg_alloc(f.m, 1, 0x91);
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa, 2 * SZ_4K, RW, 0, &iova), 0);
	assert_int_equal(iom_device_dma_read(f.dev, iova, buf, sizeof(buf)), 0);
	s0 = ist(f.iommu);
	test_log_reset(&tlog);
	/* never handed out */
	assert_int_equal(iom_iommu_dma_unmap(f.d, 0x10000000, SZ_4K), -EINVAL);
	assert_true(test_log_contains(&tlog, "iova 0x10000000 size 0x1000 of domain 1 is "
				      "not a range iommu_dma_map handed out"));
	assert_int_equal(tlog.nr_warn, 1);
	/* too small, the second half, too large */
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova, SZ_4K), -EINVAL);
	assert_int_equal(tlog.nr_warn, 1);
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova + SZ_4K, SZ_4K), -EINVAL);
	assert_int_equal(tlog.nr_warn, 1);
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova, 4 * SZ_4K), -EINVAL);
	assert_int_equal(tlog.nr_warn, 1);
	assert_true(test_log_contains(&tlog, "not a range iommu_dma_map handed out"));
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova, 0), -EINVAL);
	/* handed out (iom_iommu_dma_alloc_iova) but nothing mapped there */
	{
		unsigned long a = 0;

		assert_int_equal(iom_iommu_dma_alloc_iova(f.d, SZ_4K, 0, &a), 0);
		test_log_reset(&tlog);
		assert_int_equal(iom_iommu_dma_unmap(f.d, a, SZ_4K), -EINVAL);
		assert_true(test_log_contains(&tlog, "nothing is mapped at iova"));
		assert_int_equal(iom_iommu_dma_free_iova(f.d, a, SZ_4K), 0);
	}
	/* nothing changed: mapped, cached, nothing queued or invalidated */
	assert_int_equal(iom_iommu_iova_to_phys(f.d, iova), p.pa);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, iova + SZ_4K), p.pa + SZ_4K);
	assert_int_equal(iom_device_dma_read(f.dev, iova, buf, sizeof(buf)), 0);
	assert_int_equal(buf[SZ_4K], 0x91);
	s1 = ist(f.iommu);
	assert_int_equal(s1.fq_queued, s0.fq_queued);
	assert_int_equal(inv_cmds(&s1), inv_cmds(&s0));
	assert_int_equal(s1.iotlb_hits - s0.iotlb_hits, 2);
	assert_int_equal(s1.stale_hits, 0);
	/* and the right unmap still works */
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova, 2 * SZ_4K), 0);
	iom_iommu_dma_flush_queue(f.d);
	assert_int_equal(iom_device_dma_read(f.dev, iova, buf, 1), -EFAULT);
	pg_free(f.m, &p);
	fx_fini(&f);
}

static void test_dma_unmap_errors_change_nothing(void **state)
{
	(void)state;
	check_dma_unmap_errors(IOM_IOMMU_DOMAIN_DMA);
	check_dma_unmap_errors(IOM_IOMMU_DOMAIN_DMA_FQ);
}

static void test_lazy_iova_held_until_flush(void **state)
{
	struct fx f;
	struct pg p;
	unsigned long i1 = 0, i2 = 0, i3 = 0;
	struct iom_iommu_stats s0, s1;
	unsigned char buf[4];
	int r;

	(void)state;
	dma_fx(&f, IOM_IOMMU_DOMAIN_DMA_FQ, 0, 10000000);	/* no timeout in the test */
	p = pg_alloc(f.m, 0, 0xa1);
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa, SZ_4K, RW, 0, &i1), 0);
	assert_int_equal(rd1(f.dev, i1, &r), 0xa1);
	s0 = ist(f.iommu);
	assert_int_equal(iom_iommu_dma_unmap(f.d, i1, SZ_4K), 0);
	s1 = ist(f.iommu);
	assert_int_equal(s1.fq_queued - s0.fq_queued, 1);
	assert_int_equal(s1.fq_flushes, 0);
	assert_int_equal(inv_cmds(&s1), inv_cmds(&s0));	/* lazy: no command */
	assert_int_equal(s1.inv_syncs, s0.inv_syncs);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, i1), 0);

	/* the device still hits the old translation: counted stale */
	assert_int_equal(rd1(f.dev, i1, &r), 0xa1);
	assert_int_equal(r, 0);
	s1 = ist(f.iommu);
	assert_int_equal(s1.stale_hits, 1);
	assert_int_equal(s1.stale_freed_hits, 0);

	/* the IOVA is not handed out again before the flush */
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa, SZ_4K, RW, 0, &i2), 0);
	assert_int_not_equal(i2, i1);

	s0 = ist(f.iommu);
	iom_iommu_dma_flush_queue(f.d);
	s1 = ist(f.iommu);
	assert_int_equal(s1.fq_flushes - s0.fq_flushes, 1);
	assert_int_equal(s1.inv_domain - s0.inv_domain, 1);
	assert_int_equal(s1.fq_timeouts, 0);
	assert_int_equal(iom_device_dma_read(f.dev, i1, buf, 1), -EFAULT);
	/* and now it is */
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa, SZ_4K, RW, 0, &i3), 0);
	assert_int_equal(i3, i1);
	assert_int_equal(rd1(f.dev, i3, &r), 0xa1);
	s0 = ist(f.iommu);
	assert_int_equal(s0.stale_hits, 1);	/* a live translation is not stale */
	assert_int_equal(iom_iommu_dma_unmap(f.d, i2, SZ_4K), 0);
	assert_int_equal(iom_iommu_dma_unmap(f.d, i3, SZ_4K), 0);
	iom_iommu_dma_flush_queue(NULL);
	pg_free(f.m, &p);
	fx_fini(&f);
}

static void test_lazy_stale_hit_on_freed_page(void **state)
{
	struct fx f;
	struct pg p;
	unsigned long iova = 0;
	struct iom_iommu_stats s;
	unsigned char buf[4];
	int r;

	(void)state;
	dma_fx(&f, IOM_IOMMU_DOMAIN_DMA_FQ, 0, 10000000);
	p = pg_alloc(f.m, 0, 0xb1);
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa + 8, 16, RW, 0, &iova), 0);
	assert_int_equal(rd1(f.dev, iova, &r), 0xb1);
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova, 16), 0);
	(void)rd1(f.dev, iova, &r);
	assert_int_equal(r, 0);
	s = ist(f.iommu);
	assert_int_equal(s.stale_hits, 1);
	assert_int_equal(s.stale_freed_hits, 0);
	/* the page is freed while the IOTLB still holds it: a read hits freed memory */
	pg_free(f.m, &p);
	(void)rd1(f.dev, iova + 3, &r);
	assert_int_equal(r, 0);
	s = ist(f.iommu);
	assert_int_equal(s.stale_hits, 2);
	assert_int_equal(s.stale_freed_hits, 1);
	iom_iommu_dma_flush_queue(f.d);
	assert_int_equal(iom_device_dma_read(f.dev, iova, buf, 1), -EFAULT);
	s = ist(f.iommu);
	assert_int_equal(s.stale_hits, 2);
	fx_fini(&f);
}

static void test_lazy_queue_full_flushes(void **state)
{
	enum { FQ = 4 };
	struct fx f;
	struct pg p;
	unsigned long iova[FQ];
	struct iom_iommu_stats s0, s1;
	unsigned char buf[4];
	int r;

	(void)state;
	dma_fx(&f, IOM_IOMMU_DOMAIN_DMA_FQ, FQ, 10000000);
	p = pg_alloc(f.m, 0, 0xc1);
	for (int i = 0; i < FQ; i++) {
		assert_int_equal(iom_iommu_dma_map(f.d, p.pa, SZ_4K, RW, 0, &iova[i]), 0);
		assert_int_equal(rd1(f.dev, iova[i], &r), 0xc1);
	}
	s0 = ist(f.iommu);
	/* a ring of FQ slots holds FQ - 1 entries, as dma-iommu.c's */
	for (int i = 0; i < FQ - 1; i++)
		assert_int_equal(iom_iommu_dma_unmap(f.d, iova[i], SZ_4K), 0);
	s1 = ist(f.iommu);
	assert_int_equal(s1.fq_queued - s0.fq_queued, FQ - 1);
	assert_int_equal(s1.fq_flushes, 0);
	assert_int_equal(rd1(f.dev, iova[0], &r), 0xc1);	/* stale, still usable */
	assert_int_equal(r, 0);
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova[FQ - 1], SZ_4K), 0);
	s1 = ist(f.iommu);
	assert_int_equal(s1.fq_queued - s0.fq_queued, FQ);
	assert_int_equal(s1.fq_flushes, 1);
	assert_int_equal(s1.fq_timeouts, 0);
	assert_int_equal(s1.inv_domain - s0.inv_domain, 1);
	for (int i = 0; i < FQ; i++)
		assert_int_equal(iom_device_dma_read(f.dev, iova[i], buf, 1), -EFAULT);
	pg_free(f.m, &p);
	fx_fini(&f);
}

static void test_lazy_timeout_flushes(void **state)
{
	struct fx f;
	struct pg p;
	unsigned long iova = 0;
	struct iom_iommu_stats s;
	uint64_t end;
	unsigned char buf[4];
	int r;

	(void)state;
	dma_fx(&f, IOM_IOMMU_DOMAIN_DMA_FQ, 0, 1000);	/* 1 ms */
	p = pg_alloc(f.m, 0, 0xd1);
	assert_int_equal(iom_iommu_dma_map(f.d, p.pa, SZ_4K, RW, 0, &iova), 0);
	assert_int_equal(rd1(f.dev, iova, &r), 0xd1);
	assert_int_equal(iom_iommu_dma_unmap(f.d, iova, SZ_4K), 0);
	end = mono_ns() + 5000000000ULL;
	do {
		sleep_us(500);
		s = ist(f.iommu);
	} while (!s.fq_timeouts && mono_ns() < end);
	assert_int_equal(s.fq_timeouts, 1);
	assert_int_equal(s.fq_flushes, 1);
	assert_int_equal(iom_device_dma_read(f.dev, iova, buf, 1), -EFAULT);
	/* nothing queued: the timer does not flush again */
	sleep_us(5000);
	s = ist(f.iommu);
	assert_int_equal(s.fq_timeouts, 1);
	assert_int_equal(s.fq_flushes, 1);
	pg_free(f.m, &p);
	fx_fini(&f);
}

/* ---- 9. block / unblock ------------------------------------------------------------------- */

static void test_block_stalls_devices_and_nests(void **state)
{
	const unsigned long X = 0x900000;
	struct fx f;
	struct pg p;
	struct dma_job j;
	unsigned char wbuf[3 * 1000];
	struct iom_device_stats s;
	bool done_while_blocked, done_after_one_unblock;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 1, 0);
	assert_int_equal(iom_iommu_map(f.d, X, p.pa, 2 * SZ_4K, RW), 0);
	memset(wbuf, 0xe1, sizeof(wbuf));

	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_unblock(f.d), -EINVAL);
	assert_true(test_log_contains(&tlog, "unblock of domain 1 that is not blocked"));
	assert_int_equal(iom_iommu_block(NULL), -EINVAL);
	assert_int_equal(iom_iommu_unblock(NULL), -EINVAL);

	/* one block */
	assert_int_equal(iom_iommu_block(f.d), 0);
	assert_int_equal(job_start(&j, f.dev, X + SZ_4K - 1000, wbuf, 2000, true), 0);
	sleep_us(SETTLE_US);
	done_while_blocked = atomic_load(&j.done);
	assert_int_equal(p.va[SZ_4K - 1000], 0);	/* nothing moved */
	assert_int_equal(iom_iommu_unblock(f.d), 0);
	job_join(&j);
	assert_false(done_while_blocked);
	assert_int_equal(j.ret, 0);
	assert_true(j.stall_ns > 0);
	assert_int_equal(memcmp(p.va + SZ_4K - 1000, wbuf, 2000), 0);
	s = dst(f.dev);
	assert_int_equal(s.stalls, 1);
	assert_true(s.stall_ns_total >= j.stall_ns);
	assert_int_equal(s.stall_ns_max, j.stall_ns);
	assert_int_equal(s.transactions, 1);
	assert_int_equal(s.faults, 0);

	/* nested: two blocks need two unblocks */
	assert_int_equal(iom_iommu_block(f.d), 0);
	assert_int_equal(iom_iommu_block(f.d), 0);
	memset(wbuf, 0xe2, sizeof(wbuf));
	assert_int_equal(job_start(&j, f.dev, X, wbuf, 100, true), 0);
	assert_int_equal(iom_iommu_unblock(f.d), 0);
	sleep_us(SETTLE_US);
	done_after_one_unblock = atomic_load(&j.done);
	assert_int_equal(iom_iommu_unblock(f.d), 0);
	job_join(&j);
	assert_false(done_after_one_unblock);
	assert_int_equal(j.ret, 0);
	assert_true(j.stall_ns > 0);
	assert_int_equal(p.va[0], 0xe2);
	assert_int_equal(p.va[99], 0xe2);
	assert_int_equal(dst(f.dev).stalls, 2);
	assert_int_equal(iom_iommu_unblock(f.d), -EINVAL);

	/* not blocked: no stall, and the main thread's last stall is 0 */
	assert_int_equal(iom_device_dma_write(f.dev, X, wbuf, 1), 0);
	assert_int_equal(iom_device_last_stall_ns(), 0);
	assert_int_equal(dst(f.dev).stalls, 2);
	pg_free(f.m, &p);
	fx_fini(&f);
}

/* ---- 10. migration ----------------------------------------------------------------------- */

struct mig_cb_ctx {
	struct fx *f;
	unsigned long iova;
	size_t size;
	struct pg *from, *to;
	int calls;
	uint64_t phys_during;
	bool domain_job_done;
	struct dma_job job;
	unsigned char jbuf[2 * SZ_4K];
	bool job_started;
};

static void seed_copy_cb(void *priv)
{
	struct mig_cb_ctx *c = priv;

	c->calls++;
	c->phys_during = iom_iommu_iova_to_phys(c->f->d, c->iova);
	if (c->job_started) {
		memset(c->jbuf, 0, sizeof(c->jbuf));
		if (job_start(&c->job, c->f->dev, c->iova, c->jbuf, c->size, false) == 0) {
			sleep_us(SETTLE_US);
			c->domain_job_done = atomic_load(&c->job.done);
		} else {
			c->job_started = false;
		}
	}
	memcpy(c->to->va, c->from->va, c->size);
	memset(c->from->va, 0, c->size);	/* the device must read the new page */
}

static void test_migrate_five_steps(void **state)
{
	const unsigned long X = 0x4000000;
	struct fx f;
	struct pg o, n;
	struct mig_cb_ctx c;
	struct fault_rec fr;
	struct iom_iommu_stats s0, s1;
	unsigned char buf[2 * SZ_4K];

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	o = pg_alloc(f.m, 1, 0);
	n = pg_alloc(f.m, 1, 0);
	for (size_t i = 0; i < 2 * SZ_4K; i++)
		o.va[i] = (unsigned char)(i * 13 + 1);
	assert_int_equal(iom_iommu_map(f.d, X, o.pa, 2 * SZ_4K, RO), 0);
	assert_int_equal(iom_device_dma_read(f.dev, X, buf, sizeof(buf)), 0);	/* hot */

	memset(&c, 0, sizeof(c));
	c.f = &f;
	c.iova = X;
	c.size = 2 * SZ_4K;
	c.from = &o;
	c.to = &n;
	c.job_started = true;
	s0 = ist(f.iommu);
	assert_int_equal(iom_iommu_migrate(f.d, X, n.pa, 2 * SZ_4K, seed_copy_cb, &c), 0);
	s1 = ist(f.iommu);
	assert_true(c.job_started);
	job_join(&c.job);
	assert_int_equal(c.calls, 1);
	/* (1)-(2): during the copy the domain was blocked and the range unmapped */
	assert_int_equal(c.phys_during, 0);
	assert_false(c.domain_job_done);
	/* (3)-(5): the device read waited, then read the copied bytes */
	assert_int_equal(c.job.ret, 0);
	assert_true(c.job.stall_ns > 0);
	for (size_t i = 0; i < 2 * SZ_4K; i++)
		if (c.jbuf[i] != (unsigned char)(i * 13 + 1))
			fail_msg("byte %zu read %#x after migration", i, c.jbuf[i]);
	/* (4): the new pages, with the old permission (read only) */
	assert_int_equal(iom_iommu_iova_to_phys(f.d, X), n.pa);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, X + SZ_4K + 5), n.pa + SZ_4K + 5);
	memset(&fr, 0, sizeof(fr));
	iom_iommu_set_fault_handler(f.d, fault_handler, &fr);
	assert_int_equal(iom_device_dma_write(f.dev, X, buf, 1), -EFAULT);
	assert_int_equal(fr.flags[0], IOM_IOMMU_FAULT_WRITE | IOM_IOMMU_FAULT_PERMISSION);
	assert_int_equal(iom_device_dma_read(f.dev, X, buf, sizeof(buf)), 0);
	assert_int_equal(memcmp(buf, n.va, sizeof(buf)), 0);
	/* (5): unblocked: one block only, and it is gone */
	assert_int_equal(iom_iommu_unblock(f.d), -EINVAL);
	/* the old translations were invalidated: both pages were cached */
	assert_int_equal(s1.iotlb_invalidated - s0.iotlb_invalidated, 2);
	assert_int_equal(s1.inv_syncs - s0.inv_syncs, 2);

	/* a writable range keeps its write permission */
	assert_int_equal(iom_iommu_map(f.d, X + 0x100000, o.pa, SZ_4K, RW), 0);
	memset(&c, 0, sizeof(c));
	c.f = &f;
	c.iova = X + 0x100000;
	c.size = SZ_4K;
	c.from = &o;
	c.to = &n;
	assert_int_equal(iom_iommu_migrate(f.d, X + 0x100000, n.pa, SZ_4K, seed_copy_cb, &c), 0);
	assert_int_equal(iom_device_dma_write(f.dev, X + 0x100000, "\x5a", 1), 0);
	assert_int_equal(n.va[0], 0x5a);
	assert_int_equal(o.va[0], 0);
	assert_int_equal(fr.calls, 1);
	pg_free(f.m, &o);
	pg_free(f.m, &n);
	fx_fini(&f);
}

static void count_cb(void *priv)
{
	(*(int *)priv)++;
}

static void count_range(void *priv, unsigned int idx, size_t off, size_t len)
{
	(void)idx;
	(void)off;
	(void)len;
	(*(int *)priv)++;
}

static void test_migrate_errors_change_nothing(void **state)
{
	const unsigned long X = 0x4000000, B = 0x40000000;
	struct fx f;
	struct pg o, n, q;
	int calls = 0;
	unsigned char buf[16];
	struct iom_iommu_stats s0, s1;
	static const struct {
		unsigned long iova;
		uint64_t pa_off;
		size_t size;
		int err;
		const char *msg;
	} bad[] = {
		{ X + 1, 0, SZ_4K, -EINVAL, "not 4 KiB aligned" },
		{ X, 0x10, SZ_4K, -EINVAL, "not 4 KiB aligned" },
		{ X, 0, 100, -EINVAL, "not 4 KiB aligned" },
		{ X, 0, 0, -EINVAL, "is empty" },
		{ X, 0, 3 * SZ_4K, -ENOENT, "iova 0x4002000 of domain 1 is not mapped" },
		{ X + SZ_4K, 0, 2 * SZ_4K, -ENOENT, "is not mapped" },
		{ B + SZ_4K, 0, SZ_4K, -EINVAL, "the 2048 KiB leaf at iova 0x40000000 reaches outside" },
		{ B, 0, SZ_2M - SZ_4K, -EINVAL, "reaches outside" },
		{ X + 0x10000, 0, 2 * SZ_4K, -EINVAL, "mixed permissions" },
	};

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	o = pg_alloc(f.m, 1, 0x17);
	n = pg_alloc(f.m, 1, 0x18);
	q = pg_alloc(f.m, 9, 0x19);
	/* X, X+4K mapped; X+8K a hole */
	assert_int_equal(iom_iommu_map(f.d, X, o.pa, 2 * SZ_4K, RW), 0);
	assert_int_equal(iom_iommu_map(f.d, B, q.pa, SZ_2M, RW), 0);
	assert_int_equal(iom_iommu_map(f.d, X + 0x10000, o.pa, SZ_4K, RW), 0);
	assert_int_equal(iom_iommu_map(f.d, X + 0x11000, o.pa + SZ_4K, SZ_4K, RO), 0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		test_log_reset(&tlog);
		s0 = ist(f.iommu);
		assert_int_equal(iom_iommu_migrate(f.d, bad[i].iova, n.pa + bad[i].pa_off,
						   bad[i].size, count_cb, &calls), bad[i].err);
		s1 = ist(f.iommu);
		if (!test_log_contains(&tlog, bad[i].msg))
			fail_msg("case %zu: \"%s\" not in \"%s\"", i, bad[i].msg, tlog.text);
		assert_int_equal(calls, 0);
		/* no unmap, no invalidation, not left blocked */
		assert_int_equal(iom_iommu_unblock(f.d), -EINVAL);
		assert_int_equal(inv_cmds(&s1), inv_cmds(&s0));
		assert_int_equal(iom_iommu_iova_to_phys(f.d, X), o.pa);
		assert_int_equal(iom_iommu_iova_to_phys(f.d, X + SZ_4K), o.pa + SZ_4K);
		assert_int_equal(iom_iommu_iova_to_phys(f.d, B + 123), q.pa + 123);
		assert_int_equal(iom_iommu_iova_to_phys(f.d, X + 0x11000), o.pa + SZ_4K);
		assert_int_equal(iom_device_dma_read(f.dev, B + SZ_4K, buf, 1), 0);
		assert_int_equal(buf[0], 0x19);
	}
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_migrate(f.d, X, n.pa, SZ_4K, NULL, NULL), -EINVAL);
	assert_true(test_log_contains(&tlog, "NULL copy_cb"));
	assert_int_equal(iom_iommu_migrate(NULL, X, n.pa, SZ_4K, count_cb, &calls), -EINVAL);
	assert_int_equal(iom_iommu_migrate_ranges(f.d, NULL, 1, IOM_IOMMU_MIGRATE_BLOCK,
						  NULL, NULL, NULL), -EINVAL);
	{
		struct iom_iommu_migrate_range r[2] = {
			{ X, n.pa, SZ_4K }, { X, n.pa + SZ_4K, SZ_4K },
		};

		test_log_reset(&tlog);
		assert_int_equal(iom_iommu_migrate_ranges(f.d, r, 2, IOM_IOMMU_MIGRATE_PER_PAGE,
							  count_range,
							  &calls, NULL), -EINVAL);
		assert_true(test_log_contains(&tlog, "overlap"));
		assert_int_equal(iom_iommu_migrate_ranges(f.d, r, 1, (enum iom_iommu_migrate_mode)7,
							  count_range,
							  &calls, NULL), -EINVAL);
		assert_int_equal(iom_iommu_migrate_ranges(f.d, r, 0, IOM_IOMMU_MIGRATE_BLOCK,
							  count_range,
							  &calls, NULL), -EINVAL);
		/* NONBLOCK: the new paddr must be aligned to the leaf it replaces */
		r[0].iova = B;
		r[0].paddr = n.pa;
		r[0].size = SZ_2M;
		if (n.pa & (SZ_2M - 1)) {
			test_log_reset(&tlog);
			assert_int_equal(iom_iommu_migrate_ranges(f.d, r, 1,
								  IOM_IOMMU_MIGRATE_NONBLOCK,
								  count_range,
								  &calls, NULL), -EINVAL);
			assert_true(test_log_contains(&tlog, "is not aligned to the 2048 KiB leaf"));
		}
	}
	assert_int_equal(calls, 0);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, B), q.pa);
	assert_int_equal(iom_iommu_unblock(f.d), -EINVAL);
	pg_free(f.m, &o);
	pg_free(f.m, &n);
	pg_free(f.m, &q);
	fx_fini(&f);
}

/* migrate_ranges: range i is page i of @from, moving to page i of @to */
struct range_copy {
	const struct iom_iommu_migrate_range *r;
	unsigned int base;	/* index in from_va/to_va of the call's range 0 */
	unsigned char *from_va[128];
	unsigned char *to_va[128];
	unsigned int calls;
	size_t bytes;
	/* optional: a second migration from inside the callback */
	struct iom_iommu_domain *d;
	const struct iom_iommu_migrate_range *inner;
	unsigned int inner_nr;
	enum iom_iommu_migrate_mode inner_mode;
	int inner_ret;
	bool inner_done;
	/* optional: device threads started from inside the callback */
	struct iom_device *dev;
	unsigned long other_iova, same_iova;
	long other_wait_us;	/* how long to give the other IOVA's read */
	int other_done, same_done;
	struct dma_job other, same;
	unsigned char obuf[8], sbuf[8];
	bool jobs;
};

static void noop_copy(void *priv, unsigned int idx, size_t off, size_t len)
{
	(void)priv;
	(void)idx;
	(void)off;
	(void)len;
}

static void range_copy(void *priv, unsigned int idx, size_t off, size_t len)
{
	struct range_copy *c = priv;

	c->calls++;
	c->bytes += len;
	memcpy(c->to_va[c->base + idx] + off, c->from_va[c->base + idx] + off, len);
	if (c->inner && !c->inner_done) {
		c->inner_done = true;
		c->inner_ret = iom_iommu_migrate_ranges(c->d, c->inner, c->inner_nr,
							c->inner_mode, noop_copy, NULL, NULL);
	}
	if (c->jobs) {
		c->jobs = false;
		/* an IOVA of the domain that is not migrating */
		if (job_start(&c->other, c->dev, c->other_iova, c->obuf, 8, false) == 0)
			c->other_done = job_wait_done(&c->other, c->other_wait_us) ? 1 : 0;
		else
			c->other_done = -1;
		/* the range being migrated */
		if (job_start(&c->same, c->dev, c->same_iova, c->sbuf, 8, false) == 0) {
			sleep_us(SETTLE_US);
			c->same_done = atomic_load(&c->same.done);
		} else {
			c->same_done = -1;
		}
	}
}

/* @n pages at X + 2i pages -> old page i; each range moves to new page i. */
struct mig_set {
	struct pg old, new_;
	struct iom_iommu_migrate_range r[128];
	struct range_copy c;
	unsigned int n;
	int seed;
};

static void mig_set_init(struct fx *f, struct mig_set *s, unsigned long X, unsigned int n,
			 unsigned int order, int seed)
{
	memset(s, 0, sizeof(*s));
	s->n = n;
	s->seed = seed;
	s->old = pg_alloc(f->m, order, 0);
	s->new_ = pg_alloc(f->m, order, 0);
	for (size_t i = 0; i < s->old.size; i++)
		s->old.va[i] = (unsigned char)(i / 4096 * 31 + i + seed);
	for (unsigned int i = 0; i < n; i++) {
		s->r[i].iova = X + 2 * i * SZ_4K;
		s->r[i].paddr = s->new_.pa + i * SZ_4K;
		s->r[i].size = SZ_4K;
		s->c.from_va[i] = s->old.va + i * SZ_4K;
		s->c.to_va[i] = s->new_.va + i * SZ_4K;
		assert_int_equal(iom_iommu_map(f->d, s->r[i].iova, s->old.pa + i * SZ_4K,
					       SZ_4K, RW), 0);
	}
	s->c.r = s->r;
}

/* Every range reads its old bytes through the device, from the new page. */
static void mig_set_check(struct fx *f, struct mig_set *s, unsigned int from, unsigned int nr)
{
	unsigned char buf[SZ_4K];

	for (unsigned int i = from; i < from + nr; i++) {
		assert_int_equal(iom_iommu_iova_to_phys(f->d, s->r[i].iova), s->r[i].paddr);
		memset(s->old.va + i * SZ_4K, 0, SZ_4K);	/* not read from there */
		assert_int_equal(iom_device_dma_read(f->dev, s->r[i].iova, buf, SZ_4K), 0);
		for (size_t k = 0; k < SZ_4K; k++)
			if (buf[k] != (unsigned char)(i * 31 + i * SZ_4K + k + s->seed))
				fail_msg("range %u byte %zu: %#x", i, k, buf[k]);
		assert_int_equal(memcmp(buf, s->new_.va + i * SZ_4K, SZ_4K), 0);
	}
}

static void mig_set_fini(struct fx *f, struct mig_set *s)
{
	pg_free(f->m, &s->old);
	pg_free(f->m, &s->new_);
}

static void test_migrate_ranges_one_sync_per_step(void **state)
{
	static const enum iom_iommu_migrate_mode modes[] = {
		IOM_IOMMU_MIGRATE_BLOCK, IOM_IOMMU_MIGRATE_PER_PAGE, IOM_IOMMU_MIGRATE_NONBLOCK,
	};
	struct fx f;
	struct mig_set *s = malloc(sizeof(*s));

	(void)state;
	assert_non_null(s);
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	for (int mi = 0; mi < 3; mi++) {
		const unsigned long X = 0x10000000UL + (unsigned long)mi * 0x1000000UL;
		uint64_t syncs[2], cmds[2];
		struct iom_iommu_migrate_stats ms;
		unsigned char before[SZ_4K];

		mig_set_init(&f, s, X, 65, 7, mi);
		/* hot translations, so the invalidations drop something */
		for (unsigned int i = 0; i < 65; i++)
			assert_int_equal(iom_device_dma_read(f.dev, s->r[i].iova, before, 1), 0);
		for (int k = 0; k < 2; k++) {
			unsigned int first = k ? 1 : 0, nr = k ? 64 : 1;
			struct iom_iommu_stats s0 = ist(f.iommu), s1;
			uint64_t inv0 = s0.iotlb_invalidated;

			s->c.calls = 0;
			s->c.bytes = 0;
			s->c.base = first;
			assert_int_equal(iom_iommu_migrate_ranges(f.d, &s->r[first], nr, modes[mi],
								  range_copy, &s->c, &ms), 0);
			s1 = ist(f.iommu);
			syncs[k] = s1.inv_syncs - s0.inv_syncs;
			cmds[k] = inv_cmds(&s1) - inv_cmds(&s0);
			/* every cached old translation was dropped */
			assert_true(s1.iotlb_invalidated - inv0 >= nr);
			/* nobody ran: one pass, nothing copied twice */
			assert_int_equal(ms.rounds, 1);
			assert_int_equal(ms.recopied, 0);
			assert_int_equal(ms.write_faults, 0);
			assert_int_equal(ms.final_dirty, 0);
			assert_int_equal(s->c.calls, nr);
			assert_int_equal(s->c.bytes, nr * SZ_4K);
		}
		/* the callback got (range index, offset, length) relative to its array */
		mig_set_check(&f, s, 0, 65);
		/* batched: the same number of syncs and commands for 1 and 64 ranges */
		if (syncs[0] != syncs[1] || cmds[0] != cmds[1])
			fail_msg("mode %d: nr=1: %llu syncs %llu commands, nr=64: %llu syncs "
				 "%llu commands", (int)modes[mi], (unsigned long long)syncs[0],
				 (unsigned long long)cmds[0], (unsigned long long)syncs[1],
				 (unsigned long long)cmds[1]);
		assert_int_equal(syncs[0], 2);
		assert_int_equal(iom_iommu_unblock(f.d), -EINVAL);
		for (unsigned int i = 0; i < 65; i++)
			assert_int_equal(iom_iommu_unmap(f.d, s->r[i].iova, SZ_4K), SZ_4K);
		mig_set_fini(&f, s);
	}
	fx_fini(&f);
	free(s);
}

static void test_migrate_ranges_keep_each_range_permission(void **state)
{
	struct fx f;
	struct mig_set *s = malloc(sizeof(*s));
	struct iom_iommu_migrate_range r[2];
	struct fault_rec fr;

	(void)state;
	assert_non_null(s);
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	for (int mode = IOM_IOMMU_MIGRATE_BLOCK; mode <= IOM_IOMMU_MIGRATE_NONBLOCK; mode++) {
		const unsigned long X = 0x6000000UL + (unsigned long)mode * 0x100000UL;

		mig_set_init(&f, s, X, 2, 1, mode);
		/* range at X read-only, at X + 8K writable; given high first */
		assert_int_equal(iom_iommu_unmap(f.d, X, SZ_4K), SZ_4K);
		assert_int_equal(iom_iommu_map(f.d, X, s->old.pa, SZ_4K, RO), 0);
		r[0] = s->r[1];
		r[1] = s->r[0];
		s->c.from_va[0] = s->old.va + SZ_4K;
		s->c.to_va[0] = s->new_.va + SZ_4K;
		s->c.from_va[1] = s->old.va;
		s->c.to_va[1] = s->new_.va;
		assert_int_equal(iom_iommu_migrate_ranges(f.d, r, 2, (enum iom_iommu_migrate_mode)mode,
							  range_copy, &s->c, NULL), 0);
		assert_int_equal(iom_iommu_iova_to_phys(f.d, X), s->new_.pa);
		assert_int_equal(iom_iommu_iova_to_phys(f.d, X + 2 * SZ_4K), s->new_.pa + SZ_4K);
		assert_int_equal(memcmp(s->new_.va, s->old.va, 2 * SZ_4K), 0);
		memset(&fr, 0, sizeof(fr));
		iom_iommu_set_fault_handler(f.d, fault_handler, &fr);
		if (iom_device_dma_write(f.dev, X + 2 * SZ_4K, "w", 1))
			fail_msg("mode %d: the writable range lost its write permission", mode);
		assert_int_equal(s->new_.va[SZ_4K], 'w');
		assert_int_equal(iom_device_dma_write(f.dev, X, "w", 1), -EFAULT);
		assert_int_equal(fr.calls, 1);
		assert_int_equal(fr.flags[0], IOM_IOMMU_FAULT_WRITE | IOM_IOMMU_FAULT_PERMISSION);
		iom_iommu_set_fault_handler(f.d, NULL, NULL);
		assert_int_equal(iom_iommu_unmap(f.d, X, SZ_4K), SZ_4K);
		assert_int_equal(iom_iommu_unmap(f.d, X + 2 * SZ_4K, SZ_4K), SZ_4K);
		mig_set_fini(&f, s);
	}
	fx_fini(&f);
	free(s);
}

static void test_migrate_per_page_lets_the_rest_run(void **state)
{
	const unsigned long X = 0x7000000, Y = 0x7800000;
	struct fx f;
	struct mig_set *s = malloc(sizeof(*s));
	struct pg other;
	int mode_ix;

	(void)state;
	assert_non_null(s);
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	other = pg_alloc(f.m, 0, 0x4f);
	assert_int_equal(iom_iommu_map(f.d, Y, other.pa, SZ_4K, RW), 0);
	mig_set_init(&f, s, X, 1, 0, 5);
	for (mode_ix = 0; mode_ix < 2; mode_ix++) {
		enum iom_iommu_migrate_mode mode = mode_ix ? IOM_IOMMU_MIGRATE_PER_PAGE
							   : IOM_IOMMU_MIGRATE_BLOCK;
		unsigned char expect = s->c.from_va[0][0];

		s->c.jobs = true;
		s->c.dev = f.dev;
		s->c.other_iova = Y;
		s->c.same_iova = X;
		s->c.other_done = s->c.same_done = -2;
		/* long enough to finish when it is not stopped; stopped, it is waited out */
		s->c.other_wait_us = mode == IOM_IOMMU_MIGRATE_PER_PAGE ? 20 * SETTLE_US : SETTLE_US;
		assert_int_equal(iom_iommu_migrate_ranges(f.d, s->r, 1, mode, range_copy,
							  &s->c, NULL), 0);
		job_join(&s->c.other);
		job_join(&s->c.same);
		/* the migrating range waited in both modes, and then read the new page */
		assert_int_equal(s->c.same_done, 0);
		assert_int_equal(s->c.same.ret, 0);
		assert_int_equal(s->c.sbuf[0], expect);
		assert_true(s->c.same.stall_ns > 0);
		/* the rest of the domain: stopped by BLOCK, running under PER_PAGE */
		assert_int_equal(s->c.other.ret, 0);
		assert_int_equal(s->c.obuf[0], 0x4f);
		if (mode == IOM_IOMMU_MIGRATE_PER_PAGE) {
			assert_int_equal(s->c.other_done, 1);
			assert_int_equal(s->c.other.stall_ns, 0);
		} else {
			assert_int_equal(s->c.other_done, 0);
			assert_true(s->c.other.stall_ns > 0);
		}
		/* back to the old page for the next mode */
		s->r[0].paddr = mode_ix ? s->new_.pa : s->old.pa;
		{
			unsigned char *t = s->c.from_va[0];

			s->c.from_va[0] = s->c.to_va[0];
			s->c.to_va[0] = t;
		}
	}
	assert_int_equal(iom_iommu_unblock(f.d), -EINVAL);
	mig_set_fini(&f, s);
	pg_free(f.m, &other);
	fx_fini(&f);
	free(s);
}

static void test_migrate_ranges_busy_from_inside_copy(void **state)
{
	static const enum iom_iommu_migrate_mode modes[] = {
		IOM_IOMMU_MIGRATE_BLOCK, IOM_IOMMU_MIGRATE_PER_PAGE, IOM_IOMMU_MIGRATE_NONBLOCK,
	};
	const unsigned long X = 0x8000000;
	struct fx f;
	struct mig_set *s = malloc(sizeof(*s));

	(void)state;
	assert_non_null(s);
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	mig_set_init(&f, s, X, 4, 3, 9);
	for (int outer = 0; outer < 3; outer++) {
		for (int inner = 0; inner < 3; inner++) {
			struct iom_iommu_migrate_range in[2];
			uint64_t pa_before = iom_iommu_iova_to_phys(f.d, s->r[1].iova);
			struct pg spare = pg_alloc(f.m, 0, 0);

			/* an unrelated range first, then one overlapping range 1 */
			in[0].iova = s->r[3].iova;
			in[0].paddr = spare.pa;
			in[0].size = SZ_4K;
			in[1].iova = s->r[1].iova;
			in[1].paddr = spare.pa;
			in[1].size = SZ_4K;
			s->c.d = f.d;
			s->c.inner = in;
			s->c.inner_nr = 2;
			s->c.inner_mode = modes[inner];
			s->c.inner_done = false;
			s->c.inner_ret = 1;
			test_log_reset(&tlog);
			assert_int_equal(iom_iommu_migrate_ranges(f.d, s->r, 3, modes[outer],
								  range_copy, &s->c, NULL), 0);
			if (s->c.inner_ret != -EBUSY)
				fail_msg("outer mode %d, inner mode %d: %d, not -EBUSY",
					 (int)modes[outer], (int)modes[inner], s->c.inner_ret);
			assert_true(test_log_contains(&tlog, "being migrated already"));
			/* nothing of the inner call happened; the outer one did */
			assert_int_equal(iom_iommu_iova_to_phys(f.d, s->r[3].iova),
					 s->old.pa + 3 * SZ_4K);
			assert_int_equal(iom_iommu_iova_to_phys(f.d, s->r[1].iova), s->r[1].paddr);
			assert_int_not_equal(iom_iommu_iova_to_phys(f.d, s->r[1].iova), pa_before);
			assert_int_equal(iom_iommu_unblock(f.d), -EINVAL);
			pg_free(f.m, &spare);
			/* back to the old pages */
			for (int i = 0; i < 3; i++) {
				unsigned char *t = s->c.from_va[i];

				s->r[i].paddr = iom_iommu_iova_to_phys(f.d, s->r[i].iova) ==
							s->new_.pa + i * SZ_4K ?
						s->old.pa + i * SZ_4K : s->new_.pa + i * SZ_4K;
				s->c.from_va[i] = s->c.to_va[i];
				s->c.to_va[i] = t;
			}
		}
	}
	/* a non-overlapping migration from inside the callback is fine */
	{
		struct iom_iommu_migrate_range in = { s->r[3].iova, s->new_.pa + 3 * SZ_4K, SZ_4K };

		s->c.inner = &in;
		s->c.inner_nr = 1;
		s->c.inner_mode = IOM_IOMMU_MIGRATE_PER_PAGE;
		s->c.inner_done = false;
		assert_int_equal(iom_iommu_migrate_ranges(f.d, s->r, 1, IOM_IOMMU_MIGRATE_BLOCK,
							  range_copy, &s->c, NULL), 0);
		assert_int_equal(s->c.inner_ret, 0);
		assert_int_equal(iom_iommu_iova_to_phys(f.d, s->r[3].iova), s->new_.pa + 3 * SZ_4K);
	}
	mig_set_fini(&f, s);
	fx_fini(&f);
	free(s);
}

/* NONBLOCK: a write to a leaf not being copied is let through and recopied. */
struct nb_ctx {
	struct range_copy *c;
	struct iom_device *dev;
	unsigned long write_iova;
	int write_ret;
	bool written;
};

static void nb_copy(void *priv, unsigned int idx, size_t off, size_t len)
{
	struct nb_ctx *n = priv;

	range_copy(n->c, idx, off, len);
	if (!n->written) {
		n->written = true;
		/* range 1 is fault-on-write now; range 0 is the one being copied */
		n->write_ret = iom_device_dma_write(n->dev, n->write_iova, "\xd7", 1);
	}
}

static void test_migrate_nonblock_write_during_copy_is_recopied(void **state)
{
	const unsigned long X = 0x9000000;
	struct fx f;
	struct mig_set *s = malloc(sizeof(*s));
	struct nb_ctx n;
	struct iom_iommu_migrate_stats ms;
	struct iom_device_stats ds;
	unsigned char c;
	int r;

	(void)state;
	assert_non_null(s);
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	mig_set_init(&f, s, X, 2, 1, 3);
	memset(&n, 0, sizeof(n));
	n.c = &s->c;
	n.dev = f.dev;
	n.write_iova = s->r[1].iova + 77;
	assert_int_equal(iom_iommu_migrate_ranges(f.d, s->r, 2, IOM_IOMMU_MIGRATE_NONBLOCK,
						  nb_copy, &n, &ms), 0);
	assert_true(n.written);
	assert_int_equal(n.write_ret, 0);
	/* the write faulted once (inside the IOMMU), landed, and its leaf was copied again */
	assert_int_equal(ms.write_faults, 1);
	assert_int_equal(ms.rounds, 2);
	assert_int_equal(ms.recopied, SZ_4K);
	assert_int_equal(ms.final_dirty, 0);
	assert_int_equal(s->c.calls, 2);	/* range 1 skipped in round 1, copied in round 2 */
	ds = dst(f.dev);
	assert_int_equal(ds.migrate_faults, 1);
	assert_int_equal(ds.faults, 0);
	assert_int_equal(ds.failed, 0);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, s->r[1].iova), s->r[1].paddr);
	assert_int_equal(s->new_.va[SZ_4K + 77], 0xd7);
	c = rd1(f.dev, s->r[1].iova + 77, &r);
	assert_int_equal(r, 0);
	assert_int_equal(c, 0xd7);
	assert_int_equal(memcmp(s->new_.va, s->old.va, 2 * SZ_4K), 0);
	/* the write permission is back on the new entries */
	assert_int_equal(iom_device_dma_write(f.dev, s->r[0].iova, "\x01", 1), 0);
	assert_int_equal(s->new_.va[0], 0x01);
	assert_int_equal(dst(f.dev).migrate_faults, 1);
	mig_set_fini(&f, s);
	fx_fini(&f);
	free(s);
}

static void block_copy(void *priv, unsigned int idx, size_t off, size_t len)
{
	struct pg **pp = priv;

	(void)idx;
	memcpy(pp[1]->va + off, pp[0]->va + off, len);
}

static void test_migrate_block_leaf_stays_a_block(void **state)
{
	const unsigned long B = 0x80000000UL;
	struct fx f;
	struct pg q1, q2, *pp[2];
	struct iom_iommu_migrate_range r;
	unsigned long nr[IOM_IO_PGTABLE_MAX_LEVELS];
	unsigned char buf[16];

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	q1 = pg_alloc(f.m, 9, 0);
	q2 = pg_alloc(f.m, 9, 0);
	for (size_t i = 0; i < SZ_2M; i += 4093)
		q1.va[i] = (unsigned char)(i >> 12);
	assert_int_equal(iom_iommu_map(f.d, B, q1.pa, SZ_2M, RW), 0);
	pp[0] = &q1;
	pp[1] = &q2;
	for (int mode = IOM_IOMMU_MIGRATE_BLOCK; mode <= IOM_IOMMU_MIGRATE_NONBLOCK; mode++) {
		r.iova = B;
		r.paddr = pp[1]->pa;
		r.size = SZ_2M;
		memset(pp[1]->va, 0, SZ_2M);
		assert_int_equal(iom_iommu_migrate_ranges(f.d, &r, 1,
							  (enum iom_iommu_migrate_mode)mode,
							  block_copy, pp, NULL), 0);
		memset(nr, 0, sizeof(nr));
		assert_int_equal(iom_io_pgtable_nr_leaves(iom_iommu_domain_pgtable(f.d), nr), 1);
		assert_int_equal(nr[2], 1);
		assert_int_equal(iom_iommu_iova_to_phys(f.d, B + SZ_2M - 1), pp[1]->pa + SZ_2M - 1);
		for (size_t i = 0; i < SZ_2M; i += 4093 * 37) {
			assert_int_equal(iom_device_dma_read(f.dev, B + i, buf, 1), 0);
			assert_int_equal(buf[0], (unsigned char)(i >> 12));
		}
		pp[0] = pp[1];
		pp[1] = pp[1] == &q1 ? &q2 : &q1;
	}
	pg_free(f.m, &q1);
	pg_free(f.m, &q2);
	fx_fini(&f);
}

static void test_migrate_enomem_puts_the_old_mapping_back(void **state)
{
	const unsigned long B = 0x80000000UL;
	struct fx f;
	struct pg q;
	struct iom_page **hog;
	size_t nhog = 0, cap;
	int calls = 0;
	unsigned long nr[IOM_IO_PGTABLE_MAX_LEVELS] = { 0 };
	unsigned char buf[4];

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	q = pg_alloc(f.m, 9, 0x3e);
	assert_int_equal(iom_iommu_map(f.d, B, q.pa, SZ_2M, RW), 0);
	/*
	 * A neighbour in the same level-2 table keeps that table alive when the
	 * block is unmapped, so putting the block back needs no memory. (Without
	 * it the failed map reaps the emptied table and the put-back itself
	 * fails for want of a page: the range stays unmapped, with a warning.)
	 */
	assert_int_equal(iom_iommu_map(f.d, B + SZ_2M, q.pa, SZ_2M, RO), 0);
	cap = (iom_end_pfn(f.m) - iom_first_pfn(f.m));
	hog = malloc(cap * sizeof(*hog));
	assert_non_null(hog);
	while (nhog < cap && (hog[nhog] = iom_alloc_pages(f.m, IOM_GFP_KERNEL | IOM___GFP_NOWARN, 0)))
		nhog++;
	assert_true(nhog < cap);
	/* a 4 KiB-aligned target needs a table of 4 KiB leaves: none can be had */
	test_log_reset(&tlog);
	assert_int_equal(iom_iommu_migrate(f.d, B, q.pa + SZ_4K, SZ_2M, count_cb, &calls), -ENOMEM);
	assert_false(test_log_contains(&tlog, "could not put back"));
	assert_int_equal(calls, 1);
	while (nhog)
		assert_int_equal(iom___free_pages(f.m, hog[--nhog], 0), 0);
	free(hog);
	assert_int_equal(iom_iommu_iova_to_phys(f.d, B + 5), q.pa + 5);
	assert_int_equal(iom_io_pgtable_nr_leaves(iom_iommu_domain_pgtable(f.d), nr), 2);
	assert_int_equal(nr[2], 2);
	assert_int_equal(iom_iommu_unblock(f.d), -EINVAL);
	assert_int_equal(iom_device_dma_read(f.dev, B + SZ_2M - 4, buf, 4), 0);
	assert_int_equal(buf[3], 0x3e);
	assert_int_equal(iom_device_dma_write(f.dev, B, "\x01", 1), 0);
	assert_int_equal(q.va[0], 0x01);
	pg_free(f.m, &q);
	fx_fini(&f);
}

/* ---- 11. table pages ---------------------------------------------------------------------- */

static void test_no_table_page_leaked(void **state)
{
	struct iom_machine *m = machine();
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d, *dq;
	struct iom_device *dev;
	struct pg p, q;
	unsigned long before, nr_tables, iova[64];
	unsigned char buf[8];

	(void)state;
	p = pg_alloc(m, 0, 0x0f);
	q = pg_alloc(m, 9, 0x0e);
	before = test_nr_free(m);
	assert_int_equal(iom_iommu_create(m, NULL, &iommu), 0);
	d = iom_iommu_domain_alloc(iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	dq = iom_iommu_domain_alloc(iommu, IOM_IOMMU_DOMAIN_DMA_FQ);
	assert_int_equal(iom_iommu_dma_init_domain(dq, 0, 1ULL << 40), 0);
	assert_int_equal(iom_device_create(iommu, "d", &dev), 0);
	assert_int_equal(iom_iommu_attach_device(d, dev), 0);
	/* 4 KiB pages spread over many tables, blocks, DMA through them */
	for (unsigned long i = 0; i < 200; i++) {
		unsigned long a = i * (SZ_1G / 4 + SZ_2M + SZ_4K);

		assert_int_equal(iom_iommu_map(d, a, p.pa, SZ_4K, RW), 0);
		assert_int_equal(iom_device_dma_read(dev, a, buf, 1), 0);
	}
	for (unsigned long i = 0; i < 8; i++)
		assert_int_equal(iom_iommu_map(d, (1UL << 40) + i * SZ_1G, q.pa, SZ_2M, RW), 0);
	nr_tables = iom_io_pgtable_nr_pages(iom_iommu_domain_pgtable(d));
	assert_true(nr_tables > 100);
	assert_true(test_nr_free(m) + nr_tables <= before);
	/* half unmapped; the emptied tables go at once or stay as the spare */
	for (unsigned long i = 0; i < 200; i += 2)
		assert_int_equal(iom_iommu_unmap(d, i * (SZ_1G / 4 + SZ_2M + SZ_4K), SZ_4K), SZ_4K);
	assert_true(iom_io_pgtable_nr_pages(iom_iommu_domain_pgtable(d)) < nr_tables);
	/* a lazy domain with entries still queued */
	for (int i = 0; i < 64; i++)
		assert_int_equal(iom_iommu_dma_map(dq, p.pa, SZ_4K, RW, 0, &iova[i]), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(iom_iommu_dma_unmap(dq, iova[i], SZ_4K), 0);

	assert_int_equal(iom_iommu_detach_device(d, dev), 0);
	assert_int_equal(iom_device_destroy(dev), 0);
	assert_int_equal(iom_iommu_domain_free(d), 0);
	assert_int_equal(iom_iommu_domain_free(dq), 0);
	assert_int_equal(iom_iommu_destroy(iommu), 0);
	iom_rcu_barrier();
	assert_int_equal(iom_io_pgtable_machine_pages(m), 0);
	assert_int_equal(test_nr_free(m), before);
	pg_free(m, &p);
	pg_free(m, &q);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- 12. device threads ------------------------------------------------------------------- */

struct dt_priv {
	unsigned long iova;
	unsigned int stop_after;	/* steps per thread */
	int fail_idx;			/* thread that fails, -1: none */
	unsigned int fail_iter;
	atomic_int entered;
	atomic_int bad;			/* a DMA failed */
};

static int dt_step(struct iom_device *dev, unsigned int idx, unsigned long iter, void *p)
{
	struct dt_priv *pr = p;
	unsigned char buf[64];

	if (iter == 0)
		atomic_fetch_add(&pr->entered, 1);
	if (iom_device_dma_read(dev, pr->iova + idx * 64, buf, sizeof(buf)) || buf[0] != 0x2d)
		atomic_fetch_add(&pr->bad, 1);
	if ((int)idx == pr->fail_idx && iter == pr->fail_iter)
		return -EIO;
	return iter + 1 >= pr->stop_after ? 1 : 0;
}

static int dt_forever(struct iom_device *dev, unsigned int idx, unsigned long iter, void *p)
{
	(void)dev;
	(void)idx;
	(void)iter;
	(void)p;
	sched_yield();
	return 0;
}

static void test_device_threads(void **state)
{
	const unsigned long X = 0xa00000;
	struct fx f;
	struct pg p;
	struct dt_priv pr;
	struct iom_device_threads *t = NULL;
	struct iom_device_thread_stats st;
	struct iom_device_stats s0, s1;
	uint64_t end;

	(void)state;
	fx_init(&f, NULL, IOM_IOMMU_DOMAIN_UNMANAGED);
	p = pg_alloc(f.m, 0, 0x2d);
	assert_int_equal(iom_iommu_map(f.d, X, p.pa, SZ_4K, RW), 0);

	/* bad arguments */
	assert_int_equal(iom_device_threads_start(f.dev, 0, dt_step, &pr, &t), -EINVAL);
	assert_int_equal(iom_device_threads_start(f.dev, IOM_DEVICE_MAX_THREADS + 1, dt_step,
						  &pr, &t), -EINVAL);
	assert_int_equal(iom_device_threads_start(f.dev, 1, NULL, &pr, &t), -EINVAL);
	assert_int_equal(iom_device_threads_start(NULL, 1, dt_step, &pr, &t), -EINVAL);
	assert_int_equal(iom_device_threads_start(f.dev, 1, dt_step, &pr, NULL), -EINVAL);
	assert_null(t);
	assert_int_equal(iom_device_threads_stop(NULL, &st), -EINVAL);

	/* each thread stops itself after 10 steps */
	memset(&pr, 0, sizeof(pr));
	pr.iova = X;
	pr.stop_after = 10;
	pr.fail_idx = -1;
	s0 = dst(f.dev);
	assert_int_equal(iom_device_threads_start(f.dev, 4, dt_step, &pr, &t), 0);
	end = mono_ns() + 10000000000ULL;
	while (dst(f.dev).transactions - s0.transactions < 40 && mono_ns() < end)
		sleep_us(1000);
	memset(&st, 0xff, sizeof(st));
	assert_int_equal(iom_device_threads_stop(t, &st), 0);
	s1 = dst(f.dev);
	assert_int_equal(atomic_load(&pr.bad), 0);
	assert_int_equal(st.steps, 40);
	assert_int_equal(st.error, 0);
	assert_int_equal(st.transactions, 40);
	assert_int_equal(s1.transactions - s0.transactions, 40);
	assert_int_equal(s1.bytes_read - s0.bytes_read, 40 * 64);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stall_p50_ns, 0);
	assert_int_equal(st.stall_p99_ns, 0);
	assert_int_equal(st.stall_max_ns, 0);
	assert_int_equal(st.stalled_p50_ns, 0);

	/* a step that fails: reported by stop; the others stop themselves */
	memset(&pr, 0, sizeof(pr));
	pr.iova = X;
	pr.stop_after = 1;
	pr.fail_idx = 1;
	pr.fail_iter = 2;
	pr.stop_after = 3;
	assert_int_equal(iom_device_threads_start(f.dev, 2, dt_step, &pr, &t), 0);
	end = mono_ns() + 10000000000ULL;
	while (dst(f.dev).transactions - s1.transactions < 6 && mono_ns() < end)
		sleep_us(1000);
	assert_int_equal(iom_device_threads_stop(t, &st), -EIO);
	assert_int_equal(st.error, -EIO);
	assert_int_equal(st.steps, 6);
	assert_int_equal(st.transactions, 6);

	/* threads that never stop themselves are stopped */
	assert_int_equal(iom_device_threads_start(f.dev, 3, dt_forever, NULL, &t), 0);
	sleep_us(2000);
	assert_int_equal(iom_device_threads_stop(t, NULL), 0);

	/* stalls: every thread's one transaction waits for the unblock */
	memset(&pr, 0, sizeof(pr));
	pr.iova = X;
	pr.stop_after = 1;
	pr.fail_idx = -1;
	s0 = dst(f.dev);
	assert_int_equal(iom_iommu_block(f.d), 0);
	assert_int_equal(iom_device_threads_start(f.dev, 3, dt_step, &pr, &t), 0);
	while (atomic_load(&pr.entered) < 3)
		sleep_us(500);
	sleep_us(SETTLE_US);
	assert_int_equal(dst(f.dev).transactions, s0.transactions);
	assert_int_equal(iom_iommu_unblock(f.d), 0);
	assert_int_equal(iom_device_threads_stop(t, &st), 0);
	s1 = dst(f.dev);
	assert_int_equal(atomic_load(&pr.bad), 0);
	assert_int_equal(st.steps, 3);
	assert_int_equal(st.transactions, 3);
	assert_int_equal(st.stalled, 3);
	assert_int_equal(s1.stalls - s0.stalls, 3);
	assert_true(st.stall_p50_ns > 0);
	assert_true(st.stalled_p50_ns > 0);
	assert_true(st.stall_p99_ns >= st.stall_p50_ns);
	assert_true(st.stalled_p99_ns >= st.stalled_p50_ns);
	assert_true(st.stall_max_ns >= st.stall_p99_ns);
	/* the one that entered first waited most of SETTLE_US */
	assert_true(st.stall_max_ns >= SETTLE_US * 1000ULL / 2);
	assert_true(st.stall_max_ns <= s1.stall_ns_max);
	pg_free(f.m, &p);
	fx_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_errors_name_the_field),
		cmocka_unit_test(test_destroy_busy_frees_nothing),
		cmocka_unit_test(test_domain_ids_and_types),
		cmocka_unit_test(test_attach_detach_rules),
		cmocka_unit_test(test_dma_bad_args),
		cmocka_unit_test(test_map_errors_change_nothing),
		cmocka_unit_test(test_dma_any_length_and_alignment),
		cmocka_unit_test(test_domains_isolated_in_shared_iotlb),
		cmocka_unit_test(test_fault_without_handler_fails),
		cmocka_unit_test(test_fault_handler_sees_iova_and_reason),
		cmocka_unit_test(test_fault_fixed_by_handler_is_retried),
		cmocka_unit_test(test_fault_not_fixed_fails_after_bounded_retries),
		cmocka_unit_test(test_failed_write_moved_only_the_bytes_before),
		cmocka_unit_test(test_iotlb_block_is_one_entry),
		cmocka_unit_test(test_iotlb_lru_evicts_least_recently_used),
		cmocka_unit_test(test_iotlb_random_replacement),
		cmocka_unit_test(test_iotlb_invalidation_counters),
		cmocka_unit_test(test_strict_unmap_leaves_no_translation),
		cmocka_unit_test(test_unmap_fast_until_iotlb_sync),
		cmocka_unit_test(test_dma_init_domain_errors),
		cmocka_unit_test(test_dma_map_respects_limits),
		cmocka_unit_test(test_dma_strict_unmap_frees_iova_at_once),
		cmocka_unit_test(test_dma_unmap_errors_change_nothing),
		cmocka_unit_test(test_lazy_iova_held_until_flush),
		cmocka_unit_test(test_lazy_stale_hit_on_freed_page),
		cmocka_unit_test(test_lazy_queue_full_flushes),
		cmocka_unit_test(test_lazy_timeout_flushes),
		cmocka_unit_test(test_block_stalls_devices_and_nests),
		cmocka_unit_test(test_migrate_five_steps),
		cmocka_unit_test(test_migrate_errors_change_nothing),
		cmocka_unit_test(test_migrate_ranges_one_sync_per_step),
		cmocka_unit_test(test_migrate_ranges_keep_each_range_permission),
		cmocka_unit_test(test_migrate_per_page_lets_the_rest_run),
		cmocka_unit_test(test_migrate_ranges_busy_from_inside_copy),
		cmocka_unit_test(test_migrate_nonblock_write_during_copy_is_recopied),
		cmocka_unit_test(test_migrate_block_leaf_stays_a_block),
		cmocka_unit_test(test_migrate_enomem_puts_the_old_mapping_back),
		cmocka_unit_test(test_no_table_page_leaked),
		cmocka_unit_test(test_device_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
