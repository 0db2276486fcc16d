/* SPDX-License-Identifier: MIT */
/*
 * HMM (mm/hmm.c, lib/test_hmm.c and selftests/mm/hmm-tests.c in spirit,
 * without device-private memory): hmm_range_fault() reports and faults the
 * CPU page table with the kernel's errors, the interval-notifier sequence
 * makes a raced fault retry, mirrors see every invalidation; and seed
 * 001's hmm_domain: devices of one IOMMU domain share one set of IOMMU
 * mappings at IOVA == VA, updated once per invalidation, freed with the
 * last mirror; a device reading while the range is unmapped gets the right
 * data or a fault, never stale data; nothing leaks.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>

#include "mm_util.h"
#include <iommig/hmm.h>
#include <iommig/hmm_domain.h>
#include <iommig/iommu.h>
#include <iommig/migrate.h>
#include <iommig/migrate_device.h>

#define PG IOM_PAGE_SIZE
#define NPAGES 16

static struct test_log tlog;

/* ---- a dmirror-like test device with its own page table ------------------ */

struct dmirror {
	struct iom_hmm_mirror mirror;
	pthread_mutex_t lock;		/* the driver's update lock */
	uint64_t base;
	uint64_t pt[NPAGES];		/* hmm_pfns as mapped by the "device" */
	unsigned long syncs;
	enum iom_mmu_notifier_event last_event;
	uint64_t last_start, last_end;
	void *last_owner;
	int releases;
	unsigned long retries;
	void (*hook)(struct dmirror *dmi);	/* between fault and lock */
	struct iom_mm *mm;
};

static int dmirror_sync(struct iom_hmm_mirror *mirror,
			const struct iom_hmm_update *update)
{
	struct dmirror *dmi = (struct dmirror *)mirror;
	uint64_t a;

	pthread_mutex_lock(&dmi->lock);
	iom_mmu_interval_set_seq(&mirror->notifier, 0);
	dmi->syncs++;
	dmi->last_event = update->event;
	dmi->last_start = update->start;
	dmi->last_end = update->end;
	dmi->last_owner = update->owner;
	for (a = update->start; a < update->end; a += PG) {
		if (a < dmi->base || a >= dmi->base + NPAGES * PG)
			continue;
		if (update->event == IOM_MMU_NOTIFY_PROTECTION_VMA ||
		    update->event == IOM_MMU_NOTIFY_PROTECTION_PAGE)
			dmi->pt[(a - dmi->base) / PG] &= ~IOM_HMM_PFN_WRITE;
		else
			dmi->pt[(a - dmi->base) / PG] = 0;
	}
	pthread_mutex_unlock(&dmi->lock);
	return 0;
}

static void dmirror_release(struct iom_hmm_mirror *mirror)
{
	((struct dmirror *)mirror)->releases++;
}

static const struct iom_hmm_mirror_ops dmirror_ops = {
	.sync_cpu_device_pagetables = dmirror_sync,
	.release = dmirror_release,
};

static void dmirror_init(struct dmirror *dmi, struct iom_mm *mm, uint64_t base)
{
	memset(dmi, 0, sizeof(*dmi));
	pthread_mutex_init(&dmi->lock, NULL);
	dmi->mirror.ops = &dmirror_ops;
	dmi->mirror.device = dmi;
	dmi->base = base;
	dmi->mm = mm;
	assert_int_equal(iom_hmm_mirror_register(&dmi->mirror, mm), 0);
}

static void dmirror_fini(struct dmirror *dmi)
{
	iom_hmm_mirror_unregister(&dmi->mirror);
	pthread_mutex_destroy(&dmi->lock);
}

/* dmirror_range_fault() + dmirror_do_fault(): the driver's retry loop. */
static int dmirror_fault(struct dmirror *dmi, uint64_t start, unsigned long n,
			 bool write)
{
	uint64_t pfns[NPAGES];
	struct iom_hmm_range range = {
		.notifier = &dmi->mirror.notifier,
		.start = start,
		.end = start + n * PG,
		.hmm_pfns = pfns,
		.default_flags = IOM_HMM_PFN_REQ_FAULT |
				 (write ? IOM_HMM_PFN_REQ_WRITE : 0),
	};
	unsigned long i;
	int ret;

	for (;;) {
		range.notifier_seq = iom_mmu_interval_read_begin(range.notifier);
		ret = iom_hmm_range_fault(&range);
		if (ret == -EBUSY) {
			dmi->retries++;
			continue;
		}
		if (ret)
			return ret;
		if (dmi->hook)
			dmi->hook(dmi);
		pthread_mutex_lock(&dmi->lock);
		if (iom_mmu_interval_read_retry(range.notifier, range.notifier_seq)) {
			dmi->retries++;
			pthread_mutex_unlock(&dmi->lock);
			continue;
		}
		break;
	}
	for (i = 0; i < n; i++)
		dmi->pt[(start - dmi->base) / PG + i] = pfns[i];
	pthread_mutex_unlock(&dmi->lock);
	return 0;
}

/* The device reads a page through its own page table. */
static int dmirror_read(struct dmirror *dmi, struct iom_machine *m,
			uint64_t addr, void *buf)
{
	uint64_t e = dmi->pt[(addr - dmi->base) / PG];

	if (!(e & IOM_HMM_PFN_VALID))
		return -EFAULT;
	memcpy(buf, iom_page_address(m, iom_pfn_to_page(m, iom_hmm_pfn_to_pfn(e))), PG);
	return 0;
}

static void fill(struct iom_mm *mm, uint64_t addr, unsigned long n, unsigned int seed)
{
	unsigned long i;
	char buf[PG];

	for (i = 0; i < n; i++) {
		memset(buf, (int)((seed + i) & 0xff), PG);
		assert_int_equal(iom_write(mm, addr + i * PG, buf, PG), 0);
	}
}

static bool page_is(const char *buf, int c)
{
	size_t i;

	for (i = 0; i < PG; i++)
		if (buf[i] != (char)c)
			return false;
	return true;
}

/* ---- plain mirrors -------------------------------------------------------- */

