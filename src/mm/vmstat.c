/* SPDX-License-Identifier: MIT */
/*
 * Counters and memory reports, modelling mm/vmstat.c: the vm event counters
 * summed over every thread's cache set, /proc/{buddyinfo,pagetypeinfo,
 * vmstat,zoneinfo} and debugfs extfrag/{unusable,extfrag}_index in the
 * kernel's formats. Simplified: only the counters libiommig models are
 * printed, zoneinfo has no per-node stats, promo watermark or pagesets,
 * and each zone is read in one snapshot under its lock, then printed.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- vm events ---------------------------------------------------------- */

static const char *const vm_event_names[] = {
	"pgalloc_normal",
	"pgalloc_movable",
	"pgfree",
	"pgalloc_fail",
	"mm_page_alloc_extfrag",
	"mm_page_alloc_extfrag_fragmenting",
	"mm_page_alloc_extfrag_change_ownership",
	"pcp_refill",
	"pcp_drain",
	"drain_all_pages",
	"pgactivate",
	"pgdeactivate",
	"pgscan_direct",
	"pgsteal_direct",
	"allocstall_normal",
	"allocstall_movable",
	"pgscan_kswapd",
	"pgsteal_kswapd",
	"pageoutrun",
	"pgmigrate_success",
	"pgmigrate_fail",
	"compact_migrate_scanned",
	"compact_free_scanned",
	"compact_isolated",
	"compact_stall",
	"compact_fail",
	"compact_success",
	"compact_daemon_wake",
	"compact_daemon_migrate_scanned",
	"compact_daemon_free_scanned",
	"cma_alloc_success",
	"cma_alloc_fail",
	"nr_foll_pin_acquired",
	"nr_foll_pin_released",
	"nr_tlb_remote_flush",
	"nr_tlb_local_flush_one",
};

_Static_assert(sizeof(vm_event_names) / sizeof(vm_event_names[0]) ==
	       IOM_NR_VM_EVENT_ITEMS,
	       "vm_event_names[] must name every enum iom_vm_event_item");

/**
 * iom_vm_event_name() - the /proc/vmstat name of event @item.
 * @item: an enum iom_vm_event_item.
 *
 * Context: any.
 * Return: a static string, or NULL if @item is out of range.
 */
const char *iom_vm_event_name(int item)
{
	if (item < 0 || item >= IOM_NR_VM_EVENT_ITEMS)
		return NULL;
	return vm_event_names[item];
}

/**
 * iom_vm_event_count() - sum_vm_event(): @item over every thread of @m.
 * @m:    the machine.
 * @item: an enum iom_vm_event_item.
 *
 * Adds the counts folded in from exited threads to those of every cache
 * set still on the machine. Each thread bumps its own counter without
 * synchronisation, so a concurrent reader sees a value that was true at
 * some instant per thread, as the kernel's all_vm_events().
 *
 * Context: any thread; takes @m->pcp_sets_lock.
 * Return: the sum, or 0 for a NULL @m or an out-of-range @item.
 */
unsigned long iom_vm_event_count(struct iom_machine *m, int item)
{
	struct list_head *pos;
	unsigned long sum;

	if (!m || item < 0 || item >= IOM_NR_VM_EVENT_ITEMS)
		return 0;

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&m->pcp_sets_lock));
	sum = atomic_load_explicit(&m->events_of_dead[item],
				   memory_order_relaxed);
	list_for_each(pos, &m->pcp_sets) {
		struct iom_pcp_set *set =
			list_entry(pos, struct iom_pcp_set, machine_link);

		sum += atomic_load_explicit(&set->events[item],
					    memory_order_relaxed);
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&m->pcp_sets_lock));
	return sum;
}

/* ---- fragmentation indices ---------------------------------------------- */

#define ULONG_BITS	(sizeof(unsigned long) * CHAR_BIT)

/**
 * iom_fill_contig_page_info() - fill_contig_page_info() on a free-block
 * count per order.
 * @nr_free:        free blocks of each order, @max_order + 1 entries.
 * @max_order:      highest order in @nr_free.
 * @suitable_order: the order an allocation asks for.
 * @info:           filled in.
 *
 * Context: any; pure.
 */
void iom_fill_contig_page_info(const unsigned long *nr_free,
			       unsigned int max_order,
			       unsigned int suitable_order,
			       struct iom_contig_page_info *info)
{
	unsigned int order;

