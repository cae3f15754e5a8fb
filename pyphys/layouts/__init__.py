"""Byte layouts, declared apart from the logic that uses them (after pyelftools' structs).

One module per format, each citing the kernel or tool document it comes from:
``pagemap`` (Documentation/admin-guide/mm/pagemap.rst), ``lime`` (LiME's header),
``pci`` (the PCI configuration header).
"""
