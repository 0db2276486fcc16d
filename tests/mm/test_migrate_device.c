/* SPDX-License-Identifier: MIT */
/*
 * Device-private memory and migrate_vma (src/mm/memremap.c,
 * src/mm/migrate_device.c), driven by a reduced copy of the kernel's test
 * driver lib/test_hmm.c ("dmirror"): device memory in chunks made with
 * memremap, a device page table over one range of one process, the
 * commands MIGRATE_TO_DEV, MIGRATE_TO_SYS, device READ and WRITE of the
 * pages it holds, ->migrate_to_ram() for CPU faults, cpages and faults
 * counters and a switch that makes device allocation fail. The tests port
 * hmm-tests.c's migrate, migrate_fault, migrate_mixed-style errors and
 * allocation failure, check that nothing leaks (the machine's free pages
 * come back, every device page goes back to its driver), try every bad
 * argument, cover fork, mprotect, long-term pins and munmap of pages on
 * the device, and race a CPU reader and CPU writers against migration
 * both ways (with a broken copy to show the reader's check fails).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iommig/gup.h>
#include <iommig/migrate_device.h>

#include "mm_util.h"

#define PG IOM_PAGE_SIZE
#define CHUNK_PAGES 64
#define MAX_CHUNKS 8
#define NPAGES 16

static struct test_log tlog;

/* ---- the driver (lib/test_hmm.c, reduced) -------------------------------- */

struct dmirror_device;

struct dmirror_chunk {
	struct iom_dev_pagemap pagemap;
	struct dmirror_device *mdevice;
};

struct dmirror_device {
	struct iom_machine *m;
	pthread_mutex_t devmem_lock;	/* the chunks and the free pages */
	struct dmirror_chunk *chunks[MAX_CHUNKS];
	unsigned int nr_chunks;
	struct iom_page *free_pages[MAX_CHUNKS * CHUNK_PAGES];
	unsigned long nfree;
	atomic_int alloc_budget;	/* < 0: unlimited; 0: allocation fails */
	atomic_ulong calloc, cfree;
};

struct dmirror_pte {
	struct iom_page *page;
	bool write;
};

struct dmirror {
	struct dmirror_device *mdevice;
	struct iom_mm *mm;
	struct iom_mmu_notifier notifier;
	pthread_mutex_t mutex;		/* the device page table */
	uint64_t base;
	unsigned long npages;
	struct dmirror_pte pt[NPAGES];
	atomic_ulong faults;		/* CPU faults served by migrate_to_ram */
	atomic_ulong invalidations;	/* ranges cleared by the notifier */
	atomic_ulong own_migrations;	/* MIGRATE events of our owner, skipped */
	bool skip_copy;			/* test switch: a driver that forgets to copy */
};

static struct dmirror_device *pgmap_mdevice(struct iom_dev_pagemap *pgmap)
{
	return ((struct dmirror_chunk *)(void *)pgmap)->mdevice;
}

static void dmirror_devmem_free(struct iom_page *page)
{
	/* page->pgmap (internal): the callback gets only the page */
	struct dmirror_device *mdevice = pgmap_mdevice(page_pgmap(page));

	pthread_mutex_lock(&mdevice->devmem_lock);
	mdevice->free_pages[mdevice->nfree++] = page;
	atomic_fetch_add(&mdevice->cfree, 1);
	pthread_mutex_unlock(&mdevice->devmem_lock);
}

static int dmirror_devmem_fault(struct iom_vm_fault *vmf);

static const struct iom_dev_pagemap_ops dmirror_devmem_ops = {
	.page_free = dmirror_devmem_free,
	.migrate_to_ram = dmirror_devmem_fault,
};

/* dmirror_allocate_chunk(). Context: devmem_lock held. */
static int dmirror_allocate_chunk(struct dmirror_device *mdevice)
{
	struct dmirror_chunk *chunk;
	unsigned long i;
	int ret;

	if (mdevice->nr_chunks == MAX_CHUNKS)
		return -ENOMEM;
	chunk = calloc(1, sizeof(*chunk));
	if (!chunk)
		return -ENOMEM;
	chunk->mdevice = mdevice;
	chunk->pagemap.type = IOM_MEMORY_DEVICE_PRIVATE;
	chunk->pagemap.nr_pages = CHUNK_PAGES;
	chunk->pagemap.ops = &dmirror_devmem_ops;
	chunk->pagemap.owner = mdevice;
	ret = iom_memremap_pages(mdevice->m, &chunk->pagemap);
	if (ret) {
		free(chunk);
		return ret;
	}
	mdevice->chunks[mdevice->nr_chunks++] = chunk;
	for (i = 0; i < CHUNK_PAGES; i++)
		mdevice->free_pages[mdevice->nfree++] = &chunk->pagemap.pages[i];
	return 0;
}

/* dmirror_devmem_alloc_page(): locked, one reference; NULL on failure. */
static struct iom_page *dmirror_devmem_alloc_page(struct dmirror_device *mdevice)
{
	struct iom_page *dpage = NULL;
	int budget;

	pthread_mutex_lock(&mdevice->devmem_lock);
	budget = atomic_load(&mdevice->alloc_budget);
	if (budget == 0)
		goto out;
	if (budget > 0)
		atomic_store(&mdevice->alloc_budget, budget - 1);
	if (!mdevice->nfree && dmirror_allocate_chunk(mdevice))
		goto out;
	dpage = mdevice->free_pages[--mdevice->nfree];
out:
	pthread_mutex_unlock(&mdevice->devmem_lock);
	if (dpage) {
		assert_int_equal(iom_zone_device_page_init(mdevice->m, dpage), 0);
		atomic_fetch_add(&mdevice->calloc, 1);
	}
	return dpage;
}

static void mdevice_init(struct dmirror_device *mdevice, struct iom_machine *m)
{
	memset(mdevice, 0, sizeof(*mdevice));
	mdevice->m = m;
	pthread_mutex_init(&mdevice->devmem_lock, NULL);
	atomic_store(&mdevice->alloc_budget, -1);
}

