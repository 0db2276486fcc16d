/* SPDX-License-Identifier: MIT */
/* libiommig - umbrella header: every public layer. */
#ifndef IOMMIG_IOMMIG_H
#define IOMMIG_IOMMIG_H

#include <iommig/machine.h>
#include <iommig/mm.h>
#include <iommig/vmstat.h>

#endif /* IOMMIG_IOMMIG_H */
