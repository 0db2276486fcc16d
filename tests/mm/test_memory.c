/* SPDX-License-Identifier: MIT */
/*
 * Processes, VMAs and faults: every VMA kind (private and shared anonymous,
 * shared and private file) faults and reads back what was written; COW
 * after fork keeps each side's writes; munmap and mprotect split VMAs;
 * -EFAULT stops at the faulting byte; -ENOMEM on a full machine; -EINVAL
 * on bad arguments; and tearing a process down gives every page back,
 * page tables included.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "mm_util.h"

#define PG IOM_PAGE_SIZE

static struct test_log tlog;

/* The page at @addr, its reference dropped again (the caller only looks). */
static struct iom_page *page_at(struct iom_mm *mm, uint64_t addr)
{
	struct iom_page *page;

	assert_int_equal(iom_follow_page(mm, addr, &page), 0);
	/* never the last reference: a PTE holds one */
	iom_put_page(iom_mm_machine(mm), page);
	return page;
}

static uint64_t map(struct iom_mm *mm, uint64_t addr, size_t len, int prot,
		    int flags, struct iom_inode *file, uint64_t off)
{
	uint64_t at = test_mmap(mm, addr, len, prot, flags, file, off);

	assert_true(at >= IOM_MMAP_MIN && at + len <= IOM_TASK_SIZE);
	assert_int_equal(at & (PG - 1), 0);
	return at;
}

static void fill(char *buf, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (char)(seed * 131 + i * 7 + (i >> 12));
}

/* A file of @size bytes whose content is fill(seed). */
static struct iom_inode *make_file(struct iom_machine *m, uint64_t size,
				   unsigned int seed)
{
	struct iom_inode *inode;
	char *buf = malloc(size);

	assert_non_null(buf);
	assert_int_equal(iom_inode_create(m, size, &inode), 0);
	fill(buf, size, seed);
	assert_int_equal(iom_file_write(inode, 0, buf, size), (ssize_t)size);
	assert_true(iom_file_sync(inode) > 0);
	free(buf);
	return inode;
}

/* ---- faults on every VMA kind -------------------------------------------- */

