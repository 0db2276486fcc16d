/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench frag - a minimal PNG writer: 8-bit RGB, no interlace, every
 * row with filter 0 (None), the image data in a zlib stream of *stored*
 * (uncompressed) deflate blocks, so that no zlib is needed. The files are
 * larger than zlib's (w * h * 3 bytes and a little), which is fine for the
 * memory maps of a benchmark. Written to a temporary file in the same
 * folder, then renamed: a reader never sees half a picture.
 *
 * One IDAT chunk per deflate block (at most 65535 bytes of image data): the
 * chunk's length is then known before its data is produced, and the image
 * is streamed from @rgb without a second copy of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frag.h"

#define PNG_MAX_DIM		16384u	/* our limit, far below PNG's 2^31 - 1 */
#define DEFLATE_STORED_MAX	65535u	/* LEN is 16 bits */
#define ZLIB_HDR_LEN		2
#define STORED_HDR_LEN		5	/* BFINAL/BTYPE byte, LEN, NLEN */
#define ADLER_LEN		4
#define ADLER_MOD		65521u

static const uint8_t png_signature[8] = {
	0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'
};

/* ---- CRC-32 (ISO 3309, the one PNG and zlib use) ------------------------ */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[n] = c;
	}
}

/* Running CRC: start with 0xffffffff, finish by inverting. */
static uint32_t crc_update(uint32_t crc, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		crc = crc_table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

/* ---- output ------------------------------------------------------------- */

struct png_out {
	FILE *f;
	uint32_t crc;		/* of the chunk being written */
	int err;		/* first error, -errno */
};

static void put_bytes(struct png_out *o, const void *buf, size_t len)
{
	if (o->err || !len)
		return;
	if (fwrite(buf, 1, len, o->f) != len)
		o->err = errno ? -errno : -EIO;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* A chunk's length and type; its data follows with chunk_data(). */
static void chunk_begin(struct png_out *o, const char type[4], uint32_t len)
{
	uint8_t hdr[8];

	put_be32(hdr, len);
	memcpy(hdr + 4, type, 4);
	put_bytes(o, hdr, 8);
	/* the CRC covers the type and the data, not the length */
	o->crc = crc_update(0xffffffffu, hdr + 4, 4);
}

static void chunk_data(struct png_out *o, const void *buf, size_t len)
{
	o->crc = crc_update(o->crc, buf, len);
	put_bytes(o, buf, len);
}

static void chunk_end(struct png_out *o)
{
	uint8_t crc[4];

	put_be32(crc, o->crc ^ 0xffffffffu);
	put_bytes(o, crc, 4);
}

/*
 * The filtered image as one byte stream: each row is a filter byte (0)
 * followed by the row's pixels. Copies @len bytes from offset @pos of it.
 */
static void raw_stream_copy(const uint8_t *rgb, size_t row_bytes,
			    uint64_t pos, uint8_t *dst, size_t len)
{
	uint64_t stride = (uint64_t)row_bytes + 1;

	while (len) {
		uint64_t row = pos / stride;
		size_t col = (size_t)(pos % stride);
		size_t n;

		if (col == 0) {
			*dst++ = 0;	/* filter type None */
			pos++;
			len--;
			continue;
		}
		n = row_bytes - (col - 1);
		if (n > len)
			n = len;
		memcpy(dst, rgb + row * row_bytes + (col - 1), n);
		dst += n;
		pos += n;
		len -= n;
	}
}

static uint32_t adler_update(uint32_t adler, const uint8_t *buf, size_t len)
{
	uint32_t a = adler & 0xffff, b = adler >> 16;

	while (len) {
		/* 5552 bytes keep b below 2^32 before the modulo (zlib's NMAX) */
		size_t n = len < 5552 ? len : 5552;

		len -= n;
		while (n--) {
			a += *buf++;
			b += a;
		}
		a %= ADLER_MOD;
		b %= ADLER_MOD;
	}
	return (b << 16) | a;
}

static void write_png(struct png_out *o, unsigned int w, unsigned int h,
		      const uint8_t *rgb, uint8_t *blk)
{
	size_t row_bytes = (size_t)w * 3;
	uint64_t total = ((uint64_t)row_bytes + 1) * h;
	uint64_t pos = 0;
	uint32_t adler = 1;
	uint8_t ihdr[13];

	put_bytes(o, png_signature, sizeof(png_signature));

	put_be32(ihdr, w);
	put_be32(ihdr + 4, h);
	ihdr[8] = 8;		/* bit depth */
	ihdr[9] = 2;		/* colour type: RGB */
	ihdr[10] = 0;		/* compression: deflate */
	ihdr[11] = 0;		/* filter method 0 */
	ihdr[12] = 0;		/* no interlace */
	chunk_begin(o, "IHDR", sizeof(ihdr));
	chunk_data(o, ihdr, sizeof(ihdr));
	chunk_end(o);

	while (pos < total && !o->err) {
		bool first = pos == 0;
		uint32_t n = total - pos < DEFLATE_STORED_MAX ?
			     (uint32_t)(total - pos) : DEFLATE_STORED_MAX;
		bool last = pos + n == total;
		uint32_t len = STORED_HDR_LEN + n;
		uint8_t hdr[ZLIB_HDR_LEN + STORED_HDR_LEN];
		size_t hl = 0;

		if (first) {
			/* CMF: deflate, 32K window; FLG: no dict, check bits */
			hdr[hl++] = 0x78;
			hdr[hl++] = 0x01;
			len += ZLIB_HDR_LEN;
		}
		if (last)
			len += ADLER_LEN;
		hdr[hl++] = last ? 1 : 0;	/* BFINAL, BTYPE 00: stored */
		hdr[hl++] = n & 0xff;
		hdr[hl++] = n >> 8;
		hdr[hl++] = ~n & 0xff;
		hdr[hl++] = (~n >> 8) & 0xff;

		raw_stream_copy(rgb, row_bytes, pos, blk, n);
		adler = adler_update(adler, blk, n);

		chunk_begin(o, "IDAT", len);
		chunk_data(o, hdr, hl);
		chunk_data(o, blk, n);
		if (last) {
			uint8_t a[4];

			put_be32(a, adler);
			chunk_data(o, a, 4);
		}
		chunk_end(o);
		pos += n;
	}

	chunk_begin(o, "IEND", 0);
	chunk_end(o);
}

/**
 * frag_png_write() - write an 8-bit RGB PNG.
 * @path: the file; replaced atomically (temporary file, then rename)
 * @w: width in pixels, 1..16384
 * @h: height in pixels, 1..16384
 * @rgb: @w * @h pixels, rows top down, 3 bytes (R, G, B) a pixel
 *
 * Context: any thread; several calls may run at once (on different paths).
 * Return: 0; -EINVAL for a NULL argument or a size out of range;
 * -ENAMETOOLONG; -ENOMEM; or the -errno of creating, writing or renaming
 * the file (no temporary file is left behind).
 */
int frag_png_write(const char *path, unsigned int w, unsigned int h,
		   const uint8_t *rgb)
{
	static atomic_uint tmp_seq;
	char tmp[PATH_MAX];
	struct png_out o = { 0 };
	uint8_t *blk;
	int fd, n;

	if (!path || !*path || !rgb || !w || !h ||
	    w > PNG_MAX_DIM || h > PNG_MAX_DIM)
		return -EINVAL;
	/* 16384^2 * 3 fits in size_t on 64 bits; check anyway for 32 bits */
	if ((uint64_t)w * h * 3 > SIZE_MAX)
		return -EINVAL;

	pthread_once(&crc_once, crc_table_init);

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%u", path, (long)getpid(),
		     atomic_fetch_add(&tmp_seq, 1));
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;

	blk = malloc(DEFLATE_STORED_MAX);
	if (!blk)
		return -ENOMEM;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0) {
		int err = -errno;

		free(blk);
		return err;
	}
	o.f = fdopen(fd, "wb");
	if (!o.f) {
		o.err = -errno;
		close(fd);
		goto out_unlink;
	}

	errno = 0;
	write_png(&o, w, h, rgb, blk);
	if (fclose(o.f) && !o.err)
		o.err = errno ? -errno : -EIO;
	if (!o.err && rename(tmp, path))
		o.err = -errno;
out_unlink:
	if (o.err)
		unlink(tmp);
	free(blk);
	return o.err;
}
