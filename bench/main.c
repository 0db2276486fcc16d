/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench - command line: `iommig-bench <benchmark> [options]`.
 * The table below lists the benchmarks and the options each accepts;
 * a bad command line prints the usage on stderr and exits 2, a failed
 * benchmark exits 1.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define BENCH_DEFAULT_RUNS	5
#define BENCH_MAX_RUNS		1000
#define EXIT_USAGE		2

static const struct bench_cmd bench_cmds[] = {
	{
		.name = "frag",
		.summary = "the fragmentation benchmark: a seeded workload in "
			   "no-DMA, legacy, IOMAP modes side by side (own options: "
			   "iommig-bench frag --help)",
		.main = frag_main,
	},
	{
		.name = "alloc",
		.summary = "page alloc+free (order 0, 3, 9; 1 and N threads) "
			   "vs malloc+free",
		.opts = BENCH_OPT_MEM | BENCH_OPT_ITERS | BENCH_OPT_THREADS |
			BENCH_OPT_WINDOW | BENCH_OPT_NOPIN |
			BENCH_OPT_NOBASELINE | BENCH_OPT_ONLY,
		.help = "  Defaults: --mem 1G --iters 40M --threads 2 --window 32.\n"
			"  order 3 runs iters/10 pairs, order 9 iters/50.\n"
			"  Cases: host_spin order0_pair order0_lifo order3_pair "
			"order9_pair.\n",
		.run = bench_alloc,
	},
	{
		.name = "compact",
		.summary = "compaction of a fragmented machine: compact_node and "
			   "kcompactd's proactive path vs memcpy",
		.opts = BENCH_OPT_MEM | BENCH_OPT_NOBASELINE | BENCH_OPT_ONLY,
		.help = "  Defaults: --mem 1G.\n"
			"  Cases: compact_node proactive.\n",
		.run = bench_compact,
	},
	{
		.name = "machine",
		.summary = "machine create/destroy time and metadata cost per "
			   "simulated page",
		.opts = BENCH_OPT_MEM | BENCH_OPT_NOBASELINE,
		.help = "  Defaults: --mem 64G.\n",
		.run = bench_machine,
	},
	{
		.name = "radix",
		.summary = "RCU radix tree lookups (1 and N readers, with and "
			   "without a writer) vs uthash",
		.opts = BENCH_OPT_ITERS | BENCH_OPT_THREADS | BENCH_OPT_KEYS |
			BENCH_OPT_NOPIN | BENCH_OPT_NOBASELINE | BENCH_OPT_ONLY,
		.help = "  Defaults: --keys 1M --iters 4M (lookups a reader, a "
			"run) --threads 2.\n"
			"  Cases: lookup_1t lookup_<N>t lookup_writer_1t "
			"lookup_writer_<N>t.\n",
		.run = bench_radix,
	},
	{
		.name = "migrate",
		.summary = "page migration between nodes (batched and one page "
			   "a call) vs memcpy of the same bytes",
		.opts = BENCH_OPT_MEM | BENCH_OPT_ITERS | BENCH_OPT_NOBASELINE |
			BENCH_OPT_ONLY,
		.help = "  Defaults: --mem 1G (2 nodes) --iters 16384 (pages "
			"moved there and back a run).\n"
			"  Cases: migrate_batched migrate_single.\n",
		.run = bench_migrate,
	},
	{
		.name = "iova",
		.summary = "IOVA alloc+free (sizes 1..32, with and without the "
			   "caches; 1 and N threads) vs malloc+free",
		.opts = BENCH_OPT_ITERS | BENCH_OPT_THREADS | BENCH_OPT_WINDOW |
			BENCH_OPT_NOPIN | BENCH_OPT_NOBASELINE | BENCH_OPT_ONLY,
		.help = "  Defaults: --iters 10M (pairs a run, all threads) "
			"--threads 2 --window 32.\n"
			"  Cases: mix_pair size1_pair size8_pair size32_pair "
			"mix_lifo.\n",
		.run = bench_iova,
	},
	{
		.name = "iommu-migrate",
		.summary = "migration of IOMMU-mapped pages (block, per-page, "
			   "non-blocking): throughput vs memcpy, device stalls",
		.opts = BENCH_OPT_MEM | BENCH_OPT_ITERS | BENCH_OPT_THREADS |
			BENCH_OPT_NOPIN | BENCH_OPT_NOBASELINE | BENCH_OPT_ONLY,
		.help = "  Defaults: --mem 256M --iters 4096 (pages moved there and "
			"back a run) --threads 1 (device threads).\n"
			"  Cases: tput_<m> stall_<m> with <m> single block_batched "
			"per_page_batched nonblock_batched.\n",
		.run = bench_iommu_migrate,
	},
	{
		.name = "map",
		.summary = "dma_map_benchmark: iommu_dma map/unmap latency, strict "
			   "and lazy, vs memcpy of the same bytes",
		.opts = BENCH_OPT_MEM | BENCH_OPT_THREADS | BENCH_OPT_SECONDS |
			BENCH_OPT_GRANULE | BENCH_OPT_DIR | BENCH_OPT_NOPIN |
			BENCH_OPT_NOBASELINE | BENCH_OPT_ONLY,
		.help = "  Defaults: --mem 256M --threads 1 --seconds 1 (timed "
			"loops a case, all runs) --dir bidirectional;\n"
			"  granules 1 and 512 unless --granule. --threads N > 1 "
			"adds N-thread cases.\n"
			"  Cases: strict_g<G>_<T>t lazy_g<G>_<T>t "
			"strict_unmap_2m_block lazy_unmap_2m_block.\n",
		.run = bench_map,
	},
	{
		.name = "dma",
		.summary = "device DMA read/write bandwidth through the IOTLB "
			   "(hits and misses) vs memcpy",
		.opts = BENCH_OPT_MEM | BENCH_OPT_ITERS | BENCH_OPT_THREADS |
			BENCH_OPT_NOPIN | BENCH_OPT_NOBASELINE | BENCH_OPT_ONLY,
		.help = "  Defaults: --mem 512M --iters 1G (bytes a run, all "
			"threads) --threads 2.\n"
			"  Cases: <read|write>_<4k|64k>_<hit|miss>_<T>t.\n",
		.run = bench_dma,
	},
	{
		.name = "dma-migrate",
		.summary = "migration of coherent DMA buffer pages through "
			   "migrate_pages (seed, layered, per-page, non-blocking) "
			   "vs memcpy; device stalls",
		.opts = BENCH_OPT_MEM | BENCH_OPT_ITERS | BENCH_OPT_THREADS |
			BENCH_OPT_NOPIN | BENCH_OPT_NOBASELINE | BENCH_OPT_ONLY,
		.help = "  Defaults: --mem 256M --iters 4096 (DMA pages, in "
			"1 MiB buffers) --threads 1 (device threads).\n"
			"  Cases: tput_<m>_batched tput_<m>_single stall_<m> with "
			"<m> seed layered per_page nonblock;\n"
			"  tput_pagecache_batched tput_pagecache_single "
			"legacy_pages_moved.\n",
		.run = bench_dma_migrate,
	},
	{
		.name = "vfio",
		.summary = "VFIO type1 map+unmap of a guest's RAM, with and "
			   "without contiguous batching, vs memcpy",
		.opts = BENCH_OPT_MEM | BENCH_OPT_NOBASELINE | BENCH_OPT_ONLY,
		.help = "  Defaults: --mem 2G (the guest RAM is half of it).\n"
			"  Cases: map_unmap_batched map_unmap_single.\n",
		.run = bench_vfio,
	},
	{
		.name = "hmm",
		.summary = "migrate_vma to device-private memory and back "
			   "(driver and CPU faults) vs memcpy",
		.opts = BENCH_OPT_MEM | BENCH_OPT_ITERS | BENCH_OPT_NOBASELINE |
			BENCH_OPT_ONLY,
		.help = "  Defaults: --mem 256M --iters 4096 (pages moved to the "
			"device and back a run).\n"
			"  Cases: to_device to_system fault_to_system.\n",
		.run = bench_hmm,
	},
};

