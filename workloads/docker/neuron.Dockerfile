# Benchmark image for Trainium (and Inferentia) nodes: the AWS Neuron PyTorch training container (torch-neuronx,
# the Neuron runtime and collectives, aws-neuronx-tools with nccom-test) plus the CPU-side tools.
# Built by cdk-assets at deploy time. Check the Neuron SDK release notes for a current tag before deploying.
ARG BASE_IMAGE=public.ecr.aws/neuron/pytorch-training-neuronx:2.5.1-neuronx-py310-sdk2.22.0-ubuntu22.04
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends fio sysbench \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir pydantic==2.14.3 boto3==1.44.5
COPY . /opt/rackform/workloads
ENV PYTHONPATH=/opt/rackform PATH=/opt/aws/neuron/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /opt/rackform
CMD ["python3", "-m", "workloads.run", "--help"]
