# gigaam-api: CPU-only image for a NAS or mini-PC. No weights inside: they are fetched into the
# /data volume on first start (or beforehand with `make download-weights`).
# tests/unit/test_deploy_files.py checks the facts below against scripts/install and settings.py.

# Debian 12 as on CI, so the image's ffmpeg is the one the tests ran against.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# ---- builder: a venv with CPU torch and the project, the same steps as scripts/install ----------
FROM ${PYTHON_IMAGE} AS builder

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Every package at its version in constraints.txt, the set CI tested. torch first, alone and from
# the CPU index, so the project's torch requirement is already met and pip never pulls a CUDA
# build; torch's own dependencies come from PyPI with the project. This layer stays cached while
# the source changes.
WORKDIR /src
COPY constraints.txt ./
RUN python -m pip install -q --upgrade pip \
 && python -m pip install -q --no-deps torch -c constraints.txt --index-url "${TORCH_INDEX_URL}"

COPY pyproject.toml README.md ./
COPY gigaam_api ./gigaam_api
RUN python -m pip install -q . -c constraints.txt

# ---- runtime: slim Python, ffmpeg from Debian, the venv, a non-root user -------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

# /data belongs to the server's user in the image, so a named volume mounted there starts with the
# same owner (Docker copies it in) and the first download needs no chown; see D-120.
RUN groupadd --gid 1000 gigaam \
 && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /data --shell /usr/sbin/nologin gigaam \
 && mkdir -p /data/models /data/cache \
 && chown -R 1000:1000 /data

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODELS_DIR=/data/models \
    CACHE_DIR=/data/cache \
    HOST=0.0.0.0 \
    PORT=8000

USER 1000:1000
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

# /health answers 503 while the weights download and load; the long start period covers a first
# start that fetches ~0.5 GB. urllib keeps the check free of curl/wget.
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=8)"]

ENTRYPOINT ["gigaam-api"]
CMD ["serve"]