static void range_fault_reads_and_writes_anon_memory(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	unsigned long free0 = test_nr_free(m), i;
	struct iom_mm *mm;
	struct dmirror dmi;
	uint64_t addr, pfns[NPAGES];
	char buf[PG];

	assert_int_equal(iom_mm_create(m, &mm), 0);
	addr = test_mmap(mm, 0, NPAGES * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	dmirror_init(&dmi, mm, addr);
	fill(mm, addr, NPAGES / 2, 0x10);	/* the upper half is not faulted in */

	/* a snapshot (no fault asked) shows the CPU's state */
	{
		struct iom_hmm_range r = {
			.notifier = &dmi.mirror.notifier, .start = addr,
			.end = addr + NPAGES * PG, .hmm_pfns = pfns,
		};

		r.notifier_seq = iom_mmu_interval_read_begin(r.notifier);
		assert_int_equal(iom_hmm_range_fault(&r), 0);
		for (i = 0; i < NPAGES; i++) {
			if (i < NPAGES / 2) {
				struct iom_page *p = test_get_page_at(mm, addr + i * PG);

				assert_true(pfns[i] & IOM_HMM_PFN_VALID);
				assert_true(pfns[i] & IOM_HMM_PFN_WRITE);
				assert_int_equal(iom_hmm_pfn_to_pfn(pfns[i]), iom_page_to_pfn(m, p));
				iom_put_page(m, p);
			} else {
				assert_int_equal(pfns[i], 0);
			}
		}
	}
	/* a read fault populates the rest; the device reads the CPU's data */
	assert_int_equal(dmirror_fault(&dmi, addr, NPAGES, false), 0);
	for (i = 0; i < NPAGES; i++) {
		assert_true(dmi.pt[i] & IOM_HMM_PFN_VALID);
		assert_int_equal(dmirror_read(&dmi, m, addr + i * PG, buf), 0);
		assert_true(page_is(buf, i < NPAGES / 2 ? (int)(0x10 + i) : 0));
	}
	/* per-page flags: only page 3 asks for a fault, for write */
	{
		struct iom_hmm_range r = {
			.notifier = &dmi.mirror.notifier, .start = addr,
			.end = addr + NPAGES * PG, .hmm_pfns = pfns,
			.pfn_flags_mask = IOM_HMM_PFN_REQ_FAULT | IOM_HMM_PFN_REQ_WRITE,
		};

		memset(pfns, 0, sizeof(pfns));
		pfns[3] = IOM_HMM_PFN_REQ_FAULT | IOM_HMM_PFN_REQ_WRITE;
		r.notifier_seq = iom_mmu_interval_read_begin(r.notifier);
		assert_int_equal(iom_hmm_range_fault(&r), 0);
		assert_true(pfns[3] & IOM_HMM_PFN_WRITE);
	}
	/* a device write lands in the CPU's page */
	memset(iom_page_address(m, iom_pfn_to_page(m, iom_hmm_pfn_to_pfn(dmi.pt[2]))), 0x77, PG);
	assert_int_equal(iom_read(mm, addr + 2 * PG, buf, PG), 0);
	assert_true(page_is(buf, 0x77));

	dmirror_fini(&dmi);
	iom_mm_destroy(mm);
	assert_int_equal(test_nr_free(m), free0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

static void range_fault_protection_errors(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct iom_mm *mm;
	struct dmirror dmi;
	uint64_t ro, none, hole, pfns[NPAGES];

	assert_int_equal(iom_mm_create(m, &mm), 0);
	ro = test_mmap(mm, 0, 4 * PG, IOM_PROT_READ,
		       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	none = test_mmap(mm, 0, 4 * PG, IOM_PROT_NONE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	hole = test_mmap(mm, 0, 4 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(iom_munmap(mm, hole, 4 * PG), 0);
	dmirror_init(&dmi, mm, ro);

	/* hmm-tests: anon_read_prot (-EFAULT? no: read of PROT_READ works) */
	assert_int_equal(dmirror_fault(&dmi, ro, 4, false), 0);
	assert_true(dmi.pt[0] & IOM_HMM_PFN_VALID);
	assert_false(dmi.pt[0] & IOM_HMM_PFN_WRITE);
	/* anon_write_prot: a write to a read-only mapping is -EPERM */
	assert_int_equal(dmirror_fault(&dmi, ro, 4, true), -EPERM);
	/* PROT_NONE and nothing mapped: -EFAULT */
	assert_int_equal(dmirror_fault(&dmi, none, 1, false), -EFAULT);
	assert_int_equal(dmirror_fault(&dmi, hole, 1, false), -EFAULT);
	assert_int_equal(dmirror_fault(&dmi, hole, 1, true), -EFAULT);
	/* without a fault asked, the unmappable pages are reported ERROR */
	{
		struct iom_hmm_range r = {
			.notifier = &dmi.mirror.notifier, .start = none,
			.end = none + 4 * PG, .hmm_pfns = pfns,
		};

		r.notifier_seq = iom_mmu_interval_read_begin(r.notifier);
		assert_int_equal(iom_hmm_range_fault(&r), 0);
		assert_int_equal(pfns[0], IOM_HMM_PFN_ERROR);
		assert_int_equal(pfns[3], IOM_HMM_PFN_ERROR);
		r.start = hole;
		r.end = hole + 2 * PG;
		assert_int_equal(iom_hmm_range_fault(&r), 0);
		assert_int_equal(pfns[1], IOM_HMM_PFN_ERROR);
	}
	dmirror_fini(&dmi);
	iom_mm_destroy(mm);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

static void do_mprotect_ro(struct dmirror *dmi)
{
	if (dmi->retries)
		return;		/* once */
	assert_int_equal(iom_mprotect(dmi->mm, dmi->base, PG, IOM_PROT_READ), 0);
}

static void raced_invalidation_makes_range_fault_retry(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct iom_mm *mm;
	struct dmirror dmi;
	uint64_t addr, pfns[NPAGES];
	struct iom_hmm_range r = { .hmm_pfns = pfns,
				   .default_flags = IOM_HMM_PFN_REQ_FAULT };
	unsigned long seq;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	addr = test_mmap(mm, 0, NPAGES * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	fill(mm, addr, NPAGES, 1);
	dmirror_init(&dmi, mm, addr);
	r.notifier = &dmi.mirror.notifier;
	r.start = addr;
	r.end = addr + NPAGES * PG;

	/* an invalidation after read_begin: range_fault says -EBUSY */
	seq = iom_mmu_interval_read_begin(r.notifier);
	r.notifier_seq = seq;
	assert_false(iom_mmu_interval_read_retry(r.notifier, seq));
	assert_int_equal(iom_mprotect(mm, addr + 5 * PG, PG, IOM_PROT_READ), 0);
	assert_true(iom_mmu_interval_check_retry(r.notifier, seq));
	assert_int_equal(iom_hmm_range_fault(&r), -EBUSY);
	/* after range_fault, before the driver's lock: read_retry says retry */
	r.notifier_seq = iom_mmu_interval_read_begin(r.notifier);
	assert_int_not_equal(r.notifier_seq, seq);
	assert_int_equal(iom_hmm_range_fault(&r), 0);
	assert_int_equal(iom_munmap(mm, addr + 15 * PG, PG), 0);
	assert_true(iom_mmu_interval_read_retry(r.notifier, r.notifier_seq));
	/* the driver loop retries once and ends with the new protection */
	dmi.hook = do_mprotect_ro;
	assert_int_equal(dmirror_fault(&dmi, addr, 4, false), 0);
	assert_int_equal(dmi.retries, 1);
	assert_true(dmi.pt[0] & IOM_HMM_PFN_VALID);
	assert_false(dmi.pt[0] & IOM_HMM_PFN_WRITE);
	assert_true(dmi.pt[1] & IOM_HMM_PFN_WRITE);

	dmirror_fini(&dmi);
	iom_mm_destroy(mm);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

struct counter_mni {
	struct iom_mmu_interval_notifier mni;
	int calls;
};

static bool counter_invalidate(struct iom_mmu_interval_notifier *mni,
			       const struct iom_mmu_notifier_range *range,
			       unsigned long cur_seq)
{
	iom_mmu_interval_set_seq(mni, cur_seq);
	((struct counter_mni *)mni)->calls++;
	return true;
}

static const struct iom_mmu_interval_notifier_ops counter_ops = {
	.invalidate = counter_invalidate,
};

static void interval_notifier_sees_only_its_interval(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct counter_mni c;
	struct iom_mm *mm;
	uint64_t addr;
	unsigned long seq;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	addr = test_mmap(mm, 0, 8 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(iom_mmu_interval_notifier_insert(&c.mni, mm, addr, 4 * PG,
							  &counter_ops), 0);
	assert_int_equal(iom_mmu_interval_notifier_insert(&c.mni, mm, addr, 4 * PG,
							  &counter_ops), -EBUSY);
	seq = iom_mmu_interval_read_begin(&c.mni);
	assert_int_equal(iom_munmap(mm, addr + 4 * PG, 4 * PG), 0);	/* outside */
	assert_int_equal(c.calls, 0);
	assert_false(iom_mmu_interval_read_retry(&c.mni, seq));
	assert_int_equal(iom_munmap(mm, addr + 3 * PG, PG), 0);	/* inside */
	assert_int_equal(c.calls, 1);
	assert_true(iom_mmu_interval_read_retry(&c.mni, seq));
	iom_mmu_interval_notifier_remove(&c.mni);
	iom_mmu_interval_notifier_remove(&c.mni);		/* no-op */
	assert_int_equal(iom_munmap(mm, addr, PG), 0);
	assert_int_equal(c.calls, 1);
	iom_mm_destroy(mm);
	iom_machine_destroy(m);
}

static void mirror_sees_unmap_protection_and_release(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct iom_mm *mm;
	struct dmirror dmi, twin;
	uint64_t addr;
	char buf[PG];

	assert_int_equal(iom_mm_create(m, &mm), 0);
	addr = test_mmap(mm, 0, NPAGES * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	fill(mm, addr, NPAGES, 3);
	dmirror_init(&dmi, mm, addr);
	/* the same device cannot mirror twice; the same mirror is busy */
	memset(&twin, 0, sizeof(twin));
	twin.mirror.ops = &dmirror_ops;
	twin.mirror.device = &dmi;
	assert_int_equal(iom_hmm_mirror_register(&twin.mirror, mm), -EINVAL);
	assert_int_equal(iom_hmm_mirror_register(&dmi.mirror, mm), -EBUSY);
	assert_int_equal(dmi.syncs, 0);

	assert_int_equal(dmirror_fault(&dmi, addr, NPAGES, true), 0);
	assert_int_equal(iom_mprotect(mm, addr, 4 * PG, IOM_PROT_READ), 0);
	assert_int_equal(dmi.syncs, 1);
	assert_int_equal(dmi.last_event, IOM_MMU_NOTIFY_PROTECTION_VMA);
	assert_int_equal(dmi.last_start, addr);
	assert_int_equal(dmi.last_end, addr + 4 * PG);
	assert_true(dmi.pt[0] & IOM_HMM_PFN_VALID);
	assert_false(dmi.pt[0] & IOM_HMM_PFN_WRITE);
	assert_true(dmi.pt[4] & IOM_HMM_PFN_WRITE);

	assert_int_equal(iom_munmap(mm, addr + 8 * PG, 8 * PG), 0);
	assert_int_equal(dmi.syncs, 2);
	assert_int_equal(dmi.last_event, IOM_MMU_NOTIFY_UNMAP);
	assert_int_equal(dmirror_read(&dmi, m, addr + 9 * PG, buf), -EFAULT);
	assert_int_equal(dmirror_read(&dmi, m, addr + 7 * PG, buf), 0);
	assert_true(page_is(buf, 3 + 7));
	assert_int_equal(dmirror_fault(&dmi, addr + 8 * PG, 1, false), -EFAULT);

	/* exit: ->release, then range_fault refuses, unregister is a no-op */
	iom_mm_destroy(mm);
	assert_int_equal(dmi.releases, 1);
	{
		uint64_t pfns[1];
		struct iom_hmm_range r = { .notifier = &dmi.mirror.notifier,
					   .start = addr, .end = addr + PG,
					   .hmm_pfns = pfns };

		assert_int_equal(iom_hmm_range_fault(&r), -EINVAL);
	}
	dmirror_fini(&dmi);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

/* ---- device-private pages (the other half of lib/test_hmm.c) ------------- */

static atomic_int devmem_freed, devmem_faults;

static void devmem_free(struct iom_page *page)
{
	atomic_fetch_add(&devmem_freed, 1);
}

/* A driver that cannot bring pages back: the CPU access fails (SIGBUS). */
static int devmem_fault(struct iom_vm_fault *vmf)
{
	atomic_fetch_add(&devmem_faults, 1);
	return -EFAULT;
}

static const struct iom_dev_pagemap_ops devmem_ops = {
	.page_free = devmem_free,
	.migrate_to_ram = devmem_fault,
};

/*
 * hmm_range_fault() reports a device-private page to its owner (the
 * device pfn, VALID | WRITE, no fault), reports 0 to anyone else who asks
 * no fault, and faults it back through ->migrate_to_ram() for anyone who
 * does (here the driver fails, so -EFAULT).
 */
static void range_fault_reports_own_device_pages_and_faults_others(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	static int owner, other;
	struct iom_dev_pagemap pgmap = { .type = IOM_MEMORY_DEVICE_PRIVATE,
					 .nr_pages = 4, .ops = &devmem_ops,
					 .owner = &owner };
	unsigned long src[2], dst[2], free0 = test_nr_free(m);
	struct iom_migrate_vma args = { 0 };
	struct iom_page *dpage;
	struct iom_mm *mm;
	struct dmirror dmi;
	uint64_t addr, pfns[2];
	struct iom_hmm_range r = { .hmm_pfns = pfns };

	atomic_store(&devmem_freed, 0);
	atomic_store(&devmem_faults, 0);
	assert_int_equal(iom_memremap_pages(m, &pgmap), 0);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	addr = test_mmap(mm, 0, 2 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	fill(mm, addr, 2, 0xa0);
	dmirror_init(&dmi, mm, addr);

	/* migrate page 0 to the device (seed 003's steps) */
	args.mm = mm;
	args.start = addr;
	args.end = addr + PG;
	args.src = src;
	args.dst = dst;
	args.pgmap_owner = &owner;
	args.flags = IOM_MIGRATE_VMA_SELECT_SYSTEM;
	assert_int_equal(iom_mmap_read_lock(mm), 0);
	assert_int_equal(iom_migrate_vma_setup(&args), 0);
	assert_int_equal(args.cpages, 1);
	dpage = &pgmap.pages[0];
	assert_int_equal(iom_zone_device_page_init(m, dpage), 0);
	memcpy(iom_page_address(m, dpage),
	       iom_page_address(m, iom_migrate_pfn_to_page(m, src[0])), PG);
	dst[0] = iom_migrate_pfn(iom_page_to_pfn(m, dpage)) |
		 (src[0] & IOM_MIGRATE_PFN_WRITE);
	iom_migrate_vma_pages(&args);
	iom_migrate_vma_finalize(&args);
	assert_int_equal(iom_mmap_read_unlock(mm), 0);
	/* the mirror saw the migration, with the migrating owner */
	assert_int_equal(dmi.last_event, IOM_MMU_NOTIFY_MIGRATE);
	assert_ptr_equal(dmi.last_owner, &owner);

	r.notifier = &dmi.mirror.notifier;
	r.start = addr;
	r.end = addr + 2 * PG;
	r.dev_private_owner = &owner;
	r.default_flags = IOM_HMM_PFN_REQ_FAULT | IOM_HMM_PFN_REQ_WRITE;
	r.notifier_seq = iom_mmu_interval_read_begin(r.notifier);
	assert_int_equal(iom_hmm_range_fault(&r), 0);
	assert_int_equal(pfns[0], iom_page_to_pfn(m, dpage) | IOM_HMM_PFN_VALID |
				  IOM_HMM_PFN_WRITE);
	assert_true(pfns[1] & IOM_HMM_PFN_VALID);
	assert_int_equal(atomic_load(&devmem_faults), 0);

	/* another owner, no fault asked: 0 */
	r.dev_private_owner = &other;
	r.default_flags = 0;
	assert_int_equal(iom_hmm_range_fault(&r), 0);
	assert_int_equal(pfns[0], 0);
	/* a fault asked: ->migrate_to_ram(), which fails here */
	r.dev_private_owner = NULL;
	r.default_flags = IOM_HMM_PFN_REQ_FAULT;
	assert_int_equal(iom_hmm_range_fault(&r), -EFAULT);
	assert_int_equal(atomic_load(&devmem_faults), 1);

	dmirror_fini(&dmi);
	iom_mm_destroy(mm);
	assert_int_equal(atomic_load(&devmem_freed), 1);
	assert_int_equal(iom_memunmap_pages(&pgmap), 0);
	assert_int_equal(test_nr_free(m), free0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

/* ---- seed 001: hmm_domain ------------------------------------------------- */

struct fx {
	struct iom_machine *m;
	unsigned long free0;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d, *d2;
	struct iom_device *dev[3];
	struct iom_mm *mm;
	unsigned long pt0;
};

/*
 * @quiet: no log (device threads fault, and the test log is not
 * thread-safe). @nr_nodes: 1, or 2 for move_pages() (allocations on 0).
 */
static void fx_init_nodes(struct fx *f, bool quiet, int nr_nodes)
{
	struct iom_machine_config cfg = { 0 };
	char name[8];
	int i;

	memset(f, 0, sizeof(*f));
	cfg.mem_size = 64ULL << 20;
	cfg.nr_nodes = nr_nodes;
	f->m = test_machine(0, quiet ? NULL : &tlog, &cfg);
	assert_non_null(f->m);
	assert_int_equal(iom_set_numa_node(f->m, 0), 0);
	f->free0 = test_nr_free(f->m);
	assert_int_equal(iom_iommu_create(f->m, NULL, &f->iommu), 0);
	f->d = iom_iommu_domain_alloc(f->iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	f->d2 = iom_iommu_domain_alloc(f->iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(f->d);
	assert_non_null(f->d2);
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "dev%d", i);
		assert_int_equal(iom_device_create(f->iommu, name, &f->dev[i]), 0);
		assert_int_equal(iom_iommu_attach_device(i < 2 ? f->d : f->d2,
							 f->dev[i]), 0);
	}
	f->pt0 = iom_io_pgtable_nr_pages(iom_iommu_domain_pgtable(f->d));
	assert_int_equal(iom_mm_create(f->m, &f->mm), 0);
}

static void fx_init_log(struct fx *f, bool quiet)
{
	fx_init_nodes(f, quiet, 1);
}

static void fx_init(struct fx *f)
{
	fx_init_log(f, false);
}

static void fx_fini(struct fx *f)
{
	int i;

	if (f->mm)
		iom_mm_destroy(f->mm);
	for (i = 0; i < 3; i++) {
		assert_int_equal(iom_iommu_detach_device(i < 2 ? f->d : f->d2,
							 f->dev[i]), 0);
		assert_int_equal(iom_device_destroy(f->dev[i]), 0);
	}
	assert_int_equal(iom_iommu_domain_free(f->d), 0);
	assert_int_equal(iom_iommu_domain_free(f->d2), 0);
	assert_int_equal(iom_iommu_destroy(f->iommu), 0);
	iom_rcu_barrier();
	assert_int_equal(iom_io_pgtable_machine_pages(f->m), 0);
	assert_int_equal(test_nr_free(f->m), f->free0);
	assert_int_equal(iom_machine_bug_count(f->m), 0);
	iom_machine_destroy(f->m);
}

static unsigned long leaves_of(struct iom_iommu_domain *d)
{
	unsigned long nr[8] = { 0 };

	return iom_io_pgtable_nr_leaves(iom_iommu_domain_pgtable(d), nr);
}

static uint64_t fx_anon(struct fx *f, unsigned long n, unsigned int seed)
{
	uint64_t addr = test_mmap(f->mm, 0, n * PG, IOM_PROT_READ | IOM_PROT_WRITE,
				  IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);

	fill(f->mm, addr, n, seed);
	return addr;
}

static void domain_mirror_dma_reads_and_writes_process_memory(void **state)
{
	struct iom_hmm_device_mirror dm = { 0 };
	struct iom_hmm_domain_stats st;
	struct fx f;
	uint64_t addr;
	unsigned long i;
	char buf[PG];

	fx_init(&f);
	addr = fx_anon(&f, NPAGES, 0x20);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm, f.dev[0], f.mm), 0);
	/* nothing mapped before the fault: the device faults */
	assert_int_equal(iom_device_dma_read(f.dev[0], addr, buf, PG), -EFAULT);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, addr, NPAGES * PG, false), 0);
	for (i = 0; i < NPAGES; i++) {
		assert_int_equal(iom_device_dma_read(f.dev[0], addr + i * PG, buf, PG), 0);
		assert_true(page_is(buf, (int)(0x20 + i)));
	}
	/* the device writes, the CPU reads it at the same address */
	memset(buf, 0x5a, PG);
	assert_int_equal(iom_device_dma_write(f.dev[0], addr + 3 * PG, buf, PG), 0);
	memset(buf, 0, PG);
	assert_int_equal(iom_read(f.mm, addr + 3 * PG, buf, PG), 0);
	assert_true(page_is(buf, 0x5a));
	/* faulting again maps nothing again */
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, addr + 1, 2 * PG, true), 0);
	assert_int_equal(iom_hmm_domain_get_stats(&dm, &st), 0);
	assert_int_equal(st.maps, NPAGES);
	assert_int_equal(st.nr_mapped, NPAGES);
	assert_int_equal(st.remaps, 0);
	assert_int_equal(st.nr_mirrors, 1);
	/* a page not yet touched is faulted in by the device's fault */
	{
		uint64_t fresh = test_mmap(f.mm, 0, PG, IOM_PROT_READ | IOM_PROT_WRITE,
					   IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);

		assert_int_equal(iom_hmm_domain_mirror_fault(&dm, fresh, 1, true), 0);
		memset(buf, 0x66, PG);
		assert_int_equal(iom_device_dma_write(f.dev[0], fresh, buf, PG), 0);
		memset(buf, 0, PG);
		assert_int_equal(iom_read(f.mm, fresh, buf, PG), 0);
		assert_true(page_is(buf, 0x66));
	}
	iom_hmm_domain_mirror_unregister(&dm);
	assert_int_equal(iom_device_dma_read(f.dev[0], addr, buf, PG), -EFAULT);
	assert_int_equal(leaves_of(f.d), 0);
	fx_fini(&f);
}

static void domain_mirror_protection_errors_change_nothing(void **state)
{
	struct iom_hmm_device_mirror dm = { 0 };
	struct iom_hmm_domain_stats st;
	struct fx f;
	uint64_t ro, none;

	fx_init(&f);
	ro = test_mmap(f.mm, 0, 2 * PG, IOM_PROT_READ,
		       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	none = test_mmap(f.mm, 0, PG, IOM_PROT_NONE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm, f.dev[0], f.mm), 0);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, ro, 2 * PG, true), -EPERM);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, none, PG, false), -EFAULT);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, 0x1000, PG, false), -EFAULT);
	assert_int_equal(iom_hmm_domain_get_stats(&dm, &st), 0);
	assert_int_equal(st.maps + st.nr_mapped + st.unmaps, 0);
	/* a read of the read-only mapping maps it read-only */
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, ro, 2 * PG, false), 0);
	{
		char buf[16] = { 1 };

		assert_int_equal(iom_device_dma_read(f.dev[0], ro, buf, sizeof(buf)), 0);
		assert_int_equal(buf[0], 0);
		assert_int_equal(iom_device_dma_write(f.dev[0], ro, buf, sizeof(buf)),
				 -EFAULT);
	}
	iom_hmm_domain_mirror_unregister(&dm);
	fx_fini(&f);
}

static void munmap_and_mprotect_update_the_mapping(void **state)
{
	struct iom_hmm_device_mirror dm = { 0 };
	struct iom_hmm_domain_stats st;
	struct fx f;
	uint64_t addr;
	char buf[PG];

	fx_init(&f);
	addr = fx_anon(&f, NPAGES, 0x40);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm, f.dev[0], f.mm), 0);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, addr, NPAGES * PG, true), 0);

	/* mprotect read-only: device writes fault, reads work */
	assert_int_equal(iom_mprotect(f.mm, addr, 4 * PG, IOM_PROT_READ), 0);
	assert_int_equal(iom_hmm_domain_get_stats(&dm, &st), 0);
	assert_int_equal(st.invalidations, 1);
	assert_int_equal(st.protects, 4);
	assert_int_equal(st.nr_mapped, NPAGES);
	assert_int_equal(iom_device_dma_write(f.dev[0], addr + PG, buf, PG), -EFAULT);
	assert_int_equal(iom_device_dma_read(f.dev[0], addr + PG, buf, PG), 0);
	assert_true(page_is(buf, 0x41));
	memset(buf, 1, PG);
	assert_int_equal(iom_device_dma_write(f.dev[0], addr + 4 * PG, buf, PG), 0);
	/* writing faults for write: -EPERM while read-only */
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, addr, PG, true), -EPERM);

	/* munmap: the device faults, the pages are unmapped once */
	assert_int_equal(iom_munmap(f.mm, addr + 8 * PG, 8 * PG), 0);
	assert_int_equal(iom_hmm_domain_get_stats(&dm, &st), 0);
	assert_int_equal(st.invalidations, 2);
	assert_int_equal(st.unmaps, 8);
	assert_int_equal(st.nr_mapped, 8);
	assert_int_equal(iom_device_dma_read(f.dev[0], addr + 8 * PG, buf, PG), -EFAULT);
	assert_int_equal(iom_device_dma_read(f.dev[0], addr + 15 * PG, buf, PG), -EFAULT);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, addr + 8 * PG, PG, false),
			 -EFAULT);
	assert_int_equal(leaves_of(f.d), 8);

	/* exit: ->release unmaps everything; unregister afterwards is fine */
	iom_mm_destroy(f.mm);
	f.mm = NULL;
	assert_int_equal(iom_hmm_domain_get_stats(&dm, &st), 0);
	assert_int_equal(st.nr_mapped, 0);
	assert_int_equal(leaves_of(f.d), 0);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, addr, PG, false), -EINVAL);
	iom_hmm_domain_mirror_unregister(&dm);
	fx_fini(&f);
}

