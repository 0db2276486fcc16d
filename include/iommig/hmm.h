/* SPDX-License-Identifier: MIT */
/*
 * libiommig - HMM: a device mirrors a simulated process's page table
 * (include/linux/hmm.h, mm/hmm.c), and the interval notifiers it relies on
 * (include/linux/mmu_notifier.h: struct mmu_interval_notifier).
 *
 * Conventions in this header:
 *   @mm:     a simulated process.
 *   @mni:    an interval notifier: one device's interest in [start, end).
 *   @mirror: a device's mirror of @mm (the 5.x struct hmm_mirror, kept for
 *            seed 001, whose hmm_domain groups mirrors).
 *   @range:  one hmm_range_fault() request.
 *
 * The driver protocol, as the kernel's (Documentation/mm/hmm.rst):
 *
 *	again:
 *		range.notifier_seq = iom_mmu_interval_read_begin(range.notifier);
 *		ret = iom_hmm_range_fault(&range);
 *		if (ret == -EBUSY)
 *			goto again;
 *		lock(driver->update);
 *		if (iom_mmu_interval_read_retry(range.notifier, range.notifier_seq)) {
 *			unlock(driver->update);
 *			goto again;
 *		}
 *		use range.hmm_pfns[] to update the device page table;
 *		unlock(driver->update);
 *
 * and the invalidate callback takes driver->update, calls
 * iom_mmu_interval_set_seq() and stops the device using the range.
 */
#ifndef IOMMIG_HMM_H
#define IOMMIG_HMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <iommig/export.h>
#include <iommig/memory.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- interval notifiers (include/linux/mmu_notifier.h) ------------------ */

struct iom_mmu_interval_notifier;

/**
 * struct iom_mmu_interval_notifier_ops - @invalidate: [range->start,
 * range->end) of the notifier's interval is about to change. Call
 * iom_mmu_interval_set_seq(@mni, @cur_seq) under the driver's update lock
 * and stop the device using the range. Return true (non-blocking ranges do
 * not exist here).
 */
struct iom_mmu_interval_notifier_ops {
	bool (*invalidate)(struct iom_mmu_interval_notifier *mni,
			   const struct iom_mmu_notifier_range *range,
			   unsigned long cur_seq);
};

/**
 * struct iom_mmu_interval_notifier - embed, then
 * iom_mmu_interval_notifier_insert(). Fields are private.
 * @invalidate_seq: even when no invalidation runs; odd (and bumped again at
 *                  its end) while one does.
 * @active:         invalidations between their start and end.
 */
struct iom_mmu_interval_notifier {
	struct iom_mmu_notifier mn;
	const struct iom_mmu_interval_notifier_ops *ops;
	struct iom_mm *mm;
	uint64_t start, end;
	atomic_ulong invalidate_seq;
	int active;
	pthread_mutex_t lock;
	pthread_cond_t wq;
};

/**
 * iom_mmu_interval_notifier_insert() - watch [@start, @start + @length) of
 * @mm with @ops.
 * Context: not from a notifier callback of @mm.
 * Return: 0; -EINVAL (NULL argument, no ->invalidate, empty or wrapping
 * interval); -EBUSY if @mni is inserted.
 */
IOM_API int iom_mmu_interval_notifier_insert(struct iom_mmu_interval_notifier *mni,
					     struct iom_mm *mm, uint64_t start,
					     uint64_t length,
					     const struct iom_mmu_interval_notifier_ops *ops);
/**
 * iom_mmu_interval_notifier_remove() - stop watching; when it returns no
 * callback of @mni runs. NULL or not inserted: a no-op.
 * Context: not from a notifier callback.
 */
IOM_API void iom_mmu_interval_notifier_remove(struct iom_mmu_interval_notifier *mni);
/**
 * iom_mmu_interval_read_begin() - wait until no invalidation of @mni runs,
 * and return the sequence to hand to read_retry(). Context: may sleep.
 * Return: the sequence; 0 for a NULL @mni.
 */
