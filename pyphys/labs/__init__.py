"""The classroom labs: what each one is, boots and asks for.

A lab is a Markdown text in docs/labs/ plus two commands:

* ``pyphys lab start N`` (on the host) boots lab N's VM with its kernel, devices and module
  parameters and drops the student into a shell (:mod:`pyphys.labs.start`);
* ``pyphys lab check N`` (in that shell) reads the values the student wrote into
  ``/tmp/labN.txt`` and compares each with ground truth computed live
  (:func:`pyphys.labs.grading.check`, with lab N's grader :mod:`pyphys.labs.labN`, which reads the
  truth through :mod:`pyphys.labs.probes`, not through the pyphys code the student used).

A wrong value gets a hint (and a diagnosis of common slips: a PFN where an address was asked, a
virtual address where a physical one was), not the answer.
"""

from __future__ import annotations

import os

from pyphys.errors import UsageError
from pyphys.record import Record

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(REPO, "docs", "labs")
RESULTS = "/tmp/lab{n}.txt"


class Key(Record):
    """One value the student writes into the results file: its name, and what to write."""

    __slots__ = ("name", "what")


class Lab(Record):
    """One lab: its text, the VM it needs, and the values its results file holds. ``kernel`` is
    a name for :func:`pyphys.kernels.resolve`: "lab" (STRICT_DEVMEM off) or "stock" (Debian's, as
    shipped); ``module_params`` are pyphys.ko's insmod parameters at start."""

    __slots__ = ("number", "slug", "title", "kernel", "keys", "module_params")
    _defaults = {"module_params": ()}

    @property
    def doc(self) -> str:
        """Path of the lab's text."""
        return os.path.join(DOCS, f"lab{self.number}-{self.slug}.md")

    @property
    def results_path(self) -> str:
        return RESULTS.format(n=self.number)

    def template(self) -> str:
        """The results file to fill in, one ``key = `` line per value, each with its comment."""
        lines = [
            f"# Lab {self.number}: {self.title} -- fill in every value, then run `pyphys lab check {self.number}`",
            "# numbers: decimal or 0x-hex; text: as is, or in double quotes with escapes like \\r \\x00",
        ]
        for k in self.keys:
            lines.append(f"# {k.what}")
            lines.append(f"{k.name} = ")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict:
        """docs/schema/lab-list.json: the lab, its text (relative to the repository) and results file."""
        return {
            "number": self.number,
            "slug": self.slug,
            "title": self.title,
            "kernel": self.kernel,
            "text": os.path.relpath(self.doc, REPO),
            "results": self.results_path,
            "keys": [k.to_json() for k in self.keys],
            "module_params": dict(self.module_params),
        }