static void devices_of_one_domain_share_one_mapping_set(void **state)
{
	struct iom_hmm_device_mirror dm0 = { 0 }, dm1 = { 0 }, dm2 = { 0 }, again = { 0 };
	struct iom_hmm_domain_stats st, st2;
	struct fx f;
	uint64_t addr;
	unsigned long leaves;
	char buf[PG];

	fx_init(&f);
	addr = fx_anon(&f, NPAGES, 0x60);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm0, f.dev[0], f.mm), 0);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm0, addr, NPAGES * PG, false), 0);
	leaves = leaves_of(f.d);
	assert_int_equal(leaves, NPAGES);

	/* the second device of the domain joins: nothing is mapped twice */
	assert_int_equal(iom_hmm_domain_mirror_register(&dm1, f.dev[1], f.mm), 0);
	assert_ptr_equal(dm0.domain, dm1.domain);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm1, addr, NPAGES * PG, false), 0);
	assert_int_equal(iom_device_dma_read(f.dev[1], addr + 9 * PG, buf, PG), 0);
	assert_true(page_is(buf, 0x60 + 9));
	assert_int_equal(iom_hmm_domain_get_stats(&dm1, &st), 0);
	assert_int_equal(st.nr_mirrors, 2);
	assert_int_equal(st.maps, NPAGES);
	assert_int_equal(st.remaps, 0);
	assert_int_equal(leaves_of(f.d), NPAGES);
	/* the same device cannot mirror twice: nothing changed */
	assert_int_equal(iom_hmm_domain_mirror_register(&again, f.dev[1], f.mm), -EINVAL);
	assert_null(again.domain);
	assert_int_equal(iom_hmm_domain_get_stats(&dm1, &st2), 0);
	assert_memory_equal(&st, &st2, sizeof(st));

	/* a device of another domain gets its own hmm_domain */
	assert_int_equal(iom_hmm_domain_mirror_register(&dm2, f.dev[2], f.mm), 0);
	assert_ptr_not_equal(dm2.domain, dm0.domain);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm2, addr, 4 * PG, false), 0);
	assert_int_equal(iom_hmm_domain_get_stats(&dm2, &st2), 0);
	assert_int_equal(st2.maps, 4);

	/* one munmap: the shared set is updated once, for both devices */
	assert_int_equal(iom_munmap(f.mm, addr, 2 * PG), 0);
	assert_int_equal(iom_hmm_domain_get_stats(&dm0, &st), 0);
	assert_int_equal(st.invalidations, 1);
	assert_int_equal(st.unmaps, 2);
	assert_int_equal(iom_device_dma_read(f.dev[0], addr, buf, PG), -EFAULT);
	assert_int_equal(iom_device_dma_read(f.dev[1], addr + PG, buf, PG), -EFAULT);
	assert_int_equal(iom_device_dma_read(f.dev[2], addr, buf, PG), -EFAULT);
	/* a PROTECTION event: one read-only remap of each writable page */
	assert_int_equal(iom_mprotect(f.mm, addr + 2 * PG, 2 * PG, IOM_PROT_READ), 0);
	assert_int_equal(iom_hmm_domain_get_stats(&dm0, &st), 0);
	assert_int_equal(st.invalidations, 2);
	assert_int_equal(st.protects, 2);

	/* the first device leaves: the domain stays, mapped */
	iom_hmm_domain_mirror_unregister(&dm0);
	assert_int_equal(iom_hmm_domain_get_stats(&dm0, &st), -EINVAL);
	assert_int_equal(iom_hmm_domain_get_stats(&dm1, &st), 0);
	assert_int_equal(st.nr_mirrors, 1);
	assert_int_equal(iom_device_dma_read(f.dev[1], addr + 9 * PG, buf, PG), 0);
	/* the last one leaves: everything unmapped, the tables given back */
	iom_hmm_domain_mirror_unregister(&dm1);
	assert_int_equal(leaves_of(f.d), 0);
	iom_io_pgtable_reap(iom_iommu_domain_pgtable(f.d));
	assert_int_equal(iom_io_pgtable_nr_pages(iom_iommu_domain_pgtable(f.d)), f.pt0);
	/* and a new mirror starts from a new, empty hmm_domain */
	assert_int_equal(iom_hmm_domain_mirror_register(&dm0, f.dev[0], f.mm), 0);
	assert_int_equal(iom_hmm_domain_get_stats(&dm0, &st), 0);
	assert_int_equal(st.maps + st.nr_mapped + st.invalidations, 0);
	iom_hmm_domain_mirror_unregister(&dm0);
	iom_hmm_domain_mirror_unregister(&dm2);
	fx_fini(&f);
}