/* Every device page is back with its driver; the ranges go. */
static void mdevice_destroy(struct dmirror_device *mdevice)
{
	unsigned int i;

	assert_int_equal(mdevice->nfree, (unsigned long)mdevice->nr_chunks * CHUNK_PAGES);
	assert_int_equal(atomic_load(&mdevice->calloc), atomic_load(&mdevice->cfree));
	for (i = 0; i < mdevice->nr_chunks; i++) {
		assert_int_equal(iom_memunmap_pages(&mdevice->chunks[i]->pagemap), 0);
		free(mdevice->chunks[i]);
	}
	pthread_mutex_destroy(&mdevice->devmem_lock);
}

/* dmirror_interval_invalidate(): our own migrations are skipped. */
static int dmirror_invalidate(struct iom_mmu_notifier *mn,
			      const struct iom_mmu_notifier_range *range)
{
	struct dmirror *dmirror = (struct dmirror *)((char *)mn -
						     offsetof(struct dmirror, notifier));
	unsigned long i;

	if (range->event == IOM_MMU_NOTIFY_MIGRATE &&
	    range->owner == dmirror->mdevice) {
		atomic_fetch_add(&dmirror->own_migrations, 1);
		return 0;
	}
	atomic_fetch_add(&dmirror->invalidations, 1);
	pthread_mutex_lock(&dmirror->mutex);
	for (i = 0; i < dmirror->npages; i++) {
		uint64_t a = dmirror->base + i * PG;

		if (a >= range->start && a < range->end)
			dmirror->pt[i].page = NULL;
	}
	pthread_mutex_unlock(&dmirror->mutex);
	return 0;
}

static const struct iom_mmu_notifier_ops dmirror_mn_ops = {
	.invalidate_range_start = dmirror_invalidate,
};

static void dmirror_init(struct dmirror *d, struct dmirror_device *mdevice,
			 struct iom_mm *mm, uint64_t base, unsigned long npages)
{
	memset(d, 0, sizeof(*d));
	d->mdevice = mdevice;
	d->mm = mm;
	d->base = base;
	d->npages = npages;
	pthread_mutex_init(&d->mutex, NULL);
	d->notifier.ops = &dmirror_mn_ops;
	assert_int_equal(iom_mmu_notifier_register(&d->notifier, mm), 0);
}

static void dmirror_fini(struct dmirror *d)
{
	iom_mmu_notifier_unregister(&d->notifier);
	pthread_mutex_destroy(&d->mutex);
}

/* dmirror_migrate_alloc_and_copy(): system → device. */
static void dmirror_migrate_alloc_and_copy(struct iom_migrate_vma *args,
					   struct dmirror *dmirror)
{
	struct iom_machine *m = dmirror->mdevice->m;
	unsigned long i;

	for (i = 0; i < args->npages; i++) {
		struct iom_page *spage = iom_migrate_pfn_to_page(m, args->src[i]);
		struct iom_page *dpage;

		if (!(args->src[i] & IOM_MIGRATE_PFN_MIGRATE))
			continue;
		dpage = dmirror_devmem_alloc_page(dmirror->mdevice);
		if (!dpage)
			continue;	/* the entry stays in system memory */
		if (dmirror->skip_copy)
			;
		else if (spage)
			memcpy(iom_page_address(m, dpage), iom_page_address(m, spage), PG);
		else
			memset(iom_page_address(m, dpage), 0, PG);
		dpage->private = (unsigned long)dmirror;	/* zone_device_data */
		args->dst[i] = iom_migrate_pfn(iom_page_to_pfn(m, dpage));
		if (args->src[i] & IOM_MIGRATE_PFN_WRITE)
			args->dst[i] |= IOM_MIGRATE_PFN_WRITE;
	}
}

/* dmirror_migrate_finalize_and_map(): step 5, the device page table. */
static unsigned long dmirror_migrate_finalize_and_map(struct iom_migrate_vma *args,
						      struct dmirror *dmirror)
{
	struct iom_machine *m = dmirror->mdevice->m;
	unsigned long i, n = 0;

	pthread_mutex_lock(&dmirror->mutex);
	for (i = 0; i < args->npages; i++) {
		struct iom_page *dpage = iom_migrate_pfn_to_page(m, args->dst[i]);
		unsigned long idx;

		if (!dpage || !(args->src[i] & IOM_MIGRATE_PFN_MIGRATE))
			continue;
		idx = (unsigned long)((args->start - dmirror->base) / PG) + i;
		dmirror->pt[idx].page = dpage;
		dmirror->pt[idx].write = args->dst[i] & IOM_MIGRATE_PFN_WRITE;
		n++;
	}
	pthread_mutex_unlock(&dmirror->mutex);
	return n;
}

/* HMM_DMIRROR_MIGRATE_TO_DEV. Return: -errno or pages migrated. */
static long dmirror_migrate_to_device(struct dmirror *dmirror, uint64_t start,
				      unsigned long npages)
{
	unsigned long src[NPAGES], dst[NPAGES], n;
	struct iom_migrate_vma args = {
		.mm = dmirror->mm, .start = start, .end = start + npages * PG,
		.src = src, .dst = dst, .pgmap_owner = dmirror->mdevice,
		.flags = IOM_MIGRATE_VMA_SELECT_SYSTEM,
	};
	int ret;

	iom_mmap_read_lock(dmirror->mm);
	ret = iom_migrate_vma_setup(&args);
	if (ret) {
		iom_mmap_read_unlock(dmirror->mm);
		return ret;
	}
	dmirror_migrate_alloc_and_copy(&args, dmirror);
	iom_migrate_vma_pages(&args);
	n = dmirror_migrate_finalize_and_map(&args, dmirror);
	iom_migrate_vma_finalize(&args);
	iom_mmap_read_unlock(dmirror->mm);
	return (long)n;
}

/* dmirror_devmem_fault_alloc_and_copy(): device → system. */
static void dmirror_devmem_fault_alloc_and_copy(struct iom_migrate_vma *args,
						struct dmirror *dmirror)
{
	struct iom_machine *m = dmirror->mdevice->m;
	unsigned long i;

