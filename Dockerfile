# syntax=docker/dockerfile:1
# The textclf image for Kubernetes: Metaflow step pods (train, evaluate, ...) and Dask workers.
#
#   docker build -t "$IMAGE" . && docker push "$IMAGE"        # see docs/gke.md
#
# Dependencies come from pyproject.toml (the one list; environment.yml mirrors it and
# tests/test_packaging.py checks that all three agree). Layers, most stable first: OS + Python,
# torch, the other dependencies, then the project itself, so a code change rebuilds only the
# last, small layer. Nothing secret is baked in: pods get GCS access through Workload Identity
# and settings through the environment / the config Metaflow ships with each run.

ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu22.04
ARG PYTHON=3.11

FROM ${CUDA_IMAGE} AS build
ARG PYTHON
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python${PYTHON} python${PYTHON}-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python${PYTHON} -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch alone: the largest layer, changed least often. The CUDA build from PyPI (it carries its
# own CUDA libraries; the base image provides the runtime the driver pairs with).
RUN pip install "torch==2.13.0"
# Every other dependency, from pyproject.toml only: this layer survives code changes.
COPY pyproject.toml /opt/textclf/pyproject.toml
RUN python -c "import tomllib; p = tomllib.load(open('/opt/textclf/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['gke']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
# The project, editable from /opt/textclf: the library finds config/, notebooks/ and the embedded
# sample beside it (PROJECT_ROOT), exactly as in a checkout.
COPY README.md /opt/textclf/
COPY lib /opt/textclf/lib
COPY config /opt/textclf/config
COPY notebooks /opt/textclf/notebooks
COPY flows /opt/textclf/flows
COPY data/sample /opt/textclf/data/sample
# The Jupyter kernel the evaluate step's notebooks run on (Papermill asks for it by name).
RUN pip install --no-deps -e /opt/textclf \
 && python -m ipykernel install --sys-prefix --name textclf --display-name textclf \
 && python -c "import textclf.config, textclf.training.worker, metaflow, dask_kubernetes"

FROM ${CUDA_IMAGE}
ARG PYTHON
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python${PYTHON} ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 --shell /bin/bash textclf
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/textclf /opt/textclf
# METAFLOW_SKIP_INSTALL_DEPENDENCIES: the image already has what Metaflow's pod bootstrap would
# pip-install at start (google-cloud-storage, simple-gcp-object-downloader, ...).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    METAFLOW_SKIP_INSTALL_DEPENDENCIES=1 \
    HF_HUB_DISABLE_TELEMETRY=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 GRADIO_ANALYTICS_ENABLED=False \
    TOKENIZERS_PARALLELISM=false
USER textclf
WORKDIR /home/textclf
CMD ["textclf", "--help"]
