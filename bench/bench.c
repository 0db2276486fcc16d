/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench - helpers every benchmark uses: statistics over runs, the
 * report in table or JSON-lines form, the host description (cpu model,
 * cpus, allocator), size parsing, thread pinning, and a machine in its own
 * arena with its memory prefaulted. See bench.h.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

/* ---- statistics ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void bench_stat_compute(double *samples, int n, struct bench_stat *out)
{
	memset(out, 0, sizeof(*out));
	if (n <= 0)
		return;
	qsort(samples, (size_t)n, sizeof(*samples), cmp_double);
	out->runs = n;
	out->min = samples[0];
	out->max = samples[n - 1];
	out->median = n % 2 ? samples[n / 2]
			    : (samples[n / 2 - 1] + samples[n / 2]) / 2;
}

/* ---- host ---------------------------------------------------------------- */

int bench_pin_self(unsigned int idx)
{
	cpu_set_t allowed, one;
	unsigned int seen = 0, want;
	int cpu;

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		return -errno;
	want = idx % (unsigned int)CPU_COUNT(&allowed);
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed))
			continue;
		if (seen++ == want)
			break;
	}
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return -pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
}

int bench_machine_create(struct iom_machine_config *cfg,
			 struct bench_arena **arena, struct iom_machine **m)
{
	int err = bench_arena_create(arena);

	if (err) {
		bench_error("cannot create the metadata arena: %s", strerror(-err));
		return err;
	}
	bench_arena_mem_ops(*arena, &cfg->mem_ops);
	err = iom_machine_create(cfg, m);
	if (err)
		bench_error("iom_machine_create: %s", strerror(-err));
	return err;
}

int bench_prefault_machine(struct iom_machine *m)
{
	unsigned int order = iom_pageblock_order(m);
	struct iom_page **blocks;
	size_t n = 0, cap = 1024;

	blocks = malloc(cap * sizeof(*blocks));
	if (!blocks)
		return -ENOMEM;
	for (;;) {
		struct iom_page *p = iom_alloc_pages(m, IOM___GFP_MOVABLE |
						     IOM___GFP_HIGHMEM |
						     IOM___GFP_NOWARN, order);

		if (!p)
			break;
		if (n == cap) {
			struct iom_page **nb = realloc(blocks, 2 * cap * sizeof(*nb));

			if (!nb) {
				iom___free_pages(m, p, order);
				break;
			}
			blocks = nb;
			cap *= 2;
		}
		memset(iom_page_address(m, p), 0, (size_t)IOM_PAGE_SIZE << order);
		blocks[n++] = p;
	}
	for (size_t i = 0; i < n; i++)
		iom___free_pages(m, blocks[i], order);
	free(blocks);
	iom_drain_all_pages(m);
	return 0;
}

unsigned int bench_nproc(void)
{
	static unsigned int n;
	cpu_set_t set;

	if (n)
		return n;
	if (!sched_getaffinity(0, sizeof(set), &set))
		n = (unsigned int)CPU_COUNT(&set);
	if (!n) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (unsigned int)c : 1;
	}
	return n;
}

double bench_loadavg(void)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%lf", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

long long bench_rss_bytes(void)
{
	unsigned long long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");
	int got;

	if (!f)
		return -1;
	got = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	if (got != 2)
		return -1;
	return (long long)(resident * (unsigned long long)sysconf(_SC_PAGESIZE));
}

const char *bench_allocator_name(void)
{
#ifdef IOMMIG_BENCH_JEMALLOC
	return "jemalloc";
#else
	return "libc";
#endif
}

static void cpu_model(char *buf, size_t size)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, size, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon, *v, *end;

		if (strncmp(line, "model name", 10))
			continue;
		colon = strchr(line, ':');
		if (!colon)
			continue;
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		end = v + strlen(v);
		while (end > v && isspace((unsigned char)end[-1]))
			*--end = '\0';
		snprintf(buf, size, "%s", v);
		break;
	}
	fclose(f);
}

/* ---- output -------------------------------------------------------------- */

void bench_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

void bench_json_key_str(FILE *out, const char *key, const char *val)
{
	fprintf(out, ",\"%s\":", key);
	bench_json_string(out, val);
}

/* Numbers: integers exactly, others with 6 significant digits, NaN as null. */
void bench_json_number(FILE *out, double v)
{
	if (!isfinite(v))
		fputs("null", out);
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		fprintf(out, "%.0f", v);
	else
		fprintf(out, "%.6g", v);
}

void bench_json_key_num(FILE *out, const char *key, double v)
{
	fprintf(out, ",\"%s\":", key);
	bench_json_number(out, v);
}