	if (!info)
		return;
	memset(info, 0, sizeof(*info));
	if (!nr_free)
		return;
	/* A shift by the width of the type is undefined; no zone is so big. */
	if (max_order >= ULONG_BITS)
		max_order = ULONG_BITS - 1;

	for (order = 0; order <= max_order; order++) {
		unsigned long blocks = nr_free[order];

		info->free_blocks_total += blocks;
		info->free_pages += blocks << order;
		if (order >= suitable_order)
			info->free_blocks_suitable +=
				blocks << (order - suitable_order);
	}
}

/**
 * iom_unusable_free_index() - unusable_free_index(): how much of the free
 * memory, in thousandths, is in blocks too small for @order.
 * @order: the order asked for.
 * @info:  from iom_fill_contig_page_info() for @order.
 *
 * Context: any; pure.
 * Return: 0..1000; 1000 when nothing is free (or @info is NULL), since
 * then no free memory is usable.
 */
int iom_unusable_free_index(unsigned int order,
			    const struct iom_contig_page_info *info)
{
	uint64_t usable;

	if (!info || info->free_pages == 0)
		return 1000;
	if (order >= ULONG_BITS)
		usable = 0;
	else
		usable = (uint64_t)info->free_blocks_suitable << order;
	/* An inconsistent @info must not wrap around to a huge index. */
	if (usable > info->free_pages)
		usable = info->free_pages;

	return (int)((info->free_pages - usable) * 1000ULL / info->free_pages);
}

/**
 * iom_fragmentation_index() - __fragmentation_index(): would a failure to
 * allocate @order be for lack of memory (towards 0) or for external
 * fragmentation (towards 1000)?
 * @order: the order asked for.
 * @info:  from iom_fill_contig_page_info() for @order.
 *
 * As in the kernel, the value is computed in unsigned 64-bit arithmetic
 * and may come out negative when a few free blocks are almost big enough.
 *
 * Context: any; pure.
 * Return: -1000 if a suitable block is free; 0 if nothing is free (or
 * @info is NULL); otherwise 1000 - (1000 + free_pages * 1000 / 2^order) /
 * free_blocks_total.
 */
int iom_fragmentation_index(unsigned int order,
			    const struct iom_contig_page_info *info)
{
	uint64_t per_request, q;

	if (!info || !info->free_blocks_total)
		return 0;
	if (info->free_blocks_suitable)
		return -1000;

	if (order >= 64)
		per_request = 0;
	else
		per_request = (uint64_t)info->free_pages * 1000ULL >> order;
	q = (1000 + per_request) / info->free_blocks_total;
	return (int)(1000 - (int64_t)q);
}

/* ---- zone snapshots ----------------------------------------------------- */

/* What to read besides nr_free: a walk of every free list, the pageblocks. */
#define SNAP_TYPES	0x1
#define SNAP_BLOCKS	0x2

/* Lists longer than this are not walked to the end (the kernel's cap). */
#define FREELIST_WALK_CAP	100000UL

struct zone_snap {
	unsigned long nr_free[NR_ORDERS_LIMIT];
	unsigned long nr_free_type[NR_ORDERS_LIMIT][IOM_MIGRATE_TYPES];
	bool overflow[NR_ORDERS_LIMIT][IOM_MIGRATE_TYPES];
	unsigned long nr_blocks_type[IOM_MIGRATE_TYPES];
	unsigned long free_pages;	/* NR_FREE_PAGES */
	unsigned long free_cma;		/* NR_FREE_CMA_PAGES */
};

static unsigned int nr_orders(const struct iom_machine *m)
{
	return m->max_order + 1 < NR_ORDERS_LIMIT ? m->max_order + 1
						  : NR_ORDERS_LIMIT;
}

/* pagetypeinfo_showblockcount_print()'s walk; under zone->lock. */
static void count_pageblocks(struct iom_machine *m, struct zone *zone,
			     unsigned long *count)
{
	unsigned long pfn, end = zone_end_pfn(zone);

	for (pfn = zone->zone_start_pfn; pfn < end;
	     pfn += m->pageblock_nr_pages) {
		int mt;

		if (pfn < m->start_pfn || pfn >= m->end_pfn)
			continue;
		if (pfn_zone(m, pfn) != zone)
			continue;
		mt = get_pfnblock_migratetype(m, pfn);
		if (mt < IOM_MIGRATE_TYPES)
			count[mt]++;
	}
}

