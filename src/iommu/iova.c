/* SPDX-License-Identifier: MIT */
/*
 * The IOVA allocator: drivers/iommu/iova.c (Linux 6.x).
 *
 * The kernel keeps ranges in an rbtree; here it is a treap (a randomized
 * balanced search tree with parent pointers, so rb_prev()/rb_next() walks
 * stay as they are), with the same anchor node and cached-node trick. The
 * per-cpu magazine caches (iova_rcache) are per (thread, domain), as the
 * page allocator's per-thread lists, all six sizes of a thread under one
 * small lock; the depot is bounded (IOM_IOVA_MAX_GLOBAL_MAGS, as before
 * Linux 6.7) instead of trimmed by a delayed work. No flush queue here
 * (dma-iommu.c's, later).
 *
 * libiommig addition: every handed-out range is recorded in a sparse byte
 * map (its size class at its first pfn), set on allocation and cleared with
 * a compare-and-swap on free, so a free of a range that is not allocated is
 * caught in O(1) before it could enter a magazine twice.
 */
#include <errno.h>
#include <pthread.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/iova.h>

#include "iommu-priv.h"

#include "../core/percpu.h"
#include "../core/debug.h"
#include "../core/list.h"

/* The anchor node sits above the top of the usable address space */
#define IOVA_ANCHOR	~0UL

#define IOVA_FLAG_RESERVED	1u

/* State map: a byte per pfn below 2^STATE_PFN_BITS, in lazily made chunks. */
#define STATE_PFN_BITS		36
#define STATE_CHUNK_BITS	18
#define STATE_DIR_SIZE		(1UL << (STATE_PFN_BITS - STATE_CHUNK_BITS))
#define STATE_FREE		0	/* not handed out */
#define STATE_EXACT		0x7f	/* handed out, not a cacheable size */

struct iova_magazine {
	union {
		unsigned long size;
		struct iova_magazine *next;	/* in the depot */
	};
	unsigned long pfns[IOM_IOVA_MAG_SIZE];
};

_Static_assert(sizeof(struct iova_magazine) == 1024, "a magazine is 1 KiB");

/* The shared depot of one size. */
struct iova_rcache {
	pthread_mutex_t lock;
	unsigned long depot_size;
	struct iova_magazine *depot;
};

/*
 * One thread's caches for one domain (the kernel's iova_cpu_rcache, for
 * every size). The kernel's per-cpu spinlock costs an atomic operation on
 * every cache access; here the owner pays plain stores. It marks itself
 * @active, and takes @lock only if @flush_req is set. Another thread that
 * wants the caches (a flush, the statistics) sets @flush_req, runs
 * membarrier() so that either the owner sees the request or it sees the
 * owner active (the asymmetric fence of liburcu's memb flavour), waits
 * until the owner is no longer active, and works under @lock. Thread exit
 * and domain teardown take @lock too. Reference counted: the thread and
 * the domain may end in either order.
 */
struct iova_cpu_rcache {
	atomic_int lock;
	atomic_int active;
	atomic_bool flush_req;
	_Atomic(struct iom_iova_domain *) iovad;
	bool dead;
	atomic_int refcount;
	struct {
		struct iova_magazine *loaded;
		struct iova_magazine *prev;
	} mags[IOM_IOVA_RANGE_CACHE_MAX_SIZE];
	atomic_ulong hits, misses;	/* written by the owner only */
	struct list_head domain_link;
	struct iova_cpu_rcache *tls_next;
};

struct iom_iova_domain {
	pthread_mutex_t iova_rbtree_lock;
	struct iom_iova *root;
	struct iom_iova *cached_node;	/* save last alloced node */
	struct iom_iova *cached32_node;	/* save last 32-bit alloced node */
	unsigned long granule;
	unsigned long start_pfn;
	unsigned long dma_32bit_pfn;
	unsigned long max32_alloc_size;	/* size of last failed allocation */
	struct iom_iova anchor;
	unsigned long nr_ranges;
	uint32_t prio_seed;
	struct iom_machine *m;

	struct iova_rcache rcaches[IOM_IOVA_RANGE_CACHE_MAX_SIZE];
	pthread_mutex_t cpu_rcaches_lock;
	struct list_head cpu_rcaches;

	_Atomic(_Atomic uint8_t *) *state_dir;

	atomic_ulong hits_of_dead, misses_of_dead;
	atomic_ulong flushes, bad_frees;
};

static inline unsigned int order_base_2(unsigned long n)
{
	return n <= 1 ? 0 : 64 - (unsigned int)__builtin_clzl(n - 1);
}

static inline unsigned int fls_long(unsigned long x)
{
	return x ? 64 - (unsigned int)__builtin_clzl(x) : 0;
}

static void iova_lock(struct iom_iova_domain *iovad)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&iovad->iova_rbtree_lock));
}

static void iova_unlock(struct iom_iova_domain *iovad)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iovad->iova_rbtree_lock));
}

/* ---- the state map ------------------------------------------------------------ */

static _Atomic uint8_t *state_chunk_create(struct iom_iova_domain *iovad,
					   unsigned long dir);

/*
 * Byte of @pfn in its chunk: a bijection that sends neighbouring range
 * starts (different threads hold neighbouring ranges: they are carved
 * top-down one after the other), aligned or not, to different 4 KiB
 * blocks, so they never share a cache line.
 */
static inline unsigned long state_index(unsigned long pfn)
{
	unsigned long mid = (pfn >> 6) & ((1UL << (STATE_CHUNK_BITS - 6)) - 1);
	unsigned long low = (pfn ^ mid ^ (mid >> 6)) & 63;

	return (low << (STATE_CHUNK_BITS - 6)) | mid;
}

static inline _Atomic uint8_t *state_slot(struct iom_iova_domain *iovad,
					  unsigned long pfn, bool create)
{
	_Atomic uint8_t *chunk;
	unsigned long dir = pfn >> STATE_CHUNK_BITS;

	if (unlikely(dir >= STATE_DIR_SIZE))
		return NULL;
	chunk = atomic_load_explicit(&iovad->state_dir[dir], memory_order_acquire);
	if (unlikely(!chunk) && create)
		chunk = state_chunk_create(iovad, dir);
	return chunk ? &chunk[state_index(pfn)] : NULL;
}