	for (i = 0; i < args->npages; i++) {
		struct iom_page *spage = iom_migrate_pfn_to_page(m, args->src[i]);
		struct iom_page *dpage;
		unsigned long idx;

		if (!spage || !(args->src[i] & IOM_MIGRATE_PFN_MIGRATE))
			continue;
		dpage = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
		if (!dpage)
			continue;
		iom_lock_page(dpage);
		if (dmirror->skip_copy)		/* the broken driver: zeros back */
			memset(iom_page_address(m, dpage), 0, PG);
		else
			memcpy(iom_page_address(m, dpage), iom_page_address(m, spage), PG);
		idx = (unsigned long)((args->start - dmirror->base) / PG) + i;
		pthread_mutex_lock(&dmirror->mutex);
		dmirror->pt[idx].page = NULL;
		pthread_mutex_unlock(&dmirror->mutex);
		args->dst[i] = iom_migrate_pfn(iom_page_to_pfn(m, dpage)) |
			       (args->src[i] & IOM_MIGRATE_PFN_WRITE);
	}
}

static long dmirror_migrate_back(struct dmirror *dmirror, struct iom_mm *mm,
				 uint64_t start, unsigned long npages,
				 struct iom_page *fault_page)
{
	unsigned long src[NPAGES], dst[NPAGES], i, n = 0;
	struct iom_migrate_vma args = {
		.mm = mm, .start = start, .end = start + npages * PG,
		.src = src, .dst = dst, .pgmap_owner = dmirror->mdevice,
		.flags = IOM_MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page = fault_page,
	};
	int ret = iom_migrate_vma_setup(&args);

	if (ret)
		return ret;
	dmirror_devmem_fault_alloc_and_copy(&args, dmirror);
	iom_migrate_vma_pages(&args);
	for (i = 0; i < args.npages; i++)
		if ((src[i] & IOM_MIGRATE_PFN_MIGRATE) && dst[i])
			n++;
	iom_migrate_vma_finalize(&args);
	return (long)n;
}

/* HMM_DMIRROR_MIGRATE_TO_SYS. Return: -errno or pages migrated. */
static long dmirror_migrate_to_system(struct dmirror *dmirror, uint64_t start,
				      unsigned long npages)
{
	long ret;

	iom_mmap_read_lock(dmirror->mm);
	ret = dmirror_migrate_back(dmirror, dmirror->mm, start, npages, NULL);
	iom_mmap_read_unlock(dmirror->mm);
	return ret;
}

/* dmirror_devmem_fault(): the CPU touched one of our pages. */
static int dmirror_devmem_fault(struct iom_vm_fault *vmf)
{
	struct dmirror *dmirror = (struct dmirror *)vmf->page->private;
	long n;

	/* the faulting process may be a forked child of the mirrored one */
	n = dmirror_migrate_back(dmirror, vmf->mm, vmf->address, 1, vmf->page);
	if (n < 0)
		return (int)n;
	if (n)
		atomic_fetch_add(&dmirror->faults, 1);
	return 0;
}

/* HMM_DMIRROR_READ / WRITE of pages the device holds. */
static int dmirror_access(struct dmirror *dmirror, uint64_t addr, void *buf,
			  bool write)
{
	unsigned long idx = (unsigned long)((addr - dmirror->base) / PG);
	struct iom_machine *m = dmirror->mdevice->m;
	int ret = 0;

	if (addr < dmirror->base || idx >= dmirror->npages)
		return -EINVAL;
	pthread_mutex_lock(&dmirror->mutex);
	if (!dmirror->pt[idx].page)
		ret = -ENOENT;		/* not on the device (HMM mirrors the rest) */
	else if (write && !dmirror->pt[idx].write)
		ret = -EPERM;
	else if (write)
		memcpy(iom_page_address(m, dmirror->pt[idx].page), buf, PG);
	else
		memcpy(buf, iom_page_address(m, dmirror->pt[idx].page), PG);
	pthread_mutex_unlock(&dmirror->mutex);
	return ret;
}

/* ---- helpers ---------------------------------------------------------------- */

static void fill(unsigned char *p, unsigned int seed)
{
	for (size_t i = 0; i < PG; i++)
		p[i] = (unsigned char)(seed * 31 + i * 7);
}

static bool check(const unsigned char *p, unsigned int seed)
{
	for (size_t i = 0; i < PG; i++)
		if (p[i] != (unsigned char)(seed * 31 + i * 7))
			return false;
	return true;
}

static void cpu_fill(struct iom_mm *mm, uint64_t a, unsigned long n, unsigned int seed)
{
	unsigned char buf[PG];

	for (unsigned long i = 0; i < n; i++) {
		fill(buf, seed + (unsigned int)i);
		assert_int_equal(iom_write(mm, a + i * PG, buf, PG), 0);
	}
}

static void cpu_check(struct iom_mm *mm, uint64_t a, unsigned long n, unsigned int seed)
{
	unsigned char buf[PG];

	for (unsigned long i = 0; i < n; i++) {
		assert_int_equal(iom_read(mm, a + i * PG, buf, PG), 0);
		assert_true(check(buf, seed + (unsigned int)i));
	}
}

static bool on_device(struct iom_mm *mm, uint64_t a)
{
	pte_t pte = test_get_pte(mm, a);

	return is_swap_pte(pte) && is_device_private_entry(pte_to_swp_entry(pte));
}

static bool in_ram(struct iom_mm *mm, uint64_t a)
{
	return pte_present(test_get_pte(mm, a));
}

struct env {
	struct iom_machine *m;
	struct iom_mm *mm;
	struct dmirror_device mdevice;
	struct dmirror dmirror;
	unsigned long free0;
	uint64_t a;
};

