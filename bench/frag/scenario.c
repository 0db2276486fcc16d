/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench frag - scenarios: the "key = value" file format of
 * docs/scenarios.md, its checks, and the built-in presets. The presets are
 * written in the file format and parsed by the same parser, so each one is
 * also an example of it; seed000 names every key and is the default every
 * other scenario starts from.
 *
 * Conventions in this file: @s is the scenario being filled, @err/@errlen
 * the caller's message buffer (always NUL-terminated on error), @file the
 * name a message is prefixed with ("my.txt", or "preset seed000"). A parse
 * fills a copy and stores it only when everything, checks included, is
 * good: an error leaves the caller's scenario as it was.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "frag.h"

#define SCEN_LINE_MAX	1024		/* characters a line, '\n' excluded */
#define SCEN_FILE_MAX	(1u << 20)	/* a scenario file is small */
#define SCEN_VAL_SHOW	64		/* characters of a bad value quoted back */

#define KiB		(1ULL << 10)
#define MiB		(1ULL << 20)
#define GiB		(1ULL << 30)
#define TiB		(1ULL << 40)
#define PG		((uint64_t)IOM_PAGE_SIZE)

/* ---- the presets -------------------------------------------------------- */

/*
 * seed000 sets every key: it is parsed over a zeroed scenario and is the
 * base of everything else. The other presets say only what they change.
 */
static const char preset_seed000[] =
	"# seed000 - the 2013 slides' problem: the coherent DMA buffers of many\n"
	"# devices, legacy ones allocated from order 4 down to order 0, end up\n"
	"# scattered over memory and keep high orders from forming again.\n"
	"name = seed000\n"
	"description = 2013 slides: DMA buffers of 4 devices scattered over memory\n"
	"\n"
	"# the machine\n"
	"mem = 1G\n"
	"cma_size = 0\n"
	"steps = 200\n"
	"sample_every = 5\n"
	"seed = 1\n"
	"compaction_proactiveness = 20\n"
	"\n"
	"# processes: movable anonymous memory\n"
	"processes = 8\n"
	"anon_share = 0.55\n"
	"anon_churn = 0.05\n"
	"anon_region_min = 64K\n"
	"anon_region_max = 2M\n"
	"\n"
	"# page cache\n"
	"file_share = 0.20\n"
	"file_churn = 0.03\n"
	"file_size_min = 16K\n"
	"file_size_max = 4M\n"
	"\n"
	"# kernel allocations\n"
	"unmovable_share = 0.02\n"
	"unmovable_churn = 0.05\n"
	"unmovable_longlived = 0.5\n"
	"unmovable_max_order = 2\n"
	"reclaimable_share = 0.02\n"
	"\n"
	"# coherent DMA buffers, written by the devices while in use\n"
	"dma_devices = 4\n"
	"dma_share = 0.05\n"
	"dma_churn = 0.05\n"
	"dma_longlived = 0.5\n"
	"dma_size_min = 4K\n"
	"dma_size_max = 64K\n"
	"device_threads = 1\n"
	"dma_burst = 0\n"
	"dma_burst_period = 0\n"
	"dma_late = yes\n"
	"dma_into_holes = yes\n"
	"\n"
	"# long-term pins (none here)\n"
	"pin_share = 0\n"
	"pin_chunk = 2M\n"
	"pin_in_cma = no\n"
	"\n"
	"# the high-order allocation stream\n"
	"orders = 4,9,10\n"
	"highalloc_share = 0.10\n"
	"highalloc_per_step = 4\n"
	"rest_share = 1.0\n"
	"\n"
	"# CMA allocations (no CMA area here)\n"
	"cma_alloc_size = 0\n"
	"cma_allocs_per_step = 0\n"
	"cma_allocs_at_rest = 0\n"
	"\n"
	"memmap_at = load_end,rest_compacted\n";

static const char preset_seed002[] =
	"# seed002 - the 2015 vfio CMA patch: a guest's RAM, allocated into CMA,\n"
	"# is pinned for VFIO. Pins that stay in CMA make cma_alloc() fail\n"
	"# (\"PFNs busy\"); FOLL_LONGTERM migrates the pages out of CMA first.\n"
	"name = seed002\n"
	"description = 2015 vfio patch: guest RAM in CMA pinned long-term\n"
	"cma_size = 256M\n"
	"anon_share = 0.30\n"
	"file_share = 0.15\n"
	"reclaimable_share = 0.01\n"
	"dma_devices = 2\n"
	"dma_share = 0.02\n"
	"dma_late = no\n"
	"dma_into_holes = no\n"
	"dma_size_min = 64K\n"
	"dma_size_max = 1M\n"
	"rest_share = 0.5\n"
	"pin_share = 0.30\n"
	"pin_chunk = 2M\n"
	"pin_in_cma = yes\n"
	"orders = 9\n"
	"highalloc_share = 0.05\n"
	"highalloc_per_step = 2\n"
	"# half the area at once, at rest: under load a full machine has no room\n"
	"# to move 128M out of CMA, in any mode\n"
	"cma_alloc_size = 128M\n"
	"cma_allocs_per_step = 0\n"
	"cma_allocs_at_rest = 8\n";

