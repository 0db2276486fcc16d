/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench frag - the command line and the driver: load the scenario,
 * run it in each mode with the same seed, print the summary, write the
 * results folder (summary, scenario, time series, plots, memory maps).
 * See frag.h for the files and docs/scenarios.md for the scenario format.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frag.h"

#define EXIT_USAGE	2
#define MAX_RUNS	(2 * FRAG_NR_DMA_MODES)

static void frag_usage(FILE *f)
{
	fprintf(f,
"usage: iommig-bench frag [--scenario NAME|FILE] [--mode LIST] [--compaction on|off|both]\n"
"                         [--mem SIZE] [--seed N] [--duration STEPS] [--set KEY=VALUE]...\n"
"                         [--out DIR] [--compare MODE,MODE] [--trace EVENTS] [--json] [--quiet]\n"
"                         [--list-scenarios] [--print-scenario]\n"
"\n"
"The fragmentation benchmark: one seeded workload (processes, page cache,\n"
"kernel allocations, DMA buffers that devices keep writing, long-term pins,\n"
"high-order and CMA allocations as mmtests' stress-highalloc asks for them)\n"
"run in each mode on identical machines, side by side.\n"
"\n"
"  --scenario NAME|FILE  a preset (see --list-scenarios) or a scenario file\n"
"                        (docs/scenarios.md); default seed000\n"
"  --mode LIST           comma-separated, from: nodma legacy iomap iomap-nonblock,\n"
"                        each optionally with +nocompact; or all (default)\n"
"  --compaction WHEN     on (default), off or both: for modes given without\n"
"                        +nocompact, run with compaction, without, or both\n"
"  --mem SIZE            simulated memory (e.g. 1G, 16G; multiple of 4M)\n"
"  --seed N              workload seed (default: the scenario's)\n"
"  --duration STEPS      steps under load (default: the scenario's)\n"
"  --set KEY=VALUE       override one scenario key (repeatable)\n"
"  --out DIR             where the results folder goes (default ./frag-results)\n"
"  --compare A,B         the two modes whose memory maps are put side by side\n"
"                        (default legacy,iomap when both run)\n"
"  --trace EVENTS        record trace events (mm_page_alloc, mm_migrate_pages,\n"
"                        compaction, iommu_map/unmap, io_page_fault, the DMA\n"
"                        migration steps) in a ring of EVENTS and write the\n"
"                        last ones of each mode to <mode>/trace.json\n"
"                        (Chrome/Perfetto trace format)\n"
"  --json                JSON lines on stdout instead of the table\n"
"  --quiet               no progress bar, no 'results in' line\n"
"  --list-scenarios      the presets, one a line, and exit\n"
"  --print-scenario      the scenario as a file (after --set, --mem, ...) and exit\n"
"\n"
"Modes: nodma = no DMA buffers and no pins (the ideal); legacy = the 2013\n"
"kernel: unmovable DMA pages from order 4 down to 0, pins without\n"
"FOLL_LONGTERM; iomap = seed 000's movable DMA pages in an IOMAP, migrated\n"
"per page, FOLL_LONGTERM pins; iomap-nonblock = iomap with non-blocking\n"
"migration. +nocompact: no direct compaction, no kcompactd, no compaction\n"
"at rest.\n"
"\n"
"Results: DIR/<scenario>-seed<N>/ holds summary.txt, summary.json,\n"
"scenario.txt, plots (*.png, plots.gp; needs gnuplot), memmap-<moment>.png\n"
"(two modes side by side) and a folder per mode with series.csv,\n"
"series.json and its own memory maps.\n"
"\n"
"Exit status: 0 success, 1 a run failed, 2 bad command line or scenario.\n");
}

static int frag_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int frag_bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("iommig-bench frag: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(iommig-bench frag --help lists the options)\n", stderr);
	return EXIT_USAGE;
}

static bool parse_dma_mode(const char *name, size_t len, enum frag_dma_mode *out)
{
	for (int d = 0; d < FRAG_NR_DMA_MODES; d++) {
		const char *n = frag_dma_mode_name((enum frag_dma_mode)d);

		if (strlen(n) == len && !strncmp(n, name, len)) {
			*out = (enum frag_dma_mode)d;
			return true;
		}
	}
	return false;
}

/*
 * --mode and --compaction into the list of runs, each once, in the order
 * given (with compaction before without).
 */
static int parse_modes(const char *list, const char *compaction,
		       struct frag_mode *modes, unsigned int *n)
{
	bool with = true, without = false;
	const char *p = list;