static void env_init(struct env *e, unsigned long npages)
{
	e->m = test_machine(16, &tlog, NULL);
	e->free0 = test_nr_free(e->m);
	assert_int_equal(iom_mm_create(e->m, &e->mm), 0);
	e->a = test_mmap(e->mm, 0, npages * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	mdevice_init(&e->mdevice, e->m);
	dmirror_init(&e->dmirror, &e->mdevice, e->mm, e->a, npages);
}

/* Tear down and prove nothing leaked: device pages and machine pages. */
static void env_fini(struct env *e)
{
	dmirror_fini(&e->dmirror);
	iom_mm_destroy(e->mm);
	mdevice_destroy(&e->mdevice);
	assert_int_equal(test_nr_free(e->m), e->free0);
	test_assert_machine_clean(e->m);
	iom_machine_destroy(e->m);
}

/* ---- tests ------------------------------------------------------------------ */

/*
 * What this proves: hmm-tests' "migrate" and "anon write" with ten round
 * trips: the pages reach the device with their content (the CPU PTEs
 * become device-private entries, the device reads and writes them), and
 * come back either by MIGRATE_TO_SYS or by CPU accesses that fault each
 * page through ->migrate_to_ram() (counted), with the device's writes.
 */
static void migrate_to_device_and_back_ten_times(void **state)
{
	struct env e;
	unsigned char buf[PG];
	unsigned long faults = 0;
	unsigned int it, i;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, NPAGES, 0);
	for (it = 0; it < 10; it++) {
		unsigned int seed = it * 100;

		assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES), NPAGES);
		for (i = 0; i < NPAGES; i++) {
			assert_true(on_device(e.mm, e.a + i * PG));
			assert_int_equal(dmirror_access(&e.dmirror, e.a + i * PG, buf, false), 0);
			assert_true(check(buf, seed + i));
			fill(buf, seed + 100 + i);	/* the device writes */
			assert_int_equal(dmirror_access(&e.dmirror, e.a + i * PG, buf, true), 0);
		}
		assert_int_equal(atomic_load(&e.mdevice.calloc) - atomic_load(&e.mdevice.cfree),
				 NPAGES);
		if (it & 1) {
			assert_int_equal(dmirror_migrate_to_system(&e.dmirror, e.a, NPAGES),
					 NPAGES);
		} else {
			faults += NPAGES;
		}
		cpu_check(e.mm, e.a, NPAGES, seed + 100);
		for (i = 0; i < NPAGES; i++)
			assert_true(in_ram(e.mm, e.a + i * PG));
		assert_int_equal(atomic_load(&e.dmirror.faults), faults);
		assert_int_equal(dmirror_access(&e.dmirror, e.a, buf, false), -ENOENT);
		/* every device page went back to the driver */
		assert_int_equal(atomic_load(&e.mdevice.calloc), atomic_load(&e.mdevice.cfree));
	}
	assert_int_equal(atomic_load(&e.dmirror.faults), 5 * NPAGES);
	assert_true(atomic_load(&e.dmirror.own_migrations) > 0);
	env_fini(&e);
}

/*
 * What this proves: hmm-tests' "migrate_fault": after half the pages are
 * faulted back by the CPU, migrating the whole range again collects only
 * those (device pages are not SELECT_SYSTEM), and the data stays right. A
 * none PTE migrates as a zero-filled device page, and a write fault on a
 * page of the device brings it back writable.
 */
static void migrate_fault_half_then_again(void **state)
{
	struct env e;
	unsigned char buf[PG];
	unsigned int i;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, NPAGES - 1, 0);	/* the last page stays none */
	assert_int_equal(test_get_pte(e.mm, e.a + (NPAGES - 1) * PG), 0);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES), NPAGES);
	assert_true(on_device(e.mm, e.a + (NPAGES - 1) * PG));
	assert_int_equal(dmirror_access(&e.dmirror, e.a + (NPAGES - 1) * PG, buf, false), 0);
	for (i = 0; i < PG; i++)
		assert_int_equal(buf[i], 0);

	cpu_check(e.mm, e.a, NPAGES / 2, 0);		/* first half back */
	assert_int_equal(atomic_load(&e.dmirror.faults), NPAGES / 2);
	for (i = 0; i < NPAGES; i++)
		assert_true(i < NPAGES / 2 ? in_ram(e.mm, e.a + i * PG) :
					     on_device(e.mm, e.a + i * PG));
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES), NPAGES / 2);
	for (i = 0; i < NPAGES; i++) {
		assert_true(on_device(e.mm, e.a + i * PG));
		if (i < NPAGES - 1) {
			assert_int_equal(dmirror_access(&e.dmirror, e.a + i * PG, buf, false), 0);
			assert_true(check(buf, i));
		}
	}
	/* a CPU write faults the page back, writable, with the new data */
	fill(buf, 777);
	assert_int_equal(iom_write(e.mm, e.a, buf, PG), 0);
	assert_true(pte_write(test_get_pte(e.mm, e.a)));
	assert_int_equal(atomic_load(&e.dmirror.faults), NPAGES / 2 + 1);
	assert_int_equal(dmirror_migrate_to_system(&e.dmirror, e.a, NPAGES), NPAGES - 1);
	cpu_check(e.mm, e.a + PG, NPAGES - 2, 1);
	cpu_check(e.mm, e.a, 1, 777);
	env_fini(&e);
}

/*
 * What this proves: migrate_vma_setup()'s -EINVAL for a range with a hole
 * or a PROT_NONE part (not one readable VMA) with nothing changed; pages
 * of another device (another owner) are not selected by its migrations,
 * both ways, and its notifier sees our MIGRATE invalidations with our
 * owner (so it cannot skip them), while ours skips them.
 */
