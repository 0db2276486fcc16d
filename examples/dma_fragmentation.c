/* SPDX-License-Identifier: MIT */
/*
 * dma_fragmentation - seed 000's claim as a small experiment: unmovable
 * (legacy) coherent DMA buffers scattered over memory keep compaction from
 * freeing large blocks; movable ones (IOMAP) are moved out of the way.
 *
 * The same seeded workload runs twice, on two identical machines, once
 * with legacy and once with movable DMA buffers. Memory is filled with
 * anonymous pages of a process, one in HOLE_STRIDE of them (chosen by the
 * seed) is unmapped, and one-page coherent buffers of a device take those
 * holes; then the process exits. Nearly every pageblock now holds a DMA
 * page. Compaction runs, and the free order-4 and order-9 blocks,
 * /proc/buddyinfo and the DMA pages that moved are printed side by side.
 * Uses the public API only: a template to copy for your own experiment.
 *
 *   dma_fragmentation [--mem SIZE] [--seed N]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/iommig.h>
/* the umbrella header does not (yet) include the DMA API */
#include <iommig/dma-mapping.h>

#define PG		IOM_PAGE_SIZE
/* on average one anonymous page in HOLE_STRIDE is unmapped */
#define HOLE_STRIDE	32
/* holes left for the IOMMU's page-table pages and the per-thread caches */
#define HOLE_SLACK	32

/* One simulated system: memory, an IOMMU, a DMA domain, a device in it. */
struct rig {
	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *domain;
	struct iom_device *dev;
};

struct buffer {
	void *cpu;			/* the kernel-side handle */
	iom_dma_addr_t iova;		/* the device's address */
	unsigned long pfn;		/* its page before compaction */
};

/* What one run measures. */
struct figures {
	const char *mode;
	unsigned long filled, holes, nr_buf, free_pages;
	unsigned long o4_before, o9_before, o4_after, o9_after;
	unsigned long moved;
	char *buddyinfo_before, *buddyinfo_after;
};

/* xorshift64*: the same seed gives the same workload on every host. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static unsigned int rng_below(uint64_t *s, unsigned int n)
{
	return (unsigned int)((rng_next(s) >> 32) % n);
}

/* "1G", "512M", "65536K" or plain bytes. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || end == s || *end || *s == '-' ? -EINVAL : 0;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--mem SIZE] [--seed N]\n"
		"  --mem SIZE  simulated memory, a multiple of 4M (default 64M)\n"
		"  --seed N    workload seed (default 1)\n",
		prog);
}

/*
 * The machine's messages. Filling memory ends in an allocation failure,
 * a warning as the kernel's "page allocation failure": expected here, so
 * warnings and below are dropped; a bug report (IOM_LOG_ERR) is printed,
 * and rig_down() fails the run on iom_machine_bug_count().
 */
static void log_hook(void *priv, enum iom_log_level level, const char *msg)
{
	(void)priv;
	if (level < IOM_LOG_WARNING)
		fprintf(stderr, "iommig: %s\n", msg);
}

/*
 * Free blocks an allocation of @order could take, over every zone: a free
 * block of order o >= @order counts 2^(o - @order) times. *@free_pages,
 * when asked, gets the free pages.
 */
static int count_free(struct iom_machine *m, unsigned int order,
		      unsigned long *blocks, unsigned long *free_pages)
{
	struct iom_zone_info zi;
	unsigned long n = 0, pages = 0;
	unsigned int nid, o;
	int zt, err;

	/* the per-thread page caches go back to the buddy lists first */
	iom_drain_all_pages(m);
	for (nid = 0; nid < iom_nr_nodes(m); nid++) {
		for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
			err = iom_zone_info(m, (int)nid, zt, &zi);
			if (err)
				return err;
			if (!zi.populated)
				continue;
			pages += zi.nr_free_pages;
			for (o = order; o <= iom_max_order(m) && o < 32; o++)
				n += zi.nr_free[o] << (o - order);
		}
	}
	*blocks = n;
	if (free_pages)
		*free_pages = pages;
	return 0;
}

/* /proc/buddyinfo as a string the caller frees. */
static int read_buddyinfo(struct iom_machine *m, char **out)
{
	size_t size = 1024;
	ssize_t len;
	char *buf;

	for (;;) {
		buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		len = iom_proc_read(m, IOM_PROC_BUDDYINFO, buf, size);
		if (len < 0) {
			free(buf);
			return (int)len;
		}
		if ((size_t)len < size)
			break;
		free(buf);
		size = (size_t)len + 1;
	}
	*out = buf;
	return 0;
}

