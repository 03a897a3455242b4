"""The one build step pyproject.toml cannot declare yet without an experimental table: the
decoder's inner loops in C (operator/oomforensics/pprof/_kernels.c).

Optional: without a C compiler the package installs without it, and numpy does the same work
about three times slower (pprof/kernels.py chooses).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "oomforensics.pprof._kernels",
            sources=["operator/oomforensics/pprof/_kernels.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
