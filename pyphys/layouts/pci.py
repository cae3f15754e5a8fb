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

from pyphys.layouts import Layout

# --- configuration space sizes -----------------------------------------------------------
PCI_CFG_SPACE_SIZE = 256  # conventional PCI
PCI_CFG_SPACE_EXP_SIZE = 4096  # PCI Express extended space
PCI_STD_HEADER_SIZEOF = 64  # what sysfs `config` returns to a reader without CAP_SYS_ADMIN
PCI_STD_NUM_BARS = 6
PCI_ROM_RESOURCE = 6  # resource index of the expansion ROM in sysfs/procfs listings

# --- the configuration header, declared once (pci_regs.h; PCI 3.0 6.1, PCI-to-PCI Bridge 1.2 3.2) ---
# The first 16 bytes are common to every header type; the rest depends on the type.
_COMMON = (
    ("vendor", "H"),
    ("device", "H"),
    ("command", "H"),
    ("status", "H"),
    ("revision", "B"),
    ("prog_if", "B"),  # PCI_CLASS_PROG: class code bits 0-7
    ("subclass", "B"),  # class code bits 8-15
    ("base_class", "B"),  # class code bits 16-23
    ("cache_line_size", "B"),
    ("latency_timer", "B"),
    ("header_type", "B"),
    ("bist", "B"),
)
#: type 0: a normal device
HEADER_NORMAL = Layout(
    "type 0 header",
    _COMMON
    + tuple((f"bar{i}", "I") for i in range(6))
    + (
        ("cardbus_cis", "I"),
        ("subsystem_vendor", "H"),
        ("subsystem_device", "H"),
        ("rom_address", "I"),
        ("capabilities_pointer", "B"),
        (None, "7x"),
        ("interrupt_line", "B"),
        ("interrupt_pin", "B"),
        ("min_gnt", "B"),
        ("max_lat", "B"),
    ),
)
#: type 1: a PCI-to-PCI bridge (root ports and switch ports too)
HEADER_BRIDGE = Layout(
    "type 1 header",
    _COMMON
    + (
        ("bar0", "I"),
        ("bar1", "I"),
        ("primary_bus", "B"),
        ("secondary_bus", "B"),
        ("subordinate_bus", "B"),
        ("secondary_latency_timer", "B"),
        ("io_base", "B"),
        ("io_limit", "B"),
        ("secondary_status", "H"),
        ("memory_base", "H"),
        ("memory_limit", "H"),
        ("prefetchable_base", "H"),
        ("prefetchable_limit", "H"),
        ("prefetchable_base_upper", "I"),
        ("prefetchable_limit_upper", "I"),
        ("io_base_upper", "H"),
        ("io_limit_upper", "H"),
        ("capabilities_pointer", "B"),
        (None, "3x"),
        ("rom_address", "I"),
        ("interrupt_line", "B"),
        ("interrupt_pin", "B"),
        ("bridge_control", "H"),
    ),
)
#: type 2: a CardBus bridge (only the fields pyphys reads; its subsystem IDs sit past 0x40)
HEADER_CARDBUS = Layout(
    "type 2 header",
    _COMMON
    + (
        ("socket_base", "I"),
        ("capabilities_pointer", "B"),
        (None, "1x"),
        ("secondary_status", "H"),
        ("pci_bus", "B"),
        ("cardbus_bus", "B"),
        ("subordinate_bus", "B"),
        ("latency_timer_cb", "B"),
        (None, "32x"),
        ("interrupt_line", "B"),
        ("interrupt_pin", "B"),
        ("bridge_control", "H"),
        ("subsystem_vendor", "H"),
        ("subsystem_device", "H"),
    ),
)
HEADER_COMMON = Layout("common header", _COMMON)

