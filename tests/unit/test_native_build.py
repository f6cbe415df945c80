"""What `pip install .` built on this machine (x86_64 or arm64): the cffi extension and the init stub
(csrc/initstub.c) must be ELF files for the machine the runtime runs on, and the stub must be static:
it is executed from a sealed memfd inside the container, where no dynamic loader or libc of the host
exists. The machine is taken from the interpreter itself, so no architecture number is written here.
"""

from __future__ import annotations

import os
import sys

from pyruntime import _native
from pyruntime.process import stub

PT_INTERP = 3  # ELF program header type of the dynamic loader's path (elf.h): part of the format, not of an arch


def _elf(path: str) -> tuple[int, int, list[int]]:
    """(e_ident[EI_CLASS], e_machine, program header types) of a little- or big-endian ELF file."""
    with open(path, "rb") as f:
        head = f.read(64)
        assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
        order = "little" if head[5] == 1 else "big"
        wide = head[4] == 2  # ELFCLASS64
        machine = int.from_bytes(head[18:20], order)
        if wide:
            phoff, phentsize, phnum = (int.from_bytes(head[32:40], order), int.from_bytes(head[54:56], order),
                                       int.from_bytes(head[56:58], order))
        else:
            phoff, phentsize, phnum = (int.from_bytes(head[28:32], order), int.from_bytes(head[42:44], order),
                                       int.from_bytes(head[44:46], order))
        types = []
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            types.append(int.from_bytes(f.read(4), order))
    return head[4], machine, types


def test_init_stub_is_a_static_executable_for_this_machine() -> None:
    interp_class, interp_machine, interp_types = _elf(os.path.realpath(sys.executable))
    assert PT_INTERP in interp_types  # the check below can see a dynamic executable
    stub_class, stub_machine, stub_types = _elf(os.path.realpath(stub.STUB_PATH))
    assert (stub_class, stub_machine) == (interp_class, interp_machine)
    assert PT_INTERP not in stub_types, "the init stub must be linked statically"


def test_native_extension_is_built_for_this_machine() -> None:
    ext_class, ext_machine, _ = _elf(_native.__file__)
    interp_class, interp_machine, _ = _elf(os.path.realpath(sys.executable))
    assert (ext_class, ext_machine) == (interp_class, interp_machine)