IOM_API unsigned long iom_mmu_interval_read_begin(struct iom_mmu_interval_notifier *mni);
/**
 * iom_mmu_interval_read_retry() - has an invalidation started since @seq
 * was read? Call it under the lock the invalidate callback takes.
 * Return: true if the caller must retry (also for a NULL @mni).
 */
IOM_API bool iom_mmu_interval_read_retry(struct iom_mmu_interval_notifier *mni,
					 unsigned long seq);
/** iom_mmu_interval_check_retry() - read_retry() without the lock: a hint. */
IOM_API bool iom_mmu_interval_check_retry(struct iom_mmu_interval_notifier *mni,
					  unsigned long seq);
/**
 * iom_mmu_interval_set_seq() - from ->invalidate, under the driver's lock:
 * make later read_retry() calls fail. The sequence has already moved when
 * ->invalidate runs; calling this keeps the kernel's protocol readable.
 */
IOM_API void iom_mmu_interval_set_seq(struct iom_mmu_interval_notifier *mni,
				      unsigned long cur_seq);

/* ---- hmm_range_fault (include/linux/hmm.h) ------------------------------ */

/*
 * hmm_pfns[] entries: the pfn in the low bits, flags on top. Output:
 * VALID (the CPU maps it), WRITE (writably), ERROR (cannot be mapped; only
 * when no fault was requested). Input: REQ_FAULT (fault it in if not
 * valid), REQ_WRITE (fault it in for write if not writable).
 */
#define IOM_HMM_PFN_VALID	(1ULL << 63)
#define IOM_HMM_PFN_WRITE	(1ULL << 62)
#define IOM_HMM_PFN_ERROR	(1ULL << 61)
#define IOM_HMM_PFN_FLAGS	(IOM_HMM_PFN_VALID | IOM_HMM_PFN_WRITE | IOM_HMM_PFN_ERROR)
#define IOM_HMM_PFN_REQ_FAULT	IOM_HMM_PFN_VALID
#define IOM_HMM_PFN_REQ_WRITE	IOM_HMM_PFN_WRITE

/** iom_hmm_pfn_to_pfn() - the pfn of a VALID hmm_pfns[] entry. */
static inline unsigned long iom_hmm_pfn_to_pfn(uint64_t hmm_pfn)
{
	return (unsigned long)(hmm_pfn & ~IOM_HMM_PFN_FLAGS);
}

/**
 * struct iom_hmm_range - one hmm_range_fault() request.
 * @notifier:       the interval notifier covering the range.
 * @notifier_seq:   from iom_mmu_interval_read_begin().
 * @start, @end:    page-aligned, @start < @end.
 * @hmm_pfns:       (@end - @start) >> 12 entries: input flags, output
 *                  pfns and flags.
 * @default_flags:  REQ_ flags for every entry.
 * @pfn_flags_mask: which of each entry's own input flags count.
 * @dev_private_owner: device-private pages whose pgmap owner is this are
 *                  reported (their device pfn, VALID [| WRITE]) and never
 *                  faulted; others are faulted back to system memory
 *                  through ->migrate_to_ram() when a fault is asked, or
 *                  reported 0.
 */
struct iom_hmm_range {
	struct iom_mmu_interval_notifier *notifier;
	unsigned long notifier_seq;
	uint64_t start;
	uint64_t end;
	uint64_t *hmm_pfns;
	uint64_t default_flags;
	uint64_t pfn_flags_mask;
	void *dev_private_owner;
};

/**
 * iom_hmm_range_fault() - fill @range->hmm_pfns from the CPU page table of
 * the notifier's process, faulting pages in where asked.
 * @range: the request.
 *
 * Simplified from the kernel: it takes mmap_lock for read itself (the
 * caller cannot: struct iom_mm is opaque); no huge pages.
 *
 * Context: may sleep (faults, migration entries); not from a notifier
 * callback; no lock the invalidate callback takes may be held.
 * Return: 0; -EBUSY when an invalidation raced (read_begin again and
 * retry); -EFAULT (a requested page outside a VMA, in a VMA without read
 * permission, or the fault failed); -EPERM (write requested to a mapping
 * that may not be written); -ENOMEM; -EINVAL (bad range).
 */
IOM_API int iom_hmm_range_fault(struct iom_hmm_range *range);