# the kernel's names for the registers, derived from the layouts above (grep pci_regs.h for them)
PCI_VENDOR_ID = HEADER_NORMAL.offset("vendor")
PCI_DEVICE_ID = HEADER_NORMAL.offset("device")
PCI_COMMAND = HEADER_NORMAL.offset("command")
PCI_STATUS = HEADER_NORMAL.offset("status")
PCI_REVISION_ID = HEADER_NORMAL.offset("revision")
PCI_CLASS_PROG = HEADER_NORMAL.offset("prog_if")
PCI_CLASS_DEVICE = HEADER_NORMAL.offset("subclass")  # 16 bits: base class << 8 | subclass
PCI_CACHE_LINE_SIZE = HEADER_NORMAL.offset("cache_line_size")
PCI_LATENCY_TIMER = HEADER_NORMAL.offset("latency_timer")
PCI_HEADER_TYPE = HEADER_NORMAL.offset("header_type")
PCI_HEADER_TYPE_MASK = 0x7F
PCI_HEADER_TYPE_MULTIFUNCTION = 0x80
PCI_HEADER_TYPE_NORMAL = 0
PCI_HEADER_TYPE_BRIDGE = 1
PCI_HEADER_TYPE_CARDBUS = 2
PCI_BIST = HEADER_NORMAL.offset("bist")
PCI_BASE_ADDRESS_0 = HEADER_NORMAL.offset("bar0")  # BARn at 0x10 + 4*n
PCI_CAPABILITY_LIST = HEADER_NORMAL.offset("capabilities_pointer")  # type 0 and 1 headers
PCI_CB_CAPABILITY_LIST = HEADER_CARDBUS.offset("capabilities_pointer")
PCI_INTERRUPT_LINE = HEADER_NORMAL.offset("interrupt_line")
PCI_INTERRUPT_PIN = HEADER_NORMAL.offset("interrupt_pin")
PCI_CARDBUS_CIS = HEADER_NORMAL.offset("cardbus_cis")
PCI_SUBSYSTEM_VENDOR_ID = HEADER_NORMAL.offset("subsystem_vendor")
PCI_SUBSYSTEM_ID = HEADER_NORMAL.offset("subsystem_device")
PCI_ROM_ADDRESS = HEADER_NORMAL.offset("rom_address")
PCI_MIN_GNT = HEADER_NORMAL.offset("min_gnt")
PCI_MAX_LAT = HEADER_NORMAL.offset("max_lat")
PCI_PRIMARY_BUS = HEADER_BRIDGE.offset("primary_bus")
PCI_SECONDARY_BUS = HEADER_BRIDGE.offset("secondary_bus")
PCI_SUBORDINATE_BUS = HEADER_BRIDGE.offset("subordinate_bus")
PCI_ROM_ADDRESS1 = HEADER_BRIDGE.offset("rom_address")
PCI_BRIDGE_CONTROL = HEADER_BRIDGE.offset("bridge_control")
PCI_CB_SUBSYSTEM_VENDOR_ID = HEADER_CARDBUS.offset("subsystem_vendor")
PCI_CB_SUBSYSTEM_ID = HEADER_CARDBUS.offset("subsystem_device")
HEADER_LAYOUTS = {
    PCI_HEADER_TYPE_NORMAL: HEADER_NORMAL,
    PCI_HEADER_TYPE_BRIDGE: HEADER_BRIDGE,
    PCI_HEADER_TYPE_CARDBUS: HEADER_CARDBUS,
}

