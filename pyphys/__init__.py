"""pyphys: physical-memory experiments from user space.

Modules, one per source of truth: ``pagemap`` (/proc/<pid>/pagemap, kpageflags),
``iomem`` (/proc/iomem), ``physmem`` (the one place that opens /dev/mem or the module's
device), ``pci_devices`` (sysfs/procfs PCI listings), ``pci_select`` (which device: addresses,
lspci's -s/-d), ``pci_config`` and ``pci_caps`` (config space and capabilities decoded),
``pci_ids`` (pci.ids names), ``pci_access`` (BAR and config-space access), ``pci_write``
(journaled PCI writes, BAR sizing), ``kmod`` (the pyphys.ko sysfs files), ``journal`` (undo
for every write), ``labvm`` (the QEMU lab). Imports are kept lazy so the CLI starts fast.
"""

__version__ = "0.1.0"

# typing.TYPE_CHECKING without importing typing: every module imported costs file-system
# lookups over 9p in the TCG lab guest, where a one-shot command's start-up is most of its time.
# Modules write `from pyphys import TYPE_CHECKING` and import typing-only names under it.
TYPE_CHECKING = False
