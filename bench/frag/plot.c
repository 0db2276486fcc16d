/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench frag - plots of the time series: writes plots.gp, a gnuplot
 * script that draws the series.csv of every run of a results folder
 * together (one line a run), and runs gnuplot on it when gnuplot is
 * installed. The script stays behind, so the plots can be redrawn or
 * restyled later with `cd DIR && gnuplot plots.gp`.
 *
 * gnuplot stops at the first error and an empty data set or an all-NaN
 * autoscaled range is an error to it, so the script only plots the runs
 * whose series.csv has data rows and the columns the plot needs; runs and
 * plots left out are named in comments at the top of the script.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frag.h"

#define SERIES_NAME	"series.csv"
#define SCRIPT_NAME	"plots.gp"
#define LOG_NAME	"plots.log"
#define HEADER_MAX	8192	/* the CSV header line; ours is ~700 bytes */
#define MAX_ORDER_COL	10	/* columns unusable_o0 .. unusable_o10 */

/* What plots.gp needs to know of one run's series.csv. */
struct run_csv {
	char header[HEADER_MAX];	/* first line, "" if unreadable */
	bool has_rows;			/* at least one line after the header */
	bool assume_cols;		/* no data anywhere: plot it all anyway */
};

/* ---- reading the CSV headers ------------------------------------------- */

static void read_run_csv(const char *dir, const char *run_dir,
			 struct run_csv *rc)
{
	char path[PATH_MAX];
	FILE *f;
	int c, n;

	rc->header[0] = '\0';
	rc->has_rows = false;
	n = snprintf(path, sizeof(path), "%s/%s/%s", dir, run_dir, SERIES_NAME);
	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(rc->header, sizeof(rc->header), f)) {
		size_t len = strcspn(rc->header, "\r\n");

		/* a header longer than HEADER_MAX: what was read still counts */
		if (rc->header[len] == '\0')
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
		rc->header[len] = '\0';
		/* a data row: any line with something on it */
		while ((c = fgetc(f)) != EOF)
			if (c != '\n' && c != '\r' && c != ' ') {
				rc->has_rows = true;
				break;
			}
	}
	fclose(f);
}