/* ---- mirrors (the 5.x hmm_mirror API) ----------------------------------- */

struct iom_hmm_mirror;

/**
 * struct iom_hmm_update - what sync_cpu_device_pagetables() must apply.
 * @start, @end: the range.  @event: why (UNMAP, CLEAR, PROTECTION_VMA,
 * PROTECTION_PAGE, MIGRATE).  @owner: the MIGRATE caller's owner.
 */
struct iom_hmm_update {
	uint64_t start;
	uint64_t end;
	enum iom_mmu_notifier_event event;
	void *owner;
};

/**
 * struct iom_hmm_mirror_ops - the device driver's side.
 * @sync_cpu_device_pagetables: stop the device using @update's range (and
 *      for PROTECTION events, stop it writing). Called after the sequence
 *      moved, before the CPU page table changes. Return 0.
 * @release: the process is exiting (may be NULL); the driver must drop
 *      every device mapping of it. Unregister afterwards as usual.
 * @alloc_mirror, @free_mirror: only for iom_hmm_mirror_get()/_put()
 *      (mmu_notifier_get()'s alloc_notifier/free_notifier): make a mirror
 *      of @mm for @device, and free it once unregistered.
 */
struct iom_hmm_mirror_ops {
	int (*sync_cpu_device_pagetables)(struct iom_hmm_mirror *mirror,
					  const struct iom_hmm_update *update);
	void (*release)(struct iom_hmm_mirror *mirror);
	struct iom_hmm_mirror *(*alloc_mirror)(struct iom_mm *mm,
					       const void *device);
	void (*free_mirror)(struct iom_hmm_mirror *mirror);
};

/**
 * struct iom_hmm_mirror - one device's mirror of one process.
 * @ops:      set before registering.
 * @device:   the mirroring device's identity (any non-NULL pointer): one
 *            device mirrors a process at most once.
 * @notifier: covers the whole address space; hand it to hmm_range.
 * Other fields are private.
 */
struct iom_hmm_mirror {
	const struct iom_hmm_mirror_ops *ops;
	const void *device;
	struct iom_mmu_interval_notifier notifier;
	struct iom_mm *mm;
	atomic_bool released;
	atomic_ulong users;
};

/**
 * iom_hmm_mirror_register() - @mirror starts following @mm.
 * Context: not from a notifier callback; takes mmap_lock for write.
 * Return: 0; -EINVAL (NULL argument, no ops or sync callback, NULL device,
 * or @mirror->device already mirrors @mm); -EBUSY if @mirror is registered.
 */
IOM_API int iom_hmm_mirror_register(struct iom_hmm_mirror *mirror,
				    struct iom_mm *mm);
/**
 * iom_hmm_mirror_unregister() - stop; when it returns no callback runs.
 * NULL or unregistered: a no-op. Context: not from a notifier callback.
 */
IOM_API void iom_hmm_mirror_unregister(struct iom_hmm_mirror *mirror);

/**
 * iom_hmm_mirror_get() - the mirror of @mm for @device made by @ops, with
 * a reference: the existing one, or a new one from @ops->alloc_mirror(),
 * registered (mmu_notifier_get()). Lets several users share one mirror,
 * as seed 001's hmm_domain does for the devices of one IOMMU domain.
 * Context: not from a notifier callback; takes mmap_lock for write.
 * Return: 0 and *@out; -EINVAL (NULL argument, @ops without
 * alloc_mirror/free_mirror/sync, or @device mirrors @mm through other
 * ops); -ENOMEM (alloc_mirror returned NULL).
 */
IOM_API int iom_hmm_mirror_get(const struct iom_hmm_mirror_ops *ops,
			       const void *device, struct iom_mm *mm,
			       struct iom_hmm_mirror **out);
/**
 * iom_hmm_mirror_put() - drop a reference from iom_hmm_mirror_get(); the
 * last one unregisters the mirror and calls ->free_mirror().
 * Context: not from a notifier callback; takes mmap_lock for write, unless
 * the process has exited.
 */
IOM_API void iom_hmm_mirror_put(struct iom_hmm_mirror *mirror);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_HMM_H */