LABS: dict[int, Lab] = {
    lab.number: lab
    for lab in (
        Lab(
            1,
            "pagemap",
            "virtual to physical with pagemap: a buffer, a huge page, fork and copy-on-write",
            "lab",
            (
                Key("pid", "pid of the lab 1 process (it prints it)"),
                Key("child_pid", "pid of its child"),
                Key("buffer_pfn", "page frame number (PFN) backing the buffer"),
                Key("buffer_phys", "physical address of the buffer's first byte"),
                Key("buffer_text", "the text you read at that physical address through /dev/mem"),
                Key("huge_pfn", "PFN backing the first byte of the huge region"),
                Key("huge_pages", "how many 4 KiB frames the huge page that backs it spans"),
                Key("shared_pfn", "PFN of the shared page (the same in parent and child)"),
                Key("shared_exclusive", "is the shared page 'exclusively mapped' (yes/no)"),
                Key("cow_pfn_before", "PFN of the cow page in both processes BEFORE kill -USR1 CHILD"),
                Key("cow_child_pfn_after", "PFN of the cow page in the child AFTER kill -USR1 CHILD"),
                Key("cow_exclusive_after", "is the child's cow page 'exclusively mapped' after the write (yes/no)"),
            ),
        ),
        Lab(
            2,
            "module-buffer",
            "the module's buffer through /dev/mem, both directions",
            "lab",
            (
                Key("buffer_phys", "physical address of pyphys.ko's buffer"),
                Key("word7_value", "32-bit word at buffer_phys + 0x1c, read through /dev/mem"),
                Key("poke_offset", "offset in the buffer where you wrote a word through /dev/mem (multiple of 4)"),
                Key("poke_value", "the 32-bit value you wrote there"),
                Key("message_offset", "offset in the buffer where you wrote your message through sysfs"),
                Key("message", "the message, as you read it back through /dev/mem"),
            ),
        ),
        Lab(
            3,
            "hostname",
            "changing the hostname through /dev/mem",
            "lab",
            (
                Key("nodename_phys", "physical address of the kernel's nodename"),
                Key("nodename_region", "name of the innermost /proc/iomem region that address lies in"),
                Key("old_hostname", "the hostname before you changed it"),
                Key("new_hostname", "the hostname you wrote through /dev/mem"),
            ),
        ),
        Lab(
            4,
            "strict-devmem",
            "STRICT_DEVMEM and PAT: the stock kernel refuses, the module's device gets through",
            "stock",
            (
                Key("kernel_release", "uname -r"),
                Key("strict_devmem", "value of CONFIG_STRICT_DEVMEM in this kernel's config (y or n)"),
                Key("devmem_errno", "errno name when /dev/mem maps the module's buffer (e.g. EINVAL)"),
                Key("pat", "is PAT in use by this kernel (yes/no)"),
                Key("doctor_blocker", "the kernel option `pyphys doctor` names as BLOCKED"),
                Key("module_word0", "first 32-bit word of the buffer, read through /dev/pyphys_mem"),
            ),
        ),
        Lab(
            5,
            "pci",
            "PCI registers without a driver: edu and ivshmem",
            "lab",
            (
                Key("edu_slot", "PCI address of the edu device (DDDD:BB:SS.F)"),
                Key("edu_id", "edu's identification register (BAR0 offset 0x00)"),
                Key("liveness_in", "the value you wrote to edu's liveness register (BAR0 0x04)"),
                Key("liveness_out", "what reading it back returned"),
                Key("factorial_in", "n you wrote to edu's factorial register (BAR0 0x08), 1..12"),
                Key("factorial_out", "what the register held once the device finished"),
                Key("ivshmem_slot", "PCI address of the ivshmem device"),
                Key("ivshmem_bar2_size", "size of ivshmem's BAR2 in bytes"),
                Key("host_message", "the text the host left at BAR2 offset 0"),
                Key("guest_message_offset", "BAR2 offset where you wrote your text"),
                Key("guest_message", 'the text you wrote (use quotes for escapes: "Dunia,vipi?\\r")'),
            ),
        ),
        Lab(
            6,
            "dump",
            "dumping physical memory, O_DIRECT and EFAULT",
            "lab",
            (
                Key("buffer_phys", "physical address of pyphys.ko's buffer"),
                Key("raw_file", "raw dump of exactly the buffer's page"),
                Key("raw_sha256", "SHA-256 of that dump"),
                Key("padded_file", "padded dump of the same page"),
                Key("padded_offset", "file offset of the buffer's first byte in the padded dump"),
                Key("lime_file", "LiME dump of the same page"),
                Key("lime_data_offset", "file offset of the buffer's first byte in the LiME dump"),
                Key("direct_file", "raw dump of the same page written with --direct (O_DIRECT), in $LABDIR"),
                Key("efault_errno", "errno name of the O_DIRECT write straight from the /dev/mem mapping"),
            ),
        ),
        Lab(
            7,
            "dma",
            "let the device copy your memory: bus mastering and edu's DMA engine",
            "lab",
            (
                Key("edu_slot", "PCI address of the edu device (DDDD:BB:SS.F)"),
                Key("buffer_phys", "physical address of pyphys.ko's buffer (the bus address the device uses)"),
                Key("command_before", "COMMAND register (config 0x04, 16 bits) before you turned bus mastering on"),
                Key("command_after", "the COMMAND register after"),
                Key("message_offset", "offset in the module's buffer where you put your message"),
                Key("message", "your message (1 to 256 bytes)"),
                Key("device_offset", "offset in edu's own 4 KiB buffer where the device copied it"),
                Key("changed_text", "the text you then wrote over the message in the module's buffer"),
                Key("copy_offset", "offset in the module's buffer where the device copied the message back"),
                Key("journal_entry", "id of the journal entry holding the RAM bytes that copy overwrote"),
            ),
        ),
        Lab(
            8,
            "swap",
            "swap: a page leaves RAM, pagemap says where it went, and you read it on the disk",
            "lab",
            (
                Key("swap_device", "the block device you made the swap area on (e.g. /dev/vda)"),
                Key("pid", "pid of the lab 8 process (it prints it)"),
                Key("vaddr", "virtual address of its page (it prints it)"),
                Key("pfn_before", "PFN of the page before it was paged out"),
                Key("swap_type", "swap type in the page's pagemap entry once paged out"),
                Key("swap_offset", "swap offset in that entry"),
                Key("swap_text", "the text you read on the swap device at that offset"),
                Key("pfn_after", "PFN of the page after the process read it back"),
            ),
        ),
        Lab(
            9,
            "page-walk",
            "walk the page table yourself: every level by hand, a huge page, the direct map, the memory type",
            "lab",
            (
                Key("pid", "pid of the lab 9 process (it prints it)"),
                Key("top", "physical address of the top-level table the walk starts in"),
                Key("indices", "the buffer address's table indices, top level first, separated by spaces"),
                Key("pte_addr", "physical address of the buffer's PTE (the last entry of the walk)"),
                Key("pte_entry", "the 64-bit value of that PTE, as you read it"),
                Key("buffer_phys", "physical address of the buffer's first byte, from the PTE"),
                Key("pat_index", "the PTE's PAT index (PAT<<2 | PCD<<1 | PWT), 0..7"),
                Key("memory_type", "the memory type IA32_PAT gives that index (WB, UC, UC-, WC, WT, WP)"),
                Key("huge_pmd_entry", "the 64-bit PMD entry that maps the huge region (PS set)"),
                Key("huge_phys", "physical address of the huge region's first byte"),
                Key("direct_base", "where the kernel's direct map starts (the value of page_offset_base)"),
                Key("direct_vaddr", "the module's buffer's virtual address in the direct map"),
                Key("direct_page_size", "size in bytes of the page that maps it there"),
            ),
        ),
    )
}


def get(number: int) -> Lab:
    """Lab ``number``; UsageError when there is no such lab."""
    try:
        return LABS[number]
    except KeyError:
        raise UsageError(f"there is no lab {number}", f"the labs are {', '.join(map(str, LABS))}") from None
