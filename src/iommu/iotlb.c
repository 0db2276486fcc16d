/* SPDX-License-Identifier: MIT */
/*
 * The IOTLB of one IOMMU unit. The kernel has no software IOTLB: it models
 * what the hardware caches and what drivers invalidate with commands
 * (arm-smmu-v3.c's CMD_TLBI_NH_VA / CMD_TLBI_NH_ASID / CMD_TLBI_NSNH_ALL,
 * intel's page-selective, domain-selective and global invalidation).
 *
 * Set-associative, tagged by domain id, IOVA and leaf size; a lookup
 * probes the set of each leaf size that has ever been cached (4 KiB,
 * 2 MiB, 1 GiB). Replacement is LRU within the set (a per-set clock) or
 * random. No walk cache is modelled: table pages are freed after an RCU
 * grace period, so a walker never reads a freed table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iommu-priv.h"

#include "../core/percpu.h"

#define TAG_VALID		(1ULL << 63)
#define TAG_LEVEL_SHIFT		60
#define TAG_DOMID_SHIFT		44
#define TAG_VPN_MASK		((1ULL << TAG_DOMID_SHIFT) - 1)
#define TAG_DOMID(t)		(((t) >> TAG_DOMID_SHIFT) & 0xffffU)
#define TAG_LEVEL(t)		((int)(((t) >> TAG_LEVEL_SHIFT) & 3))

static inline uint64_t make_tag(unsigned int domid, int level, unsigned long vpn)
{
	return TAG_VALID | (uint64_t)level << TAG_LEVEL_SHIFT |
	       (uint64_t)domid << TAG_DOMID_SHIFT | (vpn & TAG_VPN_MASK);
}

static inline unsigned int set_index(const struct iom_iotlb *tlb,
				     unsigned int domid, int level,
				     unsigned long vpn)
{
	uint64_t h = vpn ^ ((uint64_t)domid * 0x9e3779b97f4a7c15ULL >> 40) ^
		     ((uint64_t)level << 7);

	return (unsigned int)h & (tlb->nr_sets - 1);
}

int iom_iotlb_init(struct iom_iotlb *tlb, unsigned int entries,
		   unsigned int ways, enum iom_iotlb_replacement repl)
{
	memset(tlb, 0, sizeof(*tlb));
	tlb->ways = ways;
	tlb->nr_sets = entries / ways;
	tlb->repl = repl;
	tlb->sets = aligned_alloc(64, sizeof(*tlb->sets) * tlb->nr_sets);
	tlb->entries = calloc((size_t)entries, sizeof(*tlb->entries));
	if (!tlb->sets || !tlb->entries) {
		free(tlb->sets);
		free(tlb->entries);
		return -ENOMEM;
	}
	memset(tlb->sets, 0, sizeof(*tlb->sets) * tlb->nr_sets);
	return 0;
}

void iom_iotlb_destroy(struct iom_iotlb *tlb)
{
	free(tlb->sets);
	free(tlb->entries);
	tlb->sets = NULL;
	tlb->entries = NULL;
}

static void touch(struct iom_iotlb_set *s, struct iom_iotlb_entry *e)
{
	uint32_t now = atomic_load_explicit(&s->clock, memory_order_relaxed);

	/* An entry used again and again writes nothing after the first time. */
	if (atomic_load_explicit(&e->stamp, memory_order_relaxed) != now)
		atomic_store_explicit(&e->stamp,
				      atomic_fetch_add_explicit(&s->clock, 1,
								memory_order_relaxed) + 1,
				      memory_order_relaxed);
}