/*
 * Read @zone's free areas into @snap under zone->lock, so that every
 * number printed for the zone belongs to one instant and nothing is
 * printed (possibly to a slow FILE) with the lock held.
 */
static void zone_snapshot(struct iom_machine *m, struct zone *zone,
			  unsigned int what, struct zone_snap *snap)
{
	unsigned int order, orders = nr_orders(m);
	int mt;

	memset(snap, 0, sizeof(*snap));
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&zone->lock));
	for (order = 0; order < orders; order++) {
		struct free_area *area = &zone->free_area[order];

		snap->nr_free[order] = area->nr_free;
		if (!(what & SNAP_TYPES))
			continue;
		for (mt = 0; mt < IOM_MIGRATE_TYPES; mt++) {
			unsigned long count = 0;
			struct list_head *curr;

			list_for_each(curr, &area->free_list[mt]) {
				if (++count >= FREELIST_WALK_CAP) {
					snap->overflow[order][mt] = true;
					break;
				}
			}
			snap->nr_free_type[order][mt] = count;
		}
	}
	if (what & SNAP_BLOCKS)
		count_pageblocks(m, zone, snap->nr_blocks_type);
	snap->free_pages = zone_page_state(zone, NR_FREE_PAGES);
	snap->free_cma = zone_page_state(zone, NR_FREE_CMA_PAGES);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&zone->lock));
}

static struct zone *machine_zone(struct iom_machine *m, int nid, int zt)
{
	if (nid < 0 || (unsigned int)nid >= m->nr_nodes ||
	    nid >= IOM_MAX_NUMNODES || !m->node_data[nid])
		return NULL;
	if (zt < 0 || zt >= IOM_MAX_NR_ZONES)
		return NULL;
	return &m->node_data[nid]->node_zones[zt];
}

/**
 * iom_zone_info() - a snapshot of zone @zone_type of node @nid.
 * @m:         the machine.
 * @nid:       node id.
 * @zone_type: an enum iom_zone_type.
 * @out:       filled in; for an unpopulated zone only @nid, @zone_type and
 *             populated = false, every count zero.
 *
 * Free-list counts per migratetype stop at 100000 entries, as in
 * /proc/pagetypeinfo.
 *
 * Context: any thread; takes the zone's lock.
 * Return: 0, or -EINVAL for a NULL @m or @out, a bad @nid or @zone_type.
 */
int iom_zone_info(struct iom_machine *m, int nid, int zone_type,
		  struct iom_zone_info *out)
{
	struct zone_snap snap;
	struct zone *zone;
	unsigned int order, orders;

	if (!m || !out)
		return -EINVAL;
	zone = machine_zone(m, nid, zone_type);
	if (!zone)
		return -EINVAL;

	memset(out, 0, sizeof(*out));
	out->nid = nid;
	out->zone_type = zone_type;
	out->populated = populated_zone(zone);
	if (!out->populated)
		return 0;

	zone_snapshot(m, zone, SNAP_TYPES | SNAP_BLOCKS, &snap);
	out->zone_start_pfn = zone->zone_start_pfn;
	out->spanned_pages = zone->spanned_pages;
	out->managed_pages = zone->managed_pages;
	out->watermark_min = zone->_watermark[WMARK_MIN];
	out->watermark_low = zone->_watermark[WMARK_LOW];
	out->watermark_high = zone->_watermark[WMARK_HIGH];
	out->nr_free_pages = snap.free_pages;
	out->nr_free_cma = snap.free_cma;

	orders = nr_orders(m);
	_Static_assert(NR_ORDERS_LIMIT <= 32, "iom_zone_info has 32 orders");
	for (order = 0; order < orders; order++) {
		out->nr_free[order] = snap.nr_free[order];
		memcpy(out->nr_free_type[order], snap.nr_free_type[order],
		       sizeof(out->nr_free_type[order]));
	}
	memcpy(out->nr_blocks_type, snap.nr_blocks_type,
	       sizeof(out->nr_blocks_type));
	return 0;
}

/* ---- the report writer -------------------------------------------------- */

/*
 * A seq_file that writes either to a FILE or into a caller's buffer with
 * snprintf() semantics: @len counts the whole report, @buf keeps what fits.
 */
struct seq_buf {
	FILE *out;
	char *buf;
	size_t size;
	size_t len;
	bool error;
};

