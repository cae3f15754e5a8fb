/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pyphys.ko builds against every kernel from 5.10 to 6.18.  This header holds
 * each interface that changed in that range, with the commit that changed it,
 * so that pyphys.c itself has no version checks.  kmod/COMPAT.md lists every
 * interface the module uses and says how each kernel version was checked.
 */
#ifndef PYPHYS_COMPAT_H
#define PYPHYS_COMPAT_H

#include <linux/highmem.h>
#include <linux/version.h>

/*
 * 6.16 made bin_attribute's read()/write() take a const attribute and
 * attribute_group::bin_attrs point to const attributes: 97d06802d10a
 * ("sysfs: constify bin_attribute argument of bin_attribute::read/write()")
 * and 9bec944506fa ("sysfs: constify attribute_group::bin_attrs").  Before
 * 6.16 those fields are non-const; 6.13 to 6.15 also took const callbacks
 * and arrays through read_new/write_new and bin_attrs_new (eb2e6c3a8d66
 * "sysfs: bin_attribute: add const read/write callback variants", 906c508afdca
 * "sysfs: attribute_group: allow registration of const bin_attribute"), which
 * 6.18 removed again.  The plain fields exist in every version, so one switch
 * at 6.16 fits all of them.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 16, 0)
#define PYPHYS_BIN_CONST const
#else
#define PYPHYS_BIN_CONST
#endif

/*
 * kmap_local_page() is new in 5.11: f3ba3c710ac5 ("mm/highmem: Provide
 * kmap_local*").  kmap_atomic() also gives a mapping that the nofault copies
 * may use; it disables preemption as well, which the copies do not mind.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 11, 0)
#define kmap_local_page(page)	kmap_atomic(page)
#define kunmap_local(vaddr)	kunmap_atomic(vaddr)
#endif

#endif /* PYPHYS_COMPAT_H */
