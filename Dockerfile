# syntax=docker/dockerfile:1
# Two images from one file (see docs/DEPLOY.md):
#   docker build --target api    -t video-analysis-api .     FastAPI replicas; no torch (slim)
#   docker build --target worker -t video-analysis-worker .  workers; CUDA torch from PyPI
#     CPU-only torch (smaller): --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Both listen on all interfaces with API keys required (VAS_AUTH_ENABLED=true; create keys with
# `python -m app keys create --tenant T`). Weights are never baked in: mount them at /models. Uploaded videos live in /data, a volume
# shared by every replica and worker. The commands are the ones docker-compose.yml runs and
# tests/deploy starts on loopback.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAS_DATA_DIR=/data \
    VAS_MODELS_DIR=/models \
    VAS_HOST=0.0.0.0 \
    VAS_PORT=8000 \
    VAS_AUTH_ENABLED=true
RUN groupadd --system --gid 10001 vas \
    && useradd --system --uid 10001 --gid vas --no-create-home --shell /usr/sbin/nologin vas \
    && mkdir -p /data /models \
    && chown vas:vas /data /models
WORKDIR /srv

# Build the service's wheel once; both images install it.
FROM base AS build
COPY pyproject.toml ./
COPY app ./app
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# API replicas: the base dependencies only (FastAPI, SQLAlchemy, psycopg, PyAV for the
# upload probe). The API never imports torch.
FROM base AS api
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --find-links /wheels video-analysis-service==0.1.0 \
    && rm -rf /wheels
USER 10001:10001
VOLUME ["/data", "/models"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["python", "-m", "app", "serve", "--no-embedded-worker"]

# Workers: the [ml] extra (torch, torchvision, pytorchvideo). PyPI's Linux torch wheels are
# CUDA builds; the NVIDIA driver comes from the host (docker-compose.yml reserves a GPU).
FROM base AS worker
ARG TORCH_INDEX_URL=https://pypi.org/simple
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" --find-links /wheels \
        "video-analysis-service[ml]==0.1.0" \
    && rm -rf /wheels
ENV VAS_DEVICE=cuda \
    VAS_METRICS_PORT=9100
USER 10001:10001
VOLUME ["/data", "/models"]
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/metrics', timeout=2)"]
CMD ["python", "-m", "app", "worker"]