static _Atomic uint8_t *state_chunk_create(struct iom_iova_domain *iovad,
					   unsigned long dir)
{
	_Atomic uint8_t *chunk, *expected = NULL;

	chunk = calloc(1UL << STATE_CHUNK_BITS, 1);
	if (!chunk)
		return NULL;
	if (!atomic_compare_exchange_strong_explicit(&iovad->state_dir[dir],
						     &expected, chunk,
						     memory_order_acq_rel,
						     memory_order_acquire)) {
		free(chunk);
		chunk = expected;
	}
	return chunk;
}

/* Size class recorded for a handed-out range of @size. */
static inline uint8_t state_of(unsigned long size)
{
	unsigned int log = order_base_2(size);

	if (log < IOM_IOVA_RANGE_CACHE_MAX_SIZE && size == 1UL << log)
		return (uint8_t)(log + 1);
	return STATE_EXACT;
}

/* Record a hand-out; false when there is no slot (pfn beyond the map). */
static inline bool state_set(struct iom_iova_domain *iovad, unsigned long pfn,
		      unsigned long size)
{
	_Atomic uint8_t *slot = state_slot(iovad, pfn, true);

	if (!slot)
		return false;
	atomic_store_explicit(slot, state_of(size), memory_order_relaxed);
	return true;
}

static void report_bad_free(struct iom_iova_domain *iovad, unsigned long pfn,
			    unsigned long size, const char *why)
{
	atomic_fetch_add_explicit(&iovad->bad_frees, 1, memory_order_relaxed);
	iom_warn(iovad->m, "iova: free of pfn %#lx size %lu: %s", pfn, size, why);
}

/* ---- the tree (a treap standing in for lib/rbtree.c) ----------------------- */

static inline struct iom_iova *rb_prev(struct iom_iova *n)
{
	if (n->_left) {
		n = n->_left;
		while (n->_right)
			n = n->_right;
		return n;
	}
	while (n->_parent && n == n->_parent->_left)
		n = n->_parent;
	return n->_parent;
}

static inline struct iom_iova *rb_next(struct iom_iova *n)
{
	if (n->_right) {
		n = n->_right;
		while (n->_left)
			n = n->_left;
		return n;
	}
	while (n->_parent && n == n->_parent->_right)
		n = n->_parent;
	return n->_parent;
}

/* Rotate @x above its parent. */
static void rotate_up(struct iom_iova_domain *iovad, struct iom_iova *x)
{
	struct iom_iova *p = x->_parent, *g = p->_parent;

	if (p->_left == x) {
		p->_left = x->_right;
		if (x->_right)
			x->_right->_parent = p;
		x->_right = p;
	} else {
		p->_right = x->_left;
		if (x->_left)
			x->_left->_parent = p;
		x->_left = p;
	}
	p->_parent = x;
	x->_parent = g;
	if (!g)
		iovad->root = x;
	else if (g->_left == p)
		g->_left = x;
	else
		g->_right = x;
}

static uint32_t next_prio(struct iom_iova_domain *iovad)
{
	uint32_t x = iovad->prio_seed;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	iovad->prio_seed = x;
	return x;
}

/* iova_insert_rbtree() */
static void iova_insert_rbtree(struct iom_iova_domain *iovad, struct iom_iova *iova)
{
	struct iom_iova **link = &iovad->root, *parent = NULL;

	while (*link) {
		parent = *link;
		IOM_BUG_ON(iova->pfn_lo == parent->pfn_lo);
		link = iova->pfn_lo < parent->pfn_lo ? &parent->_left :
						       &parent->_right;
	}
	iova->_left = iova->_right = NULL;
	iova->_parent = parent;
	iova->_prio = next_prio(iovad);
	*link = iova;
	while (iova->_parent && iova->_parent->_prio < iova->_prio)
		rotate_up(iovad, iova);
	iovad->nr_ranges++;
}

static void rb_erase(struct iom_iova_domain *iovad, struct iom_iova *n)
{
	struct iom_iova *child;

	while (n->_left && n->_right)
		rotate_up(iovad, n->_left->_prio > n->_right->_prio ?
				 n->_left : n->_right);
	child = n->_left ? n->_left : n->_right;
	if (child)
		child->_parent = n->_parent;
	if (!n->_parent)
		iovad->root = child;
	else if (n->_parent->_left == n)
		n->_parent->_left = child;
	else
		n->_parent->_right = child;
	iovad->nr_ranges--;
}

/* private_find_iova() */
static struct iom_iova *private_find_iova(struct iom_iova_domain *iovad,
					  unsigned long pfn)
{
	struct iom_iova *node = iovad->root;

	while (node) {
		if (pfn < node->pfn_lo)
			node = node->_left;
		else if (pfn > node->pfn_hi)
			node = node->_right;
		else
			return node;
	}
	return NULL;
}

static struct iom_iova *__get_cached_rbnode(struct iom_iova_domain *iovad,
					    unsigned long limit_pfn)
{
	if (limit_pfn <= iovad->dma_32bit_pfn)
		return iovad->cached32_node;
	return iovad->cached_node;
}

static void __cached_rbnode_insert_update(struct iom_iova_domain *iovad,
					  struct iom_iova *new)
{
	if (new->pfn_hi < iovad->dma_32bit_pfn)
		iovad->cached32_node = new;
	else
		iovad->cached_node = new;
}

static void __cached_rbnode_delete_update(struct iom_iova_domain *iovad,
					  struct iom_iova *free)
{
	struct iom_iova *cached_iova = iovad->cached32_node;

	if (free == cached_iova ||
	    (free->pfn_hi < iovad->dma_32bit_pfn &&
	     free->pfn_lo >= cached_iova->pfn_lo))
		iovad->cached32_node = rb_next(free);

	if (free->pfn_lo < iovad->dma_32bit_pfn)
		iovad->max32_alloc_size = iovad->dma_32bit_pfn;

