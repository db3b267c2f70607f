# Benchmark image for the CPU tiers (Graviton: built for linux/arm64; x86: linux/amd64).
# Built by cdk-assets at `cdk deploy` from the workloads/ directory; `cdk synth` never runs Docker, and the build
# machine has no Docker engine, so `make test` only lints this file (hadolint).
#
# Base image: Debian's dated slim tag (one snapshot of bookworm, multi-arch), with Debian's Python 3.11 in a venv.
# To bump, take a newer `bookworm-YYYYMMDD-slim` tag from https://hub.docker.com/_/debian (ECR Public mirrors the
# official images) and build once before deploying; for a byte-exact pin append the digest that
# `docker buildx imagetools inspect public.ecr.aws/docker/library/debian:<tag>` prints.
ARG BASE_IMAGE=public.ecr.aws/docker/library/debian:bookworm-20260824-slim
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# libfabric-bin: fi_pingpong for the fabric benchmark.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv fio sysbench libfabric-bin procps \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CPU build of torch; the same pins as requirements*.txt.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-cache-dir pydantic==2.14.3 boto3==1.44.5
COPY . /opt/rackform/workloads
ENV PYTHONPATH=/opt/rackform PYTHONUNBUFFERED=1
WORKDIR /opt/rackform
CMD ["python3", "-m", "workloads.job", "--help"]