	if (!strcmp(compaction, "off")) {
		with = false;
		without = true;
	} else if (!strcmp(compaction, "both")) {
		without = true;
	} else if (strcmp(compaction, "on")) {
		return frag_bad("bad --compaction '%s': on, off or both", compaction);
	}
	if (!strcmp(list, "all"))
		p = "nodma,legacy,iomap,iomap-nonblock";
	*n = 0;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *plus = memchr(p, '+', len);
		size_t nlen = plus ? (size_t)(plus - p) : len;
		enum frag_dma_mode d;
		bool forced_off = false;
		char word[64];

		snprintf(word, sizeof(word), "%.*s", (int)(len < 63 ? len : 63), p);
		if (!parse_dma_mode(p, nlen, &d))
			return frag_bad("unknown mode '%s' (nodma, legacy, iomap, "
					"iomap-nonblock, optionally +nocompact; or all)",
					word);
		if (plus) {
			if (len - nlen != strlen("+nocompact") ||
			    strncmp(plus, "+nocompact", len - nlen))
				return frag_bad("unknown mode suffix in '%s' (only "
						"+nocompact)", word);
			forced_off = true;
		}
		for (int c = 1; c >= 0; c--) {
			bool comp = c;

			if (forced_off ? comp : !(comp ? with : without))
				continue;
			for (unsigned int i = 0; i < *n; i++)
				if (modes[i].dma == d && modes[i].compaction == comp)
					goto next;
			if (*n == MAX_RUNS)
				return frag_bad("%s: too many modes", list);
			modes[*n].dma = d;
			modes[*n].compaction = comp;
			(*n)++;
next:;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	if (!*n)
		return frag_bad("--mode '%s' names no mode", list);
	return 0;
}

/* An option's number, @min..@max (strtoull base 0). Return: 0 or -EINVAL. */
static int parse_num(const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(arg, &end, 0);
	if (errno || end == arg || *end || *arg == '-' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* mkdir -p of @path. Return: 0 or -errno. */
static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *q = buf + 1; *q; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		if (mkdir(buf, 0777) && errno != EEXIST)
			return -errno;
		*q = '/';
	}
	if (mkdir(buf, 0777) && errno != EEXIST)
		return -errno;
	return 0;
}

static int write_text(const char *path, void (*fn)(FILE *, const void *),
		      const void *arg)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fn(f, arg);
	if (ferror(f)) {
		fclose(f);
		return -EIO;
	}
	return fclose(f) ? -errno : 0;
}

struct summary_args {
	const struct frag_scenario *s;
	uint64_t seed;
	const struct frag_result *r;
	unsigned int n;
	bool json;
};

static void summary_fn(FILE *f, const void *p)
{
	const struct summary_args *a = p;

	if (a->json)
		frag_report_json(f, a->s, a->seed, a->r, a->n);
	else
		frag_report_text(f, a->s, a->seed, a->r, a->n);
}

static void scenario_fn(FILE *f, const void *p)
{
	frag_scenario_write(p, f);
}

/* Which two runs the side-by-side maps show. */
static void pick_compare(const char *spec, const struct frag_result *r,
			 unsigned int n, int *a, int *b)
{
	char left[48] = "legacy", right[48] = "iomap";

	*a = *b = -1;
	if (spec) {
		const char *comma = strchr(spec, ',');

		if (comma) {
			snprintf(left, sizeof(left), "%.*s", (int)(comma - spec), spec);
			snprintf(right, sizeof(right), "%s", comma + 1);
		}
	}
	for (unsigned int i = 0; i < n; i++) {
		if (*a < 0 && !strcmp(r[i].mode_name, left))
			*a = (int)i;
		if (*b < 0 && !strcmp(r[i].mode_name, right))
			*b = (int)i;
	}
	if (*a < 0 || *b < 0 || *a == *b) {
		*a = 0;
		*b = n > 1 ? 1 : -1;
	}
}

