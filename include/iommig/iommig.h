/* SPDX-License-Identifier: MIT */
/* libiommig - umbrella header: every public layer. */
#ifndef IOMMIG_IOMMIG_H
#define IOMMIG_IOMMIG_H

#include <iommig/machine.h>
#include <iommig/mm.h>
#include <iommig/vmstat.h>
#include <iommig/rcu.h>
#include <iommig/radix-tree.h>
#include <iommig/filemap.h>
#include <iommig/memory.h>
#include <iommig/migrate.h>
#include <iommig/compaction.h>
#include <iommig/cma.h>
#include <iommig/gup.h>
#include <iommig/migrate_device.h>
#include <iommig/hmm.h>
#include <iommig/io-pgtable.h>
#include <iommig/iova.h>
#include <iommig/iommu.h>
#include <iommig/hmm_domain.h>
#include <iommig/iomap.h>
#include <iommig/dma-mapping.h>
#include <iommig/vfio.h>
#include <iommig/trace.h>

#endif /* IOMMIG_IOMMIG_H */
