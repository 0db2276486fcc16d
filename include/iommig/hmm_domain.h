/* SPDX-License-Identifier: MIT */
/*
 * libiommig - seed 001 ("hmm: add support for iommu domain", 2014): the
 * devices that mirror one process and sit in one IOMMU domain share one
 * hmm_domain, which keeps one set of IOMMU mappings of the process's pages
 * at IOVA == the process's virtual address (SVA-like mirroring). Adding a
 * second device of the domain maps nothing twice; an invalidation updates
 * the shared mappings once; the hmm_domain goes with its last mirror.
 *
 * Conventions in this header:
 *   @dm: one device's mirror through its IOMMU domain
 *        (struct iom_hmm_device_mirror, the seed's hmm_mirror->domain).
 *
 * It lives above the MM (src/iommu/hmm_domain.c): the MM reaches it only
 * through the hmm_mirror ops it registers (include/iommig/hmm.h).
 */
#ifndef IOMMIG_HMM_DOMAIN_H
#define IOMMIG_HMM_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iommig/export.h>
#include <iommig/hmm.h>
#include <iommig/iommu.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iom_hmm_domain;

/**
 * struct iom_hmm_device_mirror - a device's mirror of a process through
 * the hmm_domain of its IOMMU domain. Zero it before registering; the
 * fields are private.
 */
struct iom_hmm_device_mirror {
	struct iom_device *dev;
	struct iom_hmm_domain *domain;
	struct iom_list_head list;
};

/**
 * struct iom_hmm_domain_stats - one hmm_domain's counters.
 * @nr_mirrors:    devices mirroring through it now.
 * @nr_mapped:     pages mapped in the IOMMU now.
 * @maps:          iommu_map() calls of a page not mapped before.
 * @remaps:        a mapped page mapped again (other page or permission)
 *                 by a fault.
 * @unmaps:        pages unmapped by invalidations (UNMAP, CLEAR, MIGRATE,
 *                 RELEASE) and teardown.
 * @protects:      writable pages remapped read-only (PROTECTION events).
 * @invalidations: sync_cpu_device_pagetables() calls received.
 * @retries:       faults that started again because an invalidation raced.
 */
struct iom_hmm_domain_stats {
	unsigned long nr_mirrors;
	unsigned long nr_mapped;
	unsigned long maps;
	unsigned long remaps;
	unsigned long unmaps;
	unsigned long protects;
	unsigned long invalidations;
	unsigned long retries;
};

/**
 * iom_hmm_domain_mirror_register() - @dev mirrors @mm through the
 * hmm_domain of (@dev's IOMMU domain, @mm), made on first use. Keep @dev
 * attached, and its domain alive, until the mirror is unregistered.
 * Context: not from a notifier callback; takes @mm's mmap_lock for write.
 * Return: 0; -EINVAL (NULL argument, @dm in use, @dev not attached to a
 * domain, or @dev already mirrors @mm); -ENOMEM.
 */
IOM_API int iom_hmm_domain_mirror_register(struct iom_hmm_device_mirror *dm,
					   struct iom_device *dev,
					   struct iom_mm *mm);
/**
 * iom_hmm_domain_mirror_unregister() - @dm's device stops mirroring; the
 * last device's going unmaps everything and frees the hmm_domain. NULL or
 * not registered: a no-op.
 * Context: not from a notifier callback; no transaction of the device may
 * still need the mappings.
 */
IOM_API void iom_hmm_domain_mirror_unregister(struct iom_hmm_device_mirror *dm);

/**
 * iom_hmm_domain_mirror_fault() - the device's page-fault handler: fault
 * [@addr, @addr + @len) in through hmm_range_fault() (for write if
 * @write) and map each page in the IOMMU at its virtual address, writable
 * where the CPU maps it writable. Pages already mapped alike are left
 * alone. Retries by itself when an invalidation races.
 * Context: may sleep; not from a notifier callback.
 * Return: 0; -EFAULT, -EPERM (as iom_hmm_range_fault()); -EINVAL (NULL or
 * unregistered @dm, @len 0, a range that wraps or leaves user space, or
 * the process has exited); -ENOMEM.
 */
IOM_API int iom_hmm_domain_mirror_fault(struct iom_hmm_device_mirror *dm,
					uint64_t addr, size_t len, bool write);

/**
 * iom_hmm_domain_get_stats() - the counters of @dm's hmm_domain.
 * Return: 0; -EINVAL (NULL or unregistered).
 */
IOM_API int iom_hmm_domain_get_stats(struct iom_hmm_device_mirror *dm,
				     struct iom_hmm_domain_stats *st);

/**
 * iom_hmm_domain_set_test_hook() - TEST ONLY: call @hook(@arg) in every
 * iom_hmm_domain_mirror_fault() of @dm's hmm_domain after
 * hmm_range_fault() and before the mapping lock, where a racing
 * invalidation forces a retry. NULL @hook clears it.
 * Return: 0; -EINVAL.
 */
IOM_API int iom_hmm_domain_set_test_hook(struct iom_hmm_device_mirror *dm,
					 void (*hook)(void *arg), void *arg);

/**
 * iom_hmm_domain_set_test_skip_invalidate() - TEST ONLY: while @skip,
 * invalidations of @dm's hmm_domain are counted but change no mapping, so
 * tests can show their checks catch a mirror that is not invalidated.
 * Return: 0; -EINVAL.
 */
IOM_API int iom_hmm_domain_set_test_skip_invalidate(struct iom_hmm_device_mirror *dm,
						    bool skip);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_HMM_DOMAIN_H */
