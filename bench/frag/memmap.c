/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench frag - the pageblock map of physical memory as a PNG, the
 * picture of fragmentation: one square cell per pageblock, in pfn order,
 * left to right and top down, coloured by enum frag_block_class; one or two
 * maps side by side (e.g. the same moment of two modes), each under its
 * title, with memory offsets down the left side and a legend of every
 * class below. Text uses a small built-in 5x8 bitmap font (drawn at 2x),
 * so nothing but libc is needed.
 *
 * Conventions in this file: @img is the picture being drawn, (@x, @y) a
 * pixel of it, top left is (0, 0); a "cell" is the square of one pageblock
 * (or, for huge maps, of @per_cell pageblocks).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frag.h"

/* ---- the font ----------------------------------------------------------- */

/*
 * 5 columns x 8 rows a glyph, printable ASCII 32..126: rows 0..6 hold
 * capitals and digits, lowercase letters have their x-height at rows 2..6,
 * row 7 is for descenders. '#' is ink.
 */
#define GLYPH_W		5
#define GLYPH_H		8
#define FONT_SCALE	2
#define CHAR_W		((GLYPH_W + 1) * FONT_SCALE)	/* advance: 12 px */
#define CHAR_H		(GLYPH_H * FONT_SCALE)		/* 16 px */
#define LINE_H		(CHAR_H + 4)