	cached_iova = iovad->cached_node;
	if (free->pfn_lo >= cached_iova->pfn_lo)
		iovad->cached_node = rb_next(free);
}

static void free_iova_mem(struct iom_iova *iova)
{
	if (iova->pfn_lo != IOVA_ANCHOR)
		free(iova);
}

/* private_free_iova() */
static void private_free_iova(struct iom_iova_domain *iovad, struct iom_iova *iova)
{
	__cached_rbnode_delete_update(iovad, iova);
	rb_erase(iovad, iova);
	free_iova_mem(iova);
}

/*
 * __alloc_and_insert_iova_range(): walk the tree backwards from the cached
 * node for the highest gap of @size below @limit_pfn (exclusive), aligned
 * to the size's power of two; once more from the top if the cached node
 * started the walk too low. Caller holds the tree lock.
 */
static int __alloc_and_insert_iova_range(struct iom_iova_domain *iovad,
					 unsigned long size,
					 unsigned long limit_pfn,
					 struct iom_iova *new, bool size_aligned)
{
	struct iom_iova *curr, *prev;
	unsigned long new_pfn, low_pfn_new;
	unsigned long align_mask = ~0UL;
	unsigned long high_pfn = limit_pfn, low_pfn = iovad->start_pfn;

	if (size_aligned)
		align_mask <<= fls_long(size - 1);

	if (limit_pfn <= iovad->dma_32bit_pfn &&
	    size >= iovad->max32_alloc_size)
		return -ENOMEM;

	curr = __get_cached_rbnode(iovad, limit_pfn);
	low_pfn_new = curr->pfn_hi + 1;
retry:
	do {
		if (high_pfn > curr->pfn_lo)
			high_pfn = curr->pfn_lo;
		new_pfn = (high_pfn - size) & align_mask;
		prev = curr;
		curr = rb_prev(curr);
	} while (curr && new_pfn <= curr->pfn_hi && new_pfn >= low_pfn);

	if (high_pfn < size || new_pfn < low_pfn) {
		if (low_pfn == iovad->start_pfn && low_pfn_new < limit_pfn) {
			high_pfn = limit_pfn;
			low_pfn = low_pfn_new;
			curr = &iovad->anchor;
			goto retry;
		}
		iovad->max32_alloc_size = size;
		return -ENOMEM;
	}

	/* pfn_lo will point to size aligned address if size_aligned is set */
	new->pfn_lo = new_pfn;
	new->pfn_hi = new->pfn_lo + size - 1;
	(void)prev;	/* the kernel starts the insertion there; we go from the root */
	iova_insert_rbtree(iovad, new);
	__cached_rbnode_insert_update(iovad, new);
	return 0;
}

static bool check_domain_args(struct iom_iova_domain *iovad, unsigned long size,
			      unsigned long limit_pfn, const char *fn)
{
	if (!iovad)
		return false;
	if (!size || size > limit_pfn) {
		iom_warn(iovad->m, "%s: bad size %lu for limit_pfn %#lx", fn,
			 size, limit_pfn);
		return false;
	}
	return true;
}

/* alloc_iova() without the state record. */
static struct iom_iova *__alloc_iova(struct iom_iova_domain *iovad,
				     unsigned long size, unsigned long limit_pfn,
				     bool size_aligned)
{
	struct iom_iova *new_iova = calloc(1, sizeof(*new_iova));
	int ret;

	if (!new_iova)
		return NULL;
	iova_lock(iovad);
	ret = __alloc_and_insert_iova_range(iovad, size, limit_pfn + 1, new_iova,
					    size_aligned);
	iova_unlock(iovad);
	if (ret) {
		free(new_iova);
		return NULL;
	}
	return new_iova;
}

struct iom_iova *iom_alloc_iova(struct iom_iova_domain *iovad, unsigned long size,
				unsigned long limit_pfn, bool size_aligned)
{
	struct iom_iova *iova;

	if (!check_domain_args(iovad, size, limit_pfn, "alloc_iova"))
		return NULL;
	if (limit_pfn == IOVA_ANCHOR)
		limit_pfn--;
	iova = __alloc_iova(iovad, size, limit_pfn, size_aligned);
	if (iova)
		state_set(iovad, iova->pfn_lo, size);
	return iova;
}

struct iom_iova *iom_find_iova(struct iom_iova_domain *iovad, unsigned long pfn)
{
	struct iom_iova *iova;

	if (!iovad)
		return NULL;
	iova_lock(iovad);
	iova = private_find_iova(iovad, pfn);
	if (iova == &iovad->anchor)
		iova = NULL;
	iova_unlock(iovad);
	return iova;
}

/*
 * Free @iova (found under the lock) if it is handed out or reserved.
 * @size: the size the caller gave, 0 if none. Caller holds the tree lock.
 */
static int free_iova_checked(struct iom_iova_domain *iovad, struct iom_iova *iova,
			     unsigned long pfn, unsigned long size)
{
	_Atomic uint8_t *slot;
	uint8_t st;

	if (!iova || iova == &iovad->anchor) {
		report_bad_free(iovad, pfn, size, "not an allocated range");
		return -EINVAL;
	}
	if (size && (iova->pfn_lo != pfn ||
		     (iova->pfn_hi - iova->pfn_lo + 1 != size &&
		      (size >= (1UL << (IOM_IOVA_RANGE_CACHE_MAX_SIZE - 1)) ||
		       iova->pfn_hi - iova->pfn_lo + 1 != 1UL << order_base_2(size))))) {
		report_bad_free(iovad, pfn, size, "size or start does not match "
				"the allocation");
		return -EINVAL;
	}
	if (!(iova->_flags & IOVA_FLAG_RESERVED)) {
		slot = state_slot(iovad, iova->pfn_lo, false);
		if (slot) {
			st = atomic_load_explicit(slot, memory_order_relaxed);
			if (st == STATE_FREE ||
			    !atomic_compare_exchange_strong(slot, &st, STATE_FREE)) {
				report_bad_free(iovad, pfn, size, "already freed "
						"(it is in a cache)");
				return -EINVAL;
			}
		}
	}
	private_free_iova(iovad, iova);
	return 0;
}

