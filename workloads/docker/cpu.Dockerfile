# Benchmark image for the CPU tiers (Graviton: built for linux/arm64; x86: linux/amd64).
# Built by cdk-assets at `cdk deploy` from the workloads/ directory; `cdk synth` never runs Docker.
ARG BASE_IMAGE=public.ecr.aws/docker/library/python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends fio sysbench libfabric-bin procps \
 && rm -rf /var/lib/apt/lists/*
# The CPU build of torch; the same pins as requirements*.txt.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-cache-dir pydantic==2.14.3 boto3==1.44.5
COPY . /opt/rackform/workloads
ENV PYTHONPATH=/opt/rackform PYTHONUNBUFFERED=1
WORKDIR /opt/rackform
CMD ["python3", "-m", "workloads.run", "--help"]
