"""The one build step pyproject.toml cannot declare yet without an experimental table: the
decoder's inner loops in C (operator/oomforensics/pprof/_kernels.c).

Optional: without a C compiler the package installs without it, and numpy does the same work
(pprof/kernels.py chooses); the diff of the 100,000-sample benchmark pair then takes 1.2 to
1.6 s instead of 0.7 to 0.9 s (2026-12-02).
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
