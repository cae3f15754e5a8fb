"""PCI byte layouts: the configuration header, capability IDs, resource flags, text formats.

Sources (constants keep the kernel's names so they can be grepped there):

- include/uapi/linux/pci_regs.h (Linux 6.1): configuration header offsets and bits, which follow
  the PCI Local Bus Specification 3.0 section 6.1 and the PCI-to-PCI Bridge Architecture Spec.
- include/linux/ioport.h: ``IORESOURCE_*`` flags printed in sysfs ``resource`` (third column).
- drivers/pci/pci-sysfs.c ``resource_show()``: one ``0x%016llx 0x%016llx 0x%016llx`` line
  (start, end, flags) per resource: BARs 0-5, the expansion ROM (6), then bridge windows.
- drivers/pci/proc.c ``show_device()``: ``/proc/bus/pci/devices``, one tab-separated line per
  device: ``%02x%02x`` bus+devfn, ``%04x%04x`` vendor+device, ``%x`` irq, seven
  ``start | (flags & PCI_REGION_FLAG_MASK)``, seven sizes, then the bound driver's name.
- Class names: the PCI Code and ID Assignment Specification (rev 1.11), as spelled in pci.ids.
"""

from __future__ import annotations

# --- configuration space sizes -----------------------------------------------------------
PCI_CFG_SPACE_SIZE = 256  # conventional PCI
PCI_CFG_SPACE_EXP_SIZE = 4096  # PCI Express extended space
PCI_STD_HEADER_SIZEOF = 64  # what sysfs `config` returns to a reader without CAP_SYS_ADMIN
PCI_STD_NUM_BARS = 6
PCI_ROM_RESOURCE = 6  # resource index of the expansion ROM in sysfs/procfs listings

# --- header, common part ------------------------------------------------------------------
PCI_VENDOR_ID = 0x00  # 16 bits
PCI_DEVICE_ID = 0x02  # 16 bits
PCI_COMMAND = 0x04  # 16 bits
PCI_STATUS = 0x06  # 16 bits
PCI_REVISION_ID = 0x08  # 8 bits
PCI_CLASS_PROG = 0x09  # 8 bits: programming interface
PCI_CLASS_DEVICE = 0x0A  # 16 bits: base class << 8 | subclass
PCI_CACHE_LINE_SIZE = 0x0C
PCI_LATENCY_TIMER = 0x0D
PCI_HEADER_TYPE = 0x0E
PCI_HEADER_TYPE_MASK = 0x7F
PCI_HEADER_TYPE_MULTIFUNCTION = 0x80
PCI_HEADER_TYPE_NORMAL = 0
PCI_HEADER_TYPE_BRIDGE = 1
PCI_HEADER_TYPE_CARDBUS = 2
PCI_BIST = 0x0F
PCI_BASE_ADDRESS_0 = 0x10  # BARn at 0x10 + 4*n
PCI_CAPABILITY_LIST = 0x34  # type 0 and 1 headers
PCI_CB_CAPABILITY_LIST = 0x14  # type 2 (CardBus) header
PCI_INTERRUPT_LINE = 0x3C
PCI_INTERRUPT_PIN = 0x3D

# type 0 (normal device) header
PCI_CARDBUS_CIS = 0x28
PCI_SUBSYSTEM_VENDOR_ID = 0x2C
PCI_SUBSYSTEM_ID = 0x2E
PCI_ROM_ADDRESS = 0x30
PCI_MIN_GNT = 0x3E
PCI_MAX_LAT = 0x3F

# type 1 (PCI-to-PCI bridge) header
PCI_PRIMARY_BUS = 0x18
PCI_SECONDARY_BUS = 0x19
PCI_SUBORDINATE_BUS = 0x1A
PCI_ROM_ADDRESS1 = 0x38
PCI_BRIDGE_CONTROL = 0x3E

# type 2 (CardBus bridge) header
PCI_CB_SUBSYSTEM_VENDOR_ID = 0x40
PCI_CB_SUBSYSTEM_ID = 0x42

# number of BAR registers each header type has
BARS_PER_HEADER_TYPE = {PCI_HEADER_TYPE_NORMAL: 6, PCI_HEADER_TYPE_BRIDGE: 2, PCI_HEADER_TYPE_CARDBUS: 1}
HEADER_TYPE_NAMES = {
    PCI_HEADER_TYPE_NORMAL: "normal",
    PCI_HEADER_TYPE_BRIDGE: "PCI bridge",
    PCI_HEADER_TYPE_CARDBUS: "CardBus bridge",
}

