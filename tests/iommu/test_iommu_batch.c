/* SPDX-License-Identifier: MIT */
/*
 * iom_iommu_migrate_batch_begin/switch/end(): the ranges of a batch are
 * blocked from begin to end (a device access to one waits, one to another
 * IOVA of the domain runs), a switched range translates to its new pages
 * once the batch ends and a range never switched keeps its old ones, the
 * whole batch costs one invalidation; and bad arguments, a hole, a range
 * another migration holds and a second switch are refused with nothing
 * changed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <iommig/iommu.h>

#include "mm_util.h"

#define PG IOM_PAGE_SIZE
#define IOVA 0x100000UL

static struct test_log tlog;

struct reader {
	struct iom_device *dev;
	unsigned long iova;
	atomic_bool done;
	int ret;
	char byte;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	r->ret = iom_device_dma_read(r->dev, r->iova, &r->byte, 1);
	atomic_store(&r->done, true);
	return NULL;
}

static void test_batch(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	unsigned long free0 = test_nr_free(m);
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d;
	struct iom_device *dev;
	struct iom_page *old[4], *new[4];
	struct iom_iommu_migrate_range r[3];
	struct iom_iommu_migrate_batch *b, *b2;
	struct iom_iommu_stats st0, st1;
	struct reader rd = { 0 }, other = { 0 };
	pthread_t th, th2;

	(void)state;
	assert_int_equal(iom_iommu_create(m, NULL, &iommu), 0);
	d = iom_iommu_domain_alloc(iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_int_equal(iom_device_create(iommu, "dev", &dev), 0);
	assert_int_equal(iom_iommu_attach_device(d, dev), 0);
	for (int i = 0; i < 4; i++) {
		old[i] = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
		new[i] = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
		memset(iom_page_address(m, old[i]), 'a' + i, PG);
		memset(iom_page_address(m, new[i]), 'A' + i, PG);
		assert_int_equal(iom_iommu_map(d, IOVA + i * PG, iom_page_to_phys(m, old[i]), PG,
					       IOM_IOMMU_READ | IOM_IOMMU_WRITE), 0);
	}
	for (int i = 0; i < 3; i++)
		r[i] = (struct iom_iommu_migrate_range){
			.iova = IOVA + i * PG, .paddr = iom_page_to_phys(m, new[i]), .size = PG,
		};
	/* bad arguments and holes change nothing */
	assert_int_equal(iom_iommu_migrate_batch_begin(NULL, r, 3, &b), -EINVAL);
	assert_int_equal(iom_iommu_migrate_batch_begin(d, NULL, 3, &b), -EINVAL);
	assert_int_equal(iom_iommu_migrate_batch_begin(d, r, 0, &b), -EINVAL);
	assert_int_equal(iom_iommu_migrate_batch_begin(d, r, 3, NULL), -EINVAL);
	{
		struct iom_iommu_migrate_range hole = { IOVA + 8 * PG, r[0].paddr, PG };

		assert_int_equal(iom_iommu_migrate_batch_begin(d, &hole, 1, &b), -ENOENT);
	}
	assert_int_equal(iom_iommu_migrate_batch_switch(NULL, 0), -EINVAL);
	iom_iommu_migrate_batch_end(NULL);

	assert_int_equal(iom_iommu_get_stats(iommu, &st0), 0);
	assert_int_equal(iom_iommu_migrate_batch_begin(d, r, 3, &b), 0);
	/* another migration of one of these ranges is refused */
	assert_int_equal(iom_iommu_migrate_batch_begin(d, &r[1], 1, &b2), -EBUSY);
	/* a device access to a blocked range waits; one elsewhere runs */
	rd.dev = other.dev = dev;
	rd.iova = IOVA + PG;
	other.iova = IOVA + 3 * PG;
	assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
	assert_int_equal(pthread_create(&th2, NULL, reader_main, &other), 0);
	pthread_join(th2, NULL);
	assert_int_equal(other.ret, 0);
	assert_int_equal(other.byte, 'd');
	for (int i = 0; i < 100; i++)
		sched_yield();
	assert_false(atomic_load(&rd.done));
	/* the caller copies (nothing here: the new pages hold other bytes) and switches */
	assert_int_equal(iom_iommu_migrate_batch_switch(b, 0), 0);
	assert_int_equal(iom_iommu_migrate_batch_switch(b, 1), 0);
	assert_int_equal(iom_iommu_migrate_batch_switch(b, 1), -EINVAL);
	assert_int_equal(iom_iommu_migrate_batch_switch(b, 3), -EINVAL);
	assert_false(atomic_load(&rd.done));
	iom_iommu_migrate_batch_end(b);
	pthread_join(th, NULL);
	assert_int_equal(rd.ret, 0);
	assert_int_equal(rd.byte, 'B');		/* the new page */
	assert_int_equal(iom_iommu_get_stats(iommu, &st1), 0);
	assert_int_equal(st1.inv_range + st1.inv_domain - st0.inv_range - st0.inv_domain, 1);
	assert_int_equal(iom_iommu_iova_to_phys(d, IOVA), iom_page_to_phys(m, new[0]));
	assert_int_equal(iom_iommu_iova_to_phys(d, IOVA + PG), iom_page_to_phys(m, new[1]));
	/* never switched: the old page */
	assert_int_equal(iom_iommu_iova_to_phys(d, IOVA + 2 * PG), iom_page_to_phys(m, old[2]));
	{
		char c;

		assert_int_equal(iom_device_dma_read(dev, IOVA + 2 * PG, &c, 1), 0);
		assert_int_equal(c, 'c');
	}
	/* a batch that switched nothing invalidates nothing */
	assert_int_equal(iom_iommu_migrate_batch_begin(d, &r[2], 1, &b), 0);
	assert_int_equal(iom_iommu_get_stats(iommu, &st0), 0);
	iom_iommu_migrate_batch_end(b);
	assert_int_equal(iom_iommu_get_stats(iommu, &st1), 0);
	assert_int_equal(st1.inv_syncs, st0.inv_syncs);

	assert_int_equal(iom_iommu_unmap(d, IOVA, 4 * PG), 4 * PG);
	assert_int_equal(iom_iommu_detach_device(d, dev), 0);
	assert_int_equal(iom_device_destroy(dev), 0);
	assert_int_equal(iom_iommu_domain_free(d), 0);
	assert_int_equal(iom_iommu_destroy(iommu), 0);
	for (int i = 0; i < 4; i++) {
		iom_put_page(m, old[i]);
		iom_put_page(m, new[i]);
	}
	iom_rcu_barrier();
	assert_int_equal(test_nr_free(m), free0);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
