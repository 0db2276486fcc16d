/* SPDX-License-Identifier: MIT */
/*
 * buddyinfo - a seeded allocation workload on a simulated machine, then the
 * kernel's fragmentation reports: /proc/buddyinfo, /proc/pagetypeinfo and
 * debugfs extfrag/unusable_index. Uses the public API only.
 *
 * The workload mixes orders 0..4 and the three migratetypes a kernel sees
 * most (GFP_KERNEL: unmovable, GFP_HIGHUSER_MOVABLE: movable,
 * GFP_KERNEL_RECLAIMABLE: reclaimable) with random frees, and leaves what
 * is still allocated in place while the reports are printed.
 *
 *   buddyinfo [--mem SIZE] [--seed N] [--ops N]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/iommig.h>

struct block {
	struct iom_page *page;
	unsigned int order;
};

/* xorshift64*: the same seed gives the same workload on every host. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n). */
static unsigned int rng_below(uint64_t *s, unsigned int n)
{
	return (unsigned int)((rng_next(s) >> 32) % n);
}

/* Orders 0..4, small ones far more often, as real kernels see them. */
static unsigned int pick_order(uint64_t *s)
{
	unsigned int r = rng_below(s, 100);

	if (r < 50)
		return 0;
	if (r < 70)
		return 1;
	if (r < 85)
		return 2;
	if (r < 95)
		return 3;
	return 4;
}

static iom_gfp_t pick_gfp(uint64_t *s, const char **name)
{
	unsigned int r = rng_below(s, 100);

	if (r < 60) {
		*name = "GFP_HIGHUSER_MOVABLE";
		return IOM_GFP_HIGHUSER_MOVABLE;
	}
	if (r < 85) {
		*name = "GFP_KERNEL";
		return IOM_GFP_KERNEL;
	}
	*name = "GFP_KERNEL_RECLAIMABLE";
	return IOM_GFP_KERNEL_RECLAIMABLE;
}

/* "1G", "512M", "65536K" or plain bytes. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	case 't': case 'T': v <<= 40; end++; break;
	default: break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_ulong(const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 0);
	return errno || end == s || *end ? -EINVAL : 0;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--mem SIZE] [--seed N] [--ops N]\n"
		"  --mem SIZE  simulated memory, e.g. 1G (default: the library's, 1 GiB)\n"
		"  --seed N    workload seed (default 1)\n"
		"  --ops N     allocation/free steps (default 20000)\n",
		prog);
}

static int show(struct iom_machine *m, enum iom_proc_file file,
		const char *title)
{
	int ret;

	printf("\n== %s ==\n", title);
	fflush(stdout);
	ret = iom_proc_show(m, file, stdout);
	if (ret < 0)
		fprintf(stderr, "iom_proc_show(%s): %s\n", title, strerror(-ret));
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 's' },
		{ "ops", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct iom_machine_config cfg;
	struct iom_machine *m;
	struct block *live;
	unsigned long seed = 1, ops = 20000, nr_live = 0, i;
	unsigned long nr_alloc = 0, nr_fail = 0, nr_free = 0, live_pages = 0;
	unsigned long by_gfp_fail[3] = { 0 };
	uint64_t rng;
	int c, err, status = 0;

	iom_machine_config_init(&cfg);
	while ((c = getopt_long(argc, argv, "m:s:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (parse_size(optarg, &cfg.mem_size)) {
				fprintf(stderr, "bad --mem: %s\n", optarg);
				return 2;
			}
			break;
		case 's':
			if (parse_ulong(optarg, &seed)) {
				fprintf(stderr, "bad --seed: %s\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (parse_ulong(optarg, &ops)) {
				fprintf(stderr, "bad --ops: %s\n", optarg);
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
		usage(stderr, argv[0]);
		return 2;
	}

	err = iom_machine_create(&cfg, &m);
	if (err) {
		fprintf(stderr, "iom_machine_create: %s\n", strerror(-err));
		return 1;
	}
	iom_machine_get_config(m, &cfg);

	live = calloc(ops ? ops : 1, sizeof(*live));
	if (!live) {
		fprintf(stderr, "out of memory\n");
		iom_machine_destroy(m);
		return 1;
	}

	rng = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
	if (!rng)
		rng = 1;
	for (i = 0; i < ops; i++) {
		/* 60% allocations: the machine fills up slowly as it churns. */
		if (nr_live == 0 || rng_below(&rng, 100) < 60) {
			const char *gfp_name;
			iom_gfp_t gfp = pick_gfp(&rng, &gfp_name);
			unsigned int order = pick_order(&rng);
			struct iom_page *page = iom_alloc_pages(m, gfp, order);

			if (!page) {
				nr_fail++;
				by_gfp_fail[iom_gfp_migratetype(gfp)]++;
				continue;
			}
			nr_alloc++;
			live[nr_live].page = page;
			live[nr_live].order = order;
			nr_live++;
			live_pages += 1UL << order;
		} else {
			unsigned long victim = rng_below(&rng, (unsigned int)nr_live);
			struct block b = live[victim];

			live[victim] = live[--nr_live];
			err = iom___free_pages(m, b.page, b.order);
			if (err) {
				fprintf(stderr, "iom___free_pages: %s\n",
					strerror(-err));
				status = 1;
			}
			nr_free++;
			live_pages -= 1UL << b.order;
		}
	}

	printf("# libiommig %s example: %" PRIu64 " MiB, seed %lu, %lu steps\n",
	       iom_version_string(), cfg.mem_size >> 20, seed, ops);
	printf("# %lu allocations (%lu failed: %lu unmovable, %lu movable, "
	       "%lu reclaimable), %lu frees; %lu blocks = %lu pages still "
	       "allocated\n",
	       nr_alloc, nr_fail, by_gfp_fail[IOM_MIGRATE_UNMOVABLE],
	       by_gfp_fail[IOM_MIGRATE_MOVABLE],
	       by_gfp_fail[IOM_MIGRATE_RECLAIMABLE], nr_free, nr_live,
	       live_pages);

	if (show(m, IOM_PROC_BUDDYINFO, "/proc/buddyinfo") < 0 ||
	    show(m, IOM_PROC_PAGETYPEINFO, "/proc/pagetypeinfo") < 0 ||
	    show(m, IOM_DEBUGFS_UNUSABLE_INDEX,
		 "/sys/kernel/debug/extfrag/unusable_index") < 0)
		status = 1;

	for (i = 0; i < nr_live; i++) {
		err = iom___free_pages(m, live[i].page, live[i].order);
		if (err) {
			fprintf(stderr, "iom___free_pages: %s\n", strerror(-err));
			status = 1;
		}
	}
	free(live);

	if (iom_machine_bug_count(m)) {
		fprintf(stderr, "the machine reported %lu bugs\n",
			iom_machine_bug_count(m));
		status = 1;
	}
	iom_machine_destroy(m);
	return status;
}