int iom___free_iova(struct iom_iova_domain *iovad, struct iom_iova *iova)
{
	int ret;

	if (!iovad || !iova)
		return -EINVAL;
	iova_lock(iovad);
	/* the pointer must still be a node of ours */
	if (private_find_iova(iovad, iova->pfn_lo) != iova)
		ret = free_iova_checked(iovad, NULL, iova->pfn_lo, 0);
	else
		ret = free_iova_checked(iovad, iova, iova->pfn_lo, 0);
	iova_unlock(iovad);
	return ret;
}

int iom_free_iova(struct iom_iova_domain *iovad, unsigned long pfn)
{
	int ret;

	if (!iovad)
		return -EINVAL;
	iova_lock(iovad);
	ret = free_iova_checked(iovad, private_find_iova(iovad, pfn), pfn, 0);
	iova_unlock(iovad);
	return ret;
}

/* ---- reserve_iova() ------------------------------------------------------------ */

struct iom_iova *iom_reserve_iova(struct iom_iova_domain *iovad,
				  unsigned long pfn_lo, unsigned long pfn_hi)
{
	struct iom_iova *iova = NULL, *node, *new;

	if (!iovad)
		return NULL;
	if (pfn_lo > pfn_hi || pfn_hi >= IOVA_ANCHOR) {
		iom_warn(iovad->m, "reserve_iova: bad range [%#lx, %#lx]",
			 pfn_lo, pfn_hi);
		return NULL;
	}
	new = calloc(1, sizeof(*new));
	if (!new)
		return NULL;
	iova_lock(iovad);
	/* Overlaps: only with reserved ranges, which grow to cover the new one. */
	for (node = iovad->root; node && node->_left; node = node->_left)
		;
	for (; node; node = rb_next(node)) {
		if (node == &iovad->anchor || node->pfn_hi < pfn_lo)
			continue;
		if (node->pfn_lo > pfn_hi)
			break;
		if (!(node->_flags & IOVA_FLAG_RESERVED)) {
			iom_warn(iovad->m, "reserve_iova: [%#lx, %#lx] overlaps "
				 "allocated [%#lx, %#lx]", pfn_lo, pfn_hi,
				 node->pfn_lo, node->pfn_hi);
			iova_unlock(iovad);
			free(new);
			return NULL;
		}
	}
	/* Merge every overlapping reserved range into one node. */
	for (;;) {
		node = NULL;
		for (struct iom_iova *n = iovad->root; n;) {
			if (pfn_hi < n->pfn_lo) {
				n = n->_left;
			} else if (pfn_lo > n->pfn_hi) {
				n = n->_right;
			} else {
				node = n;
				break;
			}
		}
		if (!node)
			break;
		if (node->pfn_lo < pfn_lo)
			pfn_lo = node->pfn_lo;
		if (node->pfn_hi > pfn_hi)
			pfn_hi = node->pfn_hi;
		private_free_iova(iovad, node);
	}
	new->pfn_lo = pfn_lo;
	new->pfn_hi = pfn_hi;
	new->_flags = IOVA_FLAG_RESERVED;
	iova_insert_rbtree(iovad, new);
	iova = new;
	iova_unlock(iovad);
	return iova;
}

/* ---- magazines ------------------------------------------------------------------ */

static struct iova_magazine *iova_magazine_alloc(void)
{
	struct iova_magazine *mag = malloc(sizeof(*mag));

	if (mag)
		mag->size = 0;
	return mag;
}

static bool iova_magazine_full(struct iova_magazine *mag)
{
	return mag->size == IOM_IOVA_MAG_SIZE;
}

static bool iova_magazine_empty(struct iova_magazine *mag)
{
	return !mag || mag->size == 0;
}

/* iova_magazine_free_pfns(): back to the tree. */
static void iova_magazine_free_pfns(struct iova_magazine *mag,
				    struct iom_iova_domain *iovad)
{
	unsigned long i;

	if (iova_magazine_empty(mag))
		return;
	iova_lock(iovad);
	for (i = 0; i < mag->size; ++i) {
		struct iom_iova *iova = private_find_iova(iovad, mag->pfns[i]);

		IOM_BUG_ON(!iova);
		if (iova)
			private_free_iova(iovad, iova);
	}
	iova_unlock(iovad);
	mag->size = 0;
}

/* iova_magazine_pop(): the last pfn whose range ends at or below @limit_pfn. */
static unsigned long iova_magazine_pop(struct iova_magazine *mag,
				       unsigned long limit_pfn)
{
	unsigned long i, pfn;

	/* Only fall back to the rbtree if we have no suitable pfns at all */
	for (i = mag->size - 1; mag->pfns[i] > limit_pfn; i--)
		if (i == 0)
			return 0;
	/* Swap it to pop it */
	pfn = mag->pfns[i];
	mag->pfns[i] = mag->pfns[--mag->size];
	return pfn;
}

static void iova_magazine_push(struct iova_magazine *mag, unsigned long pfn)
{
	mag->pfns[mag->size++] = pfn;
}

static struct iova_magazine *iova_depot_pop(struct iova_rcache *rcache)
{
	struct iova_magazine *mag = rcache->depot;

	rcache->depot = mag->next;
	mag->size = IOM_IOVA_MAG_SIZE;
	rcache->depot_size--;
	return mag;
}

static void iova_depot_push(struct iova_rcache *rcache, struct iova_magazine *mag)
{
	mag->next = rcache->depot;
	rcache->depot = mag;
	rcache->depot_size++;
}

/* ---- per-thread caches ------------------------------------------------------------ */

static IOM_TLS struct iova_cpu_rcache *tls_rcaches;
static IOM_TLS struct iova_cpu_rcache *tls_last;
static pthread_key_t rcache_key;
static pthread_once_t rcache_key_once = PTHREAD_ONCE_INIT;

static inline void rcache_lock(struct iova_cpu_rcache *c)
{
	iom_spin_lock(&c->lock);
}

static inline void rcache_unlock(struct iova_cpu_rcache *c)
{
	iom_spin_unlock(&c->lock);
}

