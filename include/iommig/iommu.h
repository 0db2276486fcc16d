/* SPDX-License-Identifier: MIT */
/*
 * libiommig - the IOMMU API (include/linux/iommu.h) and simulated devices.
 *
 * An IOMMU (struct iom_iommu) is one hardware unit: it owns an IOTLB and
 * translates for the devices behind it. A domain (struct iom_iommu_domain)
 * is one I/O address space: an io-pgtable plus a domain id that tags its
 * IOTLB entries. A device (struct iom_device) sits behind one IOMMU and is
 * attached to at most one domain; it reaches exactly what that domain maps.
 *
 * Devices move bytes with iom_device_dma_read()/iom_device_dma_write():
 * translate through the IOTLB, walk the table on a miss, check permission,
 * copy to or from the simulated pages. A missing or read-only entry raises
 * a fault to the domain's handler, which may fix the mapping and ask for a
 * retry, or fail the transaction.
 *
 * THE TRANSACTION / INVALIDATION CONTRACT. Once an IOTLB invalidation of a
 * translation has completed (iom_iommu_unmap() returned, iom_iommu_iotlb_sync()
 * returned, a flush-queue flush ran, iom_iommu_block() returned), no device
 * transaction that used the old translation is still moving bytes. Each
 * transaction marks itself in flight in a per-thread slot of its device
 * before it translates, and unmarks itself after its last byte; the
 * invalidation, after it dropped the IOTLB entries, waits for every slot of
 * the domain's devices that was in flight (a sequence count per slot, so a
 * transaction that started later is never waited for). A transaction that
 * must wait (blocked domain, fault) leaves its slot first, so nothing waits
 * on it. Table pages are freed after an RCU grace period, since walks take
 * no lock. docs/locking.md has the argument.
 *
 * Seed 000's migration API: iom_iommu_block()/iom_iommu_unblock() and
 * iom_iommu_migrate() (its five steps), plus the seed's TODO: migration of
 * one range that blocks only that range, non-blocking migration with
 * fault-on-write entries and a dirty re-copy loop, and batches of ranges
 * with one invalidation (iom_iommu_migrate_ranges()).
 *
 * Lazy invalidation (dma-iommu.c's flush queue) is a property of a
 * IOM_IOMMU_DOMAIN_DMA_FQ domain used through iom_iommu_dma_map()/unmap():
 * an unmap clears the entries but leaves the IOTLB alone; the IOVA waits
 * in a per-thread flush queue until 256 entries or the timeout, then one
 * domain-wide invalidation lets it be reused. Device accesses that hit an
 * IOTLB entry whose mapping is gone are counted (stale_hits), and those
 * whose page was freed meanwhile too (stale_freed_hits).
 */
#ifndef IOMMIG_IOMMU_H
#define IOMMIG_IOMMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iommig/export.h>
#include <iommig/io-pgtable.h>
#include <iommig/machine.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iom_iommu;
struct iom_iommu_domain;
struct iom_device;
struct iom_iommu_migrate_batch;

/* ---- the IOMMU unit ------------------------------------------------------ */

enum iom_iotlb_replacement {
	IOM_IOTLB_LRU,
	IOM_IOTLB_RANDOM,
};

/**
 * struct iom_iommu_config - an IOMMU unit. Zero means "default".
 * @name:             for messages (default "iommu").
 * @iotlb_entries:    IOTLB entries (default 2048); a multiple of @iotlb_ways.
 * @iotlb_ways:       associativity (default 8); @iotlb_entries / @iotlb_ways
 *                    sets, a power of two.
 * @iotlb_replacement: IOM_IOTLB_LRU (default) or IOM_IOTLB_RANDOM.
 * @fq_size:          flush-queue entries per thread (default 256, IOVA_FQ_SIZE).
 * @fq_timeout_us:    flush-queue timeout (default 10000, IOVA_FQ_TIMEOUT 10 ms).
 * @pgsize_bitmap:    page sizes of its tables (default 4 KiB | 2 MiB | 1 GiB).
 * @ias:              input (IOVA) address bits (default 48).
 * @oas:              output address bits (default 48).
 */
struct iom_iommu_config {
	const char *name;
	unsigned int iotlb_entries;
	unsigned int iotlb_ways;
	enum iom_iotlb_replacement iotlb_replacement;
	unsigned int fq_size;
	unsigned int fq_timeout_us;
	unsigned long pgsize_bitmap;
	unsigned int ias;
	unsigned int oas;
};

