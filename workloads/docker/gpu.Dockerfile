# Benchmark image for NVIDIA GPU nodes: NGC PyTorch (CUDA, NCCL), the EFA user space (libfabric with the efa
# provider, rdma-core) with the aws-ofi-nccl plugin, and nccl-tests: the pattern of AWS's NGC-based images in
# awsome-distributed-training (3.test_cases/megatron/megatron-lm/aws-megatron-lm.Dockerfile and
# micro-benchmarks/nccl-tests/nccl-tests.Dockerfile). Built by cdk-assets at `cdk deploy`. The build machine has no
# Docker engine, so nothing here has been built by this project's tests: `make test` lints it with hadolint, and
# tests/test_dockerfiles.py checks the EFA steps below.
#
# Base image: a dated NGC release (YY.MM). To bump, pick a newer tag from the NGC PyTorch release notes
# (https://docs.nvidia.com/deeplearning/frameworks/pytorch-release-notes/), check that its Ubuntu release is one the
# EFA installer supports, and build once before deploying; for a byte-exact pin append the digest that
# `docker buildx imagetools inspect nvcr.io/nvidia/pytorch:<tag>` prints (`...:<tag>@sha256:<digest>`).
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.01-py3
FROM ${BASE_IMAGE}
# The EFA installer and the SHA256 AWS publishes for it
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-verify.html): the same pair the hosts install from their
# user data (cdk_constructs/user_data.py); tests/test_dockerfiles.py keeps them equal.
ARG EFA_INSTALLER_VERSION=1.47.0
ARG EFA_INSTALLER_SHA256=2df4201e046833c7dc8160907bee7f52b76ff80ed147376a2d0ed8a0dd66b2db
ARG NCCL_TESTS_VERSION=v2.16.4
ENV DEBIAN_FRONTEND=noninteractive
# openssh: multi-node nccl-tests runs over SSH between the job's containers (workloads/launch.py), as in AWS's
# nccl-tests image; the runner starts sshd itself, with keys made per job.
RUN apt-get update && apt-get install -y --no-install-recommends fio sysbench curl git openssh-client openssh-server \
 && rm -rf /var/lib/apt/lists/*
# NGC ships its own InfiniBand verbs (libibverbs, libmlx5) and HPC-X (Open MPI, UCX, a SHARP plugin for NCCL). Left
# in place, they are found before the EFA installer's rdma-core and libfabric, and NCCL never reaches the efa
# provider. AWS's NGC-based images remove exactly these packages and directories before running the installer
# (aws-megatron-lm.Dockerfile; 2.ami_and_containers/containers/pytorch/0.nvcr-pytorch-aws.dockerfile also removes
# /opt/hpcx/nccl_rdma_sharp_plugin and clears OPAL_PREFIX, which NGC points at the removed HPC-X Open MPI, so that
# it cannot relocate the EFA installer's). Only the packages this base has installed are removed: `apt-get remove`
# fails the build on a package name the base release no longer knows.
RUN set -- \
 && for package in ibverbs-utils libibverbs-dev libibverbs1 libmlx5-1; do \
      if [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" = installed ]; then \
        set -- "$@" "$package"; \
      fi; \
    done \
 && if [ "$#" -gt 0 ]; then apt-get remove -y --allow-change-held-packages "$@"; fi
RUN rm -rf /opt/hpcx/ompi /opt/hpcx/nccl_rdma_sharp_plugin /usr/local/mpi /usr/local/ucx \
 && ldconfig
ENV OPAL_PREFIX=
WORKDIR /tmp/efa
# User space only, as in AWS's images: no kernel module (the host's user data installs it), no limits file (the job
# definition sets the memlock ulimit), no loopback self-test (a build has no EFA device). The installer installs
# packages with apt, hence the update in the same layer. It must run from its own directory: `cd` (DL3003) rather
# than WORKDIR keeps download, install and clean-up in one layer.
# hadolint ignore=DL3003
RUN curl -fsSL -o "aws-efa-installer-${EFA_INSTALLER_VERSION}.tar.gz" \
      "https://efa-installer.amazonaws.com/aws-efa-installer-${EFA_INSTALLER_VERSION}.tar.gz" \
 && echo "${EFA_INSTALLER_SHA256}  aws-efa-installer-${EFA_INSTALLER_VERSION}.tar.gz" > installer.sha256 \
 && sha256sum -c installer.sha256 \
 && tar -xf "aws-efa-installer-${EFA_INSTALLER_VERSION}.tar.gz" \
 && apt-get update \
 && cd aws-efa-installer \
 && ./efa_installer.sh -y -g --skip-kmod --skip-limit-conf --no-verify \
 && rm -rf /tmp/efa /var/lib/apt/lists/* \
 && ldconfig
WORKDIR /
# NCCL loads aws-ofi-nccl (libnccl-net) through the loader's search path and silently falls back to its socket
# transport when it is not found. On Ubuntu the installer puts the plugin in the multiarch directory
# /opt/amazon/ofi-nccl/lib/<triplet>; AWS's nccl-tests.Dockerfile lists both triplets. Newer installers use
# /opt/amazon/ofi-nccl/lib itself, so that is listed too. libfabric is in /opt/amazon/efa/lib on Ubuntu.
ENV PATH=/opt/amazon/efa/bin:/opt/amazon/openmpi/bin:$PATH \
    LD_LIBRARY_PATH=/opt/amazon/ofi-nccl/lib/x86_64-linux-gnu:/opt/amazon/ofi-nccl/lib/aarch64-linux-gnu:/opt/amazon/ofi-nccl/lib:/opt/amazon/efa/lib:/opt/amazon/openmpi/lib:$LD_LIBRARY_PATH \
    FI_PROVIDER=efa NCCL_SOCKET_IFNAME=^lo,docker,veth,ecs
# nccl-tests with MPI=1 against the installer's Open MPI, as AWS's nccl-tests.Dockerfile builds it: one binary runs
# on one node (no mpirun) and across nodes (one rank per GPU under mpirun).
# Batch runs the container as root: Open MPI refuses root unless told (also for a singleton, one node without
# mpirun); PMIX_MCA_gds=hash as in AWS's image (open-mpi/ompi#7516).
ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PMIX_MCA_gds=hash
RUN git clone --depth 1 --branch ${NCCL_TESTS_VERSION} https://github.com/NVIDIA/nccl-tests.git /opt/nccl-tests \
 && make -C /opt/nccl-tests -j"$(nproc)" MPI=1 MPI_HOME=/opt/amazon/openmpi CUDA_HOME=/usr/local/cuda \
 && ln -s /opt/nccl-tests/build/all_reduce_perf /usr/local/bin/all_reduce_perf
RUN pip install --no-cache-dir pydantic==2.14.3 boto3==1.44.5
COPY . /opt/rackform/workloads
ENV PYTHONPATH=/opt/rackform PYTHONUNBUFFERED=1
WORKDIR /opt/rackform
CMD ["python3", "-m", "workloads.job", "--help"]