struct retry_ctx {
	struct iom_hmm_device_mirror dm;
	struct iom_mm *mm;
	uint64_t addr;
	int done;
};

static void retry_hook(void *arg)
{
	struct retry_ctx *c = arg;

	if (c->done++)
		return;
	assert_int_equal(iom_mprotect(c->mm, c->addr, PG, IOM_PROT_READ), 0);
}

/*
 * Migration (move_pages to the other node): each page's MIGRATE
 * invalidation unmaps it from the shared set once, not once per device;
 * the device then faults and maps the new page, with the data.
 */
static void migration_unmaps_once_and_the_device_maps_the_new_page(void **state)
{
	struct iom_hmm_device_mirror dm0 = { 0 }, dm1 = { 0 };
	struct iom_hmm_domain_stats st;
	uint64_t addrs[4], old_phys[4];
	int nodes[4] = { 1, 1, 1, 1 }, status[4];
	struct fx f;
	unsigned long i;
	char buf[PG];

	fx_init_nodes(&f, false, 2);
	iom_rcu_register_thread();
	addrs[0] = fx_anon(&f, 4, 0xc0);
	for (i = 1; i < 4; i++)
		addrs[i] = addrs[0] + i * PG;
	assert_int_equal(iom_hmm_domain_mirror_register(&dm0, f.dev[0], f.mm), 0);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm1, f.dev[1], f.mm), 0);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm0, addrs[0], 4 * PG, true), 0);
	for (i = 0; i < 4; i++)
		old_phys[i] = iom_iommu_iova_to_phys(f.d, addrs[i]);

	assert_int_equal(iom_move_pages(f.mm, 4, addrs, nodes, status, 0), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(status[i], 1);
	assert_int_equal(iom_hmm_domain_get_stats(&dm0, &st), 0);
	assert_int_equal(st.invalidations, 4);
	assert_int_equal(st.unmaps, 4);
	assert_int_equal(st.nr_mapped, 0);
	assert_int_equal(iom_device_dma_read(f.dev[1], addrs[2], buf, PG), -EFAULT);

	assert_int_equal(iom_hmm_domain_mirror_fault(&dm1, addrs[0], 4 * PG, false), 0);
	for (i = 0; i < 4; i++) {
		assert_int_not_equal(iom_iommu_iova_to_phys(f.d, addrs[i]), old_phys[i]);
		assert_int_equal(iom_device_dma_read(f.dev[0], addrs[i], buf, PG), 0);
		assert_true(page_is(buf, (int)(0xc0 + i)));
	}
	assert_int_equal(iom_hmm_domain_get_stats(&dm0, &st), 0);
	assert_int_equal(st.maps, 8);
	iom_hmm_domain_mirror_unregister(&dm0);
	iom_hmm_domain_mirror_unregister(&dm1);
	fx_fini(&f);
	iom_rcu_unregister_thread();
}

