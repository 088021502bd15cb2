"""Builds the compiled ExCache hook (legorun/native/excache.c) as a shared object.

It is loaded with ctypes, not imported: Unicorn calls it directly as a TLB-fill hook, so the
hit path never enters Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "legorun.native._excache",
            sources=["legorun/native/excache.c"],
            extra_compile_args=["-O2", "-std=c11"],
        )
    ]
)
