"""Multi-node native collectives (issue 11 item 3): the launcher that gathers a job's nodes and runs one MPI program
across them. The real run at the end is two local "nodes" (two runner processes with the local executor's node
environments) going through the same rendezvous, host file and mpirun as a Batch job, with Open MPI from PyPI."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from rackform.jobs.local import free_port
from workloads import launch
from workloads.benchmarks import BENCHMARKS, Benchmark, NodeContext
from workloads.run import launched, run_steps

DATA = Path(__file__).parent / "data" / "launch"
PROGRAM = DATA / "mpi_allreduce.py"  # a real MPI program: every rank all-reduces rank + 1


def test_hostfile_lists_every_node_once_with_its_slots():
    nodes = [launch.Node(1, "10.0.1.7"), launch.Node(0, "10.0.1.5"), launch.Node(2, "10.0.1.9")]
    assert launch.hostfile(nodes, 8) == "10.0.1.5 slots=8\n10.0.1.7 slots=8\n10.0.1.9 slots=8\n"
    # Local "nodes" share one address: Open MPI must see it once, with all their slots.
    assert launch.hostfile([launch.Node(0, "127.0.0.1"), launch.Node(1, "127.0.0.1")], 1) == "127.0.0.1 slots=2\n"


def test_mpirun_command_follows_the_aws_batch_sample():
    argv = launch.mpirun_argv(("all_reduce_perf", "-g", "1"), hostfile_path="/tmp/h", ranks=16,
                              env_names=("PATH",), env=(("FI_PROVIDER", "efa"),), mpirun="/opt/amazon/openmpi/bin/mpirun")
    assert argv[0] == "/opt/amazon/openmpi/bin/mpirun" and argv[-3:] == ("all_reduce_perf", "-g", "1")
    text = " ".join(argv)
    assert "-np 16 --hostfile /tmp/h --bind-to none --mca btl tcp,self" in text
    assert "-x PATH -x FI_PROVIDER=efa" in text


def test_multi_node_steps_of_nccl_tests_and_nccom_test():
    ctx = NodeContext(tier="gpu", gpus=8, num_nodes=2, efa=True, hosts=("10.0.1.5", "10.0.1.7"), hostfile="/w/h")
    (step,) = BENCHMARKS["allreduce-nccl"].steps(ctx)
    assert "-np 16" in " ".join(step.argv) and step.argv[-8:] == ("all_reduce_perf", "-b", "8", "-e", "8G", "-f",
                                                                  "2", "-g", "1")[-8:]
    assert "-x FI_PROVIDER=efa" in " ".join(step.argv) and "-x NCCL_DEBUG=INFO" in " ".join(step.argv)
    assert BENCHMARKS["allreduce-nccl"].steps(NodeContext(tier="gpu", gpus=8, num_nodes=2, node_index=1)) == ()
    trn = NodeContext(tier="trainium", neuron_ranks=32, num_nodes=2, efa=True, hosts=("10.0.1.5", "10.0.1.7"),
                      master_port=29500)
    (step,) = BENCHMARKS["allreduce-nccom"].steps(trn)
    assert step.argv[:5] == ("nccom-test", "-r", "64", "-N", "2") and step.argv[-3:] == ("--hosts", "10.0.1.5",
                                                                                       "10.0.1.7")
    assert ("NEURON_RT_ROOT_COMM_ID", "10.0.1.5:29501") in step.env
    one = BENCHMARKS["allreduce-nccl"].steps(NodeContext(tier="gpu", gpus=8))
    assert one[0].argv[0] == "all_reduce_perf" and one[0].argv[-1] == "8"


def test_a_node_of_another_job_is_turned_away():
    port = free_port()
    result: dict = {}

    def main():
        try:
            result["nodes"] = launch.gather(port, num_nodes=2, token="job-a", public_key="ssh-ed25519 AAAA",
                                            timeout_s=2, bind="127.0.0.1")
        except launch.LaunchError as e:
            result["error"] = str(e)

    t = threading.Thread(target=main)
    t.start()
    with pytest.raises(launch.LaunchError, match="refused"):
        launch.join("127.0.0.1", port, index=1, token="job-b", get_ready=lambda key: None, timeout_s=5)
    t.join()
    assert result == {"error": "nodes [1] never called in within 2 s"}


def test_children_get_the_jobs_key_and_are_released_with_the_mains_code():
    port = free_port()
    keys, codes = [], []
    child = threading.Thread(target=lambda: codes.append(launch.join(
        "127.0.0.1", port, index=1, token="j", get_ready=keys.append, timeout_s=10)))
    child.start()
    gathered = launch.gather(port, num_nodes=2, token=launch.job_token("j#0"), public_key="ssh-ed25519 KEY",
                             timeout_s=10, bind="127.0.0.1")
    assert [(n.index, n.address) for n in gathered.nodes] == [(0, "127.0.0.1"), (1, "127.0.0.1")]
    gathered.release(3)
    child.join(5)
    assert keys == ["ssh-ed25519 KEY"] and codes == [3]


def test_sshd_and_client_config_are_key_only_and_per_job(tmp_path):
    setup = launch.SshSetup(tmp_path / "ssh")
    argv = " ".join(setup.sshd_argv())
    assert f"-p {launch.SSH_PORT}" in argv and "PasswordAuthentication=no" in argv and "-D" in argv
    assert f"AuthorizedKeysFile={setup.authorized_keys}" in argv
    ran = []

    def keygen(argv):
        ran.append(argv)
        Path(argv[-1] + ".pub").write_text("ssh-ed25519 AAAAC3 rackform-j\n")

    assert launch.make_job_key(setup, "j", run=keygen) == "ssh-ed25519 AAAAC3 rackform-j"
    assert ran[0][:4] == ("ssh-keygen", "-q", "-t", "ed25519")
    launch.install_client_config(setup, home=tmp_path / "home")
    config = (tmp_path / "home/.ssh/config").read_text()
    assert f"Port {launch.SSH_PORT}" in config and f"IdentityFile {setup.key}" in config


def test_a_child_whose_main_never_answers_fails_with_the_reason(tmp_path):
    bench = Benchmark("mpi-test", "test", ("cpu",), nodes=2, max_nodes=2, steps=lambda ctx: (), ssh_launch=True)
    ctx = NodeContext(tier="cpu", node_index=1, num_nodes=2, local=True, master_port=free_port(),
                      work_dir=str(tmp_path))
    status, reason, *_ = launched(bench, ctx, 0.5, [])
    assert status == "failed" and "never answered" in reason
    assert run_steps(bench, NodeContext(tier="cpu"), 1, [])[0] == "succeeded"


def test_the_images_carry_what_the_launcher_runs():
    docker = Path(__file__).resolve().parents[1] / "workloads" / "docker"
    gpu, neuron = (docker / "gpu.Dockerfile").read_text(), (docker / "neuron.Dockerfile").read_text()
    assert "MPI=1 MPI_HOME=/opt/amazon/openmpi" in gpu and "MPI=0" not in gpu
    assert launch.EFA_MPIRUN.startswith("/opt/amazon/openmpi/")
    assert all("openssh-server" in f and "openssh-client" in f for f in (gpu, neuron))


def test_the_local_executors_two_node_processes_run_mpi_through_the_runner(tmp_path):
    """Two processes with the environments the local executor gives a 2-node job (rackform.jobs.local), each the
    runner's entry point: the main node gathers the other, writes the host file and runs mpirun across both."""
    import subprocess

    from rackform.jobs.local import node_environment
    from workloads.contract import JobEnvironment

    job = JobEnvironment(run_id="mpi-1", master_port=free_port())
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RACKFORM_", "AWS_BATCH_"))}
    procs = [subprocess.Popen([sys.executable, str(DATA / "mpi_job.py")], env=node_environment(
        base, job, job_id="job-1", nodes=2, index=i, work_dir=tmp_path), cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    outs = [p.communicate(timeout=90)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    # One gathering, then the launch once per repeat (three by default) through the same host file: one metric each.
    assert outs[0].count("127.0.0.1 slots=2") == 1 and "mpi-probe: succeeded; 3 metrics" in outs[0]
    assert [l for l in outs[0].splitlines() if l.startswith("[repeat ")] == ["[repeat 1/3]", "[repeat 2/3]",
                                                                           "[repeat 3/3]"]
    # Rank 0's line, under Open MPI's --tag-output prefix: two ranks, 1 + 2 all-reduced.
    lines = [l for l in outs[0].splitlines() if "RACKFORM_RESULT" in l]
    assert len(lines) == 3
    for line in lines:
        assert line.startswith("[1,0]<stdout>:") and '"mpi_sum", "value": 3' in line and '"world_size": "2"' in line
    assert "[launch] the main node's launch ended with exit 0" in outs[1]
    assert "[health node 1]" in outs[1] and "[health node 0]" in outs[0]


def test_a_child_that_cannot_get_ready_stops_the_gathering_with_its_reason():
    port = free_port()
    errors = []

    def broken_sshd(key):
        raise launch.LaunchError("sshd exited 255: Bind to port 2022 on 0.0.0.0 failed: Address already in use.")

    def child():
        try:
            launch.join("127.0.0.1", port, index=1, token="j", get_ready=broken_sshd, timeout_s=10)
        except launch.LaunchError as e:
            errors.append(str(e))

    t = threading.Thread(target=child)
    t.start()
    with pytest.raises(launch.LaunchError, match="node 1 could not get ready: LaunchError: sshd exited 255: Bind"):
        launch.gather(port, num_nodes=3, token="j", public_key="k", timeout_s=10, bind="127.0.0.1")
    t.join(5)
    assert errors and "could not get ready" in errors[0]


def test_an_sshd_that_exits_at_once_is_named(tmp_path, monkeypatch):
    setup = launch.SshSetup(tmp_path / "ssh")
    setup.directory.mkdir()
    setup.host_key.write_text("key")
    monkeypatch.setattr(launch.SshSetup, "sshd_argv", lambda self: (sys.executable, "-c",
                                                                     "import sys; print('no host keys'); sys.exit(1)"))
    with pytest.raises(launch.LaunchError, match="sshd exited 1: no host keys"):
        launch.start_sshd(setup, "ssh-ed25519 K", settle_s=1, privsep=tmp_path / "run-sshd")
    assert setup.authorized_keys.read_text() == "ssh-ed25519 K\n"