/** iom_iommu_config_init() - fill @cfg with every default spelled out. */
IOM_API void iom_iommu_config_init(struct iom_iommu_config *cfg);

/**
 * iom_iommu_create() - make an IOMMU unit of machine @m.
 * @cfg: NULL for every default.
 * Context: any thread.
 * Return: 0 and *@out; -EINVAL (bad @cfg: a warning says which field),
 * -ENOMEM.
 */
IOM_API int iom_iommu_create(struct iom_machine *m,
			     const struct iom_iommu_config *cfg,
			     struct iom_iommu **out);

/**
 * iom_iommu_destroy() - free an IOMMU unit. NULL is a no-op (returns 0).
 * Return: 0; -EBUSY while it still has domains or devices (nothing freed).
 */
IOM_API int iom_iommu_destroy(struct iom_iommu *iommu);

/**
 * struct iom_iommu_stats - counters of one IOMMU (IOTLB and flush queue).
 * @iotlb_hits, @iotlb_misses: translations found / not found in the IOTLB.
 * @iotlb_evictions:  valid entries replaced by a fill.
 * @iotlb_invalidated: valid entries dropped by invalidations.
 * @inv_page, @inv_range, @inv_domain, @inv_all: invalidation commands.
 * @inv_syncs:        completions waited for (the contract above).
 * @inv_sync_waits:   in-flight transactions those completions waited on.
 * @walks:            page-table walks (misses and dirty updates).
 * @stale_hits:       hits on an entry whose mapping was already unmapped
 *                    (lazy mode's window).
 * @stale_freed_hits: of those, hits whose page was free by then.
 * @fq_queued, @fq_flushes, @fq_timeouts: flush-queue entries queued,
 *                    domain-wide flushes, flushes started by the timeout.
 */
struct iom_iommu_stats {
	uint64_t iotlb_hits;
	uint64_t iotlb_misses;
	uint64_t iotlb_evictions;
	uint64_t iotlb_invalidated;
	uint64_t inv_page;
	uint64_t inv_range;
	uint64_t inv_domain;
	uint64_t inv_all;
	uint64_t inv_syncs;
	uint64_t inv_sync_waits;
	uint64_t walks;
	uint64_t stale_hits;
	uint64_t stale_freed_hits;
	uint64_t fq_queued;
	uint64_t fq_flushes;
	uint64_t fq_timeouts;
};

/** iom_iommu_get_stats() - a snapshot of @iommu's counters. Return: 0; -EINVAL. */
IOM_API int iom_iommu_get_stats(struct iom_iommu *iommu,
				struct iom_iommu_stats *st);

/**
 * iom_iommu_invalidate_all() - invalidate every IOTLB entry of
 * @iommu (all domains), and wait for the completion.
 */
IOM_API void iom_iommu_invalidate_all(struct iom_iommu *iommu);

/* ---- devices ------------------------------------------------------------- */

/** Most threads that may do DMA on one device at the same time. */
#define IOM_DEVICE_MAX_THREADS 256

/**
 * iom_device_create() - a simulated device behind @iommu.
 * @name: its name (copied; at most 63 bytes used).
 * Return: 0 and *@out; -EINVAL, -ENOMEM.
 */
IOM_API int iom_device_create(struct iom_iommu *iommu, const char *name,
			      struct iom_device **out);

/**
 * iom_device_destroy() - free @dev. NULL is a no-op.
 * Return: 0; -EBUSY while it is attached to a domain.
 */
IOM_API int iom_device_destroy(struct iom_device *dev);

/** iom_dev_name() - dev_name(). */
IOM_API const char *iom_dev_name(const struct iom_device *dev);

/** iom_device_machine() - the machine @dev belongs to. */
IOM_API struct iom_machine *iom_device_machine(const struct iom_device *dev);

/**
 * iom_device_dma_state() - the DMA layer's state of @dev (the kernel's
 * struct device carries its DMA fields); made by @make(@dev) on first use
 * (once, even when threads race: a loser's is released at once), NULL
 * @make only looks. @release runs at iom_device_destroy(); a non-zero
 * return (-EBUSY: buffers still allocated) makes the destroy fail.
 * Return: the state, or NULL.
 */
