# Benchmark image for Trainium (and Inferentia) nodes: the AWS Neuron PyTorch training container (torch-neuronx,
# the Neuron runtime and collectives, aws-neuronx-tools with nccom-test) plus the CPU-side tools. The container
# already carries the EFA user space: its Dockerfile runs the EFA installer with --skip-kmod
# (https://github.com/aws-neuron/deep-learning-containers, docker/pytorch/training/2.5.1/Dockerfile.neuronx); the
# kernel module comes from the host's user data. Built by cdk-assets at `cdk deploy`; the build machine has no
# Docker engine, so `make test` only lints this file (hadolint).
#
# Base image: pinned to one Neuron SDK release (2.22.0, torch 2.5.1); AWS publishes no dated tags for it. To bump,
# take a tag for a newer SDK from the table in https://github.com/aws-neuron/deep-learning-containers (README,
# "pytorch-training-neuronx"), check the host's Neuron driver (ECS Neuron AMI) supports that SDK, and build once
# before deploying; for a byte-exact pin append the digest that
# `docker buildx imagetools inspect public.ecr.aws/neuron/pytorch-training-neuronx:<tag>` prints.
ARG BASE_IMAGE=public.ecr.aws/neuron/pytorch-training-neuronx:2.5.1-neuronx-py310-sdk2.22.0-ubuntu22.04
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# openssh: multi-node nccom-test reaches the other nodes over SSH (workloads/launch.py starts sshd, keys per job).
RUN apt-get update && apt-get install -y --no-install-recommends fio sysbench openssh-client openssh-server \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir pydantic==2.14.3 boto3==1.44.5
COPY . /opt/rackform/workloads
ENV PYTHONPATH=/opt/rackform PATH=/opt/aws/neuron/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /opt/rackform
CMD ["python3", "-m", "workloads.job", "--help"]