static void migrate_errors_hole_prot_none_other_owner(void **state)
{
	struct dmirror_device other;
	struct dmirror d2;
	struct env e;
	unsigned int i;
	uint64_t b;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, NPAGES, 0);
	/* PROT_NONE in the middle: the range spans three VMAs */
	assert_int_equal(iom_mprotect(e.mm, e.a + 4 * PG, PG, IOM_PROT_NONE), 0);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES), -EINVAL);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a + 4 * PG, 1), -EINVAL);
	assert_int_equal(iom_mprotect(e.mm, e.a + 4 * PG, PG,
				      IOM_PROT_READ | IOM_PROT_WRITE), 0);
	/* a hole */
	assert_int_equal(iom_munmap(e.mm, e.a + 8 * PG, PG), 0);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES), -EINVAL);
	for (i = 0; i < NPAGES; i++)
		assert_true(i == 8 ? !test_get_pte(e.mm, e.a + i * PG) :
				     in_ram(e.mm, e.a + i * PG));
	assert_int_equal(atomic_load(&e.mdevice.calloc), 0);

	/* another device with another owner, on one VMA after the hole */
	mdevice_init(&other, e.m);
	dmirror_init(&d2, &other, e.mm, e.a, NPAGES);
	b = e.a + 9 * PG;
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, b, 7), 7);
	assert_int_equal(dmirror_migrate_to_system(&d2, b, 7), 0);
	assert_int_equal(dmirror_migrate_to_device(&d2, b, 7), 0);
	for (i = 9; i < NPAGES; i++)
		assert_true(on_device(e.mm, e.a + i * PG));
	/* each sees the other's MIGRATE invalidations, and skips its own */
	assert_true(atomic_load(&d2.invalidations) >= 1);
	assert_true(atomic_load(&e.dmirror.invalidations) >= 1);
	assert_true(atomic_load(&e.dmirror.own_migrations) >= 1);
	assert_true(atomic_load(&d2.own_migrations) >= 1);
	assert_int_equal(atomic_load(&other.calloc), 0);
	/* a device page round-trips through the pfn helpers */
	{
		unsigned long pfn = swp_offset(pte_to_swp_entry(test_get_pte(e.mm, b)));
		struct iom_page *dp = iom_pfn_to_page(e.m, pfn);

		assert_non_null(dp);
		assert_true(pfn >= iom_end_pfn(e.m));
		assert_int_equal(iom_page_to_pfn(e.m, dp), pfn);
		assert_ptr_equal(iom_page_pgmap(e.m, dp)->owner, &e.mdevice);
		assert_non_null(iom_page_address(e.m, dp));
		assert_int_equal(iom_page_to_phys(e.m, dp), (uint64_t)pfn << 12);
		assert_null(iom_pfn_to_page(e.m, pfn + 10 * CHUNK_PAGES));
		assert_false(iom_pfn_valid(e.m, pfn));
	}
	cpu_check(e.mm, b, 7, 9);
	dmirror_fini(&d2);
	mdevice_destroy(&other);
	env_fini(&e);
}

/*
 * What this proves: when the device cannot allocate, the pages stay in
 * system memory, mapped, with their data; when it runs out half way, the
 * first pages move and the rest stay.
 */
static void device_alloc_failure_keeps_pages_in_ram(void **state)
{
	struct env e;
	unsigned int i;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, NPAGES, 5);
	atomic_store(&e.mdevice.alloc_budget, 0);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES), 0);
	for (i = 0; i < NPAGES; i++)
		assert_true(in_ram(e.mm, e.a + i * PG));
	cpu_check(e.mm, e.a, NPAGES, 5);
	atomic_store(&e.mdevice.alloc_budget, NPAGES / 4);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES), NPAGES / 4);
	for (i = 0; i < NPAGES; i++)
		assert_true(i < NPAGES / 4 ? on_device(e.mm, e.a + i * PG) :
					     in_ram(e.mm, e.a + i * PG));
	assert_int_equal(atomic_load(&e.dmirror.faults), 0);
	cpu_check(e.mm, e.a, NPAGES, 5);
	assert_int_equal(atomic_load(&e.dmirror.faults), NPAGES / 4);
	atomic_store(&e.mdevice.alloc_budget, -1);
	/* munmap of pages on the device gives them back to the driver */
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES), NPAGES);
	assert_int_equal(iom_munmap(e.mm, e.a, NPAGES * PG), 0);
	assert_int_equal(atomic_load(&e.mdevice.calloc), atomic_load(&e.mdevice.cfree));
	assert_true(atomic_load(&e.dmirror.invalidations) >= 1);
	env_fini(&e);
}

/*
 * What this proves: the data checks above can fail: a driver that does
 * not copy (test switch) is caught by the device read.
 */
static void missing_copy_is_caught(void **state)
{
	unsigned char buf[PG];
	struct env e;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, 1, 9);
	e.dmirror.skip_copy = true;
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, 1), 1);
	assert_int_equal(dmirror_access(&e.dmirror, e.a, buf, false), 0);
	assert_false(check(buf, 9));
	e.dmirror.skip_copy = false;
	env_fini(&e);
}

