// SPDX-License-Identifier: GPL-2.0
/*
 * pyphys: known physical addresses for user-space physical-memory experiments
 *
 * This module creates a directory in sysfs called /sys/kernel/pyphys.  In
 * that directory the following files are created (ABI.md documents them):
 *
 *   buffer_phys    0400  physical address of a kmalloc'd PAGE_SIZE buffer
 *   buffer_size    0444  size of that buffer in bytes (PAGE_SIZE)
 *   buffer         0600  binary: the buffer's raw content, readable and
 *                        writable; at load, little-endian u32 word i holds
 *                        0x50590000 | i
 *   nodename_phys  0400  physical address of init_uts_ns.name.nodename, the
 *                        bytes that uname -n and hostname print
 *   nodename_len   0444  size of that field in bytes (__NEW_UTS_LEN + 1)
 *
 * Each text file holds one ASCII value followed by a newline.  A physical
 * address tells an attacker where to aim a DMA or rowhammer attack, so the
 * address files are readable by root only; the sizes are not secret.
 *
 * With mem_device=1 the module also registers the misc device
 * /dev/pyphys_mem (0600): read() and write() at a file offset that is a
 * physical address, System RAM only.  See the comment above
 * pyphys_mem_open() for why it exists and what it costs.
 *
 * Always registered: /dev/pyphys_walk (0600), one ioctl that reports a
 * process's top-level page table, the paging mode and IA32_PAT (see the
 * comment above struct pyphys_pgd).
 */
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/init.h>
#include <linux/io.h>
#include <linux/kobject.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/security.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>
#include <linux/utsname.h>
#include <asm/msr.h>

#include "compat.h"

/* "PY" in the top half of every word, the word index in the bottom half. */
#define PYPHYS_PATTERN	0x50590000U

static bool mem_device;
module_param(mem_device, bool, 0444);
MODULE_PARM_DESC(mem_device,
		 "Register /dev/pyphys_mem, a root-only read/write window on System RAM that ignores CONFIG_STRICT_DEVMEM (default: false)");

static void *pyphys_buffer;
static struct kobject *pyphys_kobj;

static ssize_t buffer_phys_show(struct kobject *kobj,
				struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "0x%llx\n",
			  (unsigned long long)virt_to_phys(pyphys_buffer));
}

static ssize_t buffer_size_show(struct kobject *kobj,
				struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lu\n", PAGE_SIZE);
}

/*
 * init_uts_ns lives in the kernel image, not in the linear map that
 * virt_to_phys() is defined for (arm64 warns about it under
 * CONFIG_DEBUG_VIRTUAL); __pa_symbol() is the helper for image addresses.
 * The image is physically contiguous, so the field is too.
 */
static ssize_t nodename_phys_show(struct kobject *kobj,
				  struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "0x%llx\n",
			  (unsigned long long)__pa_symbol(init_uts_ns.name.nodename));
}

static ssize_t nodename_len_show(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%zu\n", sizeof(init_uts_ns.name.nodename));
}

static struct kobj_attribute buffer_phys_attribute = __ATTR_RO_MODE(buffer_phys, 0400);
static struct kobj_attribute buffer_size_attribute = __ATTR_RO_MODE(buffer_size, 0444);
static struct kobj_attribute nodename_phys_attribute = __ATTR_RO_MODE(nodename_phys, 0400);
static struct kobj_attribute nodename_len_attribute = __ATTR_RO_MODE(nodename_len, 0444);

/*
 * sysfs already clips off/count to the attribute's size; the checks below
 * keep the copies in bounds even if that ever changes.  There is no lock:
 * the same bytes can be written through /dev/mem at any moment, so a lock
 * here would promise an atomicity the module cannot give.
 */
static ssize_t buffer_read(struct file *filp, struct kobject *kobj,
			   PYPHYS_BIN_CONST struct bin_attribute *attr, char *buf,
			   loff_t off, size_t count)
{
	if (off < 0 || off >= PAGE_SIZE)
		return 0;
	count = min_t(size_t, count, PAGE_SIZE - off);
	memcpy(buf, pyphys_buffer + off, count);
	return count;
}

static ssize_t buffer_write(struct file *filp, struct kobject *kobj,
			    PYPHYS_BIN_CONST struct bin_attribute *attr, char *buf,
			    loff_t off, size_t count)
{
	if (off < 0 || off >= PAGE_SIZE)
		return -EFBIG;
	count = min_t(size_t, count, PAGE_SIZE - off);
	memcpy(pyphys_buffer + off, buf, count);
	return count;
}

static BIN_ATTR(buffer, 0600, buffer_read, buffer_write, PAGE_SIZE);