IOM_API void *iom_device_dma_state(struct iom_device *dev,
				   void *(*make)(struct iom_device *dev),
				   int (*release)(void *state));

/**
 * iom_iommu_get_domain_for_dev() - the domain @dev is attached to, or NULL.
 */
IOM_API struct iom_iommu_domain *
iom_iommu_get_domain_for_dev(struct iom_device *dev);

/**
 * struct iom_device_stats - one device's transactions.
 * @transactions, @bytes_read, @bytes_written: completed ones.
 * @failed:       transactions that ended with an error (fault not fixed).
 * @faults:       faults reported to the domain's handler.
 * @migrate_faults: write faults on entries under non-blocking migration
 *                (handled inside the IOMMU, never seen by the handler).
 * @stalls:       transactions that waited (blocked domain or range,
 *                migration's final stop, fault handling).
 * @stall_ns_total, @stall_ns_max: the time they waited.
 */
struct iom_device_stats {
	uint64_t transactions;
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t failed;
	uint64_t faults;
	uint64_t migrate_faults;
	uint64_t stalls;
	uint64_t stall_ns_total;
	uint64_t stall_ns_max;
};

/** iom_device_get_stats() - a snapshot of @dev's counters. Return: 0; -EINVAL. */
IOM_API int iom_device_get_stats(struct iom_device *dev,
				 struct iom_device_stats *st);

/**
 * iom_device_dma_read() - the device reads @len bytes at @iova into @buf.
 * iom_device_dma_write() - the device writes @len bytes of @buf at @iova.
 * Any length and alignment; crossing pages and leaves. Bytes move leaf by
 * leaf: when a fault fails the transaction, the bytes before the faulting
 * page have moved (as a DMA burst aborted half way).
 * Context: any thread (it becomes an RCU reader); waits while the domain,
 * or a range being migrated that the access touches, is blocked.
 * Return: 0; -ENODEV if @dev is not attached; -EINVAL (NULL @buf with
 * @len, @iova + @len wraps); -EFAULT when a fault was not fixed (no handler,
 * the handler failed, or it asked for retries without fixing the entry);
 * -EAGAIN if more than IOM_DEVICE_MAX_THREADS threads use @dev at once.
 */
IOM_API int iom_device_dma_read(struct iom_device *dev, unsigned long iova,
				void *buf, size_t len);
IOM_API int iom_device_dma_write(struct iom_device *dev, unsigned long iova,
				 const void *buf, size_t len);

/**
 * iom_device_last_stall_ns() - how long the calling thread's last
 * transaction (on any device) waited; 0 if it did not.
 */
IOM_API uint64_t iom_device_last_stall_ns(void);

/* ---- device threads: N pthreads doing scripted DMA ----------------------- */

/**
 * iom_device_thread_fn - one step of a device thread: do some DMA on @dev.
 * @idx:  the thread's index, 0..nr-1.  @iter: the step number, from 0.
 * Return: 0 to go on, > 0 to stop this thread, < 0 an error (the thread
 * stops and iom_device_threads_stop() reports it).
 * Must not call CMocka asserts: record, and let the main thread check.
 */
typedef int (*iom_device_thread_fn)(struct iom_device *dev, unsigned int idx,
				    unsigned long iter, void *priv);

struct iom_device_threads;

/**
 * struct iom_device_thread_stats - what the threads of a set did.
 * @steps:      calls of the step function.
 * @error:      the first negative return of a step (0: none).
 * @stalled:    transactions that waited.
 * @stall_p50_ns, @stall_p99_ns, @stall_max_ns: the stall of every
 *              transaction the steps made (0 for those that did not
 *              wait), as percentiles (log-linear histogram, within 1/16).
 * @stalled_p50_ns, @stalled_p99_ns: the same over transactions that waited.
 */
struct iom_device_thread_stats {
	uint64_t steps;
	int error;
	uint64_t transactions;
	uint64_t stalled;
	uint64_t stall_p50_ns;
	uint64_t stall_p99_ns;
	uint64_t stall_max_ns;
	uint64_t stalled_p50_ns;
	uint64_t stalled_p99_ns;
};