bool iom_iotlb_lookup(struct iom_iotlb *tlb, unsigned int domid,
		      unsigned long iova, struct iom_iotlb_hit *hit)
{
	unsigned int levels = atomic_load_explicit(&tlb->levels, memory_order_relaxed);

	for (int level = 3; level >= 1; level--) {
		unsigned long vpn = iova >> IOM_IOTLB_LEVEL_SHIFT(level);
		uint64_t tag = make_tag(domid, level, vpn);
		unsigned int si;
		struct iom_iotlb_entry *e;

		if (!(levels & (1U << level)))
			continue;
		si = set_index(tlb, domid, level, vpn);
		e = tlb->entries + (size_t)si * tlb->ways;
		for (unsigned int w = 0; w < tlb->ways; w++, e++) {
			uint64_t pte;

			if (atomic_load_explicit(&e->tag, memory_order_acquire) != tag)
				continue;
			pte = atomic_load_explicit(&e->pte, memory_order_acquire);
			if (atomic_load_explicit(&e->tag, memory_order_acquire) != tag)
				continue;
			if (tlb->repl == IOM_IOTLB_LRU)
				touch(&tlb->sets[si], e);
			hit->pte = pte;
			hit->level = level;
			hit->e = e;
			return true;
		}
	}
	return false;
}

static unsigned int pick_random(unsigned int ways)
{
	static IOM_TLS uint64_t x;

	if (!x)
		x = (uint64_t)(uintptr_t)&x | 1;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return (unsigned int)(x % ways);
}