# --- BAR register bits (pci_regs.h) ---------------------------------------------------------
PCI_BASE_ADDRESS_SPACE_IO = 0x01
PCI_BASE_ADDRESS_MEM_TYPE_MASK = 0x06
PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x00
PCI_BASE_ADDRESS_MEM_TYPE_1M = 0x02  # below 1M, obsolete
PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04
PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08
PCI_BASE_ADDRESS_MEM_MASK = ~0x0F
PCI_BASE_ADDRESS_IO_MASK = ~0x03
PCI_ROM_ADDRESS_ENABLE = 0x01
PCI_ROM_ADDRESS_MASK = ~0x7FF
# drivers/pci/proc.c: the BAR's low bits that /proc/bus/pci/devices ORs into each start
PCI_REGION_FLAG_MASK = 0x0F

# --- command and status registers -------------------------------------------------------------
COMMAND_BITS = (
    (0x001, "I/O"),  # PCI_COMMAND_IO: respond in I/O space
    (0x002, "Mem"),  # PCI_COMMAND_MEMORY: respond in memory space (BARs reachable)
    (0x004, "BusMaster"),
    (0x008, "SpecCycle"),
    (0x010, "MemWINV"),
    (0x020, "VGASnoop"),
    (0x040, "ParErr"),
    (0x080, "Stepping"),
    (0x100, "SERR"),
    (0x200, "FastB2B"),
    (0x400, "DisINTx"),
)
PCI_COMMAND_IO = 0x001
PCI_COMMAND_MEMORY = 0x002

PCI_STATUS_CAP_LIST = 0x10
STATUS_BITS = (
    (0x0001, "ImmReady"),
    (0x0008, "INTx"),
    (0x0010, "Cap"),
    (0x0020, "66MHz"),
    (0x0040, "UDF"),
    (0x0080, "FastB2B"),
    (0x0100, "ParErr"),
    (0x0800, ">TAbort"),
    (0x1000, "<TAbort"),
    (0x2000, "<MAbort"),
    (0x4000, ">SERR"),
    (0x8000, "DetParErr"),
)
PCI_STATUS_DEVSEL_MASK = 0x600
DEVSEL_NAMES = {0x000: "fast", 0x200: "medium", 0x400: "slow", 0x600: "reserved"}

# --- capability lists ------------------------------------------------------------------------------
PCI_CAP_LIST_ID = 0
PCI_CAP_LIST_NEXT = 1
PCI_CAP_FIRST_OFFSET = 0x40  # capabilities live after the 64-byte header
PCI_CAP_ID_NAMES = {
    0x01: "Power Management",
    0x02: "AGP",
    0x03: "Vital Product Data",
    0x04: "Slot Identification",
    0x05: "MSI",
    0x06: "CompactPCI HotSwap",
    0x07: "PCI-X",
    0x08: "HyperTransport",
    0x09: "Vendor Specific",
    0x0A: "Debug port",
    0x0B: "CompactPCI Central Resource Control",
    0x0C: "PCI Standard Hot-Plug Controller",
    0x0D: "Bridge subsystem vendor/device ID",
    0x0E: "AGP Target PCI-PCI bridge",
    0x0F: "Secure Device",
    0x10: "PCI Express",
    0x11: "MSI-X",
    0x12: "SATA Data/Index",
    0x13: "PCI Advanced Features",
    0x14: "Enhanced Allocation",
}
# extended capabilities: a 32-bit header at 0x100, ID in bits 0-15, version 16-19, next 20-31
PCI_EXT_CAP_FIRST_OFFSET = 0x100
PCI_EXT_CAP_NEXT_SHIFT = 20
PCI_EXT_CAP_NEXT_MASK = 0xFFC
PCI_EXT_CAP_VER_SHIFT = 16
PCI_EXT_CAP_VER_MASK = 0xF
PCI_EXT_CAP_ID_NAMES = {
    0x01: "Advanced Error Reporting",
    0x02: "Virtual Channel",
    0x03: "Device Serial Number",
    0x04: "Power Budgeting",
    0x05: "Root Complex Link Declaration",
    0x06: "Root Complex Internal Link Control",
    0x07: "Root Complex Event Collector",
    0x08: "Multi-Function VC",
    0x09: "Virtual Channel (MFVC)",
    0x0A: "Root Complex Register Block",
    0x0B: "Vendor Specific",
    0x0C: "Config Access Correlation",
    0x0D: "Access Control Services",
    0x0E: "Alternative Routing-ID",
    0x0F: "Address Translation Services",
    0x10: "SR-IOV",
    0x11: "MR-IOV",
    0x12: "Multicast",
    0x13: "Page Request Interface",
    0x15: "Resizable BAR",
    0x16: "Dynamic Power Allocation",
    0x17: "TPH Requester",
    0x18: "Latency Tolerance Reporting",
    0x19: "Secondary PCI Express",
    0x1A: "Protocol Multiplexing",
    0x1B: "Process Address Space ID",
    0x1D: "Downstream Port Containment",
    0x1E: "L1 PM Substates",
    0x1F: "Precision Time Measurement",
    0x23: "Designated Vendor-Specific",
    0x25: "Data Link Feature",
    0x26: "Physical Layer 16.0 GT/s",
    0x2E: "Data Object Exchange",
}
# A malformed or hostile list can loop; the kernel bounds its walk the same way
# (drivers/pci/pci.c: PCI_FIND_CAP_TTL = 48, and (4096 - 256) / 8 for extended ones).
PCI_FIND_CAP_TTL = 48
PCI_FIND_EXT_CAP_TTL = (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) // 8

