"""Build glue: the cffi extension (pyruntime._native) and the static init stub (pyruntime/_initstub)."""

import os
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildWithStub(build_ext):
    """Also compile csrc/initstub.c into a static executable shipped inside the package."""

    def run(self) -> None:
        super().run()
        out_dir = "pyruntime" if self.inplace else os.path.join(self.build_lib, "pyruntime")
        os.makedirs(out_dir, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        subprocess.check_call([cc, "-static", "-Os", "-s", "-Wall", "-Werror", "-o",
                               os.path.join(out_dir, "_initstub"), "csrc/initstub.c"])


setup(cffi_modules=["csrc/build_native.py:ffibuilder"], cmdclass={"build_ext": BuildWithStub})