/**
 * iom_device_threads_start() - start @nr threads that call @fn(@dev, idx,
 * iter, @priv) in a loop until it returns non-zero or the set is stopped.
 * Each thread registers with RCU, and records the stall of every
 * transaction it made.
 * Return: 0 and *@out; -EINVAL (@nr 0 or above IOM_DEVICE_MAX_THREADS,
 * NULL @fn or @dev), -ENOMEM, -EAGAIN (a thread could not be created:
 * those already started are stopped).
 */
IOM_API int iom_device_threads_start(struct iom_device *dev, unsigned int nr,
				     iom_device_thread_fn fn, void *priv,
				     struct iom_device_threads **out);

/**
 * iom_device_threads_stop() - ask the threads to stop, join them, fill
 * @st (may be NULL) with their totals, free the set.
 * Return: 0, or the first error a step returned.
 */
IOM_API int iom_device_threads_stop(struct iom_device_threads *t,
				    struct iom_device_thread_stats *st);

/* ---- domains ------------------------------------------------------------- */

enum iom_iommu_domain_type {
	IOM_IOMMU_DOMAIN_UNMANAGED,	/* the owner maps (VFIO, tests) */
	IOM_IOMMU_DOMAIN_DMA,		/* DMA API, strict invalidation */
	IOM_IOMMU_DOMAIN_DMA_FQ,	/* DMA API, lazy (flush queue) */
};

/**
 * iom_iommu_domain_alloc() - a new, empty domain of @iommu
 * (iommu_paging_domain_alloc()).
 * Return: the domain, or NULL with errno EINVAL or ENOMEM, or ENOSPC when
 * the unit has no domain id left (65535 of them).
 */
IOM_API struct iom_iommu_domain *
iom_iommu_domain_alloc(struct iom_iommu *iommu,
		       enum iom_iommu_domain_type type);

/**
 * iom_iommu_domain_free() - iommu_domain_free(): flush the domain's queue,
 * invalidate its IOTLB entries, free its tables. NULL is a no-op.
 * Return: 0; -EBUSY while devices are attached (nothing changed).
 */
IOM_API int iom_iommu_domain_free(struct iom_iommu_domain *domain);

/**
 * iom_iommu_domain_dma_state() - the DMA layer's state of @domain (the
 * kernel keeps dma-iommu's cookie in the domain); made by @make on first
 * use (once, even when threads race), NULL @make only looks. @release runs
 * at iom_iommu_domain_free(); a non-zero return (-EBUSY) makes the free
 * fail with nothing changed.
 * Return: the state, or NULL.
 */
IOM_API void *iom_iommu_domain_dma_state(struct iom_iommu_domain *domain,
					 void *(*make)(struct iom_iommu_domain *domain),
					 int (*release)(void *state));

/** iom_iommu_domain_machine() - the machine @domain belongs to. */
IOM_API struct iom_machine *iom_iommu_domain_machine(const struct iom_iommu_domain *domain);

/** iom_iommu_domain_id() - the id that tags the domain's IOTLB entries. */
IOM_API unsigned int iom_iommu_domain_id(const struct iom_iommu_domain *domain);

/** iom_iommu_domain_type() - the type @domain was made with. */
IOM_API enum iom_iommu_domain_type
iom_iommu_domain_type(const struct iom_iommu_domain *domain);

/** iom_iommu_domain_pgtable() - the domain's io-pgtable (to walk or count). */
IOM_API struct iom_io_pgtable_ops *
iom_iommu_domain_pgtable(struct iom_iommu_domain *domain);

/**
 * iom_iommu_attach_device() - iommu_attach_device().
 * Return: 0; -EINVAL (NULL, or @dev behind another IOMMU); -EBUSY if @dev
 * is attached to another domain (detach first); 0 if already attached here.
 */
IOM_API int iom_iommu_attach_device(struct iom_iommu_domain *domain,
				    struct iom_device *dev);

/**
 * iom_iommu_detach_device() - iommu_detach_device(): after it returns, no
 * transaction of @dev uses the domain, and its IOTLB entries are gone
 * when no other device of the domain remains.
 * Return: 0; -EINVAL if @dev is not attached to @domain.
 */
IOM_API int iom_iommu_detach_device(struct iom_iommu_domain *domain,
				    struct iom_device *dev);

/* ---- mappings ------------------------------------------------------------ */