static struct attribute *pyphys_attrs[] = {
	&buffer_phys_attribute.attr,
	&buffer_size_attribute.attr,
	&nodename_phys_attribute.attr,
	&nodename_len_attribute.attr,
	NULL,
};

static PYPHYS_BIN_CONST struct bin_attribute *pyphys_bin_attrs[] = {
	&bin_attr_buffer,
	NULL,
};

static const struct attribute_group pyphys_attr_group = {
	.attrs = pyphys_attrs,
	.bin_attrs = pyphys_bin_attrs,
};

/*
 * /dev/pyphys_mem
 *
 * Why it exists: on kernels built with CONFIG_STRICT_DEVMEM (every
 * distribution kernel) /dev/mem refuses System RAM, and the exercises this
 * project teaches (read a buffer at its physical address, patch the
 * hostname in kernel data) need exactly that.  This device is /dev/mem
 * without the STRICT_DEVMEM policy and nothing else: a root user who can
 * load a module can already do anything it does, so it opens no new door,
 * but while it is registered any process with CAP_SYS_RAWIO can read and
 * rewrite all of RAM, kernel data and other processes' secrets included.
 * Hence: off by default (mem_device=0), mode 0600, CAP_SYS_RAWIO checked in
 * open() as drivers/char/mem.c does, and kernel lockdown still honoured.
 * Memory forensics tools ship the same kind of helper for the same reason
 * (LiME's acquisition module, chipsec's kernel driver).
 *
 * What it reaches: pages that have a struct page (pfn_valid()) and that
 * /proc/iomem calls System RAM (page_is_ram()).  Reserved pages inside
 * System RAM, kernel data included, stay reachable on purpose; MMIO,
 * firmware tables and holes do not (-ENXIO), because a cached access
 * through the linear map is not how a device register may be touched.
 * Every access goes through a bounce buffer with fault-tolerant kernel
 * copies, so a page that is not mapped or is mapped read-only (kernel text
 * and rodata) fails with -EFAULT instead of oopsing, and a bad user buffer
 * never leaves a partial write in physical memory.  An aligned access of
 * 2, 4 or 8 bytes is a single load or store of that width.
 */
static int pyphys_mem_open(struct inode *inode, struct file *filp)
{
	int ret;

	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;

	ret = security_locked_down(LOCKDOWN_DEV_MEM);
	if (ret)
		return ret;

	return 0;
}

/* The page holding @addr if it is System RAM with a struct page, else NULL. */
static struct page *pyphys_ram_page(phys_addr_t addr)
{
	unsigned long pfn = PHYS_PFN(addr);

	if (!pfn_valid(pfn) || !page_is_ram(pfn))
		return NULL;
	return pfn_to_page(pfn);
}

/* Copy @len bytes at @addr (within one page) into @dst. */
static int pyphys_peek(void *dst, phys_addr_t addr, size_t len)
{
	struct page *page = pyphys_ram_page(addr);
	void *vaddr;
	long ret;

	if (!page)
		return -ENXIO;
	vaddr = kmap_local_page(page);
	ret = copy_from_kernel_nofault(dst, vaddr + offset_in_page(addr), len);
	kunmap_local(vaddr);
	return ret ? -EFAULT : 0;
}

/*
 * copy_to_kernel_nofault() is not exported to modules; this is its loop,
 * built on the same per-architecture primitive.  Widest store first, so an
 * aligned 4-byte write is one 32-bit store.
 */
static int pyphys_store_nofault(void *dst, const void *src, size_t len)
{
	unsigned long align = 0;
	size_t step;

	if (!IS_ENABLED(CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS))
		align = (unsigned long)dst | (unsigned long)src;

	pagefault_disable();
	for (; len; dst += step, src += step, len -= step) {
		if (len >= sizeof(u64) && !(align & 7)) {
			step = sizeof(u64);
			__put_kernel_nofault(dst, src, u64, fault);
		} else if (len >= sizeof(u32) && !(align & 3)) {
			step = sizeof(u32);
			__put_kernel_nofault(dst, src, u32, fault);
		} else if (len >= sizeof(u16) && !(align & 1)) {
			step = sizeof(u16);
			__put_kernel_nofault(dst, src, u16, fault);
		} else {
			step = sizeof(u8);
			__put_kernel_nofault(dst, src, u8, fault);
		}
	}
	pagefault_enable();
	return 0;
fault:
	pagefault_enable();
	return -EFAULT;
}

