"""Starting the container's processes: the parent side (spawn), the init, exec's children (setns_init),
the sync channel, and the init stub's sealed memfd (stub)."""