void iom_iotlb_fill(struct iom_iotlb *tlb, unsigned int domid,
		    unsigned long iova, int level, uint64_t pte, uint64_t gen)
{
	unsigned long vpn = iova >> IOM_IOTLB_LEVEL_SHIFT(level);
	uint64_t tag = make_tag(domid, level, vpn);
	unsigned int si = set_index(tlb, domid, level, vpn);
	struct iom_iotlb_set *s = &tlb->sets[si];
	struct iom_iotlb_entry *base = tlb->entries + (size_t)si * tlb->ways;
	struct iom_iotlb_entry *victim = NULL;
	uint32_t oldest = 0;

	if (!(atomic_load_explicit(&tlb->levels, memory_order_relaxed) & (1U << level)))
		atomic_fetch_or(&tlb->levels, 1U << level);
	iom_spin_lock(&s->lock);
	if (atomic_load_explicit(&tlb->gen, memory_order_seq_cst) != gen)
		goto out;	/* an invalidation ran since the walk */
	for (unsigned int w = 0; w < tlb->ways; w++) {
		struct iom_iotlb_entry *e = base + w;
		uint64_t t = atomic_load_explicit(&e->tag, memory_order_relaxed);

		if (t == tag) {
			atomic_store_explicit(&e->pte, pte, memory_order_release);
			goto out;
		}
		if (!t) {
			if (!victim || atomic_load_explicit(&victim->tag, memory_order_relaxed))
				victim = e;
			continue;
		}
		if (victim && !atomic_load_explicit(&victim->tag, memory_order_relaxed))
			continue;
		if (tlb->repl == IOM_IOTLB_LRU) {
			/* oldest stamp relative to the clock (wraps) */
			uint32_t age = atomic_load_explicit(&s->clock, memory_order_relaxed) -
				       atomic_load_explicit(&e->stamp, memory_order_relaxed);

			if (!victim || age > oldest) {
				victim = e;
				oldest = age;
			}
		}
	}
	if (!victim)
		victim = base + pick_random(tlb->ways);
	if (atomic_load_explicit(&victim->tag, memory_order_relaxed))
		atomic_fetch_add_explicit(&tlb->evictions, 1, memory_order_relaxed);
	/* invalidate, write the PTE, then publish the tag */
	atomic_store_explicit(&victim->tag, 0, memory_order_release);
	atomic_store_explicit(&victim->pte, pte, memory_order_release);
	atomic_store_explicit(&victim->stamp,
			      atomic_fetch_add_explicit(&s->clock, 1, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&victim->tag, tag, memory_order_release);
out:
	iom_spin_unlock(&s->lock);
}

static inline void bump_gen(struct iom_iotlb *tlb)
{
	atomic_fetch_add_explicit(&tlb->gen, 1, memory_order_seq_cst);
}

/* Drop the entries of set @si that @match accepts. */
static unsigned long drop_in_set(struct iom_iotlb *tlb, unsigned int si,
				 bool (*match)(uint64_t tag, const void *arg),
				 const void *arg)
{
	struct iom_iotlb_set *s = &tlb->sets[si];
	struct iom_iotlb_entry *e = tlb->entries + (size_t)si * tlb->ways;
	unsigned long n = 0;

	iom_spin_lock(&s->lock);
	for (unsigned int w = 0; w < tlb->ways; w++, e++) {
		uint64_t t = atomic_load_explicit(&e->tag, memory_order_relaxed);

		if (t && match(t, arg)) {
			atomic_store_explicit(&e->tag, 0, memory_order_release);
			n++;
		}
	}
	iom_spin_unlock(&s->lock);
	return n;
}

struct range_arg {
	unsigned int domid;
	unsigned long start, last;
};

static bool match_range(uint64_t t, const void *p)
{
	const struct range_arg *a = p;
	int level = TAG_LEVEL(t);
	unsigned long lo, hi;

	if (TAG_DOMID(t) != a->domid)
		return false;
	lo = (t & TAG_VPN_MASK) << IOM_IOTLB_LEVEL_SHIFT(level);
	hi = lo + (1UL << IOM_IOTLB_LEVEL_SHIFT(level)) - 1;
	return lo <= a->last && hi >= a->start;
}

static bool match_domain(uint64_t t, const void *p)
{
	return TAG_DOMID(t) == *(const unsigned int *)p;
}

static bool match_all(uint64_t t, const void *p)
{
	(void)t;
	(void)p;
	return true;
}

static void drop_everywhere(struct iom_iotlb *tlb,
			    bool (*match)(uint64_t, const void *), const void *arg)
{
	unsigned long n = 0;

	for (unsigned int si = 0; si < tlb->nr_sets; si++)
		n += drop_in_set(tlb, si, match, arg);
	atomic_fetch_add_explicit(&tlb->invalidated, n, memory_order_relaxed);
}

void iom_iotlb_inv_range(struct iom_iotlb *tlb, unsigned int domid,
			 unsigned long start, unsigned long last)
{
	struct range_arg a = { domid, start, last };
	unsigned int levels = atomic_load_explicit(&tlb->levels, memory_order_relaxed);
	unsigned long n = 0;
	unsigned long probes = 0;

	if (last - start < IOM_PAGE_SIZE)
		atomic_fetch_add_explicit(&tlb->inv_page, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&tlb->inv_range, 1, memory_order_relaxed);
	if (atomic_load_explicit(&tlb->skip_invalidation, memory_order_relaxed))
		return;
	bump_gen(tlb);
	/* probing set by set costs more than a sweep beyond nr_sets probes */
	for (int level = 3; level >= 1; level--)
		if (levels & (1U << level))
			probes += ((last >> IOM_IOTLB_LEVEL_SHIFT(level)) -
				   (start >> IOM_IOTLB_LEVEL_SHIFT(level)) + 1);
	if (probes > tlb->nr_sets) {
		drop_everywhere(tlb, match_range, &a);
		return;
	}
	for (int level = 3; level >= 1; level--) {
		unsigned int sh = IOM_IOTLB_LEVEL_SHIFT(level);

		if (!(levels & (1U << level)))
			continue;
		for (unsigned long vpn = start >> sh; vpn <= last >> sh; vpn++)
			n += drop_in_set(tlb, set_index(tlb, domid, level, vpn),
					 match_range, &a);
	}
	if (n)	/* an RMW saved: most strict unmaps find nothing cached */
		atomic_fetch_add_explicit(&tlb->invalidated, n, memory_order_relaxed);
}

void iom_iotlb_inv_domain(struct iom_iotlb *tlb, unsigned int domid)
{
	atomic_fetch_add_explicit(&tlb->inv_domain, 1, memory_order_relaxed);
	if (atomic_load_explicit(&tlb->skip_invalidation, memory_order_relaxed))
		return;
	bump_gen(tlb);
	drop_everywhere(tlb, match_domain, &domid);
}

void iom_iotlb_inv_all(struct iom_iotlb *tlb)
{
	atomic_fetch_add_explicit(&tlb->inv_all, 1, memory_order_relaxed);
	if (atomic_load_explicit(&tlb->skip_invalidation, memory_order_relaxed))
		return;
	bump_gen(tlb);
	drop_everywhere(tlb, match_all, NULL);
}