static void domain_fault_retries_when_an_invalidation_races(void **state)
{
	struct iom_hmm_domain_stats st;
	struct retry_ctx c = { 0 };
	struct fx f;
	char buf[PG];

	fx_init(&f);
	c.mm = f.mm;
	c.addr = fx_anon(&f, 4, 0x70);
	assert_int_equal(iom_hmm_domain_mirror_register(&c.dm, f.dev[0], f.mm), 0);
	assert_int_equal(iom_hmm_domain_set_test_hook(&c.dm, retry_hook, &c), 0);
	assert_int_equal(iom_hmm_domain_mirror_fault(&c.dm, c.addr, 4 * PG, false), 0);
	assert_int_equal(iom_hmm_domain_get_stats(&c.dm, &st), 0);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.maps, 4);
	/* what was mapped is what the CPU maps after the race */
	assert_int_equal(iom_device_dma_write(f.dev[0], c.addr, buf, PG), -EFAULT);
	assert_int_equal(iom_device_dma_read(f.dev[0], c.addr, buf, PG), 0);
	assert_true(page_is(buf, 0x70));
	memset(buf, 2, PG);
	assert_int_equal(iom_device_dma_write(f.dev[0], c.addr + PG, buf, PG), 0);
	assert_int_equal(iom_hmm_domain_set_test_hook(&c.dm, NULL, NULL), 0);
	iom_hmm_domain_mirror_unregister(&c.dm);
	fx_fini(&f);
}

