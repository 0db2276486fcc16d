/* SPDX-License-Identifier: MIT */
/*
 * json_lines_check - checks that a file is JSON lines: every line one
 * complete JSON object (RFC 8259), no blank lines, at least one line.
 * Used by the iommig-bench frag tests on summary.json, so that they need no
 * python or jq. Strict: no trailing commas, no NaN, no control characters
 * in strings, no leading zeros.
 *
 *   json_lines_check FILE   exit 0 if valid; 1 and "FILE:LINE:COL: reason"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH	64

struct cur {
	const char *p;
	const char *start;
	const char *why;
};

static int value(struct cur *c, int depth);

static void ws(struct cur *c)
{
	while (*c->p == ' ' || *c->p == '\t' || *c->p == '\r')
		c->p++;
}

static int bad(struct cur *c, const char *why)
{
	if (!c->why)
		c->why = why;
	return -1;
}

static int hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
	       (ch >= 'A' && ch <= 'F');
}

static int string(struct cur *c)
{
	c->p++;		/* the opening quote */
	for (;;) {
		unsigned char ch = (unsigned char)*c->p;

		if (ch == '"') {
			c->p++;
			return 0;
		}
		if (ch == '\0')
			return bad(c, "unterminated string");
		if (ch < 0x20)
			return bad(c, "control character in string");
		if (ch == '\\') {
			c->p++;
			if (*c->p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!hex(c->p[i]))
						return bad(c, "bad \\u escape");
				c->p += 5;
				continue;
			}
			if (!*c->p || !strchr("\"\\/bfnrt", *c->p))
				return bad(c, "bad escape");
		}
		c->p++;
	}
}

static int digits(struct cur *c)
{
	if (*c->p < '0' || *c->p > '9')
		return bad(c, "digit expected");
	while (*c->p >= '0' && *c->p <= '9')
		c->p++;
	return 0;
}

static int number(struct cur *c)
{
	if (*c->p == '-')
		c->p++;
	if (*c->p == '0')
		c->p++;		/* no leading zeros */
	else if (digits(c))
		return -1;
	if (*c->p == '.') {
		c->p++;
		if (digits(c))
			return -1;
	}
	if (*c->p == 'e' || *c->p == 'E') {
		c->p++;
		if (*c->p == '+' || *c->p == '-')
			c->p++;
		if (digits(c))
			return -1;
	}
	return 0;
}

static int literal(struct cur *c, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(c->p, word, n))
		return bad(c, "unexpected character");
	c->p += n;
	return 0;
}

/* The opening '{' or '[' is at c->p. */
static int container(struct cur *c, int depth, char close)
{
	if (depth >= MAX_DEPTH)
		return bad(c, "nested too deep");
	c->p++;
	ws(c);
	if (*c->p == close) {
		c->p++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			ws(c);
			if (*c->p != '"')
				return bad(c, "object key expected");
			if (string(c))
				return -1;
			ws(c);
			if (*c->p != ':')
				return bad(c, "':' expected");
			c->p++;
		}
		if (value(c, depth + 1))
			return -1;
		ws(c);
		if (*c->p == close) {
			c->p++;
			return 0;
		}
		if (*c->p != ',')
			return bad(c, close == '}' ? "',' or '}' expected" :
						     "',' or ']' expected");
		c->p++;
	}
}

static int value(struct cur *c, int depth)
{
	ws(c);
	switch (*c->p) {
	case '{': return container(c, depth, '}');
	case '[': return container(c, depth, ']');
	case '"': return string(c);
	case 't': return literal(c, "true");
	case 'f': return literal(c, "false");
	case 'n': return literal(c, "null");
	case '\0': return bad(c, "value expected");
	default:
		if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))
			return number(c);
		return bad(c, "unexpected character");
	}
}

/* Return: NULL if @line is one JSON object, else the reason (*col set). */
static const char *check_line(const char *line, size_t *col)
{
	struct cur c = { line, line, NULL };

	ws(&c);
	if (*c.p != '{') {
		c.why = *c.p ? "a line must be one JSON object" : "blank line";
	} else if (!value(&c, 0)) {
		ws(&c);
		if (*c.p)
			c.why = "text after the object";
	}
	*col = (size_t)(c.p - c.start) + 1;
	return c.why;
}

int main(int argc, char **argv)
{
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int ret = 0;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: json_lines_check FILE\n");
		return 2;
	}
	f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		const char *why;
		size_t col;

		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (strlen(line) != (size_t)len) {
			fprintf(stderr, "%s:%zu: NUL byte\n", argv[1], lineno);
			ret = 1;
			continue;
		}
		why = check_line(line, &col);
		if (why) {
			fprintf(stderr, "%s:%zu:%zu: %s\n", argv[1], lineno, col, why);
			ret = 1;
		}
	}
	if (!lineno) {
		fprintf(stderr, "%s: empty\n", argv[1]);
		ret = 1;
	}
	free(line);
	fclose(f);
	return ret;
}