/* The results folder. Return: 0 or -errno after printing why. */
static int write_results(const char *dir, const struct frag_scenario *s,
			 uint64_t seed, const struct frag_result *r, unsigned int n,
			 const char *compare, bool quiet)
{
	const char *run_dirs[MAX_RUNS], *labels[MAX_RUNS];
	char path[4200];
	struct summary_args sa = { s, seed, r, n, false };
	bool ran = false;
	int a, b, err;

	err = mkdir_p(dir);
	if (err)
		goto fail;
	snprintf(path, sizeof(path), "%s/summary.txt", dir);
	err = write_text(path, summary_fn, &sa);
	sa.json = true;
	snprintf(path, sizeof(path), "%s/summary.json", dir);
	if (!err)
		err = write_text(path, summary_fn, &sa);
	snprintf(path, sizeof(path), "%s/scenario.txt", dir);
	if (!err)
		err = write_text(path, scenario_fn, s);
	if (err)
		goto fail;
	for (unsigned int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, r[i].mode_name);
		err = mkdir_p(path);
		snprintf(path, sizeof(path), "%s/%s/series.csv", dir, r[i].mode_name);
		if (!err)
			err = frag_write_series_csv(path, s, &r[i]);
		snprintf(path, sizeof(path), "%s/%s/series.json", dir, r[i].mode_name);
		if (!err)
			err = frag_write_series_json(path, s, &r[i]);
		for (int mo = 0; !err && mo < FRAG_NR_MOMENTS; mo++) {
			const struct frag_memmap *map = &r[i].maps[mo];
			const char *title = r[i].mode_name;

			if (!r[i].have_map[mo])
				continue;
			snprintf(path, sizeof(path), "%s/%s/memmap-%s.png", dir,
				 r[i].mode_name, frag_moment_name((enum frag_moment)mo));
			err = frag_memmap_write_png(path, &map, &title, 1);
		}
		if (err)
			goto fail;
		run_dirs[i] = r[i].mode_name;
		labels[i] = r[i].mode_name;
	}
	pick_compare(compare, r, n, &a, &b);
	for (int mo = 0; b >= 0 && mo < FRAG_NR_MOMENTS; mo++) {
		const struct frag_memmap *maps[2] = { &r[a].maps[mo], &r[b].maps[mo] };
		const char *titles[2];
		char ta[96], tb[96];

		if (!r[a].have_map[mo] || !r[b].have_map[mo])
			continue;
		snprintf(ta, sizeof(ta), "%s, %s", r[a].mode_name,
			 frag_moment_name((enum frag_moment)mo));
		snprintf(tb, sizeof(tb), "%s, %s", r[b].mode_name,
			 frag_moment_name((enum frag_moment)mo));
		titles[0] = ta;
		titles[1] = tb;
		snprintf(path, sizeof(path), "%s/memmap-%s.png", dir,
			 frag_moment_name((enum frag_moment)mo));
		err = frag_memmap_write_png(path, maps, titles, 2);
		if (err)
			goto fail;
	}
	err = frag_plot_write(dir, run_dirs, labels, n, s, &ran);
	if (err)
		fprintf(stderr, "iommig-bench frag: plots: %s (see %s/plots.log)\n",
			strerror(-err), dir);
	else if (!ran && !quiet)
		fprintf(stderr, "iommig-bench frag: gnuplot not found: %s/plots.gp "
			"written, no plot PNGs (apt-get install gnuplot-nox)\n", dir);
	return 0;
fail:
	fprintf(stderr, "iommig-bench frag: writing %s: %s\n", dir, strerror(-err));
	return err;
}

