/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench frag - the fragmentation benchmark: one seeded workload
 * (processes, page cache, kernel allocations, DMA buffers of devices that
 * keep writing to them, long-term pins, a stream of high-order and CMA
 * allocations) run on identical simulated machines in several modes, side
 * by side: no DMA (the ideal), legacy DMA, IOMAP, IOMAP + non-blocking
 * migration; with or without compaction. Modelled on mmtests'
 * stress-highalloc: allocations of orders 4, 9 and 10 asked for at a paced
 * rate under load, and again at rest once the load is gone.
 *
 * Files:
 *   frag.c      command line, the run loop over modes, the results folder
 *   scenario.c  scenario files (key = value) and the built-in presets
 *   workload.c  the workload generator and what one run measures
 *   report.c    text summary, JSON and CSV
 *   png.c       a PNG writer (stored deflate: no zlib needed)
 *   memmap.c    the pageblock map of physical memory, as PNG
 *   plot.c      gnuplot scripts of the time series, run when gnuplot is there
 *   progress.c  the progress bar on stderr
 */
#ifndef IOMMIG_BENCH_FRAG_H
#define IOMMIG_BENCH_FRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <iommig/iommig.h>

/* iommig-bench frag: argv[0] is "frag". Return: the exit status. */
int frag_main(int argc, char **argv);

/* ---- scenarios (scenario.c) -------------------------------------------- */

#define FRAG_NAME_MAX		64
#define FRAG_MAX_ORDERS		4	/* high orders asked for: at most 4 */
#define FRAG_MAX_MOMENTS	8	/* memory maps taken: at most 8 moments */

/* The moments a memory map can be taken at (scenario key memmap_at). */
enum frag_moment {
	FRAG_AT_FILLED,		/* the workload has reached its occupancy */
	FRAG_AT_LOAD_END,	/* last step under load */
	FRAG_AT_REST,		/* the load is gone, before compaction at rest */
	FRAG_AT_REST_COMPACTED,	/* at rest, after compaction (if enabled) */
	FRAG_NR_MOMENTS,
};

/*
 * A scenario: the machine and the workload. Shares are fractions of the
 * machine's memory (0..1); churns are fractions of a kind's pages replaced
 * each step; sizes are bytes. Every field has a key of the same name in a
 * scenario file (docs/scenarios.md).
 */
struct frag_scenario {
	char name[FRAG_NAME_MAX];
	char description[256];

	/* the machine */
	uint64_t mem;			/* simulated memory */
	uint64_t cma_size;		/* one CMA area of this size; 0: none */
	unsigned int steps;		/* steps under load (--duration) */
	unsigned int sample_every;	/* steps between time-series samples */
	uint64_t seed;			/* default seed (--seed overrides) */
	unsigned int compaction_proactiveness;	/* vm.compaction_proactiveness, 0..100 */

	/* movable anonymous memory of processes */
	unsigned int processes;
	double anon_share;
	double anon_churn;
	uint64_t anon_region_min, anon_region_max;	/* one mmap */

	/* page-cache files */
	double file_share;
	double file_churn;
	uint64_t file_size_min, file_size_max;

	/* unmovable kernel allocations (slab-like, page tables) */
	double unmovable_share;
	double unmovable_churn;
	double unmovable_longlived;	/* share that is never freed */
	unsigned int unmovable_max_order;	/* orders 0..this */
	double reclaimable_share;	/* GFP_KERNEL_RECLAIMABLE, same churn */

	/* coherent DMA buffers of devices that keep writing to them */
	unsigned int dma_devices;
	double dma_share;
	double dma_churn;
	double dma_longlived;		/* share of buffers never freed */
	uint64_t dma_size_min, dma_size_max;	/* 64K..4M: powers of 2 */
	unsigned int device_threads;	/* threads writing; 0: none */
	/*
	 * I/O bursts: the DMA target swings between (1 - dma_burst) and
	 * (1 + dma_burst) times dma_share, a period every dma_burst_period
	 * steps (0: steady).
	 */
	double dma_burst;
	unsigned int dma_burst_period;
	/*
	 * The buffers come once the other kinds have filled memory (a driver
	 * loaded on a busy machine): they take the holes the churn leaves.
	 */
	bool dma_late;
	/*
	 * seed 000's picture: before the late buffers come, a process fills
	 * every free page and unmaps single pages at random, as many as the
	 * buffers need: the buffers can only take those holes, one page here
	 * and one there (the process exits at rest). Needs dma_late.
	 */
	bool dma_into_holes;

