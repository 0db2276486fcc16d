/* SPDX-License-Identifier: MIT */
/*
 * The rig the DMA tests stand on: a machine, an IOMMU, one domain and one
 * device attached to it, torn down with a check that every page (I/O page
 * table pages included, after iom_rcu_barrier()) is back and nothing was
 * reported. Header-only, like mm_util.h.
 */
#ifndef IOMMIG_TEST_DMA_UTIL_H
#define IOMMIG_TEST_DMA_UTIL_H

#include <string.h>

#include <iommig/dma-mapping.h>
#include <iommig/iommu.h>

#include "mm_util.h"

/*
 * @free_at_start: free pages of @m before the IOMMU was made.
 * @dma_debug:     set by the caller when @m runs dma-debug: teardown then
 *                 also checks that it tracks nothing.
 */
struct test_dma_rig {
	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *domain;
	struct iom_device *dev;
	unsigned long free_at_start;
	bool dma_debug;
};

/*
 * On machine @m: an IOMMU of @icfg (NULL: the defaults), a domain of @type
 * (a DMA one with the IOVA space [@base, @limit)) and device "dev0"
 * attached to it.
 */
static inline void test_dma_rig_up(struct test_dma_rig *r, struct iom_machine *m,
				   const struct iom_iommu_config *icfg,
				   enum iom_iommu_domain_type type,
				   uint64_t base, uint64_t limit)
{
	memset(r, 0, sizeof(*r));
	assert_non_null(m);
	r->m = m;
	r->free_at_start = test_nr_free(m);
	assert_int_equal(iom_iommu_create(m, icfg, &r->iommu), 0);
	r->domain = iom_iommu_domain_alloc(r->iommu, type);
	assert_non_null(r->domain);
	if (type != IOM_IOMMU_DOMAIN_UNMANAGED)
		assert_int_equal(iom_iommu_dma_init_domain(r->domain, base, limit), 0);
	assert_int_equal(iom_device_create(r->iommu, "dev0", &r->dev), 0);
	assert_int_equal(iom_iommu_attach_device(r->domain, r->dev), 0);
}

/*
 * Destroy @iommu (its devices and domains already gone), wait for its
 * deferred table frees, check @m has @free_at_start pages free and no bug
 * reported, and destroy @m.
 */
static inline void test_iommu_machine_down(struct iom_machine *m, struct iom_iommu *iommu,
					   unsigned long free_at_start)
{
	assert_int_equal(iom_iommu_destroy(iommu), 0);
	iom_rcu_barrier();
	assert_int_equal(test_nr_free(m), free_at_start);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

/* Tear down what test_dma_rig_up() made, and @r's machine. */
static inline void test_dma_rig_down(struct test_dma_rig *r)
{
	if (r->dma_debug) {
		struct iom_dma_debug_stats st;

		assert_int_equal(iom_dma_debug_get_stats(r->m, &st), 0);
		assert_int_equal(st.nr_entries, 0);
	}
	assert_int_equal(iom_iommu_detach_device(r->domain, r->dev), 0);
	assert_int_equal(iom_device_destroy(r->dev), 0);
	assert_int_equal(iom_iommu_domain_free(r->domain), 0);
	test_iommu_machine_down(r->m, r->iommu, r->free_at_start);
}

#endif