#define NR_CMDS (sizeof(bench_cmds) / sizeof(bench_cmds[0]))

static const struct {
	const char *name;
	unsigned int flag;	/* 0: accepted by every benchmark */
	bool has_arg;
	const char *arg, *help;
} bench_options[] = {
	{ "--json", 0, false, "", "one JSON object per line; first line: the host" },
	{ "--runs", 0, true, "N", "repetitions; median, min and max are reported (default 5)" },
	{ "--quiet", 0, false, "", "no progress on stderr, no table header" },
	{ "--mem", BENCH_OPT_MEM, true, "SIZE", "simulated memory, K/M/G/T suffixes (powers of 1024)" },
	{ "--iters", BENCH_OPT_ITERS, true, "N", "alloc: order-0 pairs per run, all threads together; radix: lookups a reader a run; migrate, iommu-migrate, dma-migrate, hmm: pages (K/M/G: x1000)" },
	{ "--threads", BENCH_OPT_THREADS, true, "N", "threads of the multi-thread runs" },
	{ "--window", BENCH_OPT_WINDOW, true, "N", "pages outstanding in the LIFO pattern" },
	{ "--no-pin", BENCH_OPT_NOPIN, false, "", "do not pin worker threads to cpus" },
	{ "--no-baseline", BENCH_OPT_NOBASELINE, false, "", "measure the library only" },
	{ "--only", BENCH_OPT_ONLY, true, "TEXT", "run only the cases whose name contains TEXT (e.g. for perf)" },
	{ "--keys", BENCH_OPT_KEYS, true, "N", "keys in the table (K/M/G: x1000)" },
	{ "--seconds", BENCH_OPT_SECONDS, true, "N", "timed map/unmap loops of a case, all runs together (1..300)" },
	{ "--granule", BENCH_OPT_GRANULE, true, "N", "pages a map (1..1024)" },
	{ "--dir", BENCH_OPT_DIR, true, "DIR", "bidirectional, to-device or from-device" },
};