static bool has_column(const struct run_csv *rc, const char *name)
{
	size_t len = strlen(name);
	const char *p = rc->header;

	while (*p) {
		size_t n = strcspn(p, ",");

		/* a field may be quoted or padded: compare what is inside */
		const char *s = p, *e = p + n;

		while (s < e && (*s == ' ' || *s == '"'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '"'))
			e--;
		if ((size_t)(e - s) == len && !memcmp(s, name, len))
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

/* ---- writing the script ------------------------------------------------- */

/* @s as a gnuplot single-quoted string: '' stands for ' inside. */
static void gp_str(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

/* One plot of what the script may show. */
struct plot_def {
	char png[48];		/* output file */
	char title[96];
	const char *ylabel;
	const char *yrange;	/* gnuplot range; fixed ranges survive all-NaN */
	char col1[32];		/* needed columns; col2 may be "" */
	char col2[32];
	char expr[160];		/* y of a row, a gnuplot expression */
};

struct plot_ctx {
	FILE *f;
	const char *const *run_dirs;
	const char *const *labels;
	const struct run_csv *csv;
	unsigned int n;
};

static bool run_fits(const struct plot_ctx *c, unsigned int i,
		     const struct plot_def *p)
{
	if (c->csv[i].assume_cols)
		return true;
	return c->csv[i].has_rows && has_column(&c->csv[i], "step") &&
	       has_column(&c->csv[i], p->col1) &&
	       (!p->col2[0] || has_column(&c->csv[i], p->col2));
}

static void emit_plot(const struct plot_ctx *c, const struct plot_def *p);

/* A count from 0 up: column @col into @col.png. */
static void emit_count_plot(const struct plot_ctx *c, const char *col,
			    const char *title, const char *ylabel)
{
	struct plot_def p;

	memset(&p, 0, sizeof(p));
	snprintf(p.png, sizeof(p.png), "%s.png", col);
	snprintf(p.title, sizeof(p.title), "%s", title);
	p.ylabel = ylabel;
	p.yrange = "[0:*]";
	snprintf(p.col1, sizeof(p.col1), "%s", col);
	snprintf(p.expr, sizeof(p.expr), "column('%s')", col);
	emit_plot(c, &p);
}

static void emit_plot(const struct plot_ctx *c, const struct plot_def *p)
{
	FILE *f = c->f;
	bool first = true;
	unsigned int fit = 0;

	for (unsigned int i = 0; i < c->n; i++)
		fit += run_fits(c, i, p);
	if (!fit) {
		fprintf(f, "# %s: no run has data in column %s%s%s: not drawn\n\n",
			p->png, p->col1, p->col2[0] ? " and " : "", p->col2);
		return;
	}

	fputs("set output ", f);
	gp_str(f, p->png);
	fputs("\nset title ", f);
	gp_str(f, p->title);
	fputs("\nset ylabel ", f);
	gp_str(f, p->ylabel);
	fprintf(f, "\nset yrange %s\nplot ", p->yrange);
	for (unsigned int i = 0; i < c->n; i++) {
		char file[PATH_MAX];

		if (!run_fits(c, i, p))
			continue;
		snprintf(file, sizeof(file), "%s/%s", c->run_dirs[i],
			 SERIES_NAME);
		if (!first)
			fputs(", \\\n     ", f);
		first = false;
		gp_str(f, file);
		fprintf(f, " using (column('step')):(%s) with lines lw 2 title ",
			p->expr);
		gp_str(f, c->labels[i]);
	}
	fputs("\n\n", f);
}

static void write_script(FILE *f, const char *const *run_dirs,
			 const char *const *labels, unsigned int n,
			 const struct frag_scenario *s, const struct run_csv *csv)
{
	struct plot_ctx c = {
		.f = f, .run_dirs = run_dirs, .labels = labels, .csv = csv,
		.n = n,
	};
	struct plot_def p;
	unsigned int ext_order = 9;
	bool have_ext = false;

	fputs("# Plots of the frag benchmark's time series, written by\n"
	      "# iommig-bench frag. Redraw with: cd THIS_FOLDER && gnuplot "
	      SCRIPT_NAME "\n", f);
	fputs("# Scenario: ", f);
	for (const char *q = s->name; *q; q++)
		fputc(*q == '\n' || *q == '\r' ? ' ' : *q, f);
	fputc('\n', f);
	for (unsigned int i = 0; i < n; i++)
		if (!csv[i].has_rows && !csv[i].assume_cols)
			fprintf(f, "# %s/%s: missing or no data rows: left out\n",
				run_dirs[i], SERIES_NAME);
	fputs("\n"
	      "if (strstrt(GPVAL_TERMINALS, ' pngcairo ') > 0) {\n"
	      "\tset terminal pngcairo size 1200,700 noenhanced\n"
	      "} else {\n"
	      "\tset terminal png size 1200,700 noenhanced\n"
	      "}\n"
	      "set datafile separator ','\n"
	      "set datafile columnheaders\n"
	      "set grid\n"
	      "set key outside top center horizontal\n"
	      "set xlabel 'step'\n"
	      "# per mille -> %; the fragmentation index as 0..1, -1000 (none) "
	      "as missing;\n"
	      "# success rate in %, missing before the first attempt\n"
	      "pct(x) = x / 10.0\n"
	      "fragidx(x) = x < 0 ? NaN : x / 1000.0\n"
	      "rate(ok, try) = try > 0 ? 100.0 * ok / try : NaN\n\n", f);

	for (unsigned int i = 0; i < s->nr_orders; i++) {
		unsigned int o = s->orders[i];

		memset(&p, 0, sizeof(p));
		snprintf(p.png, sizeof(p.png), "unusable_o%u.png", o);
		snprintf(p.title, sizeof(p.title),
			 "Unusable free space index, order %u", o);
		p.ylabel = "unusable free space (%)";
		p.yrange = "[0:100]";
		snprintf(p.col1, sizeof(p.col1), "unusable_o%u", o);
		snprintf(p.expr, sizeof(p.expr), "pct(column('%s'))", p.col1);
		emit_plot(&c, &p);

		if (o > ext_order || !have_ext)
			ext_order = o;
		have_ext = true;
	}

	memset(&p, 0, sizeof(p));
	snprintf(p.png, sizeof(p.png), "extfrag_o%u.png", ext_order);
	snprintf(p.title, sizeof(p.title),
		 "Fragmentation index (extfrag), order %u", ext_order);
	p.ylabel = "fragmentation index (0: low memory, 1: fragmented)";
	p.yrange = "[0:1]";
	snprintf(p.col1, sizeof(p.col1), "extfrag_o%u", ext_order);
	snprintf(p.expr, sizeof(p.expr), "fragidx(column('%s'))", p.col1);
	emit_plot(&c, &p);

	emit_count_plot(&c, "unmovable_blocks", "Pageblocks holding unmovable pages",
			"pageblocks");
	emit_count_plot(&c, "free_pages", "Free pages", "pages");

	for (unsigned int i = 0; i < s->nr_orders; i++) {
		unsigned int o = s->orders[i];

		memset(&p, 0, sizeof(p));
		snprintf(p.png, sizeof(p.png), "success_o%u.png", o);
		snprintf(p.title, sizeof(p.title),
			 "High-order allocations under load, order %u: cumulative success rate",
			 o);
		p.ylabel = "successes / attempts so far (%)";
		p.yrange = "[0:100]";
		snprintf(p.col1, sizeof(p.col1), "high_ok_o%u", o);
		snprintf(p.col2, sizeof(p.col2), "high_try_o%u", o);
		snprintf(p.expr, sizeof(p.expr),
			 "rate(column('%s'), column('%s'))", p.col1, p.col2);
		emit_plot(&c, &p);
	}
}

/* ---- running gnuplot ---------------------------------------------------- */

/* The gnuplot executable in $PATH, into @buf. Return: true if found. */
static bool find_gnuplot(char *buf, size_t len)
{
	const char *path = getenv("PATH");

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		struct stat st;
		int m;

		/* an empty PATH element is the current folder */
		m = n ? snprintf(buf, len, "%.*s/gnuplot", (int)n, path) :
			snprintf(buf, len, "./gnuplot");
		if (m > 0 && (size_t)m < len && !stat(buf, &st) &&
		    S_ISREG(st.st_mode) && !access(buf, X_OK))
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

/*
 * gnuplot plots.gp in @dir, its output in plots.log. fork() rather than
 * posix_spawn() for the chdir; the child only makes async-signal-safe
 * calls, as it must in a threaded program.
 */
static int run_gnuplot(const char *dir, const char *exe)
{
	char *const argv[] = { (char *)"gnuplot", (char *)SCRIPT_NAME, NULL };
	int status;
	pid_t pid;

	fflush(NULL);	/* no stdio buffer written twice */
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd;

		if (chdir(dir))
			_exit(126);
		fd = open(LOG_NAME, O_WRONLY | O_CREAT | O_TRUNC, 0666);
		if (fd < 0)
			_exit(126);
		if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(126);
		if (fd > STDERR_FILENO)
			close(fd);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0 && fd != STDIN_FILENO) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		execv(exe, argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EIO;
	return 0;
}

static bool has_newline(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/**
 * frag_plot_write() - write plots.gp for the runs of a results folder and
 * run gnuplot on it when it is installed.
 * @dir: the results folder; plots.gp, plots.log and the PNGs go there
 * @run_dirs: @n folders holding a series.csv each, relative to @dir
 * @labels: @n line titles, one a run
 * @n: runs, at least 1
 * @s: the scenario: its orders choose the per-order plots (orders <= 10)
 * @ran: set to whether gnuplot ran and succeeded; may be NULL
 *
 * PNGs made: unusable_o<O>.png and success_o<O>.png for each scenario
 * order O, extfrag_o<E>.png for E the largest scenario order (9 if none),
 * unmovable_blocks.png and free_pages.png. A run whose series.csv has no
 * data rows, or lacks a plot's columns, is left out of that plot; a plot no
 * run can feed is not drawn. The script is written in any case.
 *
 * Context: process context; forks and waits for gnuplot (so a SIGCHLD
 * handler that reaps every child would make this fail with -ECHILD).
 * Return: 0 (also when gnuplot is not installed: *@ran = false); -EINVAL
 * for a NULL argument, @n 0, an order over 10, or a newline in a label or
 * folder name; -ENAMETOOLONG; -ENODATA when no run has data (the script is
 * written, gnuplot not run); -EIO when gnuplot failed (see plots.log);
 * -errno of writing plots.gp.
 */
int frag_plot_write(const char *dir, const char *const *run_dirs,
		    const char *const *labels, unsigned int n,
		    const struct frag_scenario *s, bool *ran)
{
	char path[PATH_MAX], tmp[PATH_MAX], exe[PATH_MAX];
	struct run_csv *csv;
	bool any_rows = false;
	FILE *f;
	int ret, len;

	if (ran)
		*ran = false;
	if (!dir || !*dir || !run_dirs || !labels || !n || !s ||
	    s->nr_orders > FRAG_MAX_ORDERS)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++)
		if (!run_dirs[i] || !labels[i] || has_newline(run_dirs[i]) ||
		    has_newline(labels[i]))
			return -EINVAL;
	for (unsigned int i = 0; i < s->nr_orders; i++)
		if (s->orders[i] > MAX_ORDER_COL)
			return -EINVAL;

	len = snprintf(path, sizeof(path), "%s/%s", dir, SCRIPT_NAME);
	if (len < 0 || (size_t)len >= sizeof(path))
		return -ENAMETOOLONG;
	len = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (len < 0 || (size_t)len >= sizeof(tmp))
		return -ENAMETOOLONG;

	csv = calloc(n, sizeof(*csv));
	if (!csv)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++) {
		read_run_csv(dir, run_dirs[i], &csv[i]);
		any_rows |= csv[i].has_rows;
	}
	/*
	 * With no data anywhere, plot every run with every column anyway: the
	 * script is then right to rerun once the CSVs are there.
	 */
	if (!any_rows)
		for (unsigned int i = 0; i < n; i++)
			csv[i].assume_cols = true;

	f = fopen(tmp, "w");
	if (!f) {
		ret = -errno;
		free(csv);
		return ret;
	}
	write_script(f, run_dirs, labels, n, s, csv);
	free(csv);
	ret = ferror(f) ? -EIO : 0;
	if (fclose(f) && !ret)
		ret = errno ? -errno : -EIO;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret) {
		unlink(tmp);
		return ret;
	}

	if (!any_rows)
		return -ENODATA;
	if (!find_gnuplot(exe, sizeof(exe)))
		return 0;
	ret = run_gnuplot(dir, exe);
	if (!ret && ran)
		*ran = true;
	return ret;
}