/* membarrier(PRIVATE_EXPEDITED) registered: owners need no fence. */
static bool use_membarrier;
static pthread_once_t membarrier_once = PTHREAD_ONCE_INIT;

static void membarrier_init(void)
{
	use_membarrier = !syscall(__NR_membarrier,
				  MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
}

/* The owner starts working on @c; true if it had to take the lock. */
static inline bool rcache_enter(struct iova_cpu_rcache *c)
{
	atomic_store_explicit(&c->active, 1, memory_order_relaxed);
	if (use_membarrier)
		atomic_signal_fence(memory_order_seq_cst);
	else
		atomic_thread_fence(memory_order_seq_cst);
	if (likely(!atomic_load_explicit(&c->flush_req, memory_order_acquire)))
		return false;
	atomic_store_explicit(&c->active, 0, memory_order_release);
	rcache_lock(c);
	return true;
}

static inline void rcache_exit(struct iova_cpu_rcache *c, bool locked)
{
	if (locked)
		rcache_unlock(c);
	else
		atomic_store_explicit(&c->active, 0, memory_order_release);
}

static inline void owner_count(atomic_ulong *ctr)
{
	atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static void cpu_rcache_put(struct iova_cpu_rcache *c)
{
	if (atomic_fetch_sub(&c->refcount, 1) == 1)
		free(c);
}

/*
 * Empty every magazine of @c into @iovad's tree (free_cpu_cached_iovas());
 * with @release, free the magazines too. Caller holds c->lock.
 */
static void drain_cpu_rcache(struct iom_iova_domain *iovad,
			     struct iova_cpu_rcache *c, bool release)
{
	int i;

	for (i = 0; i < IOM_IOVA_RANGE_CACHE_MAX_SIZE; ++i) {
		iova_magazine_free_pfns(c->mags[i].loaded, iovad);
		iova_magazine_free_pfns(c->mags[i].prev, iovad);
		if (release) {
			free(c->mags[i].loaded);
			free(c->mags[i].prev);
			c->mags[i].loaded = c->mags[i].prev = NULL;
		}
	}
}

/* A thread exits: its cached ranges go back to every domain still alive. */
static void rcache_thread_exit(void *unused)
{
	struct iova_cpu_rcache *c, *next;

	(void)unused;
	for (c = tls_rcaches; c; c = next) {
		struct iom_iova_domain *iovad;

		next = c->tls_next;
		rcache_lock(c);
		iovad = atomic_load_explicit(&c->iovad, memory_order_relaxed);
		if (iovad)
			drain_cpu_rcache(iovad, c, true);
		c->dead = true;
		rcache_unlock(c);
		cpu_rcache_put(c);
	}
	tls_rcaches = NULL;
	tls_last = NULL;
}

static void rcache_make_key(void)
{
	IOM_CHECK_PTHREAD(pthread_key_create(&rcache_key, rcache_thread_exit));
}

/* Forget caches of dead threads. Caller holds cpu_rcaches_lock. */
static void prune_dead_rcaches(struct iom_iova_domain *iovad)
{
	struct list_head *pos = iovad->cpu_rcaches.next, *n;

	for (; pos != &iovad->cpu_rcaches; pos = n) {
		struct iova_cpu_rcache *c = list_entry(pos, struct iova_cpu_rcache,
						       domain_link);
		bool dead;

		n = pos->next;
		rcache_lock(c);
		dead = c->dead;
		if (dead) {
			atomic_fetch_add(&iovad->hits_of_dead, atomic_load(&c->hits));
			atomic_fetch_add(&iovad->misses_of_dead, atomic_load(&c->misses));
			atomic_store_explicit(&c->iovad, NULL, memory_order_relaxed);
		}
		rcache_unlock(c);
		if (dead) {
			list_del(&c->domain_link);
			cpu_rcache_put(c);
		}
	}
}

static struct iova_cpu_rcache *this_cpu_rcache_slow(struct iom_iova_domain *iovad)
{
	struct iova_cpu_rcache *c, **pp;

	/* Forget caches of domains put meanwhile. */
	for (pp = &tls_rcaches; (c = *pp);) {
		struct iom_iova_domain *d =
			atomic_load_explicit(&c->iovad, memory_order_relaxed);

		if (d == iovad) {
			tls_last = c;
			return c;
		}
		if (!d) {
			*pp = c->tls_next;
			cpu_rcache_put(c);
			continue;
		}
		pp = &c->tls_next;
	}
	IOM_CHECK_PTHREAD(pthread_once(&rcache_key_once, rcache_make_key));
	c = aligned_alloc(64, (sizeof(*c) + 63) & ~(size_t)63);
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	atomic_init(&c->refcount, 2);
	atomic_init(&c->iovad, iovad);
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&iovad->cpu_rcaches_lock));
	prune_dead_rcaches(iovad);
	list_add_tail(&c->domain_link, &iovad->cpu_rcaches);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iovad->cpu_rcaches_lock));
	c->tls_next = tls_rcaches;
	tls_rcaches = c;
	tls_last = c;
	IOM_CHECK_PTHREAD(pthread_setspecific(rcache_key, c));
	return c;
}

static inline struct iova_cpu_rcache *this_cpu_rcache(struct iom_iova_domain *iovad)
{
	struct iova_cpu_rcache *c = tls_last;

	if (likely(c && atomic_load_explicit(&c->iovad, memory_order_relaxed) ==
			       iovad))
		return c;
	return this_cpu_rcache_slow(iovad);
}

/*
 * __iova_rcache_insert(): into the loaded magazine, else the previous one,
 * else a new one, the full one going to the depot (or back to the tree
 * when the depot is full).
 */