/**
 * iom_iommu_map() - iommu_map(): map @iova..+@size to @paddr with the
 * largest page sizes that alignment allows.
 * @prot: IOM_IOMMU_READ | IOM_IOMMU_WRITE | ...
 * Return: 0; -EINVAL (misaligned to 4 KiB, @size 0, bad @prot); -EEXIST
 * (something mapped there: nothing of the call stays mapped); -ERANGE;
 * -ENOMEM.
 */
IOM_API int iom_iommu_map(struct iom_iommu_domain *domain, unsigned long iova,
			  uint64_t paddr, size_t size, int prot);

/**
 * iom_iommu_unmap() - iommu_unmap(): unmap and invalidate before returning
 * (strict), whatever the domain type.
 * Return: the bytes unmapped, which exceed @size when a block only partly
 * in the range was removed whole; 0 when nothing is mapped at @iova.
 */
IOM_API size_t iom_iommu_unmap(struct iom_iommu_domain *domain,
			       unsigned long iova, size_t size);

/**
 * iom_iommu_unmap_fast() - iommu_unmap_fast(): unmap, gathering what must
 * be invalidated into @gather; the caller then calls
 * iom_iommu_iotlb_sync(). Until then devices may still use the old
 * translations.
 */
IOM_API size_t iom_iommu_unmap_fast(struct iom_iommu_domain *domain,
				    unsigned long iova, size_t size,
				    struct iom_iommu_iotlb_gather *gather);

/** iom_iommu_iotlb_sync() - invalidate what @gather holds and wait (iommu_iotlb_sync()). */
IOM_API void iom_iommu_iotlb_sync(struct iom_iommu_domain *domain,
				  struct iom_iommu_iotlb_gather *gather);

/** iom_iommu_flush_iotlb_all() - invalidate every entry of @domain and wait. */
IOM_API void iom_iommu_flush_iotlb_all(struct iom_iommu_domain *domain);

/** iom_iommu_iova_to_phys() - iommu_iova_to_phys(); 0 when unmapped. */
IOM_API uint64_t iom_iommu_iova_to_phys(struct iom_iommu_domain *domain,
					unsigned long iova);

/* ---- faults -------------------------------------------------------------- */

/* flags of a fault: the kernel's IOMMU_FAULT_READ/WRITE, plus the reason */
#define IOM_IOMMU_FAULT_READ		0x0
#define IOM_IOMMU_FAULT_WRITE		0x1
#define IOM_IOMMU_FAULT_NOT_PRESENT	0x100	/* no valid entry */
#define IOM_IOMMU_FAULT_PERMISSION	0x200	/* entry lacks the permission */

/**
 * iom_iommu_fault_handler_t - report_iommu_fault()'s handler.
 * Runs in the device's thread, outside any lock of the IOMMU and outside
 * the transaction's in-flight section: it may map, unmap, block.
 * Return: 0 when it fixed the mapping: the access is retried (the device
 * stalled meanwhile); negative: the transaction fails with -EFAULT.
 */
typedef int (*iom_iommu_fault_handler_t)(struct iom_iommu_domain *domain,
					 struct iom_device *dev,
					 unsigned long iova, int flags,
					 void *token);

/** iom_iommu_set_fault_handler() - iommu_set_fault_handler(); NULL removes it. */
IOM_API void iom_iommu_set_fault_handler(struct iom_iommu_domain *domain,
					 iom_iommu_fault_handler_t handler,
					 void *token);

/* ---- seed 000: blocking and migration ------------------------------------ */

/**
 * iom_iommu_block() - stop every device transaction on @domain: new ones
 * wait (they do not fault, they are not lost) and, when it returns, none
 * is in flight. Nests: the domain runs again after as many unblocks.
 * Return: 0; -EINVAL.
 */
IOM_API int iom_iommu_block(struct iom_iommu_domain *domain);

/** iom_iommu_unblock() - undo one iom_iommu_block(). Return: 0; -EINVAL if not blocked. */
IOM_API int iom_iommu_unblock(struct iom_iommu_domain *domain);

/**
 * iom_iommu_migrate() - seed 000's iommu_migrate(): (1) block the domain,
 * (2) unmap @iova..+@size, (3) call @copy_cb(@cb_priv), (4) map @paddr at
 * @iova with the permissions the range had, (5) unblock.
 * Context: a thread that is not in a transaction of @domain.
 * Return: 0; -EINVAL (misaligned, a leaf that reaches outside the range,
 * mixed permissions: a warning says which; nothing changed); -ENOENT (a
 * hole in the range; nothing changed); -ENOMEM when the new mapping
 * cannot be made (the old one is put back).
 */
