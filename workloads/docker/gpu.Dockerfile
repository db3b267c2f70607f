# Benchmark image for NVIDIA GPU nodes: CUDA PyTorch (NCCL), the EFA user-space stack, aws-ofi-nccl and
# nccl-tests, the pattern of awsome-distributed-training's nccl-tests image. Built by cdk-assets at deploy time.
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.01-py3
FROM ${BASE_IMAGE}
ARG EFA_INSTALLER_VERSION=latest
ARG NCCL_TESTS_VERSION=v2.16.4
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends fio sysbench curl git \
 && rm -rf /var/lib/apt/lists/*
# EFA user space (libfabric with the efa provider, rdma-core) and the aws-ofi-nccl plugin; no kernel module in a
# container: the host AMI provides the driver.
RUN cd /tmp && curl -sSfO https://efa-installer.amazonaws.com/aws-efa-installer-${EFA_INSTALLER_VERSION}.tar.gz \
 && tar xf aws-efa-installer-${EFA_INSTALLER_VERSION}.tar.gz && cd aws-efa-installer \
 && ./efa_installer.sh -y --skip-kmod --skip-limit-conf --no-verify && rm -rf /tmp/aws-efa-installer*
ENV PATH=/opt/amazon/efa/bin:/opt/amazon/openmpi/bin:$PATH \
    LD_LIBRARY_PATH=/opt/amazon/ofi-nccl/lib:/opt/amazon/efa/lib:$LD_LIBRARY_PATH \
    FI_PROVIDER=efa NCCL_SOCKET_IFNAME=^docker,lo,veth
RUN git clone --depth 1 --branch ${NCCL_TESTS_VERSION} https://github.com/NVIDIA/nccl-tests.git /opt/nccl-tests \
 && make -C /opt/nccl-tests -j"$(nproc)" MPI=0 CUDA_HOME=/usr/local/cuda \
 && ln -s /opt/nccl-tests/build/all_reduce_perf /usr/local/bin/all_reduce_perf
RUN pip install --no-cache-dir pydantic==2.14.3 boto3==1.44.5
COPY . /opt/rackform/workloads
ENV PYTHONPATH=/opt/rackform PYTHONUNBUFFERED=1
WORKDIR /opt/rackform
CMD ["python3", "-m", "workloads.run", "--help"]
