"""pyphys: physical-memory experiments from user space.

Modules, one per source of truth: ``pagemap`` (/proc/<pid>/pagemap, kpageflags),
``iomem`` (/proc/iomem), ``physmem`` (the one place that opens /dev/mem or the module's
device), ``pci`` (sysfs PCI), ``kmod`` (the pyphys.ko sysfs files), ``journal`` (undo for
every write), ``labvm`` (the QEMU lab). Imports are kept lazy so the CLI starts fast.
"""

__version__ = "0.1.0"