/* The page now backing buffer @b, as a pfn. */
static int buffer_pfn(struct rig *r, struct buffer *b, unsigned long *pfn)
{
	struct iom_page *page = iom_dma_buffer_page(r->dev, b->cpu, 0);

	if (!page)
		return -EINVAL;
	*pfn = iom_page_to_pfn(r->m, page);
	return iom_put_page(r->m, page);
}

/*
 * Build the system: a machine of @mem_size bytes, one IOMMU, a DMA domain
 * with an IOVA space below 4 GiB (a 32-bit device), one device attached
 * to it, whose coherent buffers are @legacy (the 2013 kernel's unmovable
 * pages) or movable (seed 000's IOMAP). On error everything built so far
 * is torn down again.
 */
static int rig_up(struct rig *r, uint64_t mem_size, bool legacy)
{
	struct iom_machine_config cfg;
	int err;

	memset(r, 0, sizeof(*r));
	iom_machine_config_init(&cfg);
	cfg.mem_size = mem_size;
	/*
	 * No watermarks: the workload fills memory to the last page, as
	 * the test this example follows (tests/dma/test_dma_compaction.c).
	 */
	cfg.min_free_kbytes = -1;
	cfg.log = log_hook;
	err = iom_machine_create(&cfg, &r->m);
	if (err) {
		fprintf(stderr, "iom_machine_create(--mem %" PRIu64 "): %s "
			"(the size must be a multiple of 4 MiB, at least 4 MiB)\n",
			mem_size, strerror(-err));
		return err;
	}
	err = iom_iommu_create(r->m, NULL, &r->iommu);
	if (err) {
		fprintf(stderr, "iom_iommu_create: %s\n", strerror(-err));
		goto out_machine;
	}
	r->domain = iom_iommu_domain_alloc(r->iommu, IOM_IOMMU_DOMAIN_DMA);
	if (!r->domain) {
		err = -ENOMEM;
		fprintf(stderr, "iom_iommu_domain_alloc: %s\n", strerror(-err));
		goto out_iommu;
	}
	err = iom_iommu_dma_init_domain(r->domain, 1ULL << 20, 1ULL << 32);
	if (err) {
		fprintf(stderr, "iom_iommu_dma_init_domain: %s\n", strerror(-err));
		goto out_domain;
	}
	err = iom_device_create(r->iommu, "nic0", &r->dev);
	if (err) {
		fprintf(stderr, "iom_device_create: %s\n", strerror(-err));
		goto out_domain;
	}
	err = iom_iommu_attach_device(r->domain, r->dev);
	if (err) {
		fprintf(stderr, "iom_iommu_attach_device: %s\n", strerror(-err));
		goto out_dev;
	}
	err = iom_dma_set_alloc_mode(r->dev, legacy ? IOM_DMA_ALLOC_LEGACY :
						      IOM_DMA_ALLOC_MOVABLE);
	if (err) {
		fprintf(stderr, "iom_dma_set_alloc_mode: %s\n", strerror(-err));
		goto out_detach;
	}
	return 0;

out_detach:
	iom_iommu_detach_device(r->domain, r->dev);
out_dev:
	iom_device_destroy(r->dev);
out_domain:
	iom_iommu_domain_free(r->domain);
out_iommu:
	iom_iommu_destroy(r->iommu);
out_machine:
	iom_machine_destroy(r->m);
	return err;
}

/* Tear down in the reverse order; 0, or the first error. */
static int rig_down(struct rig *r)
{
	int err, ret = 0;

	err = iom_iommu_detach_device(r->domain, r->dev);
	ret = ret ? ret : err;
	err = iom_device_destroy(r->dev);
	ret = ret ? ret : err;
	err = iom_iommu_domain_free(r->domain);
	ret = ret ? ret : err;
	err = iom_iommu_destroy(r->iommu);
	ret = ret ? ret : err;
	/* the IOMMU frees its page tables after an RCU grace period */
	iom_rcu_barrier();
	if (ret)
		fprintf(stderr, "tearing down the IOMMU: %s\n", strerror(-ret));
	if (iom_machine_bug_count(r->m)) {
		fprintf(stderr, "the machine reported %lu bugs\n",
			iom_machine_bug_count(r->m));
		ret = ret ? ret : -EIO;
	}
	iom_machine_destroy(r->m);
	return ret;
}

/*
 * Fill memory with anonymous pages of process @mm (movable, on the LRU)
 * until an allocation fails, then unmap about one in HOLE_STRIDE of them,
 * chosen by @rng: the holes are scattered over every pageblock.
 */