# --- kernel resource flags (include/linux/ioport.h), sysfs `resource` third column ---------------
IORESOURCE_IO = 0x00000100
IORESOURCE_MEM = 0x00000200
IORESOURCE_PREFETCH = 0x00002000
IORESOURCE_READONLY = 0x00004000
IORESOURCE_MEM_64 = 0x00100000
IORESOURCE_WINDOW = 0x00200000
IORESOURCE_DISABLED = 0x10000000
IORESOURCE_UNSET = 0x20000000
IORESOURCE_BUSY = 0x80000000

# sysfs `resource` line: "0x%016llx 0x%016llx 0x%016llx\n" (start, end, flags)
SYSFS_RESOURCE_FIELDS = 3
# /proc/bus/pci/devices: fields before the 7 starts, then 7 sizes, then the driver name
PROC_DEVICES_RESOURCES = 7

# --- class codes: base class and (base, subclass) names, from the Code and ID Assignment spec ---
BASE_CLASS_NAMES = {
    0x00: "Unclassified device",
    0x01: "Mass storage controller",
    0x02: "Network controller",
    0x03: "Display controller",
    0x04: "Multimedia controller",
    0x05: "Memory controller",
    0x06: "Bridge",
    0x07: "Communication controller",
    0x08: "Generic system peripheral",
    0x09: "Input device controller",
    0x0A: "Docking station",
    0x0B: "Processor",
    0x0C: "Serial bus controller",
    0x0D: "Wireless controller",
    0x0E: "Intelligent controller",
    0x0F: "Satellite communications controller",
    0x10: "Encryption controller",
    0x11: "Signal processing controller",
    0x12: "Processing accelerators",
    0x13: "Non-Essential Instrumentation",
    0x40: "Coprocessor",
    0xFF: "Unassigned class",
}
SUBCLASS_NAMES = {
    (0x00, 0x00): "Non-VGA unclassified device",
    (0x00, 0x01): "VGA compatible unclassified device",
    (0x01, 0x00): "SCSI storage controller",
    (0x01, 0x01): "IDE interface",
    (0x01, 0x05): "ATA controller",
    (0x01, 0x06): "SATA controller",
    (0x01, 0x07): "Serial Attached SCSI controller",
    (0x01, 0x08): "Non-Volatile memory controller",
    (0x01, 0x80): "Mass storage controller",
    (0x02, 0x00): "Ethernet controller",
    (0x02, 0x80): "Network controller",
    (0x03, 0x00): "VGA compatible controller",
    (0x03, 0x02): "3D controller",
    (0x03, 0x80): "Display controller",
    (0x04, 0x01): "Multimedia audio controller",
    (0x04, 0x03): "Audio device",
    (0x05, 0x00): "RAM memory",
    (0x05, 0x01): "FLASH memory",
    (0x05, 0x80): "Memory controller",
    (0x06, 0x00): "Host bridge",
    (0x06, 0x01): "ISA bridge",
    (0x06, 0x04): "PCI bridge",
    (0x06, 0x80): "Bridge",
    (0x07, 0x00): "Serial controller",
    (0x07, 0x80): "Communication controller",
    (0x08, 0x80): "System peripheral",
    (0x0C, 0x03): "USB controller",
    (0x0C, 0x05): "SMBus",
    (0x00, 0xFF): "Unclassified device",
    (0xFF, 0x00): "Unassigned class",
    (0xFF, 0xFF): "Unassigned class",
}