static bool __iova_rcache_insert(struct iom_iova_domain *iovad,
				 unsigned int log_size, unsigned long iova_pfn)
{
	struct iova_rcache *rcache = &iovad->rcaches[log_size];
	struct iova_magazine *mag_to_free = NULL, *tmp;
	struct iova_cpu_rcache *c = this_cpu_rcache(iovad);
	bool can_insert = false, locked;

	if (!c)
		return false;
	locked = rcache_enter(c);
	if (!c->mags[log_size].loaded)
		c->mags[log_size].loaded = iova_magazine_alloc();
	if (!c->mags[log_size].loaded) {
		/* no memory: the tree takes it */
	} else if (!iova_magazine_full(c->mags[log_size].loaded)) {
		can_insert = true;
	} else if (c->mags[log_size].prev &&
		   !iova_magazine_full(c->mags[log_size].prev)) {
		tmp = c->mags[log_size].prev;
		c->mags[log_size].prev = c->mags[log_size].loaded;
		c->mags[log_size].loaded = tmp;
		can_insert = true;
	} else if (!c->mags[log_size].prev) {
		c->mags[log_size].prev = c->mags[log_size].loaded;
		c->mags[log_size].loaded = iova_magazine_alloc();
		can_insert = c->mags[log_size].loaded != NULL;
	} else {
		struct iova_magazine *new_mag = iova_magazine_alloc();

		if (new_mag) {
			IOM_CHECK_PTHREAD(pthread_mutex_lock(&rcache->lock));
			if (rcache->depot_size < IOM_IOVA_MAX_GLOBAL_MAGS)
				iova_depot_push(rcache, c->mags[log_size].loaded);
			else
				mag_to_free = c->mags[log_size].loaded;
			IOM_CHECK_PTHREAD(pthread_mutex_unlock(&rcache->lock));
			c->mags[log_size].loaded = new_mag;
			can_insert = true;
		}
	}
	if (can_insert)
		iova_magazine_push(c->mags[log_size].loaded, iova_pfn);
	rcache_exit(c, locked);

	if (mag_to_free) {
		iova_magazine_free_pfns(mag_to_free, iovad);
		free(mag_to_free);
	}
	return can_insert;
}

/* __iova_rcache_get(): a cached pfn whose range ends at or below the limit. */
static unsigned long __iova_rcache_get(struct iom_iova_domain *iovad,
				       unsigned int log_size,
				       unsigned long limit_pfn)
{
	struct iova_rcache *rcache = &iovad->rcaches[log_size];
	struct iova_cpu_rcache *c = this_cpu_rcache(iovad);
	unsigned long iova_pfn = 0;
	bool has_pfn = false, locked;

	if (!c)
		return 0;
	locked = rcache_enter(c);
	if (!iova_magazine_empty(c->mags[log_size].loaded)) {
		has_pfn = true;
	} else if (!iova_magazine_empty(c->mags[log_size].prev)) {
		struct iova_magazine *tmp = c->mags[log_size].prev;

		c->mags[log_size].prev = c->mags[log_size].loaded;
		c->mags[log_size].loaded = tmp;
		has_pfn = true;
	} else {
		IOM_CHECK_PTHREAD(pthread_mutex_lock(&rcache->lock));
		if (rcache->depot) {
			free(c->mags[log_size].loaded);
			c->mags[log_size].loaded = iova_depot_pop(rcache);
			has_pfn = true;
		}
		IOM_CHECK_PTHREAD(pthread_mutex_unlock(&rcache->lock));
	}
	if (has_pfn)
		iova_pfn = iova_magazine_pop(c->mags[log_size].loaded, limit_pfn);
	owner_count(iova_pfn ? &c->hits : &c->misses);
	rcache_exit(c, locked);
	return iova_pfn;
}

void iom_free_cpu_cached_iovas(struct iom_iova_domain *iovad)
{
	struct iova_cpu_rcache *c;

	if (!iovad)
		return;
	c = this_cpu_rcache(iovad);
	if (!c)
		return;
	rcache_lock(c);
	drain_cpu_rcache(iovad, c, false);
	rcache_unlock(c);
}

/*
 * Take every thread's cache of @iovad from its owner (see struct
 * iova_cpu_rcache) and call @fn on each under its lock.
 */
static void for_each_cpu_rcache_stopped(struct iom_iova_domain *iovad,
					void (*fn)(struct iom_iova_domain *,
						   struct iova_cpu_rcache *, void *),
					void *arg)
{
	struct iova_cpu_rcache *c;
	struct list_head *pos;

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&iovad->cpu_rcaches_lock));
	list_for_each(pos, &iovad->cpu_rcaches) {
		c = list_entry(pos, struct iova_cpu_rcache, domain_link);
		atomic_store_explicit(&c->flush_req, true, memory_order_release);
	}
	if (use_membarrier)
		syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	else
		atomic_thread_fence(memory_order_seq_cst);
	list_for_each(pos, &iovad->cpu_rcaches) {
		c = list_entry(pos, struct iova_cpu_rcache, domain_link);
		while (atomic_load_explicit(&c->active, memory_order_acquire))
			sched_yield();
		rcache_lock(c);
		fn(iovad, c, arg);
		atomic_store_explicit(&c->flush_req, false, memory_order_release);
		rcache_unlock(c);
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iovad->cpu_rcaches_lock));
}

static void drain_stopped(struct iom_iova_domain *iovad,
			  struct iova_cpu_rcache *c, void *arg)
{
	(void)arg;
	drain_cpu_rcache(iovad, c, false);
}

void iom_free_all_cpu_cached_iovas(struct iom_iova_domain *iovad)
{
	if (iovad)
		for_each_cpu_rcache_stopped(iovad, drain_stopped, NULL);
}

void iom_free_global_cached_iovas(struct iom_iova_domain *iovad)
{
	int i;

	if (!iovad)
		return;
	for (i = 0; i < IOM_IOVA_RANGE_CACHE_MAX_SIZE; ++i) {
		struct iova_rcache *rcache = &iovad->rcaches[i];

		IOM_CHECK_PTHREAD(pthread_mutex_lock(&rcache->lock));
		while (rcache->depot) {
			struct iova_magazine *mag = iova_depot_pop(rcache);

			iova_magazine_free_pfns(mag, iovad);
			free(mag);
		}
		IOM_CHECK_PTHREAD(pthread_mutex_unlock(&rcache->lock));
	}
}

/* ---- the fast API ---------------------------------------------------------------- */