static int fill_and_punch(struct rig *r, struct iom_mm *mm, uint64_t *rng,
			  struct figures *f)
{
	unsigned long nr, k;
	uint64_t base = 0;
	int err;

	err = count_free(r->m, 0, &nr, NULL);
	if (err)
		return err;
	err = iom_mmap(mm, 0, nr * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0, &base);
	if (err) {
		fprintf(stderr, "iom_mmap: %s\n", strerror(-err));
		return err;
	}
	/* each write faults a page in; the last ones fail: memory is full */
	for (k = 0; k < nr; k++) {
		uint64_t v = k;

		if (iom_write(mm, base + k * PG, &v, sizeof(v)))
			break;
	}
	f->filled = k;
	for (k = 0; k < f->filled; k++) {
		if (rng_below(rng, HOLE_STRIDE))
			continue;
		err = iom_munmap(mm, base + k * PG, PG);
		if (err) {
			fprintf(stderr, "iom_munmap: %s\n", strerror(-err));
			return err;
		}
		f->holes++;
	}
	if (f->holes <= HOLE_SLACK) {
		fprintf(stderr, "only %lu holes: --mem is too small\n", f->holes);
		return -EINVAL;
	}
	return 0;
}

/* One run of the workload with @legacy or movable DMA buffers. */
static int run(uint64_t mem_size, uint64_t seed, bool legacy, struct figures *f)
{
	uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	struct buffer *buf = NULL;
	struct iom_mm *mm = NULL;
	unsigned long b, pfn;
	unsigned int nid;
	struct rig r;
	int err, err2;

	memset(f, 0, sizeof(*f));
	f->mode = legacy ? "legacy" : "movable";
	if (!rng)
		rng = 1;
	err = rig_up(&r, mem_size, legacy);
	if (err)
		return err;

	/* 1. a process that uses all of memory, with scattered holes */
	err = iom_mm_create(r.m, &mm);
	if (err) {
		fprintf(stderr, "iom_mm_create: %s\n", strerror(-err));
		goto out;
	}
	err = fill_and_punch(&r, mm, &rng, f);
	if (err)
		goto out;

	/*
	 * 2. the driver allocates one-page coherent buffers: memory is full,
	 * so they take the holes, one here and one there in every pageblock
	 * (legacy ones too, through the allocator's fallback from UNMOVABLE
	 * into MOVABLE pageblocks). The device writes to each.
	 */
	buf = calloc(f->holes, sizeof(*buf));
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	for (b = 0; b < f->holes - HOLE_SLACK; b++) {
		struct buffer *bf = &buf[b];

		bf->cpu = iom_dma_alloc_coherent(r.dev, PG, &bf->iova,
						 IOM_GFP_KERNEL, 0);
		if (!bf->cpu) {
			err = errno ? -errno : -ENOMEM;
			fprintf(stderr, "iom_dma_alloc_coherent (buffer %lu): %s\n",
				b, strerror(-err));
			goto out;
		}
		f->nr_buf++;
		err = iom_device_dma_write(r.dev, bf->iova, &b, sizeof(b));
		if (err) {
			fprintf(stderr, "iom_device_dma_write: %s\n", strerror(-err));
			goto out;
		}
	}

	/* 3. the process exits: only DMA pages (and IOMMU tables) are left */
	iom_mm_destroy(mm);
	mm = NULL;
	for (b = 0; b < f->nr_buf; b++) {
		err = buffer_pfn(&r, &buf[b], &buf[b].pfn);
		if (err)
			goto out;
	}

	/* 4. measure, compact every node (echo 1 > compact_memory), measure */
	err = count_free(r.m, 4, &f->o4_before, &f->free_pages);
	if (!err)
		err = count_free(r.m, 9, &f->o9_before, NULL);
	if (!err)
		err = read_buddyinfo(r.m, &f->buddyinfo_before);
	for (nid = 0; !err && nid < iom_nr_nodes(r.m); nid++)
		err = iom_compact_node(r.m, (int)nid);
	if (!err)
		err = count_free(r.m, 4, &f->o4_after, NULL);
	if (!err)
		err = count_free(r.m, 9, &f->o9_after, NULL);
	if (!err)
		err = read_buddyinfo(r.m, &f->buddyinfo_after);
	if (err) {
		fprintf(stderr, "measuring or compacting: %s\n", strerror(-err));
		goto out;
	}

	/*
	 * 5. which DMA pages moved; the device still reads what it wrote,
	 * through the IOMMU, from wherever its page is now.
	 */
	for (b = 0; b < f->nr_buf; b++) {
		unsigned long v = ~b;

		err = buffer_pfn(&r, &buf[b], &pfn);
		if (err)
			goto out;
		f->moved += pfn != buf[b].pfn;
		err = iom_device_dma_read(r.dev, buf[b].iova, &v, sizeof(v));
		if (!err && v != b)
			err = -EIO;
		if (err) {
			fprintf(stderr, "buffer %lu after compaction: %s\n", b,
				strerror(-err));
			goto out;
		}
	}

out:
	/* 6. teardown: buffers, the process if still there, the system */
	for (b = 0; buf && b < f->nr_buf; b++) {
		err2 = iom_dma_free_coherent(r.dev, PG, buf[b].cpu, buf[b].iova, 0);
		if (err2) {
			fprintf(stderr, "iom_dma_free_coherent: %s\n", strerror(-err2));
			err = err ? err : err2;
		}
	}
	free(buf);
	if (mm)
		iom_mm_destroy(mm);
	err2 = rig_down(&r);
	return err ? err : err2;
}