/* What this proves: every public function refuses bad arguments. */
static void bad_arguments(void **state)
{
	unsigned long src[NPAGES], dst[NPAGES];
	struct iom_dev_pagemap pgmap;
	struct iom_migrate_vma args;
	struct iom_page *sys;
	struct env e;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, NPAGES, 0);

	memset(&pgmap, 0, sizeof(pgmap));
	assert_int_equal(iom_memremap_pages(NULL, &pgmap), -EINVAL);
	assert_int_equal(iom_memremap_pages(e.m, NULL), -EINVAL);
	assert_int_equal(iom_memremap_pages(e.m, &pgmap), -EINVAL);	/* type */
	pgmap.type = IOM_MEMORY_DEVICE_PRIVATE;
	assert_int_equal(iom_memremap_pages(e.m, &pgmap), -EINVAL);	/* no pages */
	pgmap.nr_pages = IOM_PGMAP_MAX_PAGES + 1;
	pgmap.ops = &dmirror_devmem_ops;
	assert_int_equal(iom_memremap_pages(e.m, &pgmap), -EINVAL);
	pgmap.nr_pages = 4;
	pgmap.ops = NULL;
	assert_int_equal(iom_memremap_pages(e.m, &pgmap), -EINVAL);
	pgmap.ops = &dmirror_devmem_ops;
	assert_int_equal(iom_memunmap_pages(&pgmap), -EINVAL);	/* not mapped */
	assert_int_equal(iom_memunmap_pages(NULL), -EINVAL);
	assert_int_equal(iom_memremap_pages(e.m, &pgmap), 0);
	assert_int_equal(iom_memremap_pages(e.m, &pgmap), -EINVAL);	/* twice */
	assert_int_equal(iom_zone_device_page_init(e.m, &pgmap.pages[0]), 0);
	assert_int_equal(iom_zone_device_page_init(e.m, &pgmap.pages[0]), -EINVAL);
	assert_int_equal(iom_memunmap_pages(&pgmap), -EBUSY);	/* in use */
	iom_unlock_page(&pgmap.pages[0]);
	atomic_store(&pgmap.pages[0]._refcount, 0);	/* as the driver's put would */
	assert_int_equal(iom_memunmap_pages(&pgmap), 0);
	assert_int_equal(iom_memunmap_pages(&pgmap), -EINVAL);

	/* every range slot in use: -ENOSPC, then all of them go again */
	{
		static struct iom_dev_pagemap many[IOM_PGMAP_MAX_RANGES];
		struct iom_dev_pagemap extra = pgmap;
		unsigned int k;

		for (k = 0; k < IOM_PGMAP_MAX_RANGES; k++) {
			many[k] = pgmap;
			assert_int_equal(iom_memremap_pages(e.m, &many[k]), 0);
		}
		assert_int_equal(iom_memremap_pages(e.m, &extra), -ENOSPC);
		assert_null(extra.pages);
		for (k = 0; k < IOM_PGMAP_MAX_RANGES; k++) {
			assert_ptr_equal(iom_pfn_to_page(e.m, many[k].pfn_first + 3),
					 &many[k].pages[3]);
			assert_int_equal(iom_memunmap_pages(&many[k]), 0);
		}
	}

	sys = test_get_page_at(e.mm, e.a);
	assert_int_equal(iom_zone_device_page_init(e.m, sys), -EINVAL);
	assert_int_equal(iom_zone_device_page_init(NULL, sys), -EINVAL);
	assert_null(iom_page_pgmap(e.m, sys));
	assert_null(iom_page_pgmap(NULL, sys));
	assert_null(iom_page_pgmap(e.m, NULL));
	assert_null(iom_migrate_pfn_to_page(e.m, 0));
	assert_null(iom_migrate_pfn_to_page(NULL, iom_migrate_pfn(iom_first_pfn(e.m))));
	assert_ptr_equal(iom_migrate_pfn_to_page(e.m, iom_migrate_pfn(iom_page_to_pfn(e.m, sys))),
			 sys);
	assert_int_equal(iom_mmap_read_lock(NULL), -EINVAL);
	assert_int_equal(iom_mmap_read_unlock(NULL), -EINVAL);

	iom_mmap_read_lock(e.mm);
	assert_int_equal(iom_migrate_vma_setup(NULL), -EINVAL);
#define ARGS(s, en, fl) (struct iom_migrate_vma){ .mm = e.mm, .start = (s),	\
		.end = (en), .src = src, .dst = dst, .flags = (fl),		\
		.pgmap_owner = &e.mdevice }
	args = ARGS(e.a, e.a + PG, IOM_MIGRATE_VMA_SELECT_SYSTEM);
	args.mm = NULL;
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);
	args = ARGS(e.a, e.a + PG, IOM_MIGRATE_VMA_SELECT_SYSTEM);
	args.src = NULL;
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);
	args = ARGS(e.a, e.a + PG, IOM_MIGRATE_VMA_SELECT_SYSTEM);
	args.dst = NULL;
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);
	args = ARGS(e.a + 1, e.a + PG, IOM_MIGRATE_VMA_SELECT_SYSTEM);
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);
	args = ARGS(e.a, e.a, IOM_MIGRATE_VMA_SELECT_SYSTEM);
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);
	args = ARGS(e.a + PG, e.a, IOM_MIGRATE_VMA_SELECT_SYSTEM);
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);
	args = ARGS(e.a, e.a + PG, 0);
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);
	args = ARGS(e.a, e.a + PG, 1UL << 7);
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);
	args = ARGS(e.a, e.a + (NPAGES + 1) * PG, IOM_MIGRATE_VMA_SELECT_SYSTEM);
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);	/* past the VMA */
	args = ARGS(e.a - PG, e.a, IOM_MIGRATE_VMA_SELECT_SYSTEM);
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);	/* no VMA */
	args = ARGS(e.a, e.a + PG, IOM_MIGRATE_VMA_SELECT_DEVICE_PRIVATE);
	args.fault_page = sys;
	assert_int_equal(iom_migrate_vma_setup(&args), -EINVAL);
	iom_migrate_vma_pages(NULL);
	iom_migrate_vma_finalize(NULL);
	args = ARGS(e.a, e.a + PG, IOM_MIGRATE_VMA_SELECT_SYSTEM);
	iom_migrate_vma_pages(&args);		/* npages 0: nothing was set up */
	iom_migrate_vma_finalize(&args);
	/* a pinned page (an extra reference) is not collected */
	assert_int_equal(iom_migrate_vma_setup(&args), 0);
	assert_int_equal(args.cpages, 0);
	assert_int_equal(args.src[0], 0);
	iom_migrate_vma_pages(&args);
	iom_migrate_vma_finalize(&args);
	iom_mmap_read_unlock(e.mm);
	assert_true(in_ram(e.mm, e.a));
	iom_put_page(e.m, sys);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, 1), 1);
	assert_int_equal(dmirror_migrate_to_system(&e.dmirror, e.a, 1), 1);
	cpu_check(e.mm, e.a, NPAGES, 0);
	env_fini(&e);
#undef ARGS
}

/*
 * What this proves: a FOLL_LONGTERM pin of pages that sit on the device
 * faults them back to system memory first (seed 002 meets seed 003), with
 * their data, and a pinned page is not collected for the device.
 */
static void longterm_pin_brings_device_pages_back(void **state)
{
	struct iom_page *pages[4];
	struct env e;
	unsigned int i;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, 4, 11);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, 4), 4);
	assert_int_equal(iom_pin_user_pages(e.mm, e.a, 4,
					    IOM_FOLL_WRITE | IOM_FOLL_LONGTERM, pages), 4);
	assert_int_equal(atomic_load(&e.dmirror.faults), 4);
	for (i = 0; i < 4; i++) {
		assert_true(in_ram(e.mm, e.a + i * PG));
		assert_null(iom_page_pgmap(e.m, pages[i]));
		assert_true(check(iom_page_address(e.m, pages[i]), 11 + i));
	}
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, 4), 0);
	iom_unpin_user_pages(e.m, pages, 4);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, 4), 4);
	cpu_check(e.mm, e.a, 4, 11);
	env_fini(&e);
}