IOM_API int iom_iommu_migrate(struct iom_iommu_domain *domain,
			      unsigned long iova, uint64_t paddr, size_t size,
			      void (*copy_cb)(void *), void *cb_priv);

enum iom_iommu_migrate_mode {
	IOM_IOMMU_MIGRATE_BLOCK,	/* block the domain (seed's five steps) */
	IOM_IOMMU_MIGRATE_PER_PAGE,	/* block only the ranges migrating */
	IOM_IOMMU_MIGRATE_NONBLOCK,	/* fault-on-write + dirty re-copy */
};

/** struct iom_iommu_migrate_range - move @iova..+@size to @paddr. */
struct iom_iommu_migrate_range {
	unsigned long iova;
	uint64_t paddr;
	size_t size;
};

/**
 * iom_iommu_copy_range_t - copy bytes @off..+@len of range @idx from the
 * pages it is mapped to now into the pages at its new paddr. Called once
 * per range with the whole range, then (non-blocking mode) again for the
 * leaves a device wrote meanwhile.
 */
typedef void (*iom_iommu_copy_range_t)(void *priv, unsigned int idx,
				       size_t off, size_t len);

/**
 * struct iom_iommu_migrate_stats - what one migration did.
 * @rounds:        copy passes (1 in the blocking modes).
 * @recopied:      bytes copied again because a device wrote meanwhile.
 * @write_faults:  device writes that faulted on a migrating entry.
 * @stop_ns:       how long devices were stopped (the block, or the final
 *                 switch of the non-blocking mode).
 * @final_dirty:   bytes copied during the final stop.
 */
struct iom_iommu_migrate_stats {
	unsigned int rounds;
	uint64_t recopied;
	uint64_t write_faults;
	uint64_t stop_ns;
	uint64_t final_dirty;
};

/** Passes of the non-blocking loop before its final stop copies what is left. */
#define IOM_IOMMU_MIGRATE_MAX_ROUNDS 8

/**
 * iom_iommu_migrate_ranges() - migrate @nr ranges of @domain in @mode with
 * one invalidation and one wait for in-flight transactions per step,
 * whatever @nr (the batched variant).
 * - IOM_IOMMU_MIGRATE_BLOCK: iom_iommu_migrate()'s steps for all ranges.
 * - IOM_IOMMU_MIGRATE_PER_PAGE: the same, but only transactions that touch
 *   a migrating range wait; the rest of the domain runs.
 * - IOM_IOMMU_MIGRATE_NONBLOCK: mark the leaves fault-on-write, invalidate,
 *   copy; a device write meanwhile faults, the IOMMU restores the entry,
 *   marks the leaf dirty and lets the write go on; the dirty leaves are
 *   copied again until none is (or IOM_IOMMU_MIGRATE_MAX_ROUNDS); then the
 *   final stop: writes to the ranges wait (reads go on), the last dirty
 *   leaves are copied, the entries switch to @paddr, invalidate, go.
 * IOM_IOMMU_MIGRATE_PER_PAGE switches the blocked leaves in place (no
 * table page is freed or allocated, so it cannot run out of memory).
 * @st: may be NULL (then the clock is not read).
 * Return: as iom_iommu_migrate(); -EBUSY if a range overlaps one another
 * migration is moving. On error nothing changed.
 */
IOM_API int iom_iommu_migrate_ranges(struct iom_iommu_domain *domain,
				     const struct iom_iommu_migrate_range *r,
				     unsigned int nr,
				     enum iom_iommu_migrate_mode mode,
				     iom_iommu_copy_range_t copy, void *priv,
				     struct iom_iommu_migrate_stats *st);

/**
 * iom_iommu_migrate_batch_begin() - IOM_IOMMU_MIGRATE_PER_PAGE in three
 * steps, for a caller that copies range by range between its own steps
 * (the DMA layer inside one MM migration batch): block the @nr ranges
 * (transactions that touch one wait; the rest of the domain runs) and wait
 * once for those in flight. The caller then copies each range's content
 * to its new pages and calls iom_iommu_migrate_batch_switch(), and at
 * last iom_iommu_migrate_batch_end(): one invalidation for the batch, the
 * ranges open. A range never switched keeps its old pages.
 * Return: 0 and *@out; -EINVAL (bad arguments, a range as for
 * iom_iommu_migrate()), -ENOENT (a hole), -EBUSY (a range another
 * migration is moving), -ENOMEM. On error nothing changed.
 */