	/* VFIO-style long-term pins of a guest's RAM (seed 002) */
	double pin_share;
	uint64_t pin_chunk;		/* bytes pinned a call */
	bool pin_in_cma;		/* the guest's RAM is allocated into CMA */

	/* the high-order allocation stream (stress-highalloc) */
	unsigned int orders[FRAG_MAX_ORDERS];
	unsigned int nr_orders;
	double highalloc_share;		/* memory sought under load, each order */
	unsigned int highalloc_per_step;	/* attempts a step under load */
	double rest_share;		/* memory sought at rest, each order */

	/* CMA allocations (cma_alloc of the whole chunk) */
	uint64_t cma_alloc_size;
	unsigned int cma_allocs_per_step;	/* under load, every 10th step */
	unsigned int cma_allocs_at_rest;

	/* when memory maps are taken: bit (1 << enum frag_moment) */
	unsigned int memmap_at;
};

/* The built-in presets, in the order --help lists them. */
extern const char *const frag_preset_names[];

/*
 * frag_scenario_defaults() - the defaults every scenario starts from (the
 * seed000 preset's values).
 */
void frag_scenario_defaults(struct frag_scenario *s);

/*
 * frag_scenario_load() - @name_or_path is a preset's name or a file. A
 * file is parsed over the defaults; "preset = NAME" on its first line
 * starts from that preset instead.
 * Return: 0; -errno with a message in @err ("FILE:LINE: reason") for an
 * unknown preset, an unreadable file, an unknown key, a bad value, a value
 * out of range or an inconsistent scenario (shares over 1, ...).
 */
int frag_scenario_load(const char *name_or_path, struct frag_scenario *s,
		       char *err, size_t errlen);

/* frag_scenario_set() - one "key = value" (as --set KEY=VALUE does). */
int frag_scenario_set(struct frag_scenario *s, const char *key,
		      const char *value, char *err, size_t errlen);

/* frag_scenario_check() - the whole scenario is consistent. */
int frag_scenario_check(const struct frag_scenario *s, char *err, size_t errlen);

/* frag_scenario_write() - the scenario as a file that loads back the same. */
void frag_scenario_write(const struct frag_scenario *s, FILE *f);

/* "1G", "512M", "64K", "4096": bytes. Return: 0 or -EINVAL. */
int frag_parse_size(const char *s, uint64_t *out);

/* ---- modes ------------------------------------------------------------- */

enum frag_dma_mode {
	FRAG_NODMA,		/* no DMA buffers and no pins: the ideal */
	FRAG_LEGACY,		/* 2013: unmovable DMA pages, pins without FOLL_LONGTERM */
	FRAG_IOMAP,		/* seed 000: movable DMA pages (PER_PAGE), FOLL_LONGTERM pins */
	FRAG_IOMAP_NONBLOCK,	/* IOMAP with non-blocking migration */
	FRAG_NR_DMA_MODES,
};

struct frag_mode {
	enum frag_dma_mode dma;
	bool compaction;	/* direct compaction, kcompactd, compact at rest */
};

/* "iomap-nonblock", or with "+nocompact" when compaction is off. */
void frag_mode_name(const struct frag_mode *mode, char *buf, size_t len);
const char *frag_dma_mode_name(enum frag_dma_mode dma);

/* ---- what a run measures (workload.c) --------------------------------- */

/* One success count: attempts made and how many succeeded. */
struct frag_count {
	unsigned long attempts, successes;
};