static IOM_PRINTF(2, 3) void seq_printf(struct seq_buf *s, const char *fmt,
					...)
{
	va_list ap;
	int n;

	if (s->error)
		return;
	va_start(ap, fmt);
	if (s->out) {
		n = vfprintf(s->out, fmt, ap);
	} else {
		char *dst = NULL;
		size_t room = 0;

		if (s->len < s->size) {
			dst = s->buf + s->len;
			room = s->size - s->len;
		}
		n = vsnprintf(dst, room, fmt, ap);
	}
	va_end(ap);
	if (n < 0) {
		s->error = true;
		return;
	}
	s->len += (size_t)n;
}

static void seq_putc(struct seq_buf *s, char c)
{
	seq_printf(s, "%c", c);
}

static const char *zone_label(const struct zone *zone)
{
	return zone->name ? zone->name : iom_zone_name(zone->zone_type);
}

static bool node_has_memory(const struct pglist_data *pgdat)
{
	int zt;

	for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++)
		if (populated_zone(&pgdat->node_zones[zt]))
			return true;
	return false;
}

typedef void (*zone_print_fn)(struct seq_buf *s, struct iom_machine *m,
			      struct pglist_data *pgdat, struct zone *zone);

/* walk_zones_in_node(): zones in node_zones[] order. */
static void walk_zones_in_node(struct seq_buf *s, struct iom_machine *m,
			       struct pglist_data *pgdat,
			       bool assert_populated, zone_print_fn print)
{
	int zt;

	for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
		struct zone *zone = &pgdat->node_zones[zt];

		if (assert_populated && !populated_zone(zone))
			continue;
		print(s, m, pgdat, zone);
	}
}

/* /proc/buddyinfo: frag_show_print(). */
static void frag_show_print(struct seq_buf *s, struct iom_machine *m,
			    struct pglist_data *pgdat, struct zone *zone)
{
	struct zone_snap snap;
	unsigned int order;

	zone_snapshot(m, zone, 0, &snap);
	seq_printf(s, "Node %d, zone %8s ", pgdat->node_id, zone_label(zone));
	for (order = 0; order < nr_orders(m); order++)
		seq_printf(s, "%6lu ", snap.nr_free[order]);
	seq_putc(s, '\n');
}

/* /proc/pagetypeinfo: pagetypeinfo_showfree_print() and the block count. */
static void pagetypeinfo_print(struct seq_buf *s, struct iom_machine *m,
			       struct pglist_data *pgdat, struct zone *zone,
			       bool blocks)
{
	struct zone_snap snap;
	unsigned int order;
	int mt;

	zone_snapshot(m, zone, blocks ? SNAP_BLOCKS : SNAP_TYPES, &snap);
	if (blocks) {
		seq_printf(s, "Node %d, zone %8s ", pgdat->node_id,
			   zone_label(zone));
		for (mt = 0; mt < IOM_MIGRATE_TYPES; mt++)
			seq_printf(s, "%12lu ", snap.nr_blocks_type[mt]);
		seq_putc(s, '\n');
		return;
	}
	for (mt = 0; mt < IOM_MIGRATE_TYPES; mt++) {
		seq_printf(s, "Node %4d, zone %8s, type %12s ",
			   pgdat->node_id, zone_label(zone),
			   iom_migratetype_name(mt));
		for (order = 0; order < nr_orders(m); order++)
			seq_printf(s, "%s%6lu ",
				   snap.overflow[order][mt] ? ">" : "",
				   snap.nr_free_type[order][mt]);
		seq_putc(s, '\n');
	}
}

static void pagetypeinfo_showfree_print(struct seq_buf *s,
					struct iom_machine *m,
					struct pglist_data *pgdat,
					struct zone *zone)
{
	pagetypeinfo_print(s, m, pgdat, zone, false);
}

static void pagetypeinfo_showblockcount_print(struct seq_buf *s,
					      struct iom_machine *m,
					      struct pglist_data *pgdat,
					      struct zone *zone)
{
	pagetypeinfo_print(s, m, pgdat, zone, true);
}

/* pagetypeinfo_show(): once per node with memory, headers included. */
static void pagetypeinfo_show(struct seq_buf *s, struct iom_machine *m,
			      struct pglist_data *pgdat)
{
	unsigned int order;
	int mt;

	if (!node_has_memory(pgdat))
		return;