unsigned long iom_alloc_iova_fast(struct iom_iova_domain *iovad,
				  unsigned long size, unsigned long limit_pfn,
				  bool flush_rcache)
{
	unsigned int log_size;
	struct iom_iova *new_iova;
	unsigned long iova_pfn;

	if (!check_domain_args(iovad, size, limit_pfn, "alloc_iova_fast"))
		return 0;
	if (limit_pfn == IOVA_ANCHOR)
		limit_pfn--;
	/*
	 * A range freed into a cache must come back whole for any request of
	 * its class: round cacheable sizes up to a power of two.
	 */
	if (size < (1UL << (IOM_IOVA_RANGE_CACHE_MAX_SIZE - 1)))
		size = 1UL << order_base_2(size);

	log_size = order_base_2(size);
	if (log_size < IOM_IOVA_RANGE_CACHE_MAX_SIZE) {
		/* cached ranges all start below 2^STATE_PFN_BITS */
		unsigned long top = limit_pfn + 1 - size;

		if (top >= 1UL << STATE_PFN_BITS)
			top = (1UL << STATE_PFN_BITS) - 1;
		iova_pfn = __iova_rcache_get(iovad, log_size, top);
		if (iova_pfn) {
			state_set(iovad, iova_pfn, size);
			return iova_pfn;
		}
	}
retry:
	new_iova = __alloc_iova(iovad, size, limit_pfn, true);
	if (!new_iova) {
		if (!flush_rcache)
			return 0;
		/* Try replenishing IOVAs by flushing rcache. */
		flush_rcache = false;
		atomic_fetch_add_explicit(&iovad->flushes, 1, memory_order_relaxed);
		iom_free_all_cpu_cached_iovas(iovad);
		iom_free_global_cached_iovas(iovad);
		goto retry;
	}
	if (!state_set(iovad, new_iova->pfn_lo, size) &&
	    new_iova->pfn_lo < (1UL << STATE_PFN_BITS)) {
		/* no memory for the state map: give it back */
		iova_lock(iovad);
		private_free_iova(iovad, new_iova);
		iova_unlock(iovad);
		return 0;
	}
	return new_iova->pfn_lo;
}

int iom_free_iova_fast(struct iom_iova_domain *iovad, unsigned long pfn,
		       unsigned long size)
{
	unsigned int log_size = order_base_2(size);
	_Atomic uint8_t *slot;
	uint8_t st;
	int ret;

	if (!iovad)
		return -EINVAL;
	if (!size) {
		report_bad_free(iovad, pfn, size, "size 0");
		return -EINVAL;
	}
	slot = state_slot(iovad, pfn, false);
	st = slot ? atomic_load_explicit(slot, memory_order_relaxed) : STATE_EXACT;
	if (st == STATE_FREE) {
		report_bad_free(iovad, pfn, size, "not allocated (or already "
				"freed)");
		return -EINVAL;
	}
	if (log_size < IOM_IOVA_RANGE_CACHE_MAX_SIZE && st == log_size + 1) {
		if (!atomic_compare_exchange_strong(slot, &st, STATE_FREE)) {
			report_bad_free(iovad, pfn, size, "freed twice at once");
			return -EINVAL;
		}
		if (__iova_rcache_insert(iovad, log_size, pfn))
			return 0;
		iova_lock(iovad);
		private_free_iova(iovad, private_find_iova(iovad, pfn));
		iova_unlock(iovad);
		return 0;
	}
	iova_lock(iovad);
	ret = free_iova_checked(iovad, private_find_iova(iovad, pfn), pfn, size);
	iova_unlock(iovad);
	return ret;
}

/*
 * For iommu.c's dma_unmap, before it unmaps anything: would
 * iom_free_iova_fast(@pfn, @size) accept this range? Lock-free for the
 * cached sizes (the state byte), else a look at the tree. Reports nothing.
 */
int iom_iova_check_range(struct iom_iova_domain *iovad, unsigned long pfn,
			 unsigned long size)
{
	unsigned int log_size = order_base_2(size);
	_Atomic uint8_t *slot;
	struct iom_iova *iova;
	uint8_t st;
	int ret = -EINVAL;

	if (!iovad || !size)
		return -EINVAL;
	slot = state_slot(iovad, pfn, false);
	st = slot ? atomic_load_explicit(slot, memory_order_relaxed) : STATE_EXACT;
	if (st == STATE_FREE)
		return -EINVAL;
	if (log_size < IOM_IOVA_RANGE_CACHE_MAX_SIZE && st == log_size + 1)
		return 0;
	iova_lock(iovad);
	iova = private_find_iova(iovad, pfn);
	if (iova && iova != &iovad->anchor && !(iova->_flags & IOVA_FLAG_RESERVED) &&
	    iova->pfn_lo == pfn &&
	    (iova->pfn_hi - iova->pfn_lo + 1 == size ||
	     /* alloc_iova_fast() rounds only the sizes its caches serve */
	     (size < (1UL << (IOM_IOVA_RANGE_CACHE_MAX_SIZE - 1)) &&
	      iova->pfn_hi - iova->pfn_lo + 1 == 1UL << order_base_2(size))))
		ret = 0;
	iova_unlock(iovad);
	return ret;
}

/* ---- domain ------------------------------------------------------------------------- */