/* Migratetype/use of one pageblock, as the memory map colours it. */
enum frag_block_class {
	FRAG_BLK_FREE,		/* every page free */
	FRAG_BLK_MOVABLE,	/* movable pageblock, only movable pages used */
	FRAG_BLK_RECLAIMABLE,	/* holds reclaimable pages, no unmovable */
	FRAG_BLK_UNMOVABLE,	/* holds unmovable kernel pages */
	FRAG_BLK_DMA_LEGACY,	/* holds legacy (unmovable) DMA pages */
	FRAG_BLK_DMA_MOVABLE,	/* holds movable DMA (IOMAP) pages, nothing unmovable */
	FRAG_BLK_PINNED,	/* holds long-term pinned pages, nothing unmovable */
	FRAG_BLK_CMA_FREE,	/* CMA pageblock, every page free */
	FRAG_BLK_CMA_USED,	/* CMA pageblock with pages in use */
	FRAG_BLK_HIGHALLOC,	/* held by a successful high-order allocation */
	FRAG_NR_BLOCK_CLASSES,
};

/* A memory map: one class per pageblock, in pfn order. */
struct frag_memmap {
	unsigned long nr_blocks;
	unsigned int pageblock_order;
	uint8_t *cls;			/* enum frag_block_class, nr_blocks of them */
	enum frag_moment moment;
};

/* One sample of the time series. */
#define FRAG_SERIES_ORDERS	11	/* indices of orders 0..10 */
struct frag_sample {
	unsigned int step;
	int phase;			/* 0 fill, 1 load, 2 rest */
	double t_wall;			/* seconds since the run started */
	unsigned long free_pages;
	unsigned long used_anon, used_file, used_unmovable, used_dma, used_pinned;
	int unusable[FRAG_SERIES_ORDERS];	/* per mille, iom_unusable_free_index */
	int extfrag[FRAG_SERIES_ORDERS];	/* per mille, -1000 where none */
	unsigned long unmovable_blocks;	/* pageblocks holding unmovable pages */
	unsigned long mixed_blocks;	/* movable pageblocks with unmovable pages */
	/* cumulative: high-order attempts and successes, per scenario order */
	struct frag_count high[FRAG_MAX_ORDERS];
	unsigned long compact_migrate_scanned, compact_free_scanned;
	unsigned long compact_stall, compact_fail, compact_success;
	unsigned long pgmigrate_success, pgmigrate_fail;
};

/* Device-side latency of DMA writes: a log2 histogram. */
#define FRAG_LAT_BUCKETS	40
struct frag_latency {
	unsigned long long n;
	unsigned long long bucket[FRAG_LAT_BUCKETS];	/* [i]: < 2^i ns */
	uint64_t max_ns;
	unsigned long long lost_writes;	/* stamped writes not found: must be 0 */
};

struct frag_result {
	struct frag_mode mode;
	char mode_name[48];

	/* success per scenario order: under load, at rest */
	struct frag_count load[FRAG_MAX_ORDERS];
	struct frag_count rest[FRAG_MAX_ORDERS];
	struct frag_count cma_load, cma_rest;
	unsigned long cma_busy;		/* alloc_contig_range "PFNs busy" */

	/* compaction effort over the whole run (vm events) */
	unsigned long compact_migrate_scanned, compact_free_scanned;
	unsigned long compact_isolated, compact_stall, compact_fail;
	unsigned long compact_success, kcompactd_wake;
	unsigned long pgmigrate_success, pgmigrate_fail;

	/* pageblocks holding unmovable pages: end of load, at rest */
	unsigned long unmovable_blocks_load, unmovable_blocks_rest;
	unsigned long nr_blocks;
	/* pages of each kind at the end of the load */
	unsigned long pages_unmovable, pages_dma, pages_pinned;
	unsigned long dma_alloc_fail;	/* DMA buffers that could not be had */
	unsigned long dma_buffers;	/* allocated over the run */

	struct frag_latency lat;	/* device writes */

	/* the simulator's own cost */
	double wall_s;
	double cpu_s;
	uint64_t metadata_bytes;	/* iom_machine_memcost: metadata */
	uint64_t peak_rss_bytes;

