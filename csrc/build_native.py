"""cffi builder for pyruntime._native (used by setup.py through cffi_modules).

Every csrc/*.h (but initstub) holds cffi declarations and every csrc/*.c (but initstub.c) one area's
syscall wrappers, so an area (seccomp, console, mount API...) adds a pair of files and nothing else.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).parent
SOURCES = sorted(p for p in HERE.glob("*.c") if p.name != "initstub.c")
HEADERS = sorted(p for p in HERE.glob("*.h") if p.name != "initstub.h")

ffibuilder = FFI()
ffibuilder.cdef("\n".join(p.read_text() for p in HEADERS))
ffibuilder.set_source(
    "pyruntime._native",
    # One translation unit: _GNU_SOURCE first, then every area's wrappers.
    "#define _GNU_SOURCE\n" + "\n".join(p.read_text() for p in SOURCES),
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