IOM_API int iom_iommu_migrate_batch_begin(struct iom_iommu_domain *domain,
					  const struct iom_iommu_migrate_range *r,
					  unsigned int nr,
					  struct iom_iommu_migrate_batch **out);
/**
 * iom_iommu_migrate_batch_switch() - point range @idx of the batch at its
 * new pages (in place; cannot fail for want of memory).
 * Return: 0; -EINVAL (no such range, or switched already).
 */
IOM_API int iom_iommu_migrate_batch_switch(struct iom_iommu_migrate_batch *b,
					   unsigned int idx);
/** iom_iommu_migrate_batch_end() - invalidate once, open the ranges, free @b. */
IOM_API void iom_iommu_migrate_batch_end(struct iom_iommu_migrate_batch *b);

/* ---- the DMA API's IOVA and flush queue (dma-iommu.c) -------------------- */

/**
 * iom_iommu_dma_init_domain() - iommu_dma_init_domain(): give a DMA or
 * DMA_FQ @domain an IOVA space [@base, @limit) (4 KiB granule). A DMA_FQ
 * domain gets its flush queues and a timer thread.
 * Return: 0; -EINVAL (an UNMANAGED domain, a bad range, already done),
 * -ENOMEM.
 */
IOM_API int iom_iommu_dma_init_domain(struct iom_iommu_domain *domain,
				      uint64_t base, uint64_t limit);

/**
 * iom_iommu_dma_map() - __iommu_dma_map(): allocate an IOVA range of
 * @size (rounded up to 4 KiB, size-aligned, top-down below @dma_limit)
 * and map @paddr there.
 * Return: 0 and *@iova; -EINVAL, -ENOMEM (no IOVA space or no memory for
 * tables: nothing stays allocated).
 */
IOM_API int iom_iommu_dma_map(struct iom_iommu_domain *domain, uint64_t paddr,
			      size_t size, int prot, uint64_t dma_limit,
			      unsigned long *iova);

/**
 * iom_iommu_dma_alloc_iova() - iommu_dma_alloc_iova(): an IOVA range of
 * @size bytes (rounded up to 4 KiB, size-aligned, top-down below
 * @dma_limit) with nothing mapped; the caller maps it with
 * iom_iommu_map() and gives it back with iom_iommu_dma_unmap() (or, if
 * nothing was mapped, iom_iommu_dma_free_iova()).
 * Return: 0 and *@iova; -EINVAL; -ENOMEM (no IOVA space).
 */
IOM_API int iom_iommu_dma_alloc_iova(struct iom_iommu_domain *domain, size_t size,
				     uint64_t dma_limit, unsigned long *iova);

/**
 * iom_iommu_dma_free_iova() - iommu_dma_free_iova() of a range with
 * nothing mapped in it, at once.
 * Return: 0; -EINVAL (not a range the allocator handed out: reported).
 */
IOM_API int iom_iommu_dma_free_iova(struct iom_iommu_domain *domain,
				    unsigned long iova, size_t size);

/**
 * iom_iommu_dma_unmap() - __iommu_dma_unmap(): unmap what
 * iom_iommu_dma_map() mapped. DMA domain: invalidate, wait, free the IOVA.
 * DMA_FQ domain: queue the IOVA in the calling thread's flush queue (it
 * is reused only after the domain-wide invalidation that flushes the
 * queue); the IOTLB may keep the translation until then.
 * Return: 0; -EINVAL if @iova..+@size is not a range iom_iommu_dma_map()
 * returned (reported, nothing changed).
 */
IOM_API int iom_iommu_dma_unmap(struct iom_iommu_domain *domain,
				unsigned long iova, size_t size);

/**
 * iom_iommu_dma_flush_queue() - flush every flush queue of @domain now:
 * one domain-wide invalidation, then the queued IOVAs are freed.
 */
IOM_API void iom_iommu_dma_flush_queue(struct iom_iommu_domain *domain);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_IOMMU_H */