static void anon_private_faults_zero_pages_and_keeps_writes(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *mm;
	char buf[3 * PG], out[3 * PG];
	uint64_t a;
	struct iom_page *page;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	assert_ptr_equal(iom_mm_machine(mm), m);
	a = map(mm, 0, 4 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(iom_follow_page(mm, a, &page), -ENOENT);

	/* a read fault gives zeros (a real page: no shared zero page) */
	memset(out, 0x55, sizeof(out));
	assert_int_equal(iom_read(mm, a + 100, out, 2 * PG), 0);
	for (size_t i = 0; i < 2 * PG; i++)
		assert_int_equal(out[i], 0);

	fill(buf, sizeof(buf), 1);
	assert_int_equal(iom_write(mm, a + 10, buf, sizeof(buf)), 0);
	assert_int_equal(iom_read(mm, a + 10, out, sizeof(out)), 0);
	assert_memory_equal(buf, out, sizeof(buf));

	page = page_at(mm, a);
	assert_true(iom_PageAnon(page));
	assert_true(iom_PageSwapBacked(page));
	assert_true(iom_PageLRU(page));
	assert_int_equal(page->index, a >> 12);
	assert_int_equal(iom_page_mapcount(page), 1);
	assert_int_equal(iom_page_ref_count(page), 1);
	page = page_at(mm, a + 3 * PG);
	assert_int_equal(page->index, (a >> 12) + 3);
	assert_true(pte_write(test_get_pte(mm, a)) && pte_dirty(test_get_pte(mm, a)));
	assert_true(pte_young(test_get_pte(mm, a)));
	assert_int_equal(atomic_load(&mm->rss_anon), 4);

	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void anon_shared_is_shared_with_child(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *mm, *child;
	char buf[64], out[64];
	struct iom_page *page;
	uint64_t a;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = map(mm, 0, 2 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_SHARED | IOM_MAP_ANONYMOUS, NULL, 0);
	fill(buf, sizeof(buf), 2);
	assert_int_equal(iom_write(mm, a + PG + 5, buf, sizeof(buf)), 0);
	page = page_at(mm, a + PG);
	assert_false(iom_PageAnon(page));	/* shmem: a page-cache page */
	assert_true(iom_PageSwapBacked(page));
	assert_true(iom_PageDirty(page));
	assert_int_equal(page->index, 1);
	assert_int_equal(iom_page_mapcount(page), 1);
	assert_int_equal(iom_page_ref_count(page), 2);	/* cache + PTE */

	assert_int_equal(iom_fork(mm, &child), 0);
	assert_int_equal(iom_page_mapcount(page), 2);
	assert_int_equal(iom_page_ref_count(page), 3);
	assert_true(pte_write(test_get_pte(child, a + PG)));	/* shared: no COW */
	assert_int_equal(iom_read(child, a + PG + 5, out, sizeof(out)), 0);
	assert_memory_equal(buf, out, sizeof(out));
	fill(buf, sizeof(buf), 3);
	assert_int_equal(iom_write(child, a + 7, buf, sizeof(buf)), 0);
	assert_int_equal(iom_read(mm, a + 7, out, sizeof(out)), 0);
	assert_memory_equal(buf, out, sizeof(out));
	assert_ptr_equal(page_at(mm, a), page_at(child, a));

	iom_mm_destroy(mm);
	assert_int_equal(iom_page_mapcount(page), 1);
	assert_int_equal(iom_read(child, a + PG + 5, out, 8), 0);
	iom_mm_destroy(child);		/* the last user destroys the shmem file */
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void file_shared_writes_reach_cache_and_disk(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_inode *inode = make_file(m, 4 * PG, 4);
	char file[4 * PG], buf[100], out[100];
	struct iom_page *page;
	struct iom_mm *mm;
	uint64_t a;

	fill(file, sizeof(file), 4);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = map(mm, 0, 2 * PG, IOM_PROT_READ | IOM_PROT_WRITE, IOM_MAP_SHARED,
		inode, PG);
	/* the mapping starts at file offset PG */
	assert_int_equal(iom_read(mm, a + 3, out, sizeof(out)), 0);
	assert_memory_equal(out, file + PG + 3, sizeof(out));
	page = page_at(mm, a);
	assert_false(iom_PageAnon(page));
	assert_false(iom_PageDirty(page));
	assert_false(pte_write(test_get_pte(mm, a)));	/* read fault: read-only */
	assert_ptr_equal(page->mapping, iom_inode_mapping(inode));
	assert_int_equal(page->index, 1);

	fill(buf, sizeof(buf), 5);
	assert_int_equal(iom_write(mm, a + PG - 50, buf, sizeof(buf)), 0);
	assert_true(iom_PageDirty(page));
	assert_true(pte_write(test_get_pte(mm, a)));
	assert_int_equal(iom_file_read(inode, 2 * PG - 50, out, sizeof(out)),
			 (ssize_t)sizeof(out));
	assert_memory_equal(out, buf, sizeof(out));
	assert_true(iom_file_sync(inode) >= 2);
	assert_int_equal(iom_file_read_disk(inode, 2 * PG - 50, out, sizeof(out)), 0);
	assert_memory_equal(out, buf, sizeof(out));

	/*
	 * Sync write-protected the mapping (page_mkclean()): a write after it
	 * faults, dirties the page again and reaches the disk next sync.
	 */
	assert_false(iom_PageDirty(page));
	assert_false(pte_write(test_get_pte(mm, a)));
	assert_false(pte_dirty(test_get_pte(mm, a)));
	assert_int_equal(iom_write(mm, a, "again", 5), 0);
	assert_true(iom_PageDirty(page));
	assert_true(pte_write(test_get_pte(mm, a)));
	assert_true(iom_file_sync(inode) >= 1);
	assert_int_equal(iom_file_read_disk(inode, PG, out, 5), 0);
	assert_memory_equal(out, "again", 5);

	/* a file write is seen through the mapping */
	assert_int_equal(iom_file_write(inode, PG + 200, "through", 7), 7);
	assert_int_equal(iom_read(mm, a + 200, out, 7), 0);
	assert_memory_equal(out, "through", 7);

	assert_int_equal(iom_inode_destroy(inode), -EBUSY);
	iom_mm_destroy(mm);
	assert_int_equal(iom_inode_destroy(inode), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void file_private_cow_never_changes_the_file(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_inode *inode = make_file(m, 3 * PG, 6);
	char file[3 * PG], buf[64], out[64];
	struct iom_page *cache, *page;
	struct iom_mm *mm;
	uint64_t a, ro;

	fill(file, sizeof(file), 6);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = map(mm, 0, 3 * PG, IOM_PROT_READ | IOM_PROT_WRITE, IOM_MAP_PRIVATE,
		inode, 0);
	assert_int_equal(iom_read(mm, a + PG, out, sizeof(out)), 0);
	assert_memory_equal(out, file + PG, sizeof(out));
	cache = page_at(mm, a + PG);
	assert_false(iom_PageAnon(cache));
	assert_int_equal(iom_page_mapcount(cache), 1);
	assert_false(pte_write(test_get_pte(mm, a + PG)));

	/* write to the read-faulted page: COW */
	fill(buf, sizeof(buf), 7);
	assert_int_equal(iom_write(mm, a + PG + 8, buf, sizeof(buf)), 0);
	page = page_at(mm, a + PG);
	assert_ptr_not_equal(page, cache);
	assert_true(iom_PageAnon(page));
	assert_int_equal(page->index, 1);	/* linear index of the file VMA */
	assert_int_equal(iom_page_mapcount(cache), 0);
	assert_int_equal(iom_read(mm, a + PG, out, 8), 0);
	assert_memory_equal(out, file + PG, 8);	/* the rest was copied */
	assert_int_equal(iom_read(mm, a + PG + 8, out, sizeof(buf)), 0);
	assert_memory_equal(out, buf, sizeof(buf));

	/* write to a page never faulted in: do_cow_fault */
	assert_int_equal(iom_write(mm, a + 2 * PG, buf, sizeof(buf)), 0);
	assert_true(iom_PageAnon(page_at(mm, a + 2 * PG)));

	/* the file did not change, in the cache or on disk */
	assert_int_equal(iom_file_read(inode, PG + 8, out, sizeof(out)), (ssize_t)sizeof(out));
	assert_memory_equal(out, file + PG + 8, sizeof(out));
	assert_int_equal(iom_file_read(inode, 2 * PG, out, sizeof(out)), (ssize_t)sizeof(out));
	assert_memory_equal(out, file + 2 * PG, sizeof(out));
	assert_int_equal(iom_file_sync(inode), 0);
	assert_int_equal(iom_file_read_disk(inode, PG + 8, out, sizeof(out)), 0);
	assert_memory_equal(out, file + PG + 8, sizeof(out));

	/* a read-only private file mapping refuses writes */
	ro = map(mm, 0, PG, IOM_PROT_READ, IOM_MAP_PRIVATE, inode, 2 * PG);
	assert_int_equal(iom_write(mm, ro, buf, 1), -EFAULT);
	assert_int_equal(iom_read(mm, ro, out, 8), 0);
	assert_memory_equal(out, file + 2 * PG, 8);

	iom_mm_destroy(mm);
	assert_int_equal(iom_inode_destroy(inode), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void file_access_beyond_eof_faults(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_inode *inode = make_file(m, PG + 100, 8);
	struct iom_mm *mm;
	char out[8];
	uint64_t a;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = map(mm, 0, 3 * PG, IOM_PROT_READ, IOM_MAP_SHARED, inode, 0);
	assert_int_equal(iom_read(mm, a + PG + 200, out, 8), 0);	/* last page, past EOF bytes are zero */
	for (int i = 0; i < 8; i++)
		assert_int_equal(out[i], 0);
	assert_int_equal(iom_read(mm, a + 2 * PG, out, 8), -EFAULT);
	iom_mm_destroy(mm);
	assert_int_equal(iom_inode_destroy(inode), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- errors -------------------------------------------------------------- */

static void efault_stops_at_the_faulting_byte(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *mm;
	char buf[16], out[16];
	uint64_t a, n;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	/* [a, a+PG) RW, [a+PG, a+2PG) RO, [a+2PG, a+3PG) NONE, then a hole */
	a = map(mm, 0x40000000, 3 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_FIXED, NULL, 0);
	assert_int_equal(a, 0x40000000);
	assert_int_equal(iom_mprotect(mm, a + PG, PG, IOM_PROT_READ), 0);
	assert_int_equal(iom_mprotect(mm, a + 2 * PG, PG, IOM_PROT_NONE), 0);

	memset(buf, 'x', sizeof(buf));
	assert_int_equal(iom_write(mm, a + PG - 8, buf, 16), -EFAULT);
	assert_int_equal(iom_read(mm, a + PG - 8, out, 16), 0);
	assert_memory_equal(out, "xxxxxxxx", 8);	/* before the fault: written */
	for (int i = 8; i < 16; i++)
		assert_int_equal(out[i], 0);		/* after: untouched */

	assert_int_equal(iom_read(mm, a + 2 * PG, out, 1), -EFAULT);	/* PROT_NONE */
	assert_int_equal(iom_write(mm, a + 2 * PG, buf, 1), -EFAULT);
	assert_int_equal(iom_read(mm, a + 3 * PG, out, 1), -EFAULT);	/* hole */
	assert_int_equal(iom_read(mm, 0, out, 1), -EFAULT);
	assert_int_equal(iom_read(mm, IOM_TASK_SIZE - 4, out, 8), -EFAULT);
	n = 0;
	assert_int_equal(iom_access(mm, a + 3 * PG - 4, &n, 8, false), -EFAULT);
	assert_int_equal(n, 0);		/* PROT_NONE at the first byte */

	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void einval_on_bad_arguments(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_inode *inode = make_file(m, 2 * PG, 9);
	const int rw = IOM_PROT_READ | IOM_PROT_WRITE;
	const int pa = IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS;
	struct iom_mm *mm, *child = NULL;
	struct iom_page *page;
	uint64_t a = 0;
	char c;

	assert_int_equal(iom_mm_create(NULL, &mm), -EINVAL);
	assert_int_equal(iom_mm_create(m, NULL), -EINVAL);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	assert_int_equal(iom_fork(NULL, &child), -EINVAL);
	assert_int_equal(iom_fork(mm, NULL), -EINVAL);
	assert_null(iom_mm_machine(NULL));

	assert_int_equal(iom_mmap(NULL, 0, PG, rw, pa, NULL, 0, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0, PG, rw, pa, NULL, 0, NULL), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0, 0, rw, pa, NULL, 0, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0, PG, 0x100, pa, NULL, 0, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0, PG, rw, IOM_MAP_ANONYMOUS, NULL, 0, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0, PG, rw, pa | IOM_MAP_SHARED, NULL, 0, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0, PG, rw, pa | 0x40000, NULL, 0, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0, PG, rw, IOM_MAP_SHARED, NULL, 0, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0, PG, rw, IOM_MAP_SHARED, inode, 100, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0, PG, rw, IOM_MAP_SHARED, inode, 2 * PG, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0x40000001, PG, rw, pa | IOM_MAP_FIXED, NULL, 0, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, 0x1000, PG, rw, pa | IOM_MAP_FIXED, NULL, 0, &a), -EINVAL);
	assert_int_equal(iom_mmap(mm, IOM_TASK_SIZE - PG, 2 * PG, rw, pa | IOM_MAP_FIXED,
				  NULL, 0, &a), -ENOMEM);
	assert_int_equal(iom_mmap(mm, 0, IOM_TASK_SIZE, rw, pa, NULL, 0, &a), -ENOMEM);
	assert_int_equal(mm->map_count, 0);

	a = map(mm, 0, 2 * PG, rw, pa, NULL, 0);
	assert_int_equal(iom_munmap(NULL, a, PG), -EINVAL);
	assert_int_equal(iom_munmap(mm, a + 1, PG), -EINVAL);
	assert_int_equal(iom_munmap(mm, a, 0), -EINVAL);
	assert_int_equal(iom_munmap(mm, IOM_TASK_SIZE, PG), -EINVAL);
	assert_int_equal(iom_mprotect(NULL, a, PG, IOM_PROT_READ), -EINVAL);
	assert_int_equal(iom_mprotect(mm, a + 1, PG, IOM_PROT_READ), -EINVAL);
	assert_int_equal(iom_mprotect(mm, a, PG, 0x80), -EINVAL);
	assert_int_equal(iom_mprotect(mm, a, 3 * PG, IOM_PROT_READ), -ENOMEM);	/* hole */
	assert_int_equal(mm->map_count, 1);	/* nothing was split */
	assert_int_equal(iom_access(NULL, a, &c, 1, false), -EINVAL);
	assert_int_equal(iom_access(mm, a, NULL, 1, false), -EINVAL);
	assert_int_equal(iom_access(mm, a, NULL, 0, false), 0);
	assert_int_equal(iom_follow_page(NULL, a, &page), -EINVAL);
	assert_int_equal(iom_follow_page(mm, a, NULL), -EINVAL);
	assert_int_equal(iom_follow_page(mm, 0x1000, &page), -EFAULT);

	iom_mm_destroy(mm);
	iom_mm_destroy(NULL);
	assert_int_equal(iom_inode_destroy(inode), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void enomem_when_the_machine_is_full(void **state)
{
	struct iom_machine *m = test_machine(4, &tlog, NULL);
	const size_t len = 8ULL << 20;
	struct iom_mm *mm;
	uint64_t a, off, stamp;
	int ret = 0;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = map(mm, 0, len, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	for (off = 0; off < len; off += PG) {
		stamp = off ^ 0x5a5a;
		ret = iom_write(mm, a + off, &stamp, sizeof(stamp));
		if (ret)
			break;
	}
	assert_int_equal(ret, -ENOMEM);
	assert_true(off > len / 4 && off < len / 2);	/* 4 MiB machine, 8 MiB mapping */
	/* what was written before is intact, and reads of it need no memory */
	for (uint64_t o = 0; o < off; o += 37 * PG) {
		assert_int_equal(iom_read(mm, a + o, &stamp, sizeof(stamp)), 0);
		assert_int_equal(stamp, o ^ 0x5a5a);
	}
	assert_int_equal(iom_read(mm, a + off, &stamp, 8), -ENOMEM);
	/* unmapping gives memory back: the failed page can now be written */
	assert_int_equal(iom_munmap(mm, a, PG * 16), 0);
	assert_int_equal(iom_write(mm, a + off, &stamp, sizeof(stamp)), 0);
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- fork and COW -------------------------------------------------------- */

static void fork_shares_private_pages_read_only_until_written(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *parent, *child, *grandchild;
	struct iom_page *page, *p2;
	uint64_t a, v;

	assert_int_equal(iom_mm_create(m, &parent), 0);
	a = map(parent, 0, 2 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	v = 0x1111;
	assert_int_equal(iom_write(parent, a, &v, 8), 0);
	page = page_at(parent, a);

	assert_int_equal(iom_fork(parent, &child), 0);
	assert_int_equal(iom_page_mapcount(page), 2);
	assert_int_equal(iom_page_ref_count(page), 2);
	assert_false(pte_write(test_get_pte(parent, a)));
	assert_false(pte_write(test_get_pte(child, a)));
	assert_ptr_equal(page_at(child, a), page);
	assert_ptr_equal(child->mmap.next != &child->mmap ?
			 list_first_entry(&child->mmap, struct vm_area_struct, vm_list)->anon_vma : NULL,
			 list_first_entry(&parent->mmap, struct vm_area_struct, vm_list)->anon_vma);

	/* the child writes: it gets its own copy; the parent keeps its value */
	v = 0x2222;
	assert_int_equal(iom_write(child, a, &v, 8), 0);
	p2 = page_at(child, a);
	assert_ptr_not_equal(p2, page);
	assert_int_equal(iom_page_mapcount(page), 1);
	assert_int_equal(iom_page_ref_count(page), 1);
	assert_int_equal(iom_read(parent, a, &v, 8), 0);
	assert_int_equal(v, 0x1111);
	assert_int_equal(iom_read(child, a, &v, 8), 0);
	assert_int_equal(v, 0x2222);
	assert_int_equal(p2->index, page->index);
	assert_ptr_equal(p2->mapping, page->mapping);	/* the family's anon_vma */

	/* the parent, now the only user, reuses its page (no copy) */
	v = 0x3333;
	assert_int_equal(iom_write(parent, a, &v, 8), 0);
	assert_ptr_equal(page_at(parent, a), page);
	assert_int_equal(iom_read(child, a, &v, 8), 0);
	assert_int_equal(v, 0x2222);

	/* a second generation: three processes share the child's page */
	assert_int_equal(iom_fork(child, &grandchild), 0);
	assert_int_equal(iom_page_mapcount(p2), 2);
	v = 0x4444;
	assert_int_equal(iom_write(grandchild, a + PG, &v, 8), 0);	/* never faulted: own zero page */
	assert_int_equal(iom_read(child, a + PG, &v, 8), 0);
	assert_int_equal(v, 0);

	iom_mm_destroy(child);
	assert_int_equal(iom_page_mapcount(p2), 1);
	assert_int_equal(iom_read(grandchild, a, &v, 8), 0);
	assert_int_equal(v, 0x2222);
	iom_mm_destroy(parent);
	iom_mm_destroy(grandchild);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void fork_of_private_file_mapping_copies_on_write(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_inode *inode = make_file(m, 2 * PG, 10);
	struct iom_mm *parent, *child;
	struct iom_page *cache;
	char file[2 * PG], out[16];
	uint64_t a;

	fill(file, sizeof(file), 10);
	assert_int_equal(iom_mm_create(m, &parent), 0);
	a = map(parent, 0, 2 * PG, IOM_PROT_READ | IOM_PROT_WRITE, IOM_MAP_PRIVATE,
		inode, 0);
	assert_int_equal(iom_read(parent, a, out, 16), 0);
	cache = page_at(parent, a);
	assert_int_equal(iom_page_ref_count(cache), 2);
	assert_int_equal(iom_fork(parent, &child), 0);
	assert_int_equal(iom_page_mapcount(cache), 2);
	assert_int_equal(iom_page_ref_count(cache), 3);

	assert_int_equal(iom_write(child, a, "child", 5), 0);
	assert_int_equal(iom_write(parent, a + 5, "parent", 6), 0);
	assert_int_equal(iom_page_mapcount(cache), 0);
	assert_int_equal(iom_read(child, a, out, 11), 0);
	assert_memory_equal(out, "child", 5);
	assert_memory_equal(out + 5, file + 5, 6);
	assert_int_equal(iom_read(parent, a, out, 11), 0);
	assert_memory_equal(out, file, 5);
	assert_memory_equal(out + 5, "parent", 6);
	assert_int_equal(iom_file_read(inode, 0, out, 11), 11);
	assert_memory_equal(out, file, 11);

	iom_mm_destroy(parent);
	iom_mm_destroy(child);
	assert_int_equal(iom_inode_destroy(inode), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- munmap, mprotect, mmap details --------------------------------------- */

static void munmap_partial_splits_and_frees(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_inode *inode = make_file(m, 8 * PG, 11);
	char file[8 * PG], out[8];
	struct iom_mm *mm;
	uint64_t a, f, v;
	unsigned long before;

	fill(file, sizeof(file), 11);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = map(mm, 0, 8 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	for (v = 0; v < 8; v++)
		assert_int_equal(iom_write(mm, a + v * PG, &v, 8), 0);
	before = test_nr_free(m);
	assert_int_equal(iom_munmap(mm, a + 2 * PG, 3 * PG - 100), 0);	/* rounded up */
	assert_int_equal(test_nr_free(m), before + 3);
	assert_int_equal(mm->map_count, 2);
	for (v = 0; v < 8; v++) {
		uint64_t got = ~0ULL;
		int ret = iom_read(mm, a + v * PG, &got, 8);

		if (v >= 2 && v < 5) {
			assert_int_equal(ret, -EFAULT);
		} else {
			assert_int_equal(ret, 0);
			assert_int_equal(got, v);
			assert_int_equal(page_at(mm, a + v * PG)->index, (a >> 12) + v);
		}
	}
	assert_int_equal(atomic_load(&mm->rss_anon), 5);
	/* the split-off upper VMA keeps the linear index: new faults agree */
	assert_int_equal(iom_munmap(mm, a + 6 * PG, PG), 0);
	assert_int_equal(mm->map_count, 3);
	assert_int_equal(iom_munmap(mm, a, 8 * PG), 0);	/* holes inside are fine */
	assert_int_equal(mm->map_count, 0);
	assert_int_equal(atomic_load(&mm->rss_anon), 0);
	assert_int_equal(atomic_load(&mm->nr_pgtables), 1);

	/* a file VMA split in the middle keeps each part's file offset */
	f = map(mm, 0, 8 * PG, IOM_PROT_READ, IOM_MAP_SHARED, inode, 0);
	assert_int_equal(iom_munmap(mm, f + 3 * PG, PG), 0);
	assert_int_equal(iom_read(mm, f + 5 * PG + 9, out, 8), 0);
	assert_memory_equal(out, file + 5 * PG + 9, 8);
	assert_int_equal(iom_read(mm, f + 2 * PG, out, 8), 0);
	assert_memory_equal(out, file + 2 * PG, 8);
	assert_int_equal(iom_read(mm, f + 3 * PG, out, 8), -EFAULT);
	assert_int_equal(iom_munmap(mm, f, 8 * PG), 0);
	assert_null(iom_inode_mapping(inode)->i_mmap);
	assert_int_equal(iom_inode_destroy(inode), 0);

	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void munmap_frees_empty_page_tables(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *mm;
	unsigned long before;
	uint64_t a, v = 1;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	before = test_nr_free(m);
	/* 8 MiB straddling a 1 GiB boundary: 1 PUD, 2 PMD and 4 PTE tables */
	a = map(mm, (1ULL << 30) - 2 * PMD_SIZE, 4 * PMD_SIZE,
		IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_FIXED, NULL, 0);
	for (uint64_t off = 0; off < 4 * PMD_SIZE; off += PMD_SIZE / 2)
		assert_int_equal(iom_write(mm, a + off, &v, 8), 0);
	assert_int_equal(atomic_load(&mm->nr_pgtables), 1 + 1 + 2 + 4);
	assert_int_equal(iom_munmap(mm, a, 4 * PMD_SIZE), 0);
	assert_int_equal(atomic_load(&mm->nr_pgtables), 1);
	assert_int_equal(test_nr_free(m), before);
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void mprotect_splits_and_enforces(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *mm, *child;
	struct iom_page *page;
	uint64_t a, v = 7;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = map(mm, 0, 4 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(iom_write(mm, a + i * PG, &v, 8), 0);
	page = page_at(mm, a + PG);

	assert_int_equal(iom_mprotect(mm, a + PG, 2 * PG, IOM_PROT_READ), 0);
	assert_int_equal(mm->map_count, 3);
	assert_false(pte_write(test_get_pte(mm, a + PG)));
	assert_true(pte_write(test_get_pte(mm, a)));
	assert_int_equal(iom_write(mm, a + PG, &v, 8), -EFAULT);
	assert_int_equal(iom_write(mm, a + 2 * PG + 8, &v, 8), -EFAULT);
	assert_int_equal(iom_write(mm, a, &v, 8), 0);
	assert_int_equal(iom_read(mm, a + PG, &v, 8), 0);
	assert_int_equal(v, 7);

	assert_int_equal(iom_mprotect(mm, a + PG, PG, IOM_PROT_NONE), 0);
	assert_int_equal(iom_read(mm, a + PG, &v, 8), -EFAULT);
	assert_int_equal(mm->map_count, 4);

	/* restoring write lets writes in; the exclusive page is reused */
	assert_int_equal(iom_mprotect(mm, a, 4 * PG, IOM_PROT_READ | IOM_PROT_WRITE), 0);
	v = 8;
	assert_int_equal(iom_write(mm, a + PG, &v, 8), 0);
	assert_ptr_equal(page_at(mm, a + PG), page);
	assert_true(pte_write(test_get_pte(mm, a + PG)));

	/* adding write to a page still shared after fork keeps COW */
	assert_int_equal(iom_fork(mm, &child), 0);
	assert_int_equal(iom_mprotect(mm, a, PG, IOM_PROT_READ), 0);
	assert_int_equal(iom_mprotect(mm, a, PG, IOM_PROT_READ | IOM_PROT_WRITE), 0);
	v = 9;
	assert_int_equal(iom_write(mm, a, &v, 8), 0);
	assert_int_equal(iom_read(child, a, &v, 8), 0);
	assert_int_equal(v, 7);

	iom_mm_destroy(child);
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void mmap_hint_fixed_and_populate(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *mm;
	struct iom_page *page;
	uint64_t a, b, c, v = 5;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	/* top-down below TASK_SIZE, one under the other */
	a = map(mm, 0, PG, IOM_PROT_READ, IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	b = map(mm, 0, 2 * PG, IOM_PROT_READ, IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(a, IOM_TASK_SIZE - PG);
	assert_int_equal(b, a - 2 * PG);
	/* a free hint is honoured, a taken one is not */
	c = map(mm, 0x200000000ULL, PG, IOM_PROT_READ, IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(c, 0x200000000ULL);
	c = map(mm, b, PG, IOM_PROT_READ, IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(c, b - PG);

	/* MAP_FIXED replaces what was there */
	a = map(mm, 0x300000000ULL, 2 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_FIXED, NULL, 0);
	assert_int_equal(iom_write(mm, a + PG, &v, 8), 0);
	a = map(mm, 0x300000000ULL + PG, PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_FIXED, NULL, 0);
	assert_int_equal(iom_read(mm, a, &v, 8), 0);
	assert_int_equal(v, 0);

	/* MAP_POPULATE faults everything in, writable for a private RW map */
	a = map(mm, 0, 8 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE, NULL, 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(iom_follow_page(mm, a + i * PG, &page), 0);
		iom_put_page(m, page);
		assert_true(pte_write(test_get_pte(mm, a + i * PG)));
	}
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- teardown ------------------------------------------------------------ */

static void teardown_returns_every_page(void **state)
{
	struct iom_machine *m = test_machine(32, &tlog, NULL);
	struct iom_inode *inode;
	struct iom_mm *mm, *child;
	unsigned long before = test_nr_free(m);
	uint64_t v = 3, a;

	inode = make_file(m, 16 * PG, 12);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	/* far-apart addresses: many page tables at every level */
	for (int i = 0; i < 6; i++) {
		uint64_t at = ((uint64_t)(i + 1) << 40) + ((uint64_t)i << 31) + ((uint64_t)i << 22);

		a = map(mm, at, 3 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_FIXED, NULL, 0);
		for (int j = 0; j < 3; j++)
			assert_int_equal(iom_write(mm, a + j * PG, &v, 8), 0);
	}
	a = map(mm, 0, 4 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_SHARED | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(iom_write(mm, a + 3 * PG, &v, 8), 0);
	a = map(mm, 0, 16 * PG, IOM_PROT_READ | IOM_PROT_WRITE, IOM_MAP_SHARED, inode, 0);
	assert_int_equal(iom_write(mm, a + 3 * PG, &v, 8), 0);
	a = map(mm, 0, 16 * PG, IOM_PROT_READ | IOM_PROT_WRITE, IOM_MAP_PRIVATE, inode, 0);
	assert_int_equal(iom_write(mm, a + 5 * PG, &v, 8), 0);
	assert_int_equal(iom_read(mm, a + 6 * PG, &v, 8), 0);
	assert_true(atomic_load(&mm->nr_pgtables) > 10);
	assert_true(test_nr_free(m) < before);

	assert_int_equal(iom_fork(mm, &child), 0);
	v = 4;
	assert_int_equal(iom_write(child, a + 6 * PG, &v, 8), 0);
	iom_mm_destroy(mm);
	iom_mm_destroy(child);
	assert_int_equal(iom_inode_destroy(inode), 0);
	assert_int_equal(test_nr_free(m), before);
	test_assert_machine_clean(m);
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_INACTIVE_ANON) +
			 iom_lru_size(m, 0, IOM_LRU_ACTIVE_ANON), 0);
	iom_machine_destroy(m);
}

/* ---- concurrent faults ---------------------------------------------------- */

#define NR_FAULTERS 4
#define FAULT_PAGES 64

struct faulter {
	struct iom_mm *mm;
	uint64_t base;
	int id;
	int errors;
};

static void *faulter_thread(void *arg)
{
	struct faulter *f = arg;

	for (int round = 0; round < 4; round++) {
		for (int p = 0; p < FAULT_PAGES; p++) {
			uint64_t v = ((uint64_t)f->id << 32) | (uint64_t)(p * 16 + round);
			uint64_t at = f->base + (uint64_t)p * PG + (uint64_t)f->id * 8;

			if (iom_write(f->mm, at, &v, 8))
				f->errors++;
		}
	}
	iom_rcu_unregister_thread();
	return NULL;
}

/* Threads fault the same pages at once: every page is faulted exactly once. */
static void concurrent_faults_map_each_page_once(void **state)
{
	struct iom_machine *m = test_machine(32, &tlog, NULL);
	struct faulter f[NR_FAULTERS];
	pthread_t t[NR_FAULTERS];
	struct iom_mm *mm;
	uint64_t anon, shared;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	anon = map(mm, 0, FAULT_PAGES * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		   IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	shared = map(mm, 0, FAULT_PAGES * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		     IOM_MAP_SHARED | IOM_MAP_ANONYMOUS, NULL, 0);
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < NR_FAULTERS; i++) {
			f[i] = (struct faulter){ mm, k ? shared : anon, i, 0 };
			assert_int_equal(pthread_create(&t[i], NULL, faulter_thread, &f[i]), 0);
		}
		for (int i = 0; i < NR_FAULTERS; i++) {
			assert_int_equal(pthread_join(t[i], NULL), 0);
			assert_int_equal(f[i].errors, 0);
		}
	}
	for (int p = 0; p < FAULT_PAGES; p++) {
		for (int i = 0; i < NR_FAULTERS; i++) {
			uint64_t v, want = ((uint64_t)i << 32) | (uint64_t)(p * 16 + 3);

			assert_int_equal(iom_read(mm, anon + (uint64_t)p * PG + i * 8, &v, 8), 0);
			assert_int_equal(v, want);
			assert_int_equal(iom_read(mm, shared + (uint64_t)p * PG + i * 8, &v, 8), 0);
			assert_int_equal(v, want);
		}
		assert_int_equal(iom_page_mapcount(page_at(mm, anon + (uint64_t)p * PG)), 1);
		assert_int_equal(iom_page_ref_count(page_at(mm, anon + (uint64_t)p * PG)), 1);
		assert_int_equal(iom_page_mapcount(page_at(mm, shared + (uint64_t)p * PG)), 1);
	}
	assert_int_equal(atomic_load(&mm->rss_anon), FAULT_PAGES);
	assert_int_equal(atomic_load(&mm->rss_file), FAULT_PAGES);
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(anon_private_faults_zero_pages_and_keeps_writes),
		cmocka_unit_test(anon_shared_is_shared_with_child),
		cmocka_unit_test(file_shared_writes_reach_cache_and_disk),
		cmocka_unit_test(file_private_cow_never_changes_the_file),
		cmocka_unit_test(file_access_beyond_eof_faults),
		cmocka_unit_test(efault_stops_at_the_faulting_byte),
		cmocka_unit_test(einval_on_bad_arguments),
		cmocka_unit_test(enomem_when_the_machine_is_full),
		cmocka_unit_test(fork_shares_private_pages_read_only_until_written),
		cmocka_unit_test(fork_of_private_file_mapping_copies_on_write),
		cmocka_unit_test(munmap_partial_splits_and_frees),
		cmocka_unit_test(munmap_frees_empty_page_tables),
		cmocka_unit_test(mprotect_splits_and_enforces),
		cmocka_unit_test(mmap_hint_fixed_and_populate),
		cmocka_unit_test(teardown_returns_every_page),
		cmocka_unit_test(concurrent_faults_map_each_page_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