void bench_report_host(const struct bench_opts *o)
{
	char model[256];
	struct utsname u;
	const char *kernel = "unknown";

	cpu_model(model, sizeof(model));
	if (!uname(&u))
		kernel = u.release;

	if (o->json) {
		fputs("{\"bench\":\"host\",\"metric\":\"nproc\"", stdout);
		bench_json_key_num(stdout, "value", bench_nproc());
		bench_json_key_str(stdout, "unit", "cpus");
		bench_json_key_str(stdout, "cpu", model);
		bench_json_key_num(stdout, "nproc", bench_nproc());
		bench_json_key_str(stdout, "allocator", bench_allocator_name());
		bench_json_key_str(stdout, "allocator_version", bench_arena_version());
		bench_json_key_str(stdout, "iommig_version", iom_version_string());
		bench_json_key_str(stdout, "kernel", kernel);
		bench_json_key_str(stdout, "build_type", IOMMIG_BENCH_BUILD_TYPE);
		bench_json_key_str(stdout, "compiler", __VERSION__);
		bench_json_key_num(stdout, "runs", o->runs);
		bench_json_key_num(stdout, "loadavg", bench_loadavg());
		fputs("}\n", stdout);
	} else if (!o->quiet) {
		printf("# host: %s, %u cpus, kernel %s, load average %.2f\n",
		       model, bench_nproc(), kernel, bench_loadavg());
		printf("# allocator: %s %s; libiommig %s; build %s; "
		       "median of %d runs\n",
		       bench_allocator_name(), bench_arena_version(),
		       iom_version_string(),
		       *IOMMIG_BENCH_BUILD_TYPE ? IOMMIG_BENCH_BUILD_TYPE
						: "(none)", o->runs);
		printf("%-8s %-28s %12s %12s %12s %-9s %12s %8s  %s\n",
		       "bench", "metric", "median", "min", "max", "unit",
		       "baseline", "ratio", "goal / baseline");
	}
	fflush(stdout);
}

void bench_report(const struct bench_opts *o, const struct bench_result *r)
{
	const struct bench_stat *b = r->baseline;
	double ratio = b && b->median ? r->value.median / b->median : NAN;

	if (o->json) {
		fputs("{\"bench\":", stdout);
		bench_json_string(stdout, r->bench);
		bench_json_key_str(stdout, "metric", r->metric);
		bench_json_key_num(stdout, "value", r->value.median);
		bench_json_key_str(stdout, "unit", r->unit);
		bench_json_key_num(stdout, "min", r->value.min);
		bench_json_key_num(stdout, "max", r->value.max);
		bench_json_key_num(stdout, "runs", r->value.runs);
		if (b) {
			bench_json_key_num(stdout, "baseline", b->median);
			bench_json_key_num(stdout, "baseline_min", b->min);
			bench_json_key_num(stdout, "baseline_max", b->max);
			if (r->baseline_name)
				bench_json_key_str(stdout, "baseline_name",
					     r->baseline_name);
			bench_json_key_num(stdout, "ratio", ratio);
		}
		if (r->goal) {
			bench_json_key_str(stdout, "goal", r->goal);
			fprintf(stdout, ",\"goal_met\":%s",
				r->goal_met ? "true" : "false");
		}
		if (r->cpu_share > 0)
			bench_json_key_num(stdout, "cpu_share", r->cpu_share);
		if (r->note)
			bench_json_key_str(stdout, "note", r->note);
		fputs("}\n", stdout);
	} else {
		char bl[32] = "-", ra[16] = "-";

		if (b) {
			snprintf(bl, sizeof(bl), "%.4g", b->median);
			snprintf(ra, sizeof(ra), "%.3f", ratio);
		}
		printf("%-8s %-28s %12.4g %12.4g %12.4g %-9s %12s %8s ",
		       r->bench, r->metric, r->value.median, r->value.min,
		       r->value.max, r->unit, bl, ra);
		if (r->goal)
			printf(" [%s: %s]", r->goal,
			       r->goal_met ? "met" : "MISSED");
		if (b && r->baseline_name)
			printf(" vs %s", r->baseline_name);
		if (r->note)
			printf(" (%s)", r->note);
		if (r->cpu_share > 0 && r->cpu_share < 0.9)
			printf(" [preempted: cpu share %.2f]", r->cpu_share);
		putchar('\n');
	}
	fflush(stdout);
}

void bench_report_value(const struct bench_opts *o, const char *bench,
			const char *metric, double value, const char *unit,
			const char *note)
{
	struct bench_result r = {
		.bench = bench, .metric = metric, .unit = unit, .note = note,
		.value = { .median = value, .min = value, .max = value,
			   .runs = 1 },
	};

	bench_report(o, &r);
}

void bench_progress(const struct bench_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (o->quiet)
		return;
	va_start(ap, fmt);
	fputs("iommig-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void bench_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	fputs("iommig-bench: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- parsing ------------------------------------------------------------- */

static int parse_scaled(const char *s, uint64_t *out, uint64_t unit)
{
	char *end;
	double v, mul = 1;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v > 0))
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 'T': mul *= (double)unit; /* fall through */
	case 'G': mul *= (double)unit; /* fall through */
	case 'M': mul *= (double)unit; /* fall through */
	case 'K': mul *= (double)unit; end++; break;
	case '\0': break;
	default: return -EINVAL;
	}
	/* "64GiB" and "64GB" read as "64G". */
	if (mul > 1 && unit == 1024 && (*end == 'i' || *end == 'I'))
		end++;
	if (mul > 1 && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return -EINVAL;
	v *= mul;
	if (v >= 18446744073709551615.0 || v != floor(v))
		return -EINVAL;
	*out = (uint64_t)v;
	return 0;
}

int bench_parse_size(const char *s, uint64_t *out)
{
	return parse_scaled(s, out, 1024);
}

int bench_parse_count(const char *s, uint64_t *out)
{
	return parse_scaled(s, out, 1000);
}

void bench_thread_create(pthread_t *tid, void *(*fn)(void *), void *arg)
{
	int err = pthread_create(tid, NULL, fn, arg);

	if (err) {
		bench_error("pthread_create: %s", strerror(err));
		exit(1);
	}
}