	/* time series */
	struct frag_sample *samples;
	unsigned int nr_samples;

	/* memory maps at the scenario's moments */
	struct frag_memmap maps[FRAG_NR_MOMENTS];
	bool have_map[FRAG_NR_MOMENTS];
};

/* Called by frag_run() as it goes: done out of total units of work. */
typedef void (*frag_progress_fn)(void *priv, double done, double total);

/*
 * frag_run() - run the scenario in one mode with @seed.
 * Return: 0 and *@r (free with frag_result_free()); -errno after printing
 * why on stderr.
 */
int frag_run(const struct frag_scenario *s, const struct frag_mode *mode,
	     uint64_t seed, frag_progress_fn progress, void *progress_priv,
	     struct frag_result *r);

/*
 * frag_set_trace() - record the machine's trace events of the next
 * frag_run() calls into a ring of @events (0: none) and export the ring
 * (the last @events of the run) as Chrome/Perfetto JSON to @path at the
 * end of each run (frag.c sets a path per mode).
 */
void frag_set_trace(size_t events, const char *path);
void frag_result_free(struct frag_result *r);

/* p in 0..1 of the device-write latency, in ns (bucket upper bound). */
uint64_t frag_latency_quantile(const struct frag_latency *l, double p);
const char *frag_moment_name(enum frag_moment m);
const char *frag_block_class_name(enum frag_block_class c);

/* ---- reports (report.c) ------------------------------------------------ */

/* The summary table of every mode, side by side. */
void frag_report_text(FILE *f, const struct frag_scenario *s, uint64_t seed,
		      const struct frag_result *r, unsigned int n);
/* One JSON object per line: one per mode and metric, bench "frag". */
void frag_report_json(FILE *f, const struct frag_scenario *s, uint64_t seed,
		      const struct frag_result *r, unsigned int n);
/* The time series of one run: CSV, and JSON. Return: 0 or -errno. */
int frag_write_series_csv(const char *path, const struct frag_scenario *s,
			  const struct frag_result *r);
int frag_write_series_json(const char *path, const struct frag_scenario *s,
			   const struct frag_result *r);

/* ---- pictures ---------------------------------------------------------- */

/*
 * frag_png_write() - an 8-bit RGB PNG of @w x @h pixels, rows top down,
 * 3 bytes a pixel. Return: 0 or -errno.
 */
int frag_png_write(const char *path, unsigned int w, unsigned int h,
		   const uint8_t *rgb);

/*
 * frag_memmap_write_png() - @n memory maps (1 or 2) beside each other, with
 * a legend, each titled by @titles[i]: one cell per pageblock coloured by
 * enum frag_block_class. Return: 0 or -errno.
 */
int frag_memmap_write_png(const char *path, const struct frag_memmap *const *maps,
			  const char *const *titles, unsigned int n);

/*
 * frag_plot_write() - plots.gp in @dir, plotting the series.csv of each run
 * (@run_dirs[i], relative to @dir, labelled @labels[i]) together, and when
 * gnuplot is installed, runs it to make the PNGs. *@ran tells whether it
 * ran. Return: 0 or -errno (gnuplot missing is not an error).
 */
int frag_plot_write(const char *dir, const char *const *run_dirs,
		    const char *const *labels, unsigned int n,
		    const struct frag_scenario *s, bool *ran);

/* ---- progress bar (progress.c) ----------------------------------------- */

struct frag_progress {
	bool enabled;		/* stderr is a terminal and not --quiet */
	bool shown;		/* drawn at least once */
	uint64_t t0_ns;		/* start; nothing is drawn for the first second */
	uint64_t last_ns;	/* last draw */
	char label[64];
};

void frag_progress_init(struct frag_progress *p, bool quiet, const char *label);
/* frag_progress_fn for frag_run(). */
void frag_progress_update(void *priv, double done, double total);
/* Clears the line if one was drawn. */
void frag_progress_done(struct frag_progress *p);

#endif /* IOMMIG_BENCH_FRAG_H */