#define NR_OPTIONS (sizeof(bench_options) / sizeof(bench_options[0]))

static void usage(FILE *out, const struct bench_cmd *only)
{
	size_t i;

	fprintf(out,
		"usage: iommig-bench <benchmark> [--json] [--runs N] [--quiet] [options]\n"
		"       iommig-bench list\n"
		"       iommig-bench --help | help [<benchmark>]\n\n"
		"benchmarks:\n");
	for (i = 0; i < NR_CMDS; i++) {
		const struct bench_cmd *c = &bench_cmds[i];

		if (only && only != c)
			continue;
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
		if (only && c->help)
			fputs(c->help, out);
	}
	fprintf(out, "\noptions:\n");
	for (i = 0; i < NR_OPTIONS; i++) {
		char opt[32];
		size_t j;

		if (only && bench_options[i].flag &&
		    !(only->opts & bench_options[i].flag))
			continue;
		snprintf(opt, sizeof(opt), "%s %s", bench_options[i].name,
			 bench_options[i].arg);
		fprintf(out, "  %-16s %s", opt, bench_options[i].help);
		if (!only && bench_options[i].flag) {
			const char *sep = " [";

			for (j = 0; j < NR_CMDS; j++) {
				if (!(bench_cmds[j].opts & bench_options[i].flag))
					continue;
				fprintf(out, "%s%s", sep, bench_cmds[j].name);
				sep = ", ";
			}
			fputc(']', out);
		}
		fputc('\n', out);
	}
	fprintf(out, "\nExit status: 0 success, 1 a benchmark failed, "
		"2 bad command line.\n");
}

static const struct bench_cmd *find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < NR_CMDS; i++)
		if (!strcmp(bench_cmds[i].name, name))
			return &bench_cmds[i];
	return NULL;
}

