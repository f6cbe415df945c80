"""Starting the container's processes: the parent side (spawn), the init sequence, the exec stub."""