# The decoded header (pyphys.pci_config.ConfigHeader), declared once, in its JSON order:
# (attribute, JSON key, JSON form, the layout field it is read from, its value when the device's
# layout has no such field). JSON forms (docs/json.md): None, the value as it is (integers are
# quantities; lists and records by their own JSON form); "id", a 16-bit ID as 0x and 4 digits;
# "id8", an 8-bit ID (the revision) as 0x and 2 digits; "class", the 24-bit class code as 0x
# and 6 digits; "value8"/"value32", a register value as 0x and 2/8 digits (null when absent);
# "command"/"status", the register as {"value", "flags"} (flags: pci_regs.h's names of the bits
# set, lower-case); "registers", every field of the layout as a value of its own width. A field
# without a layout field is computed by the decoder (pci_config.decode_config).
CONFIG_HEADER: tuple[tuple[str, str, str | None, str | None, object], ...] = (
    ("length", "length", None, None, None),
    ("vendor", "vendor_id", "id", "vendor", None),
    ("device", "device_id", "id", "device", None),
    ("command", "command", "command", "command", None),
    ("status", "status", "status", "status", None),
    ("revision", "revision", "id8", "revision", None),
    ("class_code", "class", "class", None, None),  # base_class, subclass, prog_if
    ("header_type", "header_type", None, None, None),  # the layout's header_type without bit 7
    ("multifunction", "multifunction", None, None, None),  # header_type bit 7
    ("cache_line_size", "cache_line_size", None, "cache_line_size", None),
    ("latency_timer", "latency_timer", None, "latency_timer", None),
    ("bist", "bist", "value8", "bist", None),
    ("bars", "bars", None, None, None),
    ("subsystem_vendor", "subsystem_vendor_id", "id", "subsystem_vendor", None),
    ("subsystem_device", "subsystem_device_id", "id", "subsystem_device", None),
    ("rom_address", "rom_address", "value32", None, None),  # the layout's rom_address, None when 0
    ("interrupt_line", "interrupt_line", None, "interrupt_line", 0),
    ("interrupt_pin", "interrupt_pin", None, "interrupt_pin", 0),
    ("capabilities", "capabilities", None, None, None),
    ("bridge_buses", "bridge_buses", None, None, None),  # primary, secondary, subordinate
    ("registers", "registers", "registers", None, None),  # every field of the device's layout
    ("notes", "notes", None, None, None),
)

assert HEADER_NORMAL.size == HEADER_BRIDGE.size == PCI_STD_HEADER_SIZEOF
assert (PCI_SUBSYSTEM_ID, PCI_CAPABILITY_LIST, PCI_ROM_ADDRESS1, PCI_CB_SUBSYSTEM_ID) == (0x2E, 0x34, 0x38, 0x42)

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
COMMAND_BITS = (  # (bit, lspci's name, pci_regs.h's name without PCI_COMMAND_, lower-case: for JSON)
    (0x001, "I/O", "io"),  # PCI_COMMAND_IO: respond in I/O space
    (0x002, "Mem", "memory"),  # PCI_COMMAND_MEMORY: respond in memory space (BARs reachable)
    (0x004, "BusMaster", "master"),
    (0x008, "SpecCycle", "special"),
    (0x010, "MemWINV", "invalidate"),
    (0x020, "VGASnoop", "vga_palette"),
    (0x040, "ParErr", "parity"),
    (0x080, "Stepping", "wait"),
    (0x100, "SERR", "serr"),
    (0x200, "FastB2B", "fast_back"),
    (0x400, "DisINTx", "intx_disable"),
)
PCI_COMMAND_IO = 0x001
PCI_COMMAND_MEMORY = 0x002