	seq_printf(s, "Page block order: %d\n", (int)m->pageblock_order);
	seq_printf(s, "Pages per block:  %lu\n",
		   (unsigned long)m->pageblock_nr_pages);
	seq_putc(s, '\n');

	seq_printf(s, "%-43s ", "Free pages count per migrate type at order");
	for (order = 0; order < nr_orders(m); order++)
		seq_printf(s, "%6d ", (int)order);
	seq_putc(s, '\n');
	walk_zones_in_node(s, m, pgdat, true, pagetypeinfo_showfree_print);

	seq_printf(s, "\n%-23s", "Number of blocks type ");
	for (mt = 0; mt < IOM_MIGRATE_TYPES; mt++)
		seq_printf(s, "%12s ", iom_migratetype_name(mt));
	seq_putc(s, '\n');
	walk_zones_in_node(s, m, pgdat, true,
			   pagetypeinfo_showblockcount_print);
}

/* extfrag/unusable_index and extfrag/extfrag_index. */
static void index_show_print(struct seq_buf *s, struct iom_machine *m,
			     struct pglist_data *pgdat, struct zone *zone,
			     bool extfrag)
{
	struct iom_contig_page_info info;
	struct zone_snap snap;
	unsigned int order;
	int index;

	zone_snapshot(m, zone, 0, &snap);
	seq_printf(s, "Node %d, zone %8s ", pgdat->node_id, zone_label(zone));
	for (order = 0; order < nr_orders(m); order++) {
		iom_fill_contig_page_info(snap.nr_free, nr_orders(m) - 1,
					  order, &info);
		if (extfrag) {
			index = iom_fragmentation_index(order, &info);
			seq_printf(s, "%2d.%03d ", index / 1000,
				   index % 1000);
		} else {
			index = iom_unusable_free_index(order, &info);
			seq_printf(s, "%d.%03d ", index / 1000, index % 1000);
		}
	}
	seq_putc(s, '\n');
}

static void unusable_show_print(struct seq_buf *s, struct iom_machine *m,
				struct pglist_data *pgdat, struct zone *zone)
{
	index_show_print(s, m, pgdat, zone, false);
}

static void extfrag_show_print(struct seq_buf *s, struct iom_machine *m,
			       struct pglist_data *pgdat, struct zone *zone)
{
	index_show_print(s, m, pgdat, zone, true);
}

/* /proc/zoneinfo: zoneinfo_show_print(), the items libiommig models. */
static void zoneinfo_show_print(struct seq_buf *s, struct iom_machine *m,
				struct pglist_data *pgdat, struct zone *zone)
{
	unsigned long free_pages, free_cma;
	int i;

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&zone->lock));
	free_pages = zone_page_state(zone, NR_FREE_PAGES);
	free_cma = zone_page_state(zone, NR_FREE_CMA_PAGES);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&zone->lock));

	seq_printf(s, "Node %d, zone %8s", pgdat->node_id, zone_label(zone));
	seq_printf(s,
		   "\n  pages free     %lu"
		   "\n        boost    %lu"
		   "\n        min      %lu"
		   "\n        low      %lu"
		   "\n        high     %lu"
		   "\n        spanned  %lu"
		   "\n        present  %lu"
		   "\n        managed  %lu"
		   "\n        cma      %lu",
		   free_pages,
		   0UL,
		   zone->_watermark[WMARK_MIN],
		   zone->_watermark[WMARK_LOW],
		   zone->_watermark[WMARK_HIGH],
		   zone->spanned_pages,
		   zone->spanned_pages,	/* no holes: present == spanned */
		   zone->managed_pages,
		   zone->cma_pages);

	seq_printf(s, "\n        protection: (%ld", zone->lowmem_reserve[0]);
	for (i = 1; i < IOM_MAX_NR_ZONES; i++)
		seq_printf(s, ", %ld", zone->lowmem_reserve[i]);
	seq_putc(s, ')');

	if (!populated_zone(zone)) {
		seq_putc(s, '\n');
		return;
	}

	seq_printf(s, "\n      %-12s %lu", "nr_free_pages", free_pages);
	seq_printf(s, "\n      %-12s %lu", "nr_free_cma", free_cma);
	seq_printf(s,
		   "\n  node_unreclaimable:  %u"
		   "\n  start_pfn:           %lu",
		   0u, zone->zone_start_pfn);
	seq_putc(s, '\n');
}