int frag_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "scenario", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "compaction", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'M' },
		{ "seed", required_argument, NULL, 'S' },
		{ "duration", required_argument, NULL, 'd' },
		{ "set", required_argument, NULL, 'k' },
		{ "out", required_argument, NULL, 'o' },
		{ "compare", required_argument, NULL, 'C' },
		{ "trace", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "list-scenarios", no_argument, NULL, 'L' },
		{ "print-scenario", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *scenario = "seed000", *mode_list = "all", *compaction = "on";
	const char *out = "frag-results", *compare = NULL;
	const char *sets[64];
	unsigned int nr_sets = 0, nr_modes = 0, n = 0;
	struct frag_mode modes[MAX_RUNS];
	struct frag_result *res = NULL;
	struct frag_scenario s;
	uint64_t mem = 0, seed = 0, duration = 0, trace = 0;
	bool have_seed = false, json = false, quiet = false, print = false;
	char err_msg[512], dir[4096], trace_file[4200];
	int c, err, ret = 0;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': scenario = optarg; break;
		case 'm': mode_list = optarg; break;
		case 'c': compaction = optarg; break;
		case 'M':
			if (frag_parse_size(optarg, &mem) || !mem)
				return frag_bad("bad --mem '%s' (e.g. 1G, 16G)", optarg);
			break;
		case 'S':
			if (parse_num(optarg, 0, UINT64_MAX, &seed))
				return frag_bad("bad --seed '%s' (a number)", optarg);
			have_seed = true;
			break;
		case 'd':
			if (parse_num(optarg, 1, UINT64_MAX, &duration))
				return frag_bad("bad --duration '%s' (steps under load, "
						"at least 1)", optarg);
			break;
		case 'k':
			if (nr_sets == sizeof(sets) / sizeof(sets[0]))
				return frag_bad("%s", "too many --set");
			if (!strchr(optarg, '='))
				return frag_bad("bad --set '%s' (KEY=VALUE)", optarg);
			sets[nr_sets++] = optarg;
			break;
		case 'o': out = optarg; break;
		case 'C':
			if (!strchr(optarg, ','))
				return frag_bad("bad --compare '%s' (two modes: A,B)", optarg);
			compare = optarg;
			break;
		case 'T':
			if (parse_num(optarg, 1, 1ULL << 26, &trace))
				return frag_bad("bad --trace '%s' (events in the ring, "
						"1..67108864)", optarg);
			break;
		case 'j': json = true; break;
		case 'q': quiet = true; break;
		case 'L':
			for (int i = 0; frag_preset_names[i]; i++)
				puts(frag_preset_names[i]);
			return 0;
		case 'P': print = true; break;
		case 'h':
			frag_usage(stdout);
			return 0;
		default:
			if (optopt) {
				char o[2] = { (char)optopt, 0 };

				return frag_bad("option '-%s' is not known or lacks its "
						"value", o);
			}
			return frag_bad("option '%s' is not known or lacks its value",
					argv[optind - 1]);
		}
	}
	if (optind < argc)
		return frag_bad("unexpected argument '%s'", argv[optind]);

	err = frag_scenario_load(scenario, &s, err_msg, sizeof(err_msg));
	for (unsigned int i = 0; !err && i < nr_sets; i++) {
		char key[128];
		const char *eq = strchr(sets[i], '=');

		snprintf(key, sizeof(key), "%.*s", (int)(eq - sets[i]), sets[i]);
		err = frag_scenario_set(&s, key, eq + 1, err_msg, sizeof(err_msg));
	}
	if (!err && mem) {
		char v[32];

		snprintf(v, sizeof(v), "%" PRIu64, mem);
		err = frag_scenario_set(&s, "mem", v, err_msg, sizeof(err_msg));
	}
	if (!err && duration) {
		char v[32];

		snprintf(v, sizeof(v), "%" PRIu64, duration);
		err = frag_scenario_set(&s, "steps", v, err_msg, sizeof(err_msg));
	}
	if (!err && have_seed)
		s.seed = seed;
	if (!err)
		err = frag_scenario_check(&s, err_msg, sizeof(err_msg));
	if (err) {
		fprintf(stderr, "iommig-bench frag: %s\n", err_msg);
		return EXIT_USAGE;
	}
	if (print) {
		frag_scenario_write(&s, stdout);
		return 0;
	}
	err = parse_modes(mode_list, compaction, modes, &nr_modes);
	if (err)
		return err;

	res = calloc(nr_modes, sizeof(*res));
	if (!res) {
		fprintf(stderr, "iommig-bench frag: out of memory\n");
		return 1;
	}
	for (unsigned int i = 0; i < nr_modes; i++) {
		struct frag_progress pb;
		char label[160], name[48];

		frag_mode_name(&modes[i], name, sizeof(name));
		snprintf(label, sizeof(label), "%s %s [%u/%u]", s.name, name, i + 1,
			 nr_modes);
		if (trace) {
			snprintf(dir, sizeof(dir), "%s/%s-seed%" PRIu64 "/%s", out, s.name,
				 s.seed, name);
			err = mkdir_p(dir);
			if (err) {
				fprintf(stderr, "iommig-bench frag: %s: %s\n", dir,
					strerror(-err));
				ret = 1;
				break;
			}
			snprintf(trace_file, sizeof(trace_file), "%s/trace.json", dir);
			frag_set_trace((size_t)trace, trace_file);
		}
		frag_progress_init(&pb, quiet, label);
		err = frag_run(&s, &modes[i], s.seed, frag_progress_update, &pb, &res[n]);
		frag_progress_done(&pb);
		if (err) {
			fprintf(stderr, "iommig-bench frag: %s: run failed: %s\n", name,
				strerror(-err));
			ret = 1;
			break;
		}
		n++;
	}
	if (n) {
		if (json)
			frag_report_json(stdout, &s, s.seed, res, n);
		else
			frag_report_text(stdout, &s, s.seed, res, n);
		fflush(stdout);
		snprintf(dir, sizeof(dir), "%s/%s-seed%" PRIu64, out, s.name, s.seed);
		if (write_results(dir, &s, s.seed, res, n, compare, quiet))
			ret = 1;
		else if (!quiet)
			fprintf(stderr, "iommig-bench frag: results in %s/\n", dir);
	}
	for (unsigned int i = 0; i < n; i++)
		frag_result_free(&res[i]);
	free(res);
	return ret;
}
