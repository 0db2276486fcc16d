/* SPDX-License-Identifier: MIT */
/* libiommig - symbol visibility. Everything not marked IOM_API is hidden. */
#ifndef IOMMIG_EXPORT_H
#define IOMMIG_EXPORT_H

#if defined(IOMMIG_BUILDING) && defined(__GNUC__)
#define IOM_API __attribute__((visibility("default")))
#else
#define IOM_API
#endif

#endif /* IOMMIG_EXPORT_H */
