# cacheproxy image: the proxy (default command) and the operator (`cacheproxy-operator`) in one image,
# plus Debian's memcached so a pod can run L1/L2 from the same image.
# Built without a registry by scripts/image/build-and-run.sh (podman; base made with mmdebstrap).

# --- builder: a venv with the project and its dependencies, installed from PyPI wheels ---------------
# gcc, libc6-dev and python3-dev compile the proxy's hot path (mypyc, setup.py); they stay in this stage.
FROM debian:bookworm-slim AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# --only-binary: every dependency (and mypy, the build requirement) ships manylinux wheels; only
# cacheproxy itself is built from source, and its setup.py compiles the hot modules.
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY service ./service
COPY operator ./operator
# The optional build secret `ca-certificates` (the build host's CA bundle, passed by
# scripts/image/build-and-run.sh) lets pip through a TLS-intercepting egress proxy; it is mounted for
# this step only and never stored in a layer.
RUN --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export PIP_CERT=/run/secrets/ca-certificates; fi \
 && python3 -m venv /opt/cacheproxy \
 && /opt/cacheproxy/bin/pip install --upgrade "pip==24.2" "setuptools==75.1.0" "wheel==0.44.0" \
 && /opt/cacheproxy/bin/pip install --only-binary=:all: --no-binary=cacheproxy ".[operator]" \
 && /opt/cacheproxy/bin/python -c "import sys, cacheproxy.compiled as c; print(c.DESCRIPTION); sys.exit(not c.COMPILED)" \
 && /opt/cacheproxy/bin/python -m compileall -q /opt/cacheproxy

# --- runtime: python3 and memcached from Debian, the venv, a fixed non-root user; no compilers ----------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 memcached \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 cacheproxy \
 && useradd -l --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin cacheproxy
COPY --from=builder /opt/cacheproxy /opt/cacheproxy
# Read-only root filesystem in Kubernetes: no .pyc writes at runtime (compiled at build time instead).
ENV PATH=/opt/cacheproxy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 11211 9150
CMD ["cacheproxy"]