/* Copy @len bytes from @src to @addr (within one page). */
static int pyphys_poke(phys_addr_t addr, const void *src, size_t len)
{
	struct page *page = pyphys_ram_page(addr);
	void *vaddr;
	int ret;

	if (!page)
		return -ENXIO;
	vaddr = kmap_local_page(page);
	ret = pyphys_store_nofault(vaddr + offset_in_page(addr), src, len);
	kunmap_local(vaddr);
	return ret;
}

/* Like should_stop_iteration() in drivers/char/mem.c: large reads stay killable. */
static bool pyphys_should_stop(void)
{
	if (fatal_signal_pending(current))
		return true;
	cond_resched();
	return false;
}

/*
 * read() and write() walk the range a page at a time.  A failure on the
 * first page is returned as the error (-ENXIO: not System RAM, -EFAULT:
 * copy failed); a failure later returns the bytes done so far, so the next
 * call starts at the failing page and reports why.
 */
static ssize_t pyphys_mem_read(struct file *filp, char __user *buf,
			       size_t count, loff_t *ppos)
{
	phys_addr_t addr = *ppos;
	ssize_t done = 0;
	char *bounce;
	int err = 0;

	if (addr != *ppos)
		return -ENXIO;

	bounce = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;

	while (count) {
		size_t chunk = min_t(size_t, count,
				     PAGE_SIZE - offset_in_page(addr));

		err = pyphys_peek(bounce, addr, chunk);
		if (err)
			break;
		if (copy_to_user(buf + done, bounce, chunk)) {
			err = -EFAULT;
			break;
		}
		done += chunk;
		addr += chunk;
		count -= chunk;
		if (pyphys_should_stop())
			break;
	}
	kfree(bounce);

	if (!done)
		return err;
	*ppos += done;
	return done;
}

static ssize_t pyphys_mem_write(struct file *filp, const char __user *buf,
				size_t count, loff_t *ppos)
{
	phys_addr_t addr = *ppos;
	ssize_t done = 0;
	char *bounce;
	int err = 0;

	if (addr != *ppos)
		return -ENXIO;

	bounce = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;

	while (count) {
		size_t chunk = min_t(size_t, count,
				     PAGE_SIZE - offset_in_page(addr));

		if (copy_from_user(bounce, buf + done, chunk)) {
			err = -EFAULT;
			break;
		}
		err = pyphys_poke(addr, bounce, chunk);
		if (err)
			break;
		done += chunk;
		addr += chunk;
		count -= chunk;
		if (pyphys_should_stop())
			break;
	}
	kfree(bounce);

	if (!done)
		return err;
	*ppos += done;
	return done;
}

/* SEEK_SET and SEEK_CUR only, no size: like memory_lseek() for /dev/mem. */
static const struct file_operations pyphys_mem_fops = {
	.owner		= THIS_MODULE,
	.open		= pyphys_mem_open,
	.llseek		= no_seek_end_llseek,
	.read		= pyphys_mem_read,
	.write		= pyphys_mem_write,
};

static struct miscdevice pyphys_mem_misc = {
	.minor		= MISC_DYNAMIC_MINOR,
	.name		= "pyphys_mem",
	.fops		= &pyphys_mem_fops,
	.mode		= 0600,
};

/*
 * ---- /dev/pyphys_walk: where a process's page-table walk starts ----------
 *
 * ioctl(fd, PYPHYS_IOC_PGD, &struct pyphys_pgd) on /dev/pyphys_walk (0600,
 * always registered): for the pid in .pid, the physical address of its
 * top-level page table (mm->pgd), with KPTI also the user-half copy, the
 * paging mode (4 or 5 levels) and this CPU's IA32_PAT MSR.  Root only:
 * CAP_SYS_ADMIN is checked in the ioctl, because a page table's physical
 * address is what a rowhammer or DMA attack aims at.  An ioctl answers the
 * caller that asked; a sysfs "write a pid, then read" pair would let two
 * readers see each other's answers.  The layout is ABI (kmod/ABI.md).
 */
struct pyphys_pgd {
	__s32 pid;		/* in: a pid in the caller's pid namespace */
	__u32 levels;		/* out: 4 or 5 */
	__u64 pgd_phys;		/* out: physical address of mm->pgd */
	__u64 user_pgd_phys;	/* out: KPTI's user-half copy, 0 without KPTI */
	__u64 pat;		/* out: IA32_PAT (0 if the MSR cannot be read) */
	__u32 flags;		/* out: PYPHYS_PGD_* */
	__u32 reserved;		/* out: 0 */
};

#define PYPHYS_PGD_PTI		0x1	/* KPTI is active: user_pgd_phys is set */
#define PYPHYS_PGD_PAT_VALID	0x2	/* pat holds the MSR */
#define PYPHYS_IOC_PGD		_IOWR('p', 0x01, struct pyphys_pgd)