/*
 * Teardown race: device threads read their pages through the shared
 * mapping (refaulting through the mirror on a fault) while the main thread
 * unmaps the range. Proves: every read either returns the page's own
 * bytes or fails with -EFAULT -- never another page's or freed memory's
 * -- and after munmap every read fails; no crash, no leak.
 */
#define RACE_PAGES 32

struct race {
	struct iom_hmm_device_mirror *dm;
	struct iom_device *dev;
	uint64_t addr;
	atomic_int unmapped;
	atomic_ulong ok, faults, wrong, other, late_ok;
};

static void *race_reader(void *arg)
{
	struct race *r = arg;
	char buf[PG];
	unsigned long i = 0;
	int after = 0;

	while (after < 200) {
		unsigned long p = i++ % RACE_PAGES;
		int gone = atomic_load(&r->unmapped);
		int ret = iom_device_dma_read(r->dev, r->addr + p * PG, buf, PG);

		if (ret == 0) {
			if (!page_is(buf, (int)(0x80 + p)))
				atomic_fetch_add(&r->wrong, 1);
			else
				atomic_fetch_add(&r->ok, 1);
			if (gone)
				atomic_fetch_add(&r->late_ok, 1);
		} else if (ret == -EFAULT) {
			atomic_fetch_add(&r->faults, 1);
			ret = iom_hmm_domain_mirror_fault(r->dm, r->addr + p * PG, PG, false);
			if (ret && ret != -EFAULT)
				atomic_fetch_add(&r->other, 1);
		} else {
			atomic_fetch_add(&r->other, 1);
		}
		if (gone)
			after++;
	}
	return NULL;
}

/* One round: fault, start both readers, munmap, join. */
static void race_round(struct fx *f, struct iom_hmm_device_mirror *dm0,
		       struct iom_hmm_device_mirror *dm1, struct race *r0,
		       struct race *r1)
{
	pthread_t t0, t1;
	uint64_t addr = fx_anon(f, RACE_PAGES, 0x80);

	assert_int_equal(iom_hmm_domain_mirror_fault(dm0, addr, RACE_PAGES * PG,
						     false), 0);
	memset(r0, 0, sizeof(*r0));
	memset(r1, 0, sizeof(*r1));
	r0->dm = dm0; r0->dev = f->dev[0]; r0->addr = addr;
	r1->dm = dm1; r1->dev = f->dev[1]; r1->addr = addr;
	assert_int_equal(pthread_create(&t0, NULL, race_reader, r0), 0);
	assert_int_equal(pthread_create(&t1, NULL, race_reader, r1), 0);
	while (atomic_load(&r0->ok) + atomic_load(&r1->ok) < 100)
		sched_yield();
	assert_int_equal(iom_munmap(f->mm, addr, RACE_PAGES * PG), 0);
	atomic_store(&r0->unmapped, 1);
	atomic_store(&r1->unmapped, 1);
	pthread_join(t0, NULL);
	pthread_join(t1, NULL);
}

