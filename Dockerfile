# The oomforensics operator. Build: docker build -t oomforensics:0.1.0 .
# Stage 1 builds a wheel and a virtual environment (hack/image-build.sh, the same script the
# tests run); stage 2 copies only the environment onto a clean base. The slim image has no C
# compiler, so the decoder's optional C kernels (setup.py) are left out and numpy does their
# work: about 1.7 times slower on a 100,000-sample profile, seconds at most per capture.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY operator/ operator/
COPY hack/image-build.sh hack/
RUN hack/image-build.sh /src /opt/oomforensics \
    && mkdir -p /spool

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="oomforensics" \
      org.opencontainers.image.description="Out-of-memory forensics for Go services on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/oomforensics /opt/oomforensics
# The spool's mount point, writable by the operator's user when no volume is mounted.
COPY --from=build --chown=65532:65532 /spool /var/spool/oomforensics
# Nothing is written outside /tmp and the spool: mount both (the chart mounts emptyDirs or a
# PersistentVolumeClaim), and the root filesystem can be read-only.
ENV PATH=/opt/oomforensics/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    OOMF_SPOOL_DIR=/var/spool/oomforensics
# glibc: profiles and answers of 64 KiB and more get their own mappings, returned when freed,
# and free memory is trimmed sooner; at 1,000 pods this lowered the resident set in steady
# state (benchmarks/RESULTS.md, scale).
ENV MALLOC_MMAP_THRESHOLD_=65536 \
    MALLOC_TRIM_THRESHOLD_=131072
# A numeric user (no passwd entry needed) so that runAsNonRoot can verify it.
USER 65532:65532
# kopf's liveness endpoint (--liveness below) and the operator's /metrics (OOMF_METRICS_PORT).
EXPOSE 8080 8000
ENTRYPOINT ["oomforensics", "run"]
CMD ["--liveness", "http://0.0.0.0:8080/healthz"]
