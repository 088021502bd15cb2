"""Builds the compiled hot-path hooks (every legorun/native/*.c) as one shared object.

It is loaded with ctypes, not imported: Unicorn calls its functions directly as hooks (the
ExCache TLB fill, instruction counting, the cache simulator, memory tracing), so the per-access
paths never enter Python.
"""

from glob import glob

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "legorun.native._native",
            sources=sorted(glob("legorun/native/*.c")),
            extra_compile_args=["-O2", "-std=c11"],
        )
    ]
)