static void munmap_while_devices_read_never_returns_wrong_data(void **state)
{
	struct iom_hmm_device_mirror dm0 = { 0 }, dm1 = { 0 };
	struct race r0, r1;
	struct fx f;
	int round;

	fx_init_log(&f, true);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm0, f.dev[0], f.mm), 0);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm1, f.dev[1], f.mm), 0);
	for (round = 0; round < 4; round++) {
		race_round(&f, &dm0, &dm1, &r0, &r1);
		assert_int_equal(r0.wrong + r1.wrong, 0);
		assert_int_equal(r0.other + r1.other, 0);
		assert_int_equal(r0.late_ok + r1.late_ok, 0);
		assert_true(r0.faults > 0 && r1.faults > 0);
	}
	/* the checks catch a mirror that is not invalidated */
	assert_int_equal(iom_hmm_domain_set_test_skip_invalidate(&dm0, true), 0);
	race_round(&f, &dm0, &dm1, &r0, &r1);
	assert_true(r0.late_ok > 0 && r1.late_ok > 0);
	assert_int_equal(iom_hmm_domain_set_test_skip_invalidate(&dm0, false), 0);
	assert_int_equal(iom_hmm_domain_set_test_skip_invalidate(NULL, false), -EINVAL);
	iom_hmm_domain_mirror_unregister(&dm0);
	iom_hmm_domain_mirror_unregister(&dm1);
	fx_fini(&f);
}

/*
 * Faults racing mprotect toggles: device threads fault the range in over
 * and over while the main thread flips it between read-write and
 * read-only. Checks that when the toggling stops at read-only no page is
 * left writable in the IOMMU (a fault that read the writable PTEs before
 * the last downgrade must not map them after it), that the data is right
 * and that nothing deadlocks or races (TSAN). The window is small: with
 * read_retry disabled this test still passes most runs; the deterministic
 * domain_fault_retries_when_an_invalidation_races and
 * raced_invalidation_makes_range_fault_retry are what fail then.
 * Device threads only count errors.
 */
struct toggler {
	struct iom_hmm_device_mirror *dm;
	uint64_t addr;
	atomic_int stop;
	atomic_ulong errors, faults;
};

static void *fault_loop(void *arg)
{
	struct toggler *t = arg;

	while (!atomic_load(&t->stop)) {
		if (iom_hmm_domain_mirror_fault(t->dm, t->addr, 8 * PG, false))
			atomic_fetch_add(&t->errors, 1);
		atomic_fetch_add(&t->faults, 1);
	}
	return NULL;
}

static void faults_racing_mprotect_never_leave_a_writable_mapping(void **state)
{
	struct iom_hmm_device_mirror dm0 = { 0 }, dm1 = { 0 };
	struct iom_hmm_domain_stats st;
	struct toggler t0 = { 0 }, t1 = { 0 };
	pthread_t th0, th1;
	struct fx f;
	uint64_t addr;
	unsigned long i;
	int round;
	char buf[PG];

	fx_init_log(&f, true);
	addr = fx_anon(&f, 8, 0xd0);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm0, f.dev[0], f.mm), 0);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm1, f.dev[1], f.mm), 0);
	t0.dm = &dm0; t0.addr = addr;
	t1.dm = &dm1; t1.addr = addr;
	assert_int_equal(pthread_create(&th0, NULL, fault_loop, &t0), 0);
	assert_int_equal(pthread_create(&th1, NULL, fault_loop, &t1), 0);
	for (round = 0; round < 300; round++) {
		int prot = IOM_PROT_READ | (round & 1 ? 0 : IOM_PROT_WRITE);

		assert_int_equal(iom_mprotect(f.mm, addr, 8 * PG, prot), 0);
		if (round % 50 == 0)
			while (atomic_load(&t0.faults) + atomic_load(&t1.faults) <
			       (unsigned long)round)
				sched_yield();
	}
	assert_int_equal(iom_mprotect(f.mm, addr, 8 * PG, IOM_PROT_READ), 0);
	atomic_store(&t0.stop, 1);
	atomic_store(&t1.stop, 1);
	pthread_join(th0, NULL);
	pthread_join(th1, NULL);
	assert_int_equal(t0.errors + t1.errors, 0);
	for (i = 0; i < 8; i++) {
		int ret = iom_device_dma_read(f.dev[0], addr + i * PG, buf, PG);

		assert_true(ret == 0 || ret == -EFAULT);
		if (ret == 0)
			assert_true(page_is(buf, (int)(0xd0 + i)));
		assert_int_equal(iom_device_dma_write(f.dev[1], addr + i * PG, buf, PG),
				 -EFAULT);
	}
	assert_int_equal(iom_hmm_domain_get_stats(&dm0, &st), 0);
	/* rounds 1..299 change the protection (round 0 and the last do not) */
	assert_int_equal(st.invalidations, 299);
	iom_hmm_domain_mirror_unregister(&dm0);
	iom_hmm_domain_mirror_unregister(&dm1);
	fx_fini(&f);
}

/* ---- bad arguments --------------------------------------------------------- */

static struct iom_hmm_mirror *bad_alloc(struct iom_mm *mm, const void *device)
{
	return NULL;
}

static void bad_free(struct iom_hmm_mirror *mirror)
{
}