struct iom_iova_domain *iom_init_iova_domain(struct iom_machine *m,
					     unsigned long granule,
					     unsigned long start_pfn)
{
	struct iom_iova_domain *iovad;
	int i;

	/*
	 * IOVA granularity will normally be equal to the smallest supported
	 * IOMMU page size; both must be able to represent CPU pages exactly.
	 */
	if (!granule || granule > IOM_PAGE_SIZE || (granule & (granule - 1)) ||
	    !start_pfn || start_pfn >= IOVA_ANCHOR) {
		iom_warn(m, "init_iova_domain: bad granule %#lx (a power of two "
			 "up to %#lx) or start_pfn %#lx (0 is the failure value)",
			 granule, IOM_PAGE_SIZE, start_pfn);
		errno = EINVAL;
		return NULL;
	}
	IOM_CHECK_PTHREAD(pthread_once(&membarrier_once, membarrier_init));
	iovad = calloc(1, sizeof(*iovad));
	if (!iovad)
		goto nomem;
	iovad->state_dir = calloc(STATE_DIR_SIZE, sizeof(*iovad->state_dir));
	if (!iovad->state_dir)
		goto nomem;
	IOM_CHECK_PTHREAD(pthread_mutex_init(&iovad->iova_rbtree_lock, NULL));
	IOM_CHECK_PTHREAD(pthread_mutex_init(&iovad->cpu_rcaches_lock, NULL));
	INIT_LIST_HEAD(&iovad->cpu_rcaches);
	for (i = 0; i < IOM_IOVA_RANGE_CACHE_MAX_SIZE; ++i)
		IOM_CHECK_PTHREAD(pthread_mutex_init(&iovad->rcaches[i].lock, NULL));
	iovad->m = m;
	iovad->granule = granule;
	iovad->start_pfn = start_pfn;
	iovad->dma_32bit_pfn = 1UL << (32 - __builtin_ctzl(granule));
	iovad->max32_alloc_size = iovad->dma_32bit_pfn;
	iovad->prio_seed = 0x9e3779b9u ^ (uint32_t)(uintptr_t)iovad;
	if (!iovad->prio_seed)
		iovad->prio_seed = 1;
	iovad->anchor.pfn_lo = iovad->anchor.pfn_hi = IOVA_ANCHOR;
	iova_insert_rbtree(iovad, &iovad->anchor);
	iovad->nr_ranges = 0;		/* the anchor is not a range */
	iovad->cached_node = &iovad->anchor;
	iovad->cached32_node = &iovad->anchor;
	return iovad;
nomem:
	if (iovad)
		free(iovad->state_dir);
	free(iovad);
	errno = ENOMEM;
	return NULL;
}

unsigned int iom_iova_shift(const struct iom_iova_domain *iovad)
{
	return iovad ? (unsigned int)__builtin_ctzl(iovad->granule) : 0;
}

static void free_tree(struct iom_iova *n)
{
	while (n) {
		struct iom_iova *left = n->_left;

		free_tree(n->_right);
		free_iova_mem(n);
		n = left;
	}
}

void iom_put_iova_domain(struct iom_iova_domain *iovad)
{
	struct list_head *pos, *n;
	unsigned long i;
	int s;

	if (!iovad)
		return;
	/* free_iova_rcaches(): detach every thread's cache */
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&iovad->cpu_rcaches_lock));
	for (pos = iovad->cpu_rcaches.next; pos != &iovad->cpu_rcaches; pos = n) {
		struct iova_cpu_rcache *c = list_entry(pos, struct iova_cpu_rcache,
						       domain_link);

		n = pos->next;
		rcache_lock(c);
		for (s = 0; s < IOM_IOVA_RANGE_CACHE_MAX_SIZE; s++) {
			free(c->mags[s].loaded);
			free(c->mags[s].prev);
			c->mags[s].loaded = c->mags[s].prev = NULL;
		}
		atomic_store_explicit(&c->iovad, NULL, memory_order_relaxed);
		rcache_unlock(c);
		list_del(&c->domain_link);
		cpu_rcache_put(c);
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iovad->cpu_rcaches_lock));
	for (s = 0; s < IOM_IOVA_RANGE_CACHE_MAX_SIZE; s++) {
		struct iova_rcache *rcache = &iovad->rcaches[s];

		while (rcache->depot)
			free(iova_depot_pop(rcache));
		pthread_mutex_destroy(&rcache->lock);
	}
	free_tree(iovad->root);
	for (i = 0; i < STATE_DIR_SIZE; i++)
		free(atomic_load_explicit(&iovad->state_dir[i], memory_order_relaxed));
	free(iovad->state_dir);
	pthread_mutex_destroy(&iovad->cpu_rcaches_lock);
	pthread_mutex_destroy(&iovad->iova_rbtree_lock);
	free(iovad);
}

static void stats_stopped(struct iom_iova_domain *iovad,
			  struct iova_cpu_rcache *c, void *arg)
{
	struct iom_iova_stats *out = arg;
	int s;

	(void)iovad;
	for (s = 0; s < IOM_IOVA_RANGE_CACHE_MAX_SIZE; s++) {
		if (c->mags[s].loaded)
			out->nr_cached += c->mags[s].loaded->size;
		if (c->mags[s].prev)
			out->nr_cached += c->mags[s].prev->size;
	}
}

void iom_iova_domain_stats(struct iom_iova_domain *iovad,
			   struct iom_iova_stats *out)
{
	struct iova_cpu_rcache *c;
	struct list_head *pos;
	int s;

	if (!iovad || !out)
		return;
	memset(out, 0, sizeof(*out));
	out->rcache_hits = atomic_load(&iovad->hits_of_dead);
	out->rcache_misses = atomic_load(&iovad->misses_of_dead);
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&iovad->cpu_rcaches_lock));
	list_for_each(pos, &iovad->cpu_rcaches) {
		c = list_entry(pos, struct iova_cpu_rcache, domain_link);
		out->rcache_hits += atomic_load_explicit(&c->hits, memory_order_relaxed);
		out->rcache_misses += atomic_load_explicit(&c->misses,
							   memory_order_relaxed);
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iovad->cpu_rcaches_lock));
	for_each_cpu_rcache_stopped(iovad, stats_stopped, out);
	for (s = 0; s < IOM_IOVA_RANGE_CACHE_MAX_SIZE; s++) {
		IOM_CHECK_PTHREAD(pthread_mutex_lock(&iovad->rcaches[s].lock));
		out->depot_mags += iovad->rcaches[s].depot_size;
		out->nr_cached += iovad->rcaches[s].depot_size * IOM_IOVA_MAG_SIZE;
		IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iovad->rcaches[s].lock));
	}
	iova_lock(iovad);
	out->nr_ranges = iovad->nr_ranges;
	iova_unlock(iovad);
	out->flushes = atomic_load(&iovad->flushes);
	out->bad_frees = atomic_load(&iovad->bad_frees);
}