static const char *const font[95][GLYPH_H] = {
	[' ' - 32] = { ".....", ".....", ".....", ".....", ".....", ".....", ".....", "....." },
	['!' - 32] = { "..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#..", "....." },
	['"' - 32] = { ".#.#.", ".#.#.", ".....", ".....", ".....", ".....", ".....", "....." },
	['#' - 32] = { ".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#.", "....." },
	['$' - 32] = { "..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#..", "....." },
	['%' - 32] = { "##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##", "....." },
	['&' - 32] = { ".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#", "....." },
	['\'' - 32] = { "..#..", "..#..", ".....", ".....", ".....", ".....", ".....", "....." },
	['(' - 32] = { "...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#.", "....." },
	[')' - 32] = { ".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#...", "....." },
	['*' - 32] = { ".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", ".....", "....." },
	['+' - 32] = { ".....", "..#..", "..#..", "#####", "..#..", "..#..", ".....", "....." },
	[',' - 32] = { ".....", ".....", ".....", ".....", ".....", ".##..", "..#..", ".#..." },
	['-' - 32] = { ".....", ".....", ".....", "#####", ".....", ".....", ".....", "....." },
	['.' - 32] = { ".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "....." },
	['/' - 32] = { ".....", "....#", "...#.", "..#..", ".#...", "#....", ".....", "....." },
	['0' - 32] = { ".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.", "....." },
	['1' - 32] = { "..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.", "....." },
	['2' - 32] = { ".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####", "....." },
	['3' - 32] = { "#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.", "....." },
	['4' - 32] = { "...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.", "....." },
	['5' - 32] = { "#####", "#....", "####.", "....#", "....#", "#...#", ".###.", "....." },
	['6' - 32] = { "..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.", "....." },
	['7' - 32] = { "#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...", "....." },
	['8' - 32] = { ".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.", "....." },
	['9' - 32] = { ".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..", "....." },
	[':' - 32] = { ".....", ".##..", ".##..", ".....", ".##..", ".##..", ".....", "....." },
	[';' - 32] = { ".....", ".##..", ".##..", ".....", ".##..", ".##..", "..#..", ".#..." },
	['<' - 32] = { "...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#.", "....." },
	['=' - 32] = { ".....", ".....", "#####", ".....", "#####", ".....", ".....", "....." },
	['>' - 32] = { ".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#...", "....." },
	['?' - 32] = { ".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#..", "....." },
	['@' - 32] = { ".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###.", "....." },
	['A' - 32] = { ".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....." },
	['B' - 32] = { "####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.", "....." },
	['C' - 32] = { ".###.", "#...#", "#....", "#....", "#....", "#...#", ".###.", "....." },
	['D' - 32] = { "###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###..", "....." },
	['E' - 32] = { "#####", "#....", "#....", "####.", "#....", "#....", "#####", "....." },
	['F' - 32] = { "#####", "#....", "#....", "####.", "#....", "#....", "#....", "....." },
	['G' - 32] = { ".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####", "....." },
	['H' - 32] = { "#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....." },
	['I' - 32] = { ".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....." },
	['J' - 32] = { "..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..", "....." },
	['K' - 32] = { "#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#", "....." },
	['L' - 32] = { "#....", "#....", "#....", "#....", "#....", "#....", "#####", "....." },
	['M' - 32] = { "#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#", "....." },
	['N' - 32] = { "#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "....." },
	['O' - 32] = { ".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", "....." },
	['P' - 32] = { "####.", "#...#", "#...#", "####.", "#....", "#....", "#....", "....." },
	['Q' - 32] = { ".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#", "....." },
	['R' - 32] = { "####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#", "....." },
	['S' - 32] = { ".####", "#....", "#....", ".###.", "....#", "....#", "####.", "....." },
	['T' - 32] = { "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "....." },
	['U' - 32] = { "#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", "....." },
	['V' - 32] = { "#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....." },
	['W' - 32] = { "#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#.", "....." },
	['X' - 32] = { "#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#", "....." },
	['Y' - 32] = { "#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..", "....." },
	['Z' - 32] = { "#####", "....#", "...#.", "..#..", ".#...", "#....", "#####", "....." },
	['[' - 32] = { ".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###.", "....." },
	['\\' - 32] = { ".....", "#....", ".#...", "..#..", "...#.", "....#", ".....", "....." },
	[']' - 32] = { ".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###.", "....." },
	['^' - 32] = { "..#..", ".#.#.", "#...#", ".....", ".....", ".....", ".....", "....." },
	['_' - 32] = { ".....", ".....", ".....", ".....", ".....", ".....", ".....", "#####" },
	['`' - 32] = { ".#...", "..#..", ".....", ".....", ".....", ".....", ".....", "....." },
	['a' - 32] = { ".....", ".....", ".###.", "....#", ".####", "#...#", ".####", "....." },
	['b' - 32] = { "#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####.", "....." },
	['c' - 32] = { ".....", ".....", ".###.", "#....", "#....", "#...#", ".###.", "....." },
	['d' - 32] = { "....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####", "....." },
	['e' - 32] = { ".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", "....." },
	['f' - 32] = { "..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...", "....." },
	['g' - 32] = { ".....", ".....", ".####", "#...#", "#...#", ".####", "....#", ".###." },
	['h' - 32] = { "#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....." },
	['i' - 32] = { "..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", "....." },
	['j' - 32] = { "...#.", ".....", "..##.", "...#.", "...#.", "...#.", "#..#.", ".##.." },
	['k' - 32] = { "#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "....." },
	['l' - 32] = { ".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....." },
	['m' - 32] = { ".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#", "....." },
	['n' - 32] = { ".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....." },
	['o' - 32] = { ".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", "....." },
	['p' - 32] = { ".....", ".....", "####.", "#...#", "#...#", "####.", "#....", "#...." },
	['q' - 32] = { ".....", ".....", ".####", "#...#", "#...#", ".####", "....#", "....#" },
	['r' - 32] = { ".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", "....." },
	['s' - 32] = { ".....", ".....", ".####", "#....", ".###.", "....#", "####.", "....." },
	['t' - 32] = { ".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.", "....." },
	['u' - 32] = { ".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", "....." },
	['v' - 32] = { ".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....." },
	['w' - 32] = { ".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.", "....." },
	['x' - 32] = { ".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "....." },
	['y' - 32] = { ".....", ".....", "#...#", "#...#", "#...#", ".####", "....#", ".###." },
	['z' - 32] = { ".....", ".....", "#####", "...#.", "..#..", ".#...", "#####", "....." },
	['{' - 32] = { "...#.", "..#..", "..#..", ".#...", "..#..", "..#..", "...#.", "....." },
	['|' - 32] = { "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "....." },
	['}' - 32] = { ".#...", "..#..", "..#..", "...#.", "..#..", "..#..", ".#...", "....." },
	['~' - 32] = { ".....", ".....", ".#...", "#.#.#", "...#.", ".....", ".....", "....." },
};

/* ---- colours ------------------------------------------------------------ */

struct rgb {
	uint8_t r, g, b;
};

static const struct rgb class_rgb[FRAG_NR_BLOCK_CLASSES] = {
	[FRAG_BLK_FREE]		= { 240, 240, 240 },	/* white-ish */
	[FRAG_BLK_MOVABLE]	= { 140, 215, 130 },	/* light green */
	[FRAG_BLK_RECLAIMABLE]	= { 110, 200, 205 },	/* teal */
	[FRAG_BLK_UNMOVABLE]	= { 225,  35,  35 },	/* red */
	[FRAG_BLK_DMA_LEGACY]	= { 140,   0,  90 },	/* dark magenta */
	[FRAG_BLK_DMA_MOVABLE]	= { 255, 150,  30 },	/* orange */
	[FRAG_BLK_PINNED]	= { 135,  80, 205 },	/* purple */
	[FRAG_BLK_CMA_FREE]	= { 255, 245, 165 },	/* light yellow */
	[FRAG_BLK_CMA_USED]	= { 170, 160,  30 },	/* olive */
	[FRAG_BLK_HIGHALLOC]	= {  40,  80, 220 },	/* blue */
};
static const struct rgb unknown_rgb = { 128, 128, 128 };
static const struct rgb bg_rgb = { 255, 255, 255 };
static const struct rgb ink_rgb = { 20, 20, 20 };
static const struct rgb gap_rgb = { 205, 205, 205 };	/* grid between cells */
static const struct rgb frame_rgb = { 90, 90, 90 };

static const char *const class_names[FRAG_NR_BLOCK_CLASSES] = {
	[FRAG_BLK_FREE]		= "free",
	[FRAG_BLK_MOVABLE]	= "movable",
	[FRAG_BLK_RECLAIMABLE]	= "reclaimable",
	[FRAG_BLK_UNMOVABLE]	= "unmovable",
	[FRAG_BLK_DMA_LEGACY]	= "dma-legacy",
	[FRAG_BLK_DMA_MOVABLE]	= "dma-movable",
	[FRAG_BLK_PINNED]	= "pinned",
	[FRAG_BLK_CMA_FREE]	= "cma-free",
	[FRAG_BLK_CMA_USED]	= "cma-used",
	[FRAG_BLK_HIGHALLOC]	= "highalloc",
};

/**
 * frag_block_class_name() - the short name of a pageblock class.
 * @c: the class
 *
 * Context: any.
 * Return: "free", "movable", ..., "highalloc"; "?" for a value out of range.
 */
const char *frag_block_class_name(enum frag_block_class c)
{
	if ((unsigned int)c >= FRAG_NR_BLOCK_CLASSES)
		return "?";
	return class_names[c];
}

/*
 * When a huge map is squeezed into fewer cells than it has pageblocks, a
 * cell shows the class that matters most for fragmentation among its
 * pageblocks: what cannot move beats what can, used beats free. Unknown
 * values beat everything, so that a bug shows.
 */
static int class_rank(uint8_t c)
{
	static const int rank[FRAG_NR_BLOCK_CLASSES] = {
		[FRAG_BLK_FREE]		= 0,
		[FRAG_BLK_CMA_FREE]	= 1,
		[FRAG_BLK_MOVABLE]	= 2,
		[FRAG_BLK_HIGHALLOC]	= 3,
		[FRAG_BLK_CMA_USED]	= 4,
		[FRAG_BLK_DMA_MOVABLE]	= 5,
		[FRAG_BLK_RECLAIMABLE]	= 6,
		[FRAG_BLK_PINNED]	= 7,
		[FRAG_BLK_DMA_LEGACY]	= 8,
		[FRAG_BLK_UNMOVABLE]	= 9,
	};

	return c < FRAG_NR_BLOCK_CLASSES ? rank[c] : 10;
}

static struct rgb class_colour(uint8_t c)
{
	return c < FRAG_NR_BLOCK_CLASSES ? class_rgb[c] : unknown_rgb;
}

/* ---- drawing ------------------------------------------------------------ */

struct img {
	unsigned int w, h;
	uint8_t *px;
};

static void fill_rect(struct img *img, long x, long y, long w, long h,
		      struct rgb c)
{
	/* clip: callers may draw text that runs past the edge */
	if (x < 0) {
		w += x;
		x = 0;
	}
	if (y < 0) {
		h += y;
		y = 0;
	}
	if (x + w > (long)img->w)
		w = (long)img->w - x;
	if (y + h > (long)img->h)
		h = (long)img->h - y;
	if (w <= 0 || h <= 0)
		return;
	for (long j = y; j < y + h; j++) {
		uint8_t *p = img->px + ((size_t)j * img->w + x) * 3;

		for (long i = 0; i < w; i++, p += 3) {
			p[0] = c.r;
			p[1] = c.g;
			p[2] = c.b;
		}
	}
}

/* A 1-pixel rectangle outline around (x, y, w, h), outside it. */
static void frame_rect(struct img *img, long x, long y, long w, long h,
		       struct rgb c)
{
	fill_rect(img, x - 1, y - 1, w + 2, 1, c);
	fill_rect(img, x - 1, y + h, w + 2, 1, c);
	fill_rect(img, x - 1, y, 1, h, c);
	fill_rect(img, x + w, y, 1, h, c);
}

static void draw_char(struct img *img, long x, long y, char ch, struct rgb c)
{
	unsigned char u = (unsigned char)ch;
	const char *const *g;

	if (u < 32 || u > 126)
		u = '?';	/* control characters, UTF-8 bytes */
	g = font[u - 32];
	for (int row = 0; row < GLYPH_H; row++)
		for (int col = 0; col < GLYPH_W; col++)
			if (g[row][col] == '#')
				fill_rect(img, x + col * FONT_SCALE,
					  y + row * FONT_SCALE,
					  FONT_SCALE, FONT_SCALE, c);
}

/* At most @max_chars of @s (max_chars < 0: all); ends in "..." if cut. */
static void draw_text(struct img *img, long x, long y, const char *s,
		      long max_chars, struct rgb c)
{
	long len = (long)strlen(s);
	bool cut = max_chars >= 0 && len > max_chars;
	long n = cut ? (max_chars > 3 ? max_chars - 3 : 0) : len;

	for (long i = 0; i < n; i++)
		draw_char(img, x + i * CHAR_W, y, s[i], c);
	if (cut)
		for (long i = n; i < max_chars; i++)
			draw_char(img, x + i * CHAR_W, y, '.', c);
}

/* "512K", "2M", "1.5G": @bytes with a binary unit. */
static void format_size(char *buf, size_t len, unsigned long long bytes)
{
	static const char units[] = "KMGTPE";
	unsigned long long div = 1;
	int u = -1;

	while (u < 5 && bytes >= div * 1024) {
		div *= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", bytes);
	else if (bytes % div == 0)
		snprintf(buf, len, "%llu%c", bytes / div, units[u]);
	else
		snprintf(buf, len, "%.1f%c", (double)bytes / (double)div,
			 units[u]);
}

/* ---- layout ------------------------------------------------------------- */

#define MARGIN		16
#define MAP_GAP		40	/* between two maps */
#define AXIS_CHARS	6	/* "1023G" and a space */
#define AXIS_W		(AXIS_CHARS * CHAR_W)
#define MAX_GRID_ROWS	4096
#define MAX_WIDTH	4096
#define SWATCH		CHAR_H
#define LEGEND_ENTRY_W	(SWATCH + 8 + 13 * CHAR_W)	/* "reclaimable" + gap */

/*
 * How the pageblocks are laid out, the same for both maps so that they
 * compare at a glance: cell size and cells a row follow the larger map.
 */
struct layout {
	unsigned int cols;		/* cells a row */
	unsigned int cell;		/* pixels a cell, gap included */
	bool gap;			/* 1 px grid line right/below each cell */
	unsigned long per_cell;		/* pageblocks a cell */
	unsigned int label_every;	/* grid rows between offset labels */
};

static void choose_layout(unsigned long nr_blocks, struct layout *l)
{
	unsigned long cells;

	l->per_cell = 1;
	l->gap = false;
	if (nr_blocks <= 16384) {
		l->cols = 128;
		l->cell = 6;
		l->gap = true;
	} else if (nr_blocks <= 65536) {
		l->cols = 256;
		l->cell = 3;
	} else if (nr_blocks <= 262144) {
		l->cols = 512;
		l->cell = 2;
	} else {
		l->cols = 1024;
		l->cell = 1;
		/* past 4M pageblocks (8T of 2M blocks) a cell holds several */
		cells = (unsigned long)l->cols * MAX_GRID_ROWS;
		l->per_cell = (nr_blocks + cells - 1) / cells;
	}
	/* offset labels at least 2 text lines apart, on a power of 2 of rows */
	l->label_every = 1;
	while (l->label_every * l->cell < 2 * LINE_H)
		l->label_every *= 2;
}

static unsigned long grid_cells(const struct frag_memmap *m,
				const struct layout *l)
{
	return (m->nr_blocks + l->per_cell - 1) / l->per_cell;
}

static unsigned int grid_w(const struct frag_memmap *m, const struct layout *l)
{
	unsigned long cells = grid_cells(m, l);

	return (cells < l->cols ? cells : l->cols) * l->cell;
}

static unsigned int grid_h(const struct frag_memmap *m, const struct layout *l)
{
	return ((grid_cells(m, l) + l->cols - 1) / l->cols) * l->cell;
}

static void draw_grid(struct img *img, long x0, long y0,
		      const struct frag_memmap *m, const struct layout *l,
		      bool *seen_unknown)
{
	unsigned long cells = grid_cells(m, l);
	unsigned int inner = l->gap ? l->cell - 1 : l->cell;
	unsigned long long block_bytes =
		(unsigned long long)IOM_PAGE_SIZE << m->pageblock_order;

	if (l->gap)
		fill_rect(img, x0, y0, grid_w(m, l), grid_h(m, l), gap_rgb);
	frame_rect(img, x0, y0, grid_w(m, l), grid_h(m, l), frame_rgb);

	for (unsigned long i = 0; i < cells; i++) {
		unsigned long first = i * l->per_cell;
		unsigned long end = first + l->per_cell;
		uint8_t c = m->cls[first];

		if (end > m->nr_blocks)
			end = m->nr_blocks;
		for (unsigned long b = first + 1; b < end; b++)
			if (class_rank(m->cls[b]) > class_rank(c))
				c = m->cls[b];
		if (c >= FRAG_NR_BLOCK_CLASSES)
			*seen_unknown = true;
		fill_rect(img, x0 + (long)(i % l->cols) * l->cell,
			  y0 + (long)(i / l->cols) * l->cell,
			  inner, inner, class_colour(c));
	}

	/* memory offset of each labelled row, right-aligned left of the grid */
	for (unsigned long row = 0; row * l->cols < cells;
	     row += l->label_every) {
		char buf[24];
		long len;

		format_size(buf, sizeof(buf), (unsigned long long)row *
			    l->cols * l->per_cell * block_bytes);
		len = (long)strlen(buf);
		if (len > AXIS_CHARS - 1)
			len = AXIS_CHARS - 1;
		draw_text(img, x0 - 4 - len * CHAR_W,
			  y0 + (long)row * l->cell, buf, AXIS_CHARS - 1,
			  ink_rgb);
	}
}

/**
 * frag_memmap_write_png() - draw one or two memory maps side by side.
 * @path: the PNG to write (replaced atomically)
 * @maps: @n maps; each needs cls non-NULL and nr_blocks > 0
 * @titles: a title above each map; NULL, or NULL entries, for none
 * @n: 1 or 2
 *
 * One cell per pageblock in pfn order, 128 cells a row with 6 px cells
 * (5 px and a 1 px grid) up to 16384 pageblocks, 256 a row of 3 px up to
 * 65536, 512 a row of 2 px up to 262144, then 1024 a row of 1 px; past
 * 4M pageblocks a cell stands for several and shows the most unmovable
 * class among them. Both maps use the layout of the larger one. Under each
 * title: the pageblock count and size; left of each map: the memory offset
 * of the row; below: the legend of every class (and "unknown", grey, when
 * a cell held a value out of range).
 *
 * Context: any thread.
 * Return: 0; -EINVAL for bad arguments; -ENOMEM; -EFBIG when the picture
 * would be too large to write; or frag_png_write()'s error.
 */
int frag_memmap_write_png(const char *path, const struct frag_memmap *const *maps,
			  const char *const *titles, unsigned int n)
{
	unsigned long max_blocks = 0;
	long panel_x[2], grid_y, legend_y, per_row, legend_rows, entries;
	unsigned int panel_w[2], gh = 0, W, H;
	bool seen_unknown = false;
	struct layout l;
	struct img img;
	long x;
	int ret;

	if (!path || !maps || (n != 1 && n != 2))
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		if (!maps[i] || !maps[i]->cls || !maps[i]->nr_blocks ||
		    maps[i]->pageblock_order > 30)
			return -EINVAL;
		if (maps[i]->nr_blocks > max_blocks)
			max_blocks = maps[i]->nr_blocks;
	}
	choose_layout(max_blocks, &l);

	/* the panels: offset axis, then the grid, at least as wide as a title */
	x = MARGIN;
	for (unsigned int i = 0; i < n; i++) {
		unsigned int w = grid_w(maps[i], &l);

		if (w < 24 * CHAR_W)
			w = 24 * CHAR_W;
		panel_x[i] = x + AXIS_W;
		panel_w[i] = w;
		x += AXIS_W + w + MAP_GAP;
		if (grid_h(maps[i], &l) > gh)
			gh = grid_h(maps[i], &l);
	}
	W = x - MAP_GAP + MARGIN;
	if (W > MAX_WIDTH)
		return -EFBIG;

	entries = FRAG_NR_BLOCK_CLASSES + 1;	/* room for "unknown" */
	per_row = (W - 2 * MARGIN) / LEGEND_ENTRY_W;
	if (per_row < 1)
		per_row = 1;
	legend_rows = (entries + per_row - 1) / per_row;

	grid_y = MARGIN + 2 * LINE_H + 6;	/* title, subtitle */
	legend_y = grid_y + gh + 16;
	H = legend_y + legend_rows * (LINE_H + 4) + MARGIN;
	if (H > 16384)
		return -EFBIG;

	img.w = W;
	img.h = H;
	img.px = malloc((size_t)W * H * 3);
	if (!img.px)
		return -ENOMEM;
	fill_rect(&img, 0, 0, W, H, bg_rgb);

	for (unsigned int i = 0; i < n; i++) {
		const struct frag_memmap *m = maps[i];
		char sub[96], bs[24];
		long chars = panel_w[i] / CHAR_W;

		if (titles && titles[i])
			draw_text(&img, panel_x[i], MARGIN, titles[i], chars,
				  ink_rgb);
		format_size(bs, sizeof(bs),
			    (unsigned long long)IOM_PAGE_SIZE << m->pageblock_order);
		if (l.per_cell > 1)
			snprintf(sub, sizeof(sub), "%lu blocks of %s, %lu a cell",
				 m->nr_blocks, bs, l.per_cell);
		else
			snprintf(sub, sizeof(sub), "%lu pageblocks of %s",
				 m->nr_blocks, bs);
		draw_text(&img, panel_x[i], MARGIN + LINE_H, sub, chars,
			  ink_rgb);
		draw_grid(&img, panel_x[i], grid_y, m, &l, &seen_unknown);
	}

	/* the legend: every class, in enum order, "unknown" only if seen */
	entries = FRAG_NR_BLOCK_CLASSES + (seen_unknown ? 1 : 0);
	for (long e = 0; e < entries; e++) {
		long ex = MARGIN + (e % per_row) * LEGEND_ENTRY_W;
		long ey = legend_y + (e / per_row) * (LINE_H + 4);
		bool known = e < FRAG_NR_BLOCK_CLASSES;

		fill_rect(&img, ex, ey, SWATCH, SWATCH,
			  known ? class_rgb[e] : unknown_rgb);
		frame_rect(&img, ex, ey, SWATCH, SWATCH, frame_rgb);
		draw_text(&img, ex + SWATCH + 6, ey,
			  known ? class_names[e] : "unknown", 12, ink_rgb);
	}

	ret = frag_png_write(path, W, H, img.px);
	free(img.px);
	return ret;
}