/* Each line of @text, indented. */
static void print_indented(const char *text)
{
	const char *nl;

	while (*text) {
		nl = strchr(text, '\n');
		if (!nl)
			nl = text + strlen(text);
		printf("  %.*s\n", (int)(nl - text), text);
		text = *nl ? nl + 1 : nl;
	}
}

static void print_report(uint64_t mem_size, uint64_t seed,
			 const struct figures *f)
{
	const struct figures *leg = &f[0], *mov = &f[1];

	printf("# libiommig %s dma_fragmentation: %" PRIu64 " MiB, seed %" PRIu64
	       "\n", iom_version_string(), mem_size >> 20, seed);
	printf("# %lu anonymous pages, %lu holes punched, %lu one-page DMA "
	       "buffers in them, then the process exits\n\n",
	       leg->filled, leg->holes, leg->nr_buf);
	printf("%-38s %10s %10s\n", "", leg->mode, mov->mode);
	printf("%-38s %10lu %10lu\n", "DMA buffers", leg->nr_buf, mov->nr_buf);
	printf("%-38s %10lu %10lu\n", "free pages", leg->free_pages,
	       mov->free_pages);
	printf("%-38s %10lu %10lu\n", "free order-4 blocks before compaction",
	       leg->o4_before, mov->o4_before);
	printf("%-38s %10lu %10lu\n", "free order-4 blocks after", leg->o4_after,
	       mov->o4_after);
	printf("%-38s %10lu %10lu\n", "free order-9 blocks before compaction",
	       leg->o9_before, mov->o9_before);
	printf("%-38s %10lu %10lu\n", "free order-9 blocks after", leg->o9_after,
	       mov->o9_after);
	printf("%-38s %10lu %10lu\n", "DMA pages moved by compaction",
	       leg->moved, mov->moved);
	for (int i = 0; i < 2; i++) {
		printf("\n/proc/buddyinfo, %s DMA, before compaction:\n",
		       f[i].mode);
		print_indented(f[i].buddyinfo_before);
		printf("/proc/buddyinfo, %s DMA, after compaction:\n", f[i].mode);
		print_indented(f[i].buddyinfo_after);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t mem_size = 64ULL << 20, seed = 1;
	struct figures f[2];	/* legacy, movable */
	int c, err;

	memset(f, 0, sizeof(f));

	while ((c = getopt_long(argc, argv, "m:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (parse_size(optarg, &mem_size) || !mem_size) {
				fprintf(stderr, "%s: bad --mem '%s' (try 64M or 1G)\n",
					argv[0], optarg);
				return 2;
			}
			break;
		case 's':
			if (parse_u64(optarg, &seed)) {
				fprintf(stderr, "%s: bad --seed '%s' (a number)\n",
					argv[0], optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0],
			argv[optind]);
		usage(stderr, argv[0]);
		return 2;
	}

	/* the same seed, so the same workload, for both kinds of buffer */
	err = run(mem_size, seed, true, &f[0]);
	if (!err)
		err = run(mem_size, seed, false, &f[1]);
	if (!err)
		print_report(mem_size, seed, f);
	for (int i = 0; i < 2; i++) {
		free(f[i].buddyinfo_before);
		free(f[i].buddyinfo_after);
	}
	if (err) {
		fprintf(stderr, "%s: failed: %s\n", argv[0], strerror(-err));
		return 1;
	}
	return 0;
}