/* /proc/vmstat: the zone counters summed, then the events. */
static void vmstat_show(struct seq_buf *s, struct iom_machine *m)
{
	unsigned long free_pages = 0, free_cma = 0;
	unsigned int nid;
	int zt, item;

	for (nid = 0; nid < m->nr_nodes; nid++) {
		struct pglist_data *pgdat = m->node_data[nid];

		if (!pgdat)
			continue;
		for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
			free_pages += zone_page_state(&pgdat->node_zones[zt],
						      NR_FREE_PAGES);
			free_cma += zone_page_state(&pgdat->node_zones[zt],
						    NR_FREE_CMA_PAGES);
		}
	}
	seq_printf(s, "nr_free_pages %lu\n", free_pages);
	seq_printf(s, "nr_free_cma %lu\n", free_cma);
	for (item = 0; item < IOM_NR_VM_EVENT_ITEMS; item++)
		seq_printf(s, "%s %lu\n", vm_event_names[item],
			   iom_vm_event_count(m, item));
}

/* Every report, written once for both iom_proc_show() and iom_proc_read(). */
static void proc_write(struct seq_buf *s, struct iom_machine *m,
		       enum iom_proc_file file)
{
	unsigned int nid;

	if (file == IOM_PROC_VMSTAT) {
		vmstat_show(s, m);
		return;
	}
	/* The rest iterate nodes as frag_start()/frag_next() do. */
	for (nid = 0; nid < m->nr_nodes && nid < IOM_MAX_NUMNODES; nid++) {
		struct pglist_data *pgdat = m->node_data[nid];

		if (!pgdat)
			continue;
		switch (file) {
		case IOM_PROC_BUDDYINFO:
			walk_zones_in_node(s, m, pgdat, true, frag_show_print);
			break;
		case IOM_PROC_PAGETYPEINFO:
			pagetypeinfo_show(s, m, pgdat);
			break;
		case IOM_PROC_ZONEINFO:
			walk_zones_in_node(s, m, pgdat, false,
					   zoneinfo_show_print);
			break;
		case IOM_DEBUGFS_UNUSABLE_INDEX:
			walk_zones_in_node(s, m, pgdat, true,
					   unusable_show_print);
			break;
		case IOM_DEBUGFS_EXTFRAG_INDEX:
			walk_zones_in_node(s, m, pgdat, true,
					   extfrag_show_print);
			break;
		default:
			break;
		}
	}
}

static bool proc_file_valid(enum iom_proc_file file)
{
	return (int)file >= 0 && file < IOM_NR_PROC_FILES;
}

/**
 * iom_proc_show() - print one report of @m to @out.
 * @m:    the machine.
 * @file: which report.
 * @out:  where to print it.
 *
 * Each zone is read in one snapshot under its lock; the lock is not held
 * while printing. Zones are not frozen against each other.
 *
 * Context: any thread; takes each zone's lock in turn.
 * Return: bytes written (at most INT_MAX), or -EINVAL for a NULL @m or
 * @out or a bad @file, -EIO if writing to @out failed.
 */
int iom_proc_show(struct iom_machine *m, enum iom_proc_file file, FILE *out)
{
	struct seq_buf s = { .out = out };

	if (!m || !out || !proc_file_valid(file))
		return -EINVAL;
	proc_write(&s, m, file);
	if (s.error || ferror(out))
		return -EIO;
	return s.len > INT_MAX ? INT_MAX : (int)s.len;
}

/**
 * iom_proc_read() - print one report of @m into @buf, as snprintf().
 * @m:    the machine.
 * @file: which report.
 * @buf:  destination; may be NULL when @size is 0.
 * @size: bytes of @buf.
 *
 * Context: any thread; takes each zone's lock in turn.
 * Return: the report's full length, not counting the NUL (when it is
 * @size or more, @buf holds a truncated, NUL-terminated prefix); -EINVAL
 * for a NULL @m, a bad @file or a NULL @buf with a non-zero @size.
 */
ssize_t iom_proc_read(struct iom_machine *m, enum iom_proc_file file,
		      char *buf, size_t size)
{
	struct seq_buf s = { .buf = buf, .size = size };

	if (!m || !proc_file_valid(file) || (!buf && size))
		return -EINVAL;
	if (size)
		buf[0] = '\0';
	proc_write(&s, m, file);
	if (s.error)
		return -EIO;
	if (s.len > (size_t)SSIZE_MAX)
		return -EIO;
	return (ssize_t)s.len;
}
