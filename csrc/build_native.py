"""cffi builder for pyruntime._native (used by setup.py through cffi_modules)."""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "native.h").read_text())
ffibuilder.set_source(
    "pyruntime._native",
    (HERE / "native.c").read_text(),
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
