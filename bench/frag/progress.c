/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench frag - the progress bar on stderr while a run goes:
 *   label [##########..........]  42%  ETA 12s
 * one line redrawn in place with '\r', at most every 100 ms and not in the
 * first second (short runs draw nothing), only when stderr is a terminal
 * and --quiet is not given, so that logs and pipes never see it. The ETA
 * is the elapsed time scaled by what is left, from CLOCK_MONOTONIC.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frag.h"

#define NSEC_PER_SEC	1000000000ULL
#define DELAY_NS	NSEC_PER_SEC			/* nothing drawn before */
#define REDRAW_NS	(100 * 1000000ULL)		/* between draws */
#define BAR_W		20
#define LABEL_SHOWN	39	/* label chars drawn: the line fits 80 columns */
#define ETA_W		6	/* "59m59s", "99h59m", "--" padded */

/*
 * The line is "%s [%s] %3d%%  ETA %-6s": label, then a fixed width, so
 * that done() knows how much to clear without keeping it.
 */
#define LINE_FIXED	(2 + BAR_W + 2 + 4 + 6 + ETA_W)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static size_t label_len(const struct frag_progress *p)
{
	size_t len = strlen(p->label);

	return len < LABEL_SHOWN ? len : LABEL_SHOWN;
}

/**
 * frag_progress_init() - set up a progress bar; nothing is drawn yet.
 * @p: the bar
 * @quiet: never draw
 * @label: what runs, shown before the bar (cut to 39 characters); may be NULL
 *
 * Context: the thread that will call frag_progress_update().
 */
void frag_progress_init(struct frag_progress *p, bool quiet, const char *label)
{
	memset(p, 0, sizeof(*p));
	p->enabled = !quiet && isatty(STDERR_FILENO);
	p->t0_ns = now_ns();
	/* a control character in the label would break the line in place */
	for (size_t i = 0; label && label[i] && i < sizeof(p->label) - 1; i++)
		p->label[i] = (unsigned char)label[i] < ' ' ? ' ' : label[i];
}

static void format_eta(char *buf, size_t len, double secs)
{
	unsigned int s;

	if (!(secs >= 0) || secs > 99.0 * 3600) {	/* also NaN */
		snprintf(buf, len, "--");
		return;
	}
	s = (unsigned int)(secs + 0.5);
	if (s < 100)
		snprintf(buf, len, "%us", s);
	else if (s < 3600)
		snprintf(buf, len, "%um%02us", s / 60, s % 60);
	else
		snprintf(buf, len, "%uh%02um", s / 3600, s / 60 % 60);
}

/**
 * frag_progress_update() - frag_progress_fn: @done of @total units are done.
 * @priv: the struct frag_progress
 * @done: work done so far; clamped to 0..@total
 * @total: all the work; 0 (or less) draws an empty bar with no ETA
 *
 * Redraws the line if it is due (at most every 100 ms, not in the first
 * second after init).
 * Context: the thread that called frag_progress_init().
 */
void frag_progress_update(void *priv, double done, double total)
{
	struct frag_progress *p = priv;
	char bar[BAR_W + 1], eta[32];
	double frac = 0, elapsed;
	uint64_t now;
	int fill;

	if (!p || !p->enabled)
		return;
	now = now_ns();
	if (now - p->t0_ns < DELAY_NS)
		return;
	if (p->shown && now - p->last_ns < REDRAW_NS)
		return;

	if (total > 0 && done > 0)
		frac = done >= total ? 1.0 : done / total;	/* NaN -> 0 */
	if (!(frac >= 0))
		frac = 0;
	elapsed = (double)(now - p->t0_ns) / NSEC_PER_SEC;
	if (frac >= 1)
		format_eta(eta, sizeof(eta), 0);
	else if (frac > 0.001)
		format_eta(eta, sizeof(eta), elapsed * (1 - frac) / frac);
	else
		format_eta(eta, sizeof(eta), -1);

	fill = (int)(frac * BAR_W);
	memset(bar, '#', fill);
	memset(bar + fill, '.', BAR_W - fill);
	bar[BAR_W] = '\0';

	fprintf(stderr, "\r%.*s [%s] %3d%%  ETA %-*s", (int)label_len(p),
		p->label, bar, (int)(frac * 100), ETA_W, eta);
	fflush(stderr);
	p->shown = true;
	p->last_ns = now;
}

/**
 * frag_progress_done() - clear the line if one was drawn.
 * @p: the bar; may be updated no more
 *
 * Context: the thread that called frag_progress_init().
 */
void frag_progress_done(struct frag_progress *p)
{
	size_t len;

	if (!p || !p->shown)
		return;
	len = label_len(p) + LINE_FIXED;
	fprintf(stderr, "\r%*s\r", (int)len, "");
	fflush(stderr);
	p->shown = false;
	p->enabled = false;
}