static const char preset_highalloc[] =
	"# highalloc - mmtests' stress-highalloc: heavy anonymous and page-cache\n"
	"# churn while orders 4, 9 and 10 are asked for, little DMA.\n"
	"name = highalloc\n"
	"description = mmtests stress-highalloc: heavy anon and file churn\n"
	"anon_share = 0.50\n"
	"anon_churn = 0.10\n"
	"file_share = 0.30\n"
	"file_churn = 0.10\n"
	"reclaimable_share = 0.03\n"
	"dma_share = 0.03\n"
	"dma_late = no\n"
	"dma_into_holes = no\n"
	"dma_size_min = 64K\n"
	"dma_size_max = 4M\n"
	"highalloc_share = 0.30\n"
	"highalloc_per_step = 8\n"
	"rest_share = 0.80\n";

static const char preset_datacenter[] =
	"# datacenter - Meta's fleet data: long-lived unmovable I/O buffers,\n"
	"# small and many, under 7% of memory but in about a third of the\n"
	"# 2 MiB blocks.\n"
	"name = datacenter\n"
	"description = Meta fleet: long-lived I/O buffers in a third of the blocks\n"
	"steps = 300\n"
	"unmovable_share = 0.03\n"
	"dma_devices = 8\n"
	"dma_share = 0.07\n"
	"dma_longlived = 0.9\n"
	"dma_size_min = 4K\n"
	"dma_size_max = 64K\n";

static const char preset_tiny[] =
	"# tiny - a small, quick scenario for tests.\n"
	"name = tiny\n"
	"description = 64 MiB, 20 steps: for tests\n"
	"mem = 64M\n"
	"steps = 20\n"
	"sample_every = 2\n"
	"processes = 2\n"
	"anon_share = 0.40\n"
	"anon_region_max = 512K\n"
	"file_share = 0.15\n"
	"file_size_max = 256K\n"
	"reclaimable_share = 0.01\n"
	"dma_devices = 2\n"
	"dma_share = 0.05\n"
	"dma_size_max = 256K\n"
	"orders = 4,9\n"
	"highalloc_per_step = 2\n";

const char *const frag_preset_names[] = {
	"seed000", "seed002", "highalloc", "datacenter", "tiny", NULL,
};

static const char *const preset_texts[] = {
	preset_seed000, preset_seed002, preset_highalloc, preset_datacenter,
	preset_tiny,
};

/* ---- keys --------------------------------------------------------------- */

enum key_type {
	K_NAME,		/* [A-Za-z0-9._-]+ into a char array */
	K_TEXT,		/* printable text into a char array */
	K_SIZE,		/* uint64_t bytes, K/M/G/T suffix */
	K_FRAC,		/* double 0..1, or a percentage */
	K_UINT,		/* unsigned int */
	K_U64,		/* uint64_t */
	K_BOOL,
	K_ORDERS,	/* orders[] and nr_orders */
	K_MOMENTS,	/* memmap_at bits */
};

struct key {
	const char *name;
	enum key_type type;
	size_t off;
	size_t size;		/* K_NAME, K_TEXT: the array's size */
	const char *section;	/* comment frag_scenario_write() puts before */
};

#define F(f)		offsetof(struct frag_scenario, f)
#define FSIZE(f)	sizeof(((struct frag_scenario *)0)->f)
#define KEY(f, t)	{ #f, t, F(f), FSIZE(f), NULL }
#define KEYS(f, t, sec)	{ #f, t, F(f), FSIZE(f), sec }

/* In the order of struct frag_scenario and of a written file. */
static const struct key keys[] = {
	KEY(name, K_NAME),
	KEY(description, K_TEXT),
	KEYS(mem, K_SIZE, "the machine"),
	KEY(cma_size, K_SIZE),
	KEY(steps, K_UINT),
	KEY(sample_every, K_UINT),
	KEY(seed, K_U64),
	KEY(compaction_proactiveness, K_UINT),
	KEYS(processes, K_UINT, "processes: movable anonymous memory"),
	KEY(anon_share, K_FRAC),
	KEY(anon_churn, K_FRAC),
	KEY(anon_region_min, K_SIZE),
	KEY(anon_region_max, K_SIZE),
	KEYS(file_share, K_FRAC, "page cache"),
	KEY(file_churn, K_FRAC),
	KEY(file_size_min, K_SIZE),
	KEY(file_size_max, K_SIZE),
	KEYS(unmovable_share, K_FRAC, "kernel allocations"),
	KEY(unmovable_churn, K_FRAC),
	KEY(unmovable_longlived, K_FRAC),
	KEY(unmovable_max_order, K_UINT),
	KEY(reclaimable_share, K_FRAC),
	KEYS(dma_devices, K_UINT, "coherent DMA buffers"),
	KEY(dma_share, K_FRAC),
	KEY(dma_churn, K_FRAC),
	KEY(dma_longlived, K_FRAC),
	KEY(dma_size_min, K_SIZE),
	KEY(dma_size_max, K_SIZE),
	KEY(device_threads, K_UINT),
	KEY(dma_burst, K_FRAC),
	KEY(dma_burst_period, K_UINT),
	KEY(dma_late, K_BOOL),
	KEY(dma_into_holes, K_BOOL),
	KEYS(pin_share, K_FRAC, "long-term pins"),
	KEY(pin_chunk, K_SIZE),
	KEY(pin_in_cma, K_BOOL),
	KEYS(orders, K_ORDERS, "the high-order allocation stream"),
	KEY(highalloc_share, K_FRAC),
	KEY(highalloc_per_step, K_UINT),
	KEY(rest_share, K_FRAC),
	KEYS(cma_alloc_size, K_SIZE, "CMA allocations"),
	KEY(cma_allocs_per_step, K_UINT),
	KEY(cma_allocs_at_rest, K_UINT),
	KEYS(memmap_at, K_MOMENTS, "memory maps"),
};