/*
 * What this proves: fork shares a page on the device (one more reference
 * and mapcount, read-only in both, as copy_nonpresent_pte()); the child's
 * CPU read brings it back for both processes through rmap
 * (try_to_migrate() of the parent's entry, remove_migration_ptes() into
 * both), a write then copies on write, and a shared device page migrates
 * back by MIGRATE_TO_SYS too. mprotect(PROT_READ) makes a writable
 * device-private entry read-only.
 */
static void fork_shares_device_pages(void **state)
{
	unsigned char buf[PG];
	struct iom_mm *child;
	struct env e;
	unsigned int i;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, 4, 20);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, 4), 4);
	assert_int_equal(swp_type(pte_to_swp_entry(test_get_pte(e.mm, e.a))),
			 SWP_DEVICE_WRITE);
	assert_int_equal(iom_fork(e.mm, &child), 0);
	for (i = 0; i < 4; i++) {
		assert_true(on_device(child, e.a + i * PG));
		assert_int_equal(swp_type(pte_to_swp_entry(test_get_pte(e.mm, e.a + i * PG))),
				 SWP_DEVICE_READ);
	}
	cpu_check(child, e.a, 2, 20);			/* pages 0, 1 */
	assert_int_equal(atomic_load(&e.dmirror.faults), 2);
	for (i = 0; i < 2; i++) {
		assert_true(in_ram(e.mm, e.a + i * PG));
		assert_int_equal(pte_pfn(test_get_pte(e.mm, e.a + i * PG)),
				 pte_pfn(test_get_pte(child, e.a + i * PG)));
	}
	fill(buf, 999);
	assert_int_equal(iom_write(child, e.a, buf, PG), 0);	/* COW */
	cpu_check(e.mm, e.a, 2, 20);
	/* pages 2, 3: shared on the device, migrated back by the driver */
	assert_int_equal(dmirror_migrate_to_system(&e.dmirror, e.a + 2 * PG, 2), 2);
	assert_true(in_ram(child, e.a + 2 * PG) && in_ram(child, e.a + 3 * PG));
	cpu_check(child, e.a + 2 * PG, 2, 22);
	iom_mm_destroy(child);
	assert_int_equal(atomic_load(&e.mdevice.calloc), atomic_load(&e.mdevice.cfree));
	/* mprotect(PROT_READ) of a page on the device */
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, 1), 1);
	assert_int_equal(iom_mprotect(e.mm, e.a, PG, IOM_PROT_READ), 0);
	assert_int_equal(swp_type(pte_to_swp_entry(test_get_pte(e.mm, e.a))),
			 SWP_DEVICE_READ);
	cpu_check(e.mm, e.a, 1, 20);
	assert_false(pte_write(test_get_pte(e.mm, e.a)));
	env_fini(&e);
}

struct dev_reader {
	struct dmirror *dmirror;
	uint64_t a;
	atomic_bool stop;
	atomic_ulong ok;
	unsigned long bad, gone;
};

static void *dev_reader_fn(void *arg)
{
	struct dev_reader *r = arg;
	unsigned char buf[PG];

	while (!atomic_load(&r->stop)) {
		for (unsigned int i = 0; i < NPAGES; i++) {
			int ret = dmirror_access(r->dmirror, r->a + i * PG, buf, false);

			if (ret == -ENOENT)
				r->gone++;
			else if (ret || !check(buf, 60 + i))
				r->bad++;
			else
				atomic_fetch_add(&r->ok, 1);
		}
	}
	return NULL;
}

/*
 * What this proves: the teardown race: munmap while the device reads its
 * copies gives each read either the right data or -ENOENT (the MMU
 * notifier cleared the device page table before the pages were freed),
 * and every device page goes back to the driver.
 */
static void munmap_while_device_reads(void **state)
{
	struct dev_reader r = { 0 };
	pthread_t t;
	struct env e;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, NPAGES, 60);
	assert_int_equal(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES), NPAGES);
	r.dmirror = &e.dmirror;
	r.a = e.a;
	atomic_init(&r.ok, 0);
	assert_int_equal(pthread_create(&t, NULL, dev_reader_fn, &r), 0);
	while (atomic_load(&r.ok) < NPAGES)
		sched_yield();
	assert_int_equal(iom_munmap(e.mm, e.a, NPAGES * PG), 0);
	atomic_store(&r.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(r.bad, 0);
	assert_int_equal(atomic_load(&e.mdevice.calloc), atomic_load(&e.mdevice.cfree));
	env_fini(&e);
}

/* ---- concurrency ---------------------------------------------------------------- */

#define CC_ROUNDS 200
#define CC_ROUNDS_MAX 200000

struct reader {
	struct iom_mm *mm;
	uint64_t a;
	atomic_bool stop;
	atomic_ulong reads;
	unsigned long bad, errors;
};

static void *reader_fn(void *arg)
{
	struct reader *r = arg;
	unsigned char buf[PG];

	while (!atomic_load(&r->stop)) {
		for (unsigned int i = 0; i < NPAGES; i++) {
			if (iom_read(r->mm, r->a + i * PG, buf, PG))
				r->errors++;
			else if (!check(buf, 40 + i))
				r->bad++;
			atomic_fetch_add(&r->reads, 1);
		}
	}
	return NULL;
}

/*
 * What this proves: a CPU thread reading the range while the main thread
 * migrates it to the device and back, again and again, always reads the
 * right data: its accesses wait on migration entries or fault device
 * pages back through ->migrate_to_ram(), racing the main thread's own
 * migrations. The reader asserts nothing itself; the counts are checked
 * after the join, and nothing leaks.
 */