PCI_STATUS_CAP_LIST = 0x10
STATUS_BITS = (  # (bit, lspci's name, pci_regs.h's name without PCI_STATUS_, lower-case: for JSON)
    (0x0001, "ImmReady", "imm_ready"),
    (0x0008, "INTx", "interrupt"),
    (0x0010, "Cap", "cap_list"),
    (0x0020, "66MHz", "66mhz"),
    (0x0040, "UDF", "udf"),
    (0x0080, "FastB2B", "fast_back"),
    (0x0100, "ParErr", "parity"),
    (0x0800, ">TAbort", "sig_target_abort"),
    (0x1000, "<TAbort", "rec_target_abort"),
    (0x2000, "<MAbort", "rec_master_abort"),
    (0x4000, ">SERR", "sig_system_error"),
    (0x8000, "DetParErr", "detected_parity"),
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
# capability structures (pci_regs.h), each starting with the ID and next-pointer bytes
CAP_HEADER = Layout("capability header", (("id", "B"), ("next", "B"), ("flags", "H")))
CAP_PM = Layout(
    "Power Management",
    (("id", "B"), ("next", "B"), ("pmc", "H"), ("ctrl", "H"), ("ppb_extensions", "B"), ("data", "B")),
)
CAP_MSI32 = Layout(
    "MSI (32-bit)",
    (("id", "B"), ("next", "B"), ("flags", "H"), ("address_lo", "I"), ("data", "H"), (None, "2x"))
    + (("mask", "I"), ("pending", "I")),
)
CAP_MSI64 = Layout(
    "MSI (64-bit)",
    (("id", "B"), ("next", "B"), ("flags", "H"), ("address_lo", "I"), ("address_hi", "I"), ("data", "H"))
    + ((None, "2x"), ("mask", "I"), ("pending", "I")),
)
CAP_MSIX = Layout("MSI-X", (("id", "B"), ("next", "B"), ("flags", "H"), ("table", "I"), ("pba", "I")))
CAP_VNDR = Layout("Vendor Specific", (("id", "B"), ("next", "B"), ("length", "B")))
CAP_EXP = Layout(
    "PCI Express",
    (
        ("id", "B"),
        ("next", "B"),
        ("flags", "H"),
        ("devcap", "I"),
        ("devctl", "H"),
        ("devsta", "H"),
        ("lnkcap", "I"),
        ("lnkctl", "H"),
        ("lnksta", "H"),
        ("sltcap", "I"),
        ("sltctl", "H"),
        ("sltsta", "H"),
        ("rtctl", "H"),
        ("rtcap", "H"),
        ("rtsta", "I"),
        ("devcap2", "I"),
        ("devctl2", "H"),
        ("devsta2", "H"),
        ("lnkcap2", "I"),
        ("lnkctl2", "H"),
        ("lnksta2", "H"),
        ("sltcap2", "I"),
        ("sltctl2", "H"),
        ("sltsta2", "H"),
    ),
)
PCI_CAP_ID_PM = 0x01
PCI_CAP_ID_MSI = 0x05
PCI_CAP_ID_VNDR = 0x09
PCI_CAP_ID_SSVID = 0x0D
PCI_CAP_ID_SATA = 0x12
PCI_CAP_ID_EXP = 0x10
PCI_CAP_ID_MSIX = 0x11
PCI_MSI_FLAGS_64BIT = 0x0080
PCI_MSI_FLAGS_MASK_BIT = 0x0100
PCI_MSIX_TABSIZE = 0x07FF
PCI_MSIX_BIR = 0x7
# PCI_EXP_FLAGS_TYPE (bits 4-7) -> lspci's words (ls-caps.c cap_express); slot bit 8, IRQ bits 9-13
PCI_EXP_FLAGS_SLOT = 0x0100
PCI_EXP_TYPE_ROOT_PORT = 0x4
PCI_EXP_TYPE_NAMES = {
    0x0: "Endpoint",
    0x1: "Legacy Endpoint",
    0x4: "Root Port",
    0x5: "Upstream Port",
    0x6: "Downstream Port",
    0x7: "PCI-Express to PCI/PCI-X Bridge",
    0x8: "PCI/PCI-X to PCI-Express Bridge",
    0x9: "Root Complex Integrated Endpoint",
    0xA: "Root Complex Event Collector",
}
PCI_EXP_TYPES_WITH_SLOT = (0x4, 0x6, 0x8)
PCI_EXP_TYPES_WITHOUT_LINK = (0x9, 0xA)
# Link Capabilities/Status speed codes (PCIe 6.0 7.5.3.6, Supported Link Speeds Vector order)
LINK_SPEEDS = {1: "2.5GT/s", 2: "5GT/s", 3: "8GT/s", 4: "16GT/s", 5: "32GT/s", 6: "64GT/s"}

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
# extended capability names as lspci prints them (pciutils ls-ecaps.c), where they differ
LSPCI_EXT_CAP_NAMES = {
    0x0E: "Alternative Routing-ID Interpretation (ARI)",
    0x0F: "Address Translation Service (ATS)",
    0x10: "Single Root I/O Virtualization (SR-IOV)",
    0x13: "Page Request Interface (PRI)",
    0x15: "Physical Resizable BAR",
    0x1B: "Process Address Space ID (PASID)",
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