static void bad_arguments_are_refused_and_change_nothing(void **state)
{
	static const struct iom_hmm_mirror_ops no_sync = { 0 };
	static const struct iom_hmm_mirror_ops nomem_ops = {
		.sync_cpu_device_pagetables = dmirror_sync,
		.alloc_mirror = bad_alloc, .free_mirror = bad_free,
	};
	static const struct iom_mmu_interval_notifier_ops no_inval = { 0 };
	struct iom_hmm_device_mirror dm = { 0 }, stray = { 0 };
	struct iom_hmm_domain_stats st, st2;
	struct iom_mmu_interval_notifier mni;
	struct iom_hmm_mirror *out = NULL;
	struct iom_hmm_mirror bare;
	struct iom_device *lone;
	struct dmirror dmi;
	uint64_t addr, pfns[4];
	struct iom_hmm_range r;
	struct fx f;
	char buf[PG];

	fx_init(&f);
	addr = fx_anon(&f, 4, 0x90);
	dmirror_init(&dmi, f.mm, addr);

	/* interval notifiers */
	memset(&mni, 0, sizeof(mni));
	assert_int_equal(iom_mmu_interval_notifier_insert(NULL, f.mm, 0, PG, &counter_ops), -EINVAL);
	assert_int_equal(iom_mmu_interval_notifier_insert(&mni, NULL, 0, PG, &counter_ops), -EINVAL);
	assert_int_equal(iom_mmu_interval_notifier_insert(&mni, f.mm, 0, PG, NULL), -EINVAL);
	assert_int_equal(iom_mmu_interval_notifier_insert(&mni, f.mm, 0, PG, &no_inval), -EINVAL);
	assert_int_equal(iom_mmu_interval_notifier_insert(&mni, f.mm, 0, 0, &counter_ops), -EINVAL);
	assert_int_equal(iom_mmu_interval_notifier_insert(&mni, f.mm, UINT64_MAX, 2, &counter_ops),
			 -EINVAL);
	assert_null(mni.mm);
	iom_mmu_interval_notifier_remove(NULL);
	iom_mmu_interval_notifier_remove(&mni);
	assert_int_equal(iom_mmu_interval_read_begin(NULL), 0);
	assert_true(iom_mmu_interval_read_retry(NULL, 0));
	assert_true(iom_mmu_interval_check_retry(NULL, 0));
	assert_true(iom_mmu_interval_read_retry(&mni, 0));	/* not inserted */
	iom_mmu_interval_set_seq(NULL, 0);

	/* hmm_range_fault */
	memset(pfns, 0, sizeof(pfns));
	assert_int_equal(iom_hmm_range_fault(NULL), -EINVAL);
	r = (struct iom_hmm_range){ .notifier = NULL, .start = addr, .end = addr + PG,
				    .hmm_pfns = pfns };
	assert_int_equal(iom_hmm_range_fault(&r), -EINVAL);
	r.notifier = &dmi.mirror.notifier;
	r.hmm_pfns = NULL;
	assert_int_equal(iom_hmm_range_fault(&r), -EINVAL);
	r.hmm_pfns = pfns;
	r.start = addr + 1;
	assert_int_equal(iom_hmm_range_fault(&r), -EINVAL);
	r.start = addr + PG;
	r.end = addr;
	assert_int_equal(iom_hmm_range_fault(&r), -EINVAL);
	r.start = r.end = addr;
	assert_int_equal(iom_hmm_range_fault(&r), -EINVAL);
	r.end = IOM_TASK_SIZE + PG;
	assert_int_equal(iom_hmm_range_fault(&r), -EINVAL);
	r.notifier = &mni;				/* not inserted */
	r.end = addr + PG;
	assert_int_equal(iom_hmm_range_fault(&r), -EINVAL);
	assert_int_equal(pfns[0], 0);

	/* mirrors */
	memset(&bare, 0, sizeof(bare));
	assert_int_equal(iom_hmm_mirror_register(NULL, f.mm), -EINVAL);
	assert_int_equal(iom_hmm_mirror_register(&bare, f.mm), -EINVAL);	/* no ops */
	bare.ops = &no_sync;
	bare.device = &bare;
	assert_int_equal(iom_hmm_mirror_register(&bare, f.mm), -EINVAL);
	bare.ops = &dmirror_ops;
	bare.device = NULL;
	assert_int_equal(iom_hmm_mirror_register(&bare, f.mm), -EINVAL);
	bare.device = &bare;
	assert_int_equal(iom_hmm_mirror_register(&bare, NULL), -EINVAL);
	assert_null(bare.mm);
	iom_hmm_mirror_unregister(NULL);
	iom_hmm_mirror_unregister(&bare);
	assert_int_equal(iom_hmm_mirror_get(NULL, &bare, f.mm, &out), -EINVAL);
	assert_int_equal(iom_hmm_mirror_get(&dmirror_ops, &bare, f.mm, &out), -EINVAL);
	assert_int_equal(iom_hmm_mirror_get(&nomem_ops, NULL, f.mm, &out), -EINVAL);
	assert_int_equal(iom_hmm_mirror_get(&nomem_ops, &bare, NULL, &out), -EINVAL);
	assert_int_equal(iom_hmm_mirror_get(&nomem_ops, &bare, f.mm, NULL), -EINVAL);
	assert_int_equal(iom_hmm_mirror_get(&nomem_ops, &bare, f.mm, &out), -ENOMEM);
	/* dmi's device through other ops */
	assert_int_equal(iom_hmm_mirror_get(&nomem_ops, &dmi, f.mm, &out), -EINVAL);
	assert_null(out);
	iom_hmm_mirror_put(NULL);
	iom_hmm_mirror_put(&bare);

	/* hmm_domain */
	assert_int_equal(iom_device_create(f.iommu, "lone", &lone), 0);
	assert_int_equal(iom_hmm_domain_mirror_register(NULL, f.dev[0], f.mm), -EINVAL);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm, NULL, f.mm), -EINVAL);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm, f.dev[0], NULL), -EINVAL);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm, lone, f.mm), -EINVAL);
	assert_null(dm.domain);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm, f.dev[0], f.mm), 0);
	assert_int_equal(iom_hmm_domain_mirror_register(&dm, f.dev[1], f.mm), -EINVAL);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, addr, 4 * PG, true), 0);
	assert_int_equal(iom_hmm_domain_get_stats(&dm, &st), 0);
	assert_int_equal(iom_hmm_domain_mirror_fault(NULL, addr, PG, false), -EINVAL);
	assert_int_equal(iom_hmm_domain_mirror_fault(&stray, addr, PG, false), -EINVAL);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, addr, 0, false), -EINVAL);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, UINT64_MAX - 10, PG, false),
			 -EINVAL);
	assert_int_equal(iom_hmm_domain_mirror_fault(&dm, IOM_TASK_SIZE - PG, 2 * PG, false),
			 -EINVAL);
	assert_int_equal(iom_hmm_domain_get_stats(NULL, &st2), -EINVAL);
	assert_int_equal(iom_hmm_domain_get_stats(&dm, NULL), -EINVAL);
	assert_int_equal(iom_hmm_domain_get_stats(&stray, &st2), -EINVAL);
	assert_int_equal(iom_hmm_domain_set_test_hook(NULL, NULL, NULL), -EINVAL);
	assert_int_equal(iom_hmm_domain_set_test_hook(&stray, NULL, NULL), -EINVAL);
	iom_hmm_domain_mirror_unregister(NULL);
	iom_hmm_domain_mirror_unregister(&stray);
	assert_int_equal(iom_hmm_domain_get_stats(&dm, &st2), 0);
	assert_memory_equal(&st, &st2, sizeof(st));
	assert_int_equal(iom_device_dma_read(f.dev[0], addr, buf, PG), 0);
	assert_true(page_is(buf, 0x90));

	iom_hmm_domain_mirror_unregister(&dm);
	assert_int_equal(iom_device_destroy(lone), 0);
	dmirror_fini(&dmi);
	fx_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(range_fault_reads_and_writes_anon_memory),
		cmocka_unit_test(range_fault_protection_errors),
		cmocka_unit_test(raced_invalidation_makes_range_fault_retry),
		cmocka_unit_test(interval_notifier_sees_only_its_interval),
		cmocka_unit_test(mirror_sees_unmap_protection_and_release),
		cmocka_unit_test(range_fault_reports_own_device_pages_and_faults_others),
		cmocka_unit_test(domain_mirror_dma_reads_and_writes_process_memory),
		cmocka_unit_test(domain_mirror_protection_errors_change_nothing),
		cmocka_unit_test(munmap_and_mprotect_update_the_mapping),
		cmocka_unit_test(devices_of_one_domain_share_one_mapping_set),
		cmocka_unit_test(migration_unmaps_once_and_the_device_maps_the_new_page),
		cmocka_unit_test(domain_fault_retries_when_an_invalidation_races),
		cmocka_unit_test(munmap_while_devices_read_never_returns_wrong_data),
		cmocka_unit_test(faults_racing_mprotect_never_leave_a_writable_mapping),
		cmocka_unit_test(bad_arguments_are_refused_and_change_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