#define NR_KEYS	(sizeof(keys) / sizeof(keys[0]))

static const char *const type_help[] = {
	[K_NAME]	= "letters, digits, '.', '_' or '-', 1 to 63 of them",
	[K_TEXT]	= "printable text, at most 255 characters",
	[K_SIZE]	= "a size in bytes, with an optional K, M, G or T suffix",
	[K_FRAC]	= "a fraction 0..1 or a percentage",
	[K_UINT]	= "a whole number 0..4294967295",
	[K_U64]		= "a whole number 0..18446744073709551615",
	[K_BOOL]	= "yes, no, true, false, on, off, 1 or 0",
	[K_ORDERS]	= "1 to 4 orders of 1..10, strictly increasing, as 4,9,10",
	[K_MOMENTS]	= "'none' or a list of filled, load_end, rest, rest_compacted",
};

static const struct key *key_find(const char *name)
{
	for (size_t i = 0; i < NR_KEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static int preset_find(const char *name)
{
	for (int i = 0; frag_preset_names[i]; i++)
		if (!strcmp(frag_preset_names[i], name))
			return i;
	return -1;
}

/* "seed000, seed002, ..." for messages. */
static void preset_list(char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; frag_preset_names[i] && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
				 frag_preset_names[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* ---- values ------------------------------------------------------------- */

int frag_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (!s || !(*p >= '0' && *p <= '9'))
		return -EINVAL;	/* also '-', '+', ' ' and "" */
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned int d = (unsigned int)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	switch (*p) {
	case 'k': case 'K': mult = KiB; p++; break;
	case 'm': case 'M': mult = MiB; p++; break;
	case 'g': case 'G': mult = GiB; p++; break;
	case 't': case 'T': mult = TiB; p++; break;
	}
	/* "KiB", "KB", "K", and for plain bytes "B" */
	if (mult > 1 && (*p == 'i' || *p == 'I') && (p[1] == 'b' || p[1] == 'B'))
		p += 2;
	else if (*p == 'b' || *p == 'B')
		p++;
	if (*p)
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -EINVAL;
	*out = v * mult;
	return 0;
}

/* The shortest of 1G, 512M, 64K, 4097 that parses back to @v. */
static void fmt_size(char *buf, size_t len, uint64_t v)
{
	static const char suffix[] = "TGMK";
	static const uint64_t unit[] = { TiB, GiB, MiB, KiB };

	for (int i = 0; i < 4; i++) {
		if (v && v % unit[i] == 0) {
			snprintf(buf, len, "%llu%c",
				 (unsigned long long)(v / unit[i]), suffix[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* The shortest decimal that strtod() reads back as @v exactly. */
static void fmt_frac(char *buf, size_t len, double v)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* Digits, at most one '.', at least one digit: what strtod() may see. */
static int parse_frac(const char *v, double *out)
{
	char num[64];
	size_t n = strlen(v), digits = 0, dots = 0;
	bool pct = n && v[n - 1] == '%';
	double d;

	if (pct)
		n--;
	if (!n || n >= sizeof(num))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (v[i] >= '0' && v[i] <= '9')
			digits++;
		else if (v[i] == '.')
			dots++;
		else
			return -EINVAL;	/* signs, exponents, "nan", "inf" */
	}
	if (!digits || dots > 1)
		return -EINVAL;
	memcpy(num, v, n);
	num[n] = '\0';
	d = strtod(num, NULL);
	if (pct)
		d /= 100.0;
	if (!(d >= 0.0 && d <= 1.0))
		return -EINVAL;
	*out = d;
	return 0;
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
	uint64_t x = 0;

	if (!*v)
		return -EINVAL;
	for (; *v; v++) {
		unsigned int d;

		if (*v < '0' || *v > '9')
			return -EINVAL;
		d = (unsigned int)(*v - '0');
		if (x > (max - d) / 10)
			return -EINVAL;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Split a comma-separated list in place: the items, trimmed, into @items.
 * Return: how many, or -EINVAL for an empty item or more than @max.
 */
static int split_list(char *v, char **items, int max)
{
	int n = 0;

	for (;;) {
		char *comma = strchr(v, ',');
		char *end;

		if (comma)
			*comma = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		end = v + strlen(v);
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*v || n == max)
			return -EINVAL;
		items[n++] = v;
		if (!comma)
			return n;
		v = comma + 1;
	}
}

static int parse_orders(const char *v, unsigned int *orders, unsigned int *nr)
{
	char buf[SCEN_LINE_MAX + 1], *items[FRAG_MAX_ORDERS];
	unsigned int tmp[FRAG_MAX_ORDERS] = { 0 };
	int n;

	if (strlen(v) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, v);
	n = split_list(buf, items, FRAG_MAX_ORDERS);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		uint64_t o;

		if (parse_u64(items[i], 10, &o) || o < 1 ||
		    (i && o <= tmp[i - 1]))
			return -EINVAL;
		tmp[i] = (unsigned int)o;
	}
	memcpy(orders, tmp, sizeof(tmp));	/* unused entries are 0 */
	*nr = (unsigned int)n;
	return 0;
}

static int parse_moments(const char *v, unsigned int *out)
{
	char buf[SCEN_LINE_MAX + 1], *items[FRAG_NR_MOMENTS];
	unsigned int bits = 0;
	int n;

	if (!strcasecmp(v, "none")) {
		*out = 0;
		return 0;
	}
	if (strlen(v) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, v);
	n = split_list(buf, items, FRAG_NR_MOMENTS);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		int m;

		for (m = 0; m < FRAG_NR_MOMENTS; m++)
			if (!strcmp(items[i], frag_moment_name(m)))
				break;
		if (m == FRAG_NR_MOMENTS || (bits & (1u << m)))
			return -EINVAL;	/* unknown, or named twice */
		bits |= 1u << m;
	}
	*out = bits;
	return 0;
}

static bool name_ok(const char *v)
{
	size_t n = strlen(v);

	if (!n || n >= FRAG_NAME_MAX)
		return false;
	for (; *v; v++) {
		char c = *v;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Printable ASCII or UTF-8 bytes; no control characters. */
static bool text_ok(const char *v, size_t size)
{
	if (strlen(v) >= size)
		return false;
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

/* Store @v, the value of @k, into @s. Return: 0 or -EINVAL (@s as it was). */
static int set_value(struct frag_scenario *s, const struct key *k,
		     const char *v)
{
	char *field = (char *)s + k->off;
	uint64_t u;
	double d;
	bool b;

	switch (k->type) {
	case K_NAME:
		if (!name_ok(v))
			return -EINVAL;
		strcpy(field, v);
		return 0;
	case K_TEXT:
		if (!text_ok(v, k->size))
			return -EINVAL;
		strcpy(field, v);
		return 0;
	case K_SIZE:
		if (frag_parse_size(v, &u))
			return -EINVAL;
		memcpy(field, &u, sizeof(u));
		return 0;
	case K_FRAC:
		if (parse_frac(v, &d))
			return -EINVAL;
		memcpy(field, &d, sizeof(d));
		return 0;
	case K_UINT: {
		unsigned int x;

		if (parse_u64(v, UINT_MAX, &u))
			return -EINVAL;
		x = (unsigned int)u;
		memcpy(field, &x, sizeof(x));
		return 0;
	}
	case K_U64:
		if (parse_u64(v, UINT64_MAX, &u))
			return -EINVAL;
		memcpy(field, &u, sizeof(u));
		return 0;
	case K_BOOL:
		if (parse_bool(v, &b))
			return -EINVAL;
		memcpy(field, &b, sizeof(b));
		return 0;
	case K_ORDERS:
		return parse_orders(v, s->orders, &s->nr_orders);
	case K_MOMENTS:
		return parse_moments(v, &s->memmap_at);
	}
	return -EINVAL;
}

/* ---- checks ------------------------------------------------------------- */

/*
 * A failed check: "key: reason" into @err, the key into *@keyp. @key NULL:
 * the reason names the keys itself and no line is pointed at.
 */
static int __attribute__((format(printf, 5, 6)))
bad(char *err, size_t errlen, const char **keyp, const char *key,
    const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (errlen)
		snprintf(err, errlen, "%s%s%s", key ? key : "",
			 key ? ": " : "", why);
	if (keyp)
		*keyp = key;
	return -EINVAL;
}

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/*
 * The whole of @s is consistent. On failure *@keyp names the key the
 * message is about, so a file's check can point at its line.
 */
static int check(const struct frag_scenario *s, const char **keyp,
		 char *err, size_t errlen)
{
	static const struct { const char *key; size_t off; } fracs[] = {
		{ "anon_share", F(anon_share) },
		{ "anon_churn", F(anon_churn) },
		{ "file_share", F(file_share) },
		{ "file_churn", F(file_churn) },
		{ "unmovable_share", F(unmovable_share) },
		{ "unmovable_churn", F(unmovable_churn) },
		{ "unmovable_longlived", F(unmovable_longlived) },
		{ "reclaimable_share", F(reclaimable_share) },
		{ "dma_share", F(dma_share) },
		{ "dma_churn", F(dma_churn) },
		{ "dma_longlived", F(dma_longlived) },
		{ "pin_share", F(pin_share) },
		{ "highalloc_share", F(highalloc_share) },
		{ "rest_share", F(rest_share) },
	};
	static const struct { const char *lo, *hi; size_t olo, ohi; } ranges[] = {
		{ "anon_region_min", "anon_region_max",
		  F(anon_region_min), F(anon_region_max) },
		{ "file_size_min", "file_size_max",
		  F(file_size_min), F(file_size_max) },
	};
	char a[32], b[32];
	double sum;

	if (!name_ok(s->name))
		return bad(err, errlen, keyp, "name", "%s",
			   type_help[K_NAME]);
	if (!text_ok(s->description, sizeof(s->description)))
		return bad(err, errlen, keyp, "description", "%s",
			   type_help[K_TEXT]);

	fmt_size(a, sizeof(a), s->mem);
	if (s->mem % (4 * MiB) || s->mem < 16 * MiB || s->mem > TiB)
		return bad(err, errlen, keyp, "mem",
			   "%s: must be a multiple of 4M, 16M..1T", a);
	fmt_size(b, sizeof(b), s->cma_size);
	if (s->cma_size % (4 * MiB))
		return bad(err, errlen, keyp, "cma_size",
			   "%s: must be a multiple of 4M (two pageblocks)", b);
	if (s->cma_size > s->mem / 2)
		return bad(err, errlen, keyp, "cma_size",
			   "%s: more than half of mem (%s)", b, a);
	if (s->steps < 1 || s->steps > 1000000)
		return bad(err, errlen, keyp, "steps", "%u: must be 1..1000000",
			   s->steps);
	if (s->sample_every < 1)
		return bad(err, errlen, keyp, "sample_every", "must be 1 or more");
	if (s->processes < 1 || s->processes > 1024)
		return bad(err, errlen, keyp, "processes", "%u: must be 1..1024",
			   s->processes);

	for (size_t i = 0; i < sizeof(fracs) / sizeof(fracs[0]); i++) {
		double v;

		memcpy(&v, (const char *)s + fracs[i].off, sizeof(v));
		if (!(v >= 0.0 && v <= 1.0))
			return bad(err, errlen, keyp, fracs[i].key,
				   "%g: must be 0..1", v);
	}
	sum = s->anon_share + s->file_share + s->unmovable_share +
	      s->reclaimable_share + s->dma_share + s->pin_share;
	/* a little must stay free, or nothing but reclaim would ever run */
	if (sum > 0.98 + 1e-9)
		return bad(err, errlen, keyp, NULL,
			   "anon_share + file_share + unmovable_share + "
			   "reclaimable_share + dma_share + pin_share = %.4g: "
			   "must be at most 0.98", sum);

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		uint64_t lo, hi;

		memcpy(&lo, (const char *)s + ranges[i].olo, sizeof(lo));
		memcpy(&hi, (const char *)s + ranges[i].ohi, sizeof(hi));
		if (lo < PG || lo % PG)
			return bad(err, errlen, keyp, ranges[i].lo,
				   "must be a multiple of 4K, at least 4K");
		if (hi < PG || hi % PG)
			return bad(err, errlen, keyp, ranges[i].hi,
				   "must be a multiple of 4K, at least 4K");
		if (lo > hi)
			return bad(err, errlen, keyp, ranges[i].lo,
				   "more than %s", ranges[i].hi);
	}

	if (s->unmovable_max_order > 3)
		return bad(err, errlen, keyp, "unmovable_max_order",
			   "%u: must be 0..3", s->unmovable_max_order);

	if (s->dma_devices < 1 || s->dma_devices > 64)
		return bad(err, errlen, keyp, "dma_devices", "%u: must be 1..64",
			   s->dma_devices);
	if (!pow2(s->dma_size_min) || s->dma_size_min < PG ||
	    s->dma_size_min > 4 * MiB)
		return bad(err, errlen, keyp, "dma_size_min",
			   "must be a power of two, 4K..4M");
	if (!pow2(s->dma_size_max) || s->dma_size_max < PG ||
	    s->dma_size_max > 4 * MiB)
		return bad(err, errlen, keyp, "dma_size_max",
			   "must be a power of two, 4K..4M");
	if (s->dma_size_min > s->dma_size_max)
		return bad(err, errlen, keyp, "dma_size_min",
			   "more than dma_size_max");
	if (s->dma_burst < 0.0 || s->dma_burst > 1.0)
		return bad(err, errlen, keyp, "dma_burst", "%g: must be 0..1",
			   s->dma_burst);
	if (s->dma_burst > 0.0 && s->dma_burst_period < 2)
		return bad(err, errlen, keyp, "dma_burst_period",
			   "%u: must be at least 2 with a dma_burst",
			   s->dma_burst_period);
	if (s->dma_into_holes && !s->dma_late)
		return bad(err, errlen, keyp, "dma_into_holes", "needs dma_late = yes");
	if (s->compaction_proactiveness > 100)
		return bad(err, errlen, keyp, "compaction_proactiveness",
			   "%u: must be 0..100", s->compaction_proactiveness);
	if (s->device_threads > 16)
		return bad(err, errlen, keyp, "device_threads",
			   "%u: must be 0..16", s->device_threads);

	if (s->pin_chunk < PG || s->pin_chunk % PG)
		return bad(err, errlen, keyp, "pin_chunk",
			   "must be a multiple of 4K, at least 4K");
	if (s->pin_in_cma && !s->cma_size)
		return bad(err, errlen, keyp, "pin_in_cma",
			   "needs a CMA area (cma_size)");

	if (s->nr_orders < 1 || s->nr_orders > FRAG_MAX_ORDERS)
		return bad(err, errlen, keyp, "orders", "%s", type_help[K_ORDERS]);
	for (unsigned int i = 0; i < s->nr_orders; i++)
		if (s->orders[i] < 1 || s->orders[i] > 10 ||
		    (i && s->orders[i] <= s->orders[i - 1]))
			return bad(err, errlen, keyp, "orders", "%s",
				   type_help[K_ORDERS]);
	if (s->highalloc_per_step > 100000)
		return bad(err, errlen, keyp, "highalloc_per_step",
			   "%u: must be 0..100000", s->highalloc_per_step);

	if (s->cma_alloc_size % PG)
		return bad(err, errlen, keyp, "cma_alloc_size",
			   "must be a multiple of 4K");
	if (s->cma_size) {
		if (s->cma_alloc_size > s->cma_size)
			return bad(err, errlen, keyp, "cma_alloc_size",
				   "more than cma_size (%s)", b);
		if ((s->cma_allocs_per_step || s->cma_allocs_at_rest) &&
		    !s->cma_alloc_size)
			return bad(err, errlen, keyp, "cma_alloc_size",
				   "must not be 0 when CMA allocations are made");
	} else {
		if (s->cma_allocs_per_step)
			return bad(err, errlen, keyp, "cma_allocs_per_step",
				   "must be 0 without a CMA area (cma_size)");
		if (s->cma_allocs_at_rest)
			return bad(err, errlen, keyp, "cma_allocs_at_rest",
				   "must be 0 without a CMA area (cma_size)");
	}

	if (s->memmap_at & ~((1u << FRAG_NR_MOMENTS) - 1))
		return bad(err, errlen, keyp, "memmap_at", "%s",
			   type_help[K_MOMENTS]);
	return 0;
}

int frag_scenario_check(const struct frag_scenario *s, char *err, size_t errlen)
{
	return check(s, NULL, err, errlen);
}

/* ---- the parser --------------------------------------------------------- */

static void __attribute__((format(printf, 4, 5)))
msg(char *err, size_t errlen, const char *file, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (!errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s%s", file ? file : "", why);
}

static char *trim(char *p)
{
	char *end;

	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return p;
}

/*
 * Split one line in place into *@key and *@val. A '#' outside double
 * quotes starts a comment; a value in double quotes keeps '#' and outer
 * blanks, with \" and \\ inside. Return: 1 key and value, 0 nothing on
 * the line, -EINVAL with the reason in @why.
 */
static int split_line(char *line, char **key, char **val, const char **why)
{
	char *p = trim(line), *eq, *v;

	if (!*p || *p == '#')
		return 0;
	eq = strchr(p, '=');
	if (!eq) {
		*why = "expected 'key = value'";
		return -EINVAL;
	}
	*eq = '\0';
	*key = trim(p);
	if (!**key) {
		*why = "no key before '='";
		return -EINVAL;
	}
	v = eq + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v == '"') {
		char *r = v + 1, *w = v;

		for (; *r && *r != '"'; r++) {
			if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
				r++;
			*w++ = *r;
		}
		if (*r != '"') {
			*why = "no closing '\"'";
			return -EINVAL;
		}
		*w = '\0';
		r = trim(r + 1);
		if (*r && *r != '#') {
			*why = "text after the closing '\"'";
			return -EINVAL;
		}
	} else {
		char *hash = strchr(v, '#');

		if (hash)
			*hash = '\0';
		v = trim(v);
	}
	*val = v;
	return 1;
}

static void load_preset(int idx, struct frag_scenario *s);

/*
 * Parse @len bytes of @text, a scenario file named @file, over @s.
 * @key_line gets the line of each key given (0: not given). A preset line
 * is accepted only when @allow_preset (files; the presets are not nested).
 */
static int parse_text(const char *file, const char *text, size_t len,
		      bool allow_preset, struct frag_scenario *s,
		      unsigned int *key_line, char *err, size_t errlen)
{
	char line[SCEN_LINE_MAX + 2];
	unsigned int lineno = 0;
	bool any = false;
	size_t pos = 0;

	memset(key_line, 0, NR_KEYS * sizeof(*key_line));
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = (nl ? (size_t)(nl - text) : len) - pos;
		const char *why = NULL;
		const struct key *k;
		char *key, *val;
		int ret;

		lineno++;
		if (n > SCEN_LINE_MAX) {
			msg(err, errlen, file, ":%u: line longer than %u "
			    "characters", lineno, SCEN_LINE_MAX);
			return -EINVAL;
		}
		if (memchr(text + pos, '\0', n)) {
			msg(err, errlen, file, ":%u: NUL byte: not a text file?",
			    lineno);
			return -EINVAL;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + 1;

		ret = split_line(line, &key, &val, &why);
		if (ret < 0) {
			msg(err, errlen, file, ":%u: %s", lineno, why);
			return ret;
		}
		if (!ret)
			continue;

		if (!strcmp(key, "preset")) {
			char list[128];
			int idx = preset_find(val);

			preset_list(list, sizeof(list));
			if (!allow_preset || any) {
				msg(err, errlen, file, ":%u: 'preset = NAME' "
				    "must be the first setting", lineno);
				return -EINVAL;
			}
			if (idx < 0) {
				msg(err, errlen, file, ":%u: unknown preset "
				    "'%.*s' (%s)", lineno, SCEN_VAL_SHOW, val,
				    list);
				return -EINVAL;
			}
			load_preset(idx, s);
			any = true;
			continue;
		}
		any = true;

		k = key_find(key);
		if (!k) {
			msg(err, errlen, file, ":%u: unknown key '%.*s' "
			    "(see docs/scenarios.md)", lineno, SCEN_VAL_SHOW,
			    key);
			return -EINVAL;
		}
		if (key_line[k - keys]) {
			msg(err, errlen, file, ":%u: key '%s' given twice "
			    "(first on line %u)", lineno, k->name,
			    key_line[k - keys]);
			return -EINVAL;
		}
		key_line[k - keys] = lineno;
		if (set_value(s, k, val)) {
			msg(err, errlen, file, ":%u: bad value '%.*s%s' for "
			    "%s: %s", lineno, SCEN_VAL_SHOW, val,
			    strlen(val) > SCEN_VAL_SHOW ? "..." : "",
			    k->name, type_help[k->type]);
			return -EINVAL;
		}
	}
	return 0;
}

/* A built-in text that does not parse is this file's bug: say so, loudly. */
static void load_preset(int idx, struct frag_scenario *s)
{
	unsigned int key_line[NR_KEYS];
	const char *text = preset_texts[idx];
	char err[256], file[64];

	snprintf(file, sizeof(file), "preset %s", frag_preset_names[idx]);
	if (idx == 0) {
		memset(s, 0, sizeof(*s));
	} else {
		load_preset(0, s);
	}
	if (parse_text(file, text, strlen(text), false, s, key_line, err,
		       sizeof(err)) ||
	    check(s, NULL, err, sizeof(err))) {
		fprintf(stderr, "iommig-bench frag: BUG: %s\n", err);
		abort();
	}
}

void frag_scenario_defaults(struct frag_scenario *s)
{
	load_preset(0, s);
}

/* Read all of @path (at most SCEN_FILE_MAX bytes) into *@buf. */
static int read_file(const char *path, char **buf, size_t *len,
		     char *err, size_t errlen)
{
	char *b = NULL;
	size_t n;
	FILE *f;
	int ret;

	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		msg(err, errlen, path, ": cannot open: %s", strerror(-ret));
		return ret;
	}
	b = malloc(SCEN_FILE_MAX + 1);
	if (!b) {
		fclose(f);
		msg(err, errlen, path, ": out of memory");
		return -ENOMEM;
	}
	errno = 0;
	n = fread(b, 1, SCEN_FILE_MAX + 1, f);
	if (ferror(f)) {
		ret = errno ? -errno : -EIO;
		msg(err, errlen, path, ": cannot read: %s", strerror(-ret));
		goto fail;
	}
	if (n > SCEN_FILE_MAX) {
		ret = -EFBIG;
		msg(err, errlen, path, ": larger than %u bytes: not a scenario?",
		    SCEN_FILE_MAX);
		goto fail;
	}
	fclose(f);
	*buf = b;
	*len = n;
	return 0;
fail:
	fclose(f);
	free(b);
	return ret;
}

int frag_scenario_load(const char *name_or_path, struct frag_scenario *s,
		       char *err, size_t errlen)
{
	unsigned int key_line[NR_KEYS];
	struct frag_scenario tmp;
	const char *key = NULL;
	char list[128];
	size_t len = 0;
	char *buf = NULL;
	int idx, ret;

	if (errlen)
		err[0] = '\0';
	idx = preset_find(name_or_path);
	if (idx >= 0) {
		load_preset(idx, &tmp);
		*s = tmp;
		return 0;
	}

	ret = read_file(name_or_path, &buf, &len, err, errlen);
	if (ret == -ENOENT && !strchr(name_or_path, '/')) {
		preset_list(list, sizeof(list));
		msg(err, errlen, NULL, "'%s': neither a preset (%s) nor a file",
		    name_or_path, list);
	}
	if (ret)
		return ret;

	frag_scenario_defaults(&tmp);
	ret = parse_text(name_or_path, buf, len, true, &tmp, key_line, err,
			 errlen);
	free(buf);
	if (ret)
		return ret;

	if (check(&tmp, &key, list, sizeof(list))) {
		const struct key *k = key ? key_find(key) : NULL;
		unsigned int l = k ? key_line[k - keys] : 0;

		if (l)
			msg(err, errlen, name_or_path, ":%u: %s", l, list);
		else
			msg(err, errlen, name_or_path, ": %s", list);
		return -EINVAL;
	}
	*s = tmp;
	return 0;
}

int frag_scenario_set(struct frag_scenario *s, const char *key,
		      const char *value, char *err, size_t errlen)
{
	struct frag_scenario tmp = *s;
	const struct key *k = key_find(key);
	char v[SCEN_LINE_MAX + 1];

	if (!k) {
		if (!strcmp(key, "preset"))
			msg(err, errlen, NULL, "'preset' is for the first line "
			    "of a scenario file, not for --set");
		else
			msg(err, errlen, NULL, "unknown key '%.*s' (see "
			    "docs/scenarios.md)", SCEN_VAL_SHOW, key);
		return -EINVAL;
	}
	/* the same blanks as in a file; no comments or quotes needed here */
	if (strlen(value) > SCEN_LINE_MAX) {
		msg(err, errlen, NULL, "value for %s longer than %u characters",
		    k->name, SCEN_LINE_MAX);
		return -EINVAL;
	}
	strcpy(v, value);
	if (set_value(&tmp, k, trim(v))) {
		msg(err, errlen, NULL, "bad value '%.*s%s' for %s: %s",
		    SCEN_VAL_SHOW, value,
		    strlen(value) > SCEN_VAL_SHOW ? "..." : "",
		    k->name, type_help[k->type]);
		return -EINVAL;
	}
	*s = tmp;
	return 0;
}

/* ---- the writer --------------------------------------------------------- */

/* Text as is when it reads back the same, else in double quotes. */
static void write_text(FILE *f, const char *v)
{
	size_t n = strlen(v);

	if (n && !strpbrk(v, "#\"\\") && v[0] != ' ' && v[0] != '\t' &&
	    v[n - 1] != ' ' && v[n - 1] != '\t') {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('"', f);
}

void frag_scenario_write(const struct frag_scenario *s, FILE *f)
{
	fprintf(f, "# iommig-bench frag scenario (docs/scenarios.md)\n");
	for (size_t i = 0; i < NR_KEYS; i++) {
		const struct key *k = &keys[i];
		const char *field = (const char *)s + k->off;
		char buf[64];
		uint64_t u;
		unsigned int x;
		double d;
		bool b;

		if (k->section)
			fprintf(f, "\n# %s\n", k->section);
		fprintf(f, "%-20s = ", k->name);
		switch (k->type) {
		case K_NAME:
		case K_TEXT:
			write_text(f, field);
			break;
		case K_SIZE:
			memcpy(&u, field, sizeof(u));
			fmt_size(buf, sizeof(buf), u);
			fputs(buf, f);
			break;
		case K_FRAC:
			memcpy(&d, field, sizeof(d));
			fmt_frac(buf, sizeof(buf), d);
			fputs(buf, f);
			break;
		case K_UINT:
			memcpy(&x, field, sizeof(x));
			fprintf(f, "%u", x);
			break;
		case K_U64:
			memcpy(&u, field, sizeof(u));
			fprintf(f, "%llu", (unsigned long long)u);
			break;
		case K_BOOL:
			memcpy(&b, field, sizeof(b));
			fputs(b ? "yes" : "no", f);
			break;
		case K_ORDERS:
			for (unsigned int o = 0; o < s->nr_orders &&
			     o < FRAG_MAX_ORDERS; o++)
				fprintf(f, "%s%u", o ? "," : "", s->orders[o]);
			break;
		case K_MOMENTS: {
			bool first = true;

			for (int m = 0; m < FRAG_NR_MOMENTS; m++) {
				if (!(s->memmap_at & (1u << m)))
					continue;
				fprintf(f, "%s%s", first ? "" : ",",
					frag_moment_name(m));
				first = false;
			}
			if (first)
				fputs("none", f);
			break;
		}
		}
		fputc('\n', f);
	}
}