static void race(bool broken)
{
	struct reader r = { 0 };
	unsigned long moved = 0, back = 0;
	pthread_t t;
	struct env e;
	int round;

	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, NPAGES, 40);
	atomic_init(&r.reads, 0);
	e.dmirror.skip_copy = broken;
	r.mm = e.mm;
	r.a = e.a;
	assert_int_equal(pthread_create(&t, NULL, reader_fn, &r), 0);
	/* at least CC_ROUNDS, and until the reader has met device pages */
	for (round = 0; round < CC_ROUNDS_MAX; round++) {
		long n = dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES);

		assert_true(n >= 0);
		moved += (unsigned long)n;
		/* the reader meets pages on the device and faults them back */
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
		n = dmirror_migrate_to_system(&e.dmirror, e.a, NPAGES);
		assert_true(n >= 0);
		back += (unsigned long)n;
		/* let the reader in between rounds, not only on the entries */
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
		if (round >= CC_ROUNDS && atomic_load(&r.reads) >= 4 * NPAGES &&
		    atomic_load(&e.dmirror.faults))
			break;
	}
	atomic_store(&r.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	print_message("%s: %d rounds, %lu reads, %lu pages moved, %lu faulted back, %lu bad\n",
		      broken ? "broken copy" : "race", round, atomic_load(&r.reads),
		      moved, atomic_load(&e.dmirror.faults), r.bad);
	assert_int_equal(r.errors, 0);
	if (broken) {
		/* the reader's check catches a fault path that loses data */
		assert_true(r.bad > 0);
		e.dmirror.skip_copy = false;
		env_fini(&e);
		return;
	}
	assert_int_equal(r.bad, 0);
	assert_true(atomic_load(&r.reads) >= 4 * NPAGES);
	assert_true(atomic_load(&e.dmirror.faults) > 0);	/* the race was run */
	assert_true(moved > 0);
	/* every page that went to the device came back, one way or the other */
	assert_int_equal(moved, back + atomic_load(&e.dmirror.faults));
	cpu_check(e.mm, e.a, NPAGES, 40);
	env_fini(&e);
}

#define CC_WRITERS 2

struct writer {
	struct iom_mm *mm;
	uint64_t a;		/* its own NPAGES / CC_WRITERS pages */
	atomic_bool *stop;
	unsigned long writes, lost, errors;
	uint64_t last;
};

static void *writer_fn(void *arg)
{
	struct writer *w = arg;
	uint64_t v = 0, got;

	while (!atomic_load(w->stop)) {
		for (unsigned int i = 0; i < NPAGES / CC_WRITERS; i++) {
			uint64_t addr = w->a + i * PG + (v % 64) * 8;

			v++;
			if (iom_write(w->mm, addr, &v, sizeof(v)) ||
			    iom_read(w->mm, addr, &got, sizeof(got))) {
				w->errors++;
				continue;
			}
			if (got != v)
				w->lost++;
			w->writes++;
		}
	}
	w->last = v;
	return NULL;
}

/*
 * What this proves: writes are never lost while pages move to the device
 * and back: CPU writers (each on its own pages, each write read back at
 * once) race the main thread's migrations both ways and their own
 * write faults on device pages; after the join every page holds each
 * writer's last value in the slot it was written to.
 */
static void cpu_writers_race_migration_lose_nothing(void **state)
{
	struct writer w[CC_WRITERS];
	pthread_t t[CC_WRITERS];
	atomic_bool stop;
	struct env e;
	unsigned int i;
	int round;

	(void)state;
	env_init(&e, NPAGES);
	cpu_fill(e.mm, e.a, NPAGES, 0);
	atomic_init(&stop, false);
	for (i = 0; i < CC_WRITERS; i++) {
		w[i] = (struct writer){ .mm = e.mm, .stop = &stop,
					.a = e.a + i * (NPAGES / CC_WRITERS) * PG };
		assert_int_equal(pthread_create(&t[i], NULL, writer_fn, &w[i]), 0);
	}
	for (round = 0; round < CC_ROUNDS; round++) {
		assert_true(dmirror_migrate_to_device(&e.dmirror, e.a, NPAGES) >= 0);
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
		assert_true(dmirror_migrate_to_system(&e.dmirror, e.a, NPAGES) >= 0);
	}
	atomic_store(&stop, true);
	for (i = 0; i < CC_WRITERS; i++) {
		uint64_t v, got, addr;

		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].lost, 0);
		assert_true(w[i].writes > 0);
		/*
		 * Value u went to slot (u - 1) % 64 of page (u - 1) % 8 (no
		 * errors: the value before the increment counts the writes),
		 * so each of the 64 slots must hold the last value written
		 * there: any write lost to a migration, even one later
		 * overwritten on another page, shows.
		 */
		for (unsigned int slot = 0; slot < 64 && slot < w[i].last; slot++) {
			v = w[i].last - ((w[i].last - 1 - slot) % 64);
			addr = w[i].a + ((v - 1) % (NPAGES / CC_WRITERS)) * PG +
			       ((v - 1) % 64) * 8;
			assert_int_equal(iom_read(e.mm, addr, &got, sizeof(got)), 0);
			assert_true(got == v);
		}
	}
	print_message("writers: %lu + %lu writes, %lu faults\n", w[0].writes,
		      w[1].writes, atomic_load(&e.dmirror.faults));
	env_fini(&e);
}

static void cpu_reader_races_migration(void **state)
{
	(void)state;
	race(false);
}

/* What this proves: the race's data check fails when the copy is broken. */
static void cpu_reader_catches_broken_fault_copy(void **state)
{
	(void)state;
	race(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(migrate_to_device_and_back_ten_times),
		cmocka_unit_test(migrate_fault_half_then_again),
		cmocka_unit_test(migrate_errors_hole_prot_none_other_owner),
		cmocka_unit_test(device_alloc_failure_keeps_pages_in_ram),
		cmocka_unit_test(missing_copy_is_caught),
		cmocka_unit_test(bad_arguments),
		cmocka_unit_test(longterm_pin_brings_device_pages_back),
		cmocka_unit_test(fork_shares_device_pages),
		cmocka_unit_test(munmap_while_device_reads),
		cmocka_unit_test(cpu_reader_races_migration),
		cmocka_unit_test(cpu_reader_catches_broken_fault_copy),
		cmocka_unit_test(cpu_writers_race_migration_lose_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