static int bad_usage(const struct bench_cmd *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad_usage(const struct bench_cmd *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("iommig-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	usage(stderr, c);
	return EXIT_USAGE;
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (bench_parse_count(s, &v) || v == 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.runs = BENCH_DEFAULT_RUNS, .pin = true, .baseline = true,
	};
	const struct bench_cmd *cmd;
	int i;

	if (argc < 2)
		return bad_usage(NULL, "%s", "no benchmark given");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		if (argc > 2 && !(cmd = find_cmd(argv[2])))
			return bad_usage(NULL, "unknown benchmark '%s'",
					 argv[2]);
		if (argc > 2 && cmd->main) {
			char *help_argv[] = { argv[2], (char *)"--help", NULL };

			return cmd->main(2, help_argv);
		}
		usage(stdout, argc > 2 ? cmd : NULL);
		return 0;
	}
	if (!strcmp(argv[1], "list")) {
		for (size_t c = 0; c < NR_CMDS; c++)
			printf("%-10s %s\n", bench_cmds[c].name,
			       bench_cmds[c].summary);
		return 0;
	}
	cmd = find_cmd(argv[1]);
	if (!cmd)
		return bad_usage(NULL, "unknown benchmark '%s'", argv[1]);
	if (cmd->main)
		return cmd->main(argc - 1, argv + 1);

	for (i = 2; i < argc; i++) {
		char name[32];
		const char *arg = argv[i], *val = NULL, *eq;
		uint64_t v;
		size_t k;

		if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
			usage(stdout, cmd);
			return 0;
		}
		eq = strchr(arg, '=');
		snprintf(name, sizeof(name), "%.*s",
			 (int)(eq ? (size_t)(eq - arg) : strlen(arg)), arg);
		for (k = 0; k < NR_OPTIONS; k++)
			if (!strcmp(bench_options[k].name, name))
				break;
		if (k == NR_OPTIONS || (bench_options[k].flag &&
					!(cmd->opts & bench_options[k].flag)))
			return bad_usage(cmd, "unknown option '%s'", arg);
		if (bench_options[k].has_arg) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return bad_usage(cmd, "%s needs a value", name);
		} else if (eq) {
			return bad_usage(cmd, "%s takes no value", name);
		}

		if (!strcmp(name, "--json")) {
			o.json = true;
		} else if (!strcmp(name, "--quiet")) {
			o.quiet = true;
		} else if (!strcmp(name, "--no-pin")) {
			o.pin = false;
		} else if (!strcmp(name, "--no-baseline")) {
			o.baseline = false;
		} else if (!strcmp(name, "--only")) {
			o.only = val;
		} else if (!strcmp(name, "--runs")) {
			if (parse_uint(val, BENCH_MAX_RUNS, &v))
				return bad_usage(cmd, "bad --runs '%s'", val);
			o.runs = (int)v;
		} else if (!strcmp(name, "--mem")) {
			if (bench_parse_size(val, &o.mem) || !o.mem)
				return bad_usage(cmd, "bad --mem '%s'", val);
		} else if (!strcmp(name, "--iters")) {
			if (parse_uint(val, UINT64_MAX / 2, &o.iters))
				return bad_usage(cmd, "bad --iters '%s'", val);
		} else if (!strcmp(name, "--threads")) {
			if (parse_uint(val, 256, &v))
				return bad_usage(cmd, "bad --threads '%s' "
						 "(1..256)", val);
			o.threads = (unsigned int)v;
		} else if (!strcmp(name, "--keys")) {
			if (parse_uint(val, UINT64_MAX / 2, &o.keys))
				return bad_usage(cmd, "bad --keys '%s'", val);
		} else if (!strcmp(name, "--window")) {
			if (parse_uint(val, 65536, &v))
				return bad_usage(cmd, "bad --window '%s' "
						 "(1..65536)", val);
			o.window = (unsigned int)v;
		} else if (!strcmp(name, "--seconds")) {
			if (parse_uint(val, 300, &v))
				return bad_usage(cmd, "bad --seconds '%s' "
						 "(1..300)", val);
			o.seconds = (unsigned int)v;
		} else if (!strcmp(name, "--granule")) {
			if (parse_uint(val, 1024, &v))
				return bad_usage(cmd, "bad --granule '%s' "
						 "(1..1024)", val);
			o.granule = (unsigned int)v;
		} else if (!strcmp(name, "--dir")) {
			if (!strcmp(val, "bidirectional"))
				o.dir = 0;
			else if (!strcmp(val, "to-device"))
				o.dir = 1;
			else if (!strcmp(val, "from-device"))
				o.dir = 2;
			else
				return bad_usage(cmd, "bad --dir '%s' (bidirectional, "
						 "to-device, from-device)", val);
		}
	}
	return cmd->run(&o) ? 1 : 0;
}