static int pyphys_walk_pgd(struct pyphys_pgd *req)
{
	struct task_struct *task;
	struct mm_struct *mm;
	struct pid *pid;
	u32 pat_lo, pat_hi;

	pid = find_get_pid(req->pid);
	if (!pid)
		return -ESRCH;
	task = get_pid_task(pid, PIDTYPE_PID);
	put_pid(pid);
	if (!task)
		return -ESRCH;
	/* A kernel thread borrows whichever mm was active; it has none of its own. */
	if (task->flags & PF_KTHREAD) {
		put_task_struct(task);
		return -EINVAL;
	}
	mm = get_task_mm(task);
	put_task_struct(task);
	if (!mm)
		return -ESRCH;	/* exited (a zombie has no mm) */

	/* pgd_alloc() takes it from the page allocator: the direct map, so __pa() holds. */
	req->pgd_phys = __pa(mm->pgd);
	req->user_pgd_phys = 0;
	req->flags = 0;
	/* The user half is the next page of an order-1 pgd: kernel_to_user_pgdp(). */
	if (boot_cpu_has(X86_FEATURE_PTI)) {
		req->user_pgd_phys = req->pgd_phys + PAGE_SIZE;
		req->flags |= PYPHYS_PGD_PTI;
	}
	mmput(mm);

	req->levels = pgtable_l5_enabled() ? 5 : 4;
	req->pat = 0;
	/* The two-word form: rdmsrl_safe() was renamed rdmsrq_safe() in 6.16. */
	if (!rdmsr_safe(MSR_IA32_CR_PAT, &pat_lo, &pat_hi)) {
		req->pat = (u64)pat_hi << 32 | pat_lo;
		req->flags |= PYPHYS_PGD_PAT_VALID;
	}
	req->reserved = 0;
	return 0;
}

static long pyphys_walk_ioctl(struct file *filp, unsigned int cmd,
			      unsigned long arg)
{
	struct pyphys_pgd req;
	void __user *uarg = (void __user *)arg;
	int ret;

	if (cmd != PYPHYS_IOC_PGD)
		return -ENOTTY;
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	ret = pyphys_walk_pgd(&req);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &req, sizeof(req)))
		return -EFAULT;
	return 0;
}

static const struct file_operations pyphys_walk_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= pyphys_walk_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

static struct miscdevice pyphys_walk_misc = {
	.minor		= MISC_DYNAMIC_MINOR,
	.name		= "pyphys_walk",
	.fops		= &pyphys_walk_fops,
	.mode		= 0600,
};

/* ---- end of /dev/pyphys_walk ------------------------------------------- */

static int __init pyphys_init(void)
{
	__le32 *words;
	size_t i;
	int ret;

	/* kmalloc() of a power-of-two size is naturally aligned: one whole page. */
	pyphys_buffer = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!pyphys_buffer)
		return -ENOMEM;

	words = pyphys_buffer;
	for (i = 0; i < PAGE_SIZE / sizeof(*words); i++)
		words[i] = cpu_to_le32(PYPHYS_PATTERN | i);

	/*
	 * A simple directory under /sys/kernel, as in
	 * samples/kobject/kobject-example.c: no uevent, fixed name.
	 */
	pyphys_kobj = kobject_create_and_add("pyphys", kernel_kobj);
	if (!pyphys_kobj) {
		ret = -ENOMEM;
		goto out_free_buffer;
	}

	ret = sysfs_create_group(pyphys_kobj, &pyphys_attr_group);
	if (ret)
		goto out_put_kobj;

	ret = misc_register(&pyphys_walk_misc);
	if (ret)
		goto out_remove_group;

	if (mem_device) {
		ret = misc_register(&pyphys_mem_misc);
		if (ret)
			goto out_deregister_walk;
	}

	return 0;

out_deregister_walk:
	misc_deregister(&pyphys_walk_misc);
out_remove_group:
	sysfs_remove_group(pyphys_kobj, &pyphys_attr_group);
out_put_kobj:
	kobject_put(pyphys_kobj);
out_free_buffer:
	kfree(pyphys_buffer);
	return ret;
}

static void __exit pyphys_exit(void)
{
	if (mem_device)
		misc_deregister(&pyphys_mem_misc);
	misc_deregister(&pyphys_walk_misc);
	sysfs_remove_group(pyphys_kobj, &pyphys_attr_group);
	kobject_put(pyphys_kobj);
	kfree(pyphys_buffer);
}

module_init(pyphys_init);
module_exit(pyphys_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("pyphys developers");
MODULE_DESCRIPTION("Physical addresses of a test buffer and the hostname in sysfs, and an optional /dev/mem without STRICT_DEVMEM");
