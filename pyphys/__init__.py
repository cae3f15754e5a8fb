"""pyphys: physical-memory experiments from user space. A map of the package, one line per module
(one module per source of truth; imports are kept lazy so the CLI starts fast):

- ``cli``: the command line: parse, dispatch to commands/, map errors to one line and an exit code.
- ``dialect``: the one argument and output dialect: numbers, sizes, ranges, widths, bytes, hexdump.
- ``errors``: the error tree, and OSError turned into messages that say why and what to try.
- ``paths``: injectable /proc, /sys and /dev roots, and the one cache-directory rule.
- ``record``: records, pyphys's one way to define a result, each with its own JSON form.
- ``procmaps``: processes and their mappings: /proc/PID/maps and stat, picking a process.
- ``pagemap``: virtual to physical: /proc/PID/pagemap with kpageflags and kpagecount.
- ``pagemap.decode``: one pagemap entry decoded, and the kpageflags flag table per kernel.
- ``pagemap.translation``: one virtual address: everything pagemap and kpageflags say about it.
- ``pagemap.scanner``: ranges and whole processes page by page or run by run, streaming.
- ``pagemap.sparse``: the populated parts of an address space (PAGEMAP_SCAN, else skipping holes).
- ``pagemap.summary``: page counts by flag set, what page-types -p PID prints.
- ``pagemap._pfnruns``: dense summaries counted by runs of consecutive frames.
- ``iomem``: /proc/iomem as a tree of regions, and which region an address lies in.
- ``physmem``: the one place that opens and maps /dev/mem or the module's /dev/pyphys_mem.
- ``physmem_explain``: why the kernel refused an access to physical memory, and what to try.
- ``physmem_window``: shared mappings of physical memory with exact-width accesses.
- ``devmem``: devmem's library: named addresses, the write policy, journaled batches.
- ``journal``: the write journal: every byte pyphys writes can be undone.
- ``journal_format``: the journal's line format: entries and markers parsed and checked.
- ``journal_undo``: undo: restore journaled writes, newest first, all or nothing.
- ``hostname``: change the kernel's nodename by patching init_uts_ns through physical memory.
- ``ksym``: a kernel symbol's virtual and physical address from independent sources.
- ``kmod``: the pyphys.ko sysfs interface, /sys/kernel/pyphys.
- ``kmod_install``: pyphys.ko on the user's own machine: build, install (DKMS), load, remove.
- ``walk``: an x86-64 page-table walk of one address, level by level, checked.
- ``walk_all``: every present page of a process walked in one pass, checked against pagemap.
- ``doctor``: what allows or blocks physical-memory access here, each finding with its fix.
- ``dump``: physical memory to a file or a stream: raw, padded, LiME, AVML or ELF core.
- ``dump_io``: a dump's moving parts: read-ahead, hashing threads, output files, progress.
- ``dump_job``: one dump run, from the checked ranges to the installed file and sidecar.
- ``dump_meta``: what a dump carries besides memory: kernel, KASLR, iomem map, hashes.
- ``dump_resume``: checkpoints of an unfinished dump, and --resume.
- ``pci_devices``: PCI devices as the kernel lists them (sysfs, /proc/bus/pci).
- ``pci_select``: which PCI device: an address, IDs, lspci's -s and -d.
- ``pci_ids``: vendor, device and class names from pci.ids.
- ``pci_config``: configuration space decoded from the header layout.
- ``pci_caps``: capabilities decoded the way lspci -vv prints them.
- ``pci_regs``: setpci's register syntax: REG.w, register names, CAP_xxx+OFF.
- ``pci_access``: BAR and configuration-space access without a driver.
- ``pci_write``: journaled PCI writes and their undo, BAR sizing.
- ``pci_show``: one device the way lspci -nn -v/-vv prints it, as data.
- ``edu``: QEMU's edu teaching device driven from user space: its DMA engine.
- ``kernels``: the guest kernels (lab, stock, stock-6.12), resolved explicitly, with page-types.
- ``labvm``: the lab VM: boot a kernel under QEMU and run commands in it.
- ``labqemu``: the lab VM's command lines: vng argv, QEMU devices, kernel words.
- ``labagent``: the guest half of the lab VM's command channel.
- ``labplot``: pictures for the labs: which frames back which mappings.
- ``layouts``: byte layouts, declared apart from the logic that uses them.
- ``layouts.avml``: AVML's compressed LiME: header, snappy frames, length.
- ``layouts.elf``: the ELF core of physical memory, shaped like /proc/vmcore.
- ``layouts.lime``: the LiME v1 range header.
- ``layouts.pagemap``: bit layouts of pagemap, kpageflags and kpagecount.
- ``layouts.pagetable``: x86-64 page-table entries, PAT memory types, the walk ioctl.
- ``layouts.pci``: PCI config header, capability IDs, resource flags.
- ``commands``: one module per subcommand, each with register(subparsers, name, help).
- ``commands._common``: results on stdout, notes and warnings on stderr, JSON output.
- ``commands.devmem``: pyphys devmem, busybox devmem compatible, journaled and verified.
- ``commands.doctor``: pyphys doctor.
- ``commands.dump``: pyphys dump.
- ``commands.hostname``: pyphys hostname NAME.
- ``commands.iomem``: pyphys iomem.
- ``commands.ksym``: pyphys ksym SYMBOL.
- ``commands.lab``: pyphys lab: shell, run, and the classroom labs (list, start, check).
- ``commands.module``: pyphys module build|install|uninstall|status.
- ``commands.pagemap``: pyphys pagemap.
- ``commands.pci``: pyphys pci: list, show, bar-size, and the actions below.
- ``commands.pci_args``: device selection and BAR arguments shared by the pci actions.
- ``commands.pci_dma``: pyphys pci dma (edu's DMA engine).
- ``commands.pci_rw``: pyphys pci read, write and config.
- ``commands.undo``: pyphys undo and pyphys journal.
- ``commands.walk``: pyphys walk.
- ``labs``: the classroom labs' catalogue.
- ``labs.grading``: the results file, the grader API, the report.
- ``labs.probes``: ground truth for the graders, read from the kernel's interfaces.
- ``labs.start``: pyphys lab start N: boot the lab's VM and open its shell.
- ``labs.lab1``: grader: a process's pages, huge page, shared and copy-on-write pages.
- ``labs.lab2``: grader: the module's buffer.
- ``labs.lab3``: grader: the hostname changed through /dev/mem.
- ``labs.lab4``: grader: STRICT_DEVMEM and PAT on the stock kernel.
- ``labs.lab5``: grader: edu's and ivshmem's registers without a driver.
- ``labs.lab6``: grader: dumps of the module's buffer page.
- ``labs.lab7``: grader: edu's DMA engine.
- ``labs.lab8``: grader: one page sent to swap and brought back.
- ``labs.lab9``: grader: a page-table walk by hand.
"""

__version__ = "0.1.0"

# typing.TYPE_CHECKING without importing typing: every module imported costs file-system
# lookups over 9p in the TCG lab guest, where a one-shot command's start-up is most of its time.
# Modules write `from pyphys import TYPE_CHECKING` and import typing-only names under it.
TYPE_CHECKING = False
