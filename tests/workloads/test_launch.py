"""Multi-node native collectives (issue 11 item 3): the launcher that gathers a job's nodes and runs one MPI program
across them. The real run at the end is two local "nodes" (two runner processes with the local executor's node
environments) going through the same rendezvous, host file and mpirun as a Batch job, with Open MPI from PyPI."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from rackform.jobs.submit import batch_clients, submit
from tests.conftest import free_port
from workloads import launch
from workloads.benchmarks import BENCHMARKS, Benchmark, NodeContext
from workloads.run import launched, run_steps

DATA = Path(__file__).resolve().parents[1] / "data" / "launch"
PROGRAM = DATA / "mpi_allreduce.py"  # a real MPI program: every rank all-reduces rank + 1
SECRET = "s" * 43
GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGood"


def gathering(port: int, **kwargs) -> tuple[threading.Thread, dict]:
    """gather() on its own thread, as the main node runs it; the result (or the error) lands in the dict."""
    result: dict = {}
    args = dict(num_nodes=2, job="j", secret=SECRET, public_key="ssh-ed25519 JOBKEY", timeout_s=10,
                bind="127.0.0.1") | kwargs

    def main():
        try:
            result["gathered"] = launch.gather(port, **args)
        except launch.LaunchError as e:
            result["error"] = str(e)

    t = threading.Thread(target=main)
    t.start()
    return t, result


def child(port: int, index: int, *, secret: str = SECRET, host_key: str = GOOD_KEY, out: list | None = None):
    """A child calling in on its own thread; what join() returned or raised lands in `out`."""
    out = [] if out is None else out

    def run():
        try:
            out.append(launch.join("127.0.0.1", port, index=index, job="j", secret=secret,
                                   get_ready=lambda key: host_key, timeout_s=10))
        except launch.LaunchError as e:
            out.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def connect(port: int) -> socket.socket:
    deadline = time.monotonic() + 5
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def lines(sock: socket.socket) -> list[dict]:
    """Every JSON line the main node sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_hostfile_lists_every_node_once_with_its_slots():
    nodes = [launch.Node(1, "10.0.1.7"), launch.Node(0, "10.0.1.5"), launch.Node(2, "10.0.1.9")]
    assert launch.hostfile(nodes, 8) == "10.0.1.5 slots=8\n10.0.1.7 slots=8\n10.0.1.9 slots=8\n"
    # Local "nodes" share one address: Open MPI must see it once, with all their slots.
    assert launch.hostfile([launch.Node(0, "127.0.0.1"), launch.Node(1, "127.0.0.1")], 1) == "127.0.0.1 slots=2\n"


def test_mpirun_command_follows_the_aws_batch_sample():
    argv = launch.mpirun_argv(("all_reduce_perf", "-g", "1"), hostfile_path="/tmp/h", ranks=16, env_names=("PATH",),
                              env=(("FI_PROVIDER", "efa"),), mpirun="/opt/amazon/openmpi/bin/mpirun")
    assert argv[0] == "/opt/amazon/openmpi/bin/mpirun" and argv[-3:] == ("all_reduce_perf", "-g", "1")
    text = " ".join(argv)
    assert "-np 16 --hostfile /tmp/h --bind-to none --mca btl tcp,self" in text
    assert "-x PATH" in text and "-x FI_PROVIDER=efa" in text


def test_every_rank_gets_the_socket_interfaces_without_ecs_and_the_rdma_switch():
    """Ranks started over SSH get sshd's environment, not the image's ENV: mpirun -x carries what NCCL needs."""
    argv = launch.mpirun_argv(("all_reduce_perf",), hostfile_path="h", ranks=2, environ={})
    value = next(a.split("=", 1)[1] for a in argv if a.startswith("NCCL_SOCKET_IFNAME="))
    assert argv[argv.index(f"NCCL_SOCKET_IFNAME={value}") - 1] == "-x"
    assert value.startswith("^") and {"lo", "docker", "ecs"} <= set(value[1:].split(","))
    assert "FI_EFA_USE_DEVICE_RDMA" not in argv
    rdma = launch.mpirun_argv(("x",), hostfile_path="h", ranks=2, environ={"FI_EFA_USE_DEVICE_RDMA": "1"})
    assert rdma[rdma.index("FI_EFA_USE_DEVICE_RDMA") - 1] == "-x"


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
    t, result = gathering(port, job="job-a", timeout_s=2)
    with pytest.raises(launch.LaunchError, match="refused"):
        launch.join("127.0.0.1", port, index=1, job="job-b", secret=SECRET, get_ready=lambda key: "", timeout_s=5)
    t.join()
    assert result == {"error": "nodes [1] never called in within 2 s; turned away: 127.0.0.1: not a child of job "
                               "job-a awaited here"}


def test_children_get_the_jobs_key_and_are_released_with_the_mains_code():
    port = free_port()
    keys, codes = [], []

    def ready(key):
        keys.append(key)
        return GOOD_KEY

    t = threading.Thread(target=lambda: codes.append(launch.join(
        "127.0.0.1", port, index=1, job="j", secret=SECRET, get_ready=ready, timeout_s=10)))
    t.start()
    gathered = launch.gather(port, num_nodes=2, job=launch.job_token("j#0"), secret=SECRET,
                             public_key="ssh-ed25519 KEY", host_key="ssh-ed25519 AAAAMain", timeout_s=10,
                             bind="127.0.0.1")
    assert [(n.index, n.address, n.host_key) for n in gathered.nodes] == [
        (0, "127.0.0.1", "ssh-ed25519 AAAAMain"), (1, "127.0.0.1", GOOD_KEY)]
    gathered.release(3)
    t.join(5)
    assert keys == ["ssh-ed25519 KEY"] and codes == [3]


def test_a_peer_without_the_secret_is_refused_and_never_in_the_host_file():
    port = free_port()
    t, result = gathering(port)
    # A child given another secret finds out before it authorizes any key, and never joins.
    with pytest.raises(launch.LaunchError, match="does not prove this job's launch secret"):
        launch.join("127.0.0.1", port, index=1, job="j", secret="t" * 43, get_ready=lambda key: "", timeout_s=5)
    # A peer that knows the job id and plays the protocol, but can only guess the MAC, claims node 1 first.
    with connect(port) as forger:
        forger.sendall(json.dumps({"job": "j", "index": 1, "nonce": secrets.token_hex(32)}).encode() + b"\n")
        offer = json.loads(forger.makefile().readline())
        assert offer["public_key"] == "ssh-ed25519 JOBKEY" and "mac" in offer
        forger.sendall(json.dumps({"ready": True, "host_key": "ssh-ed25519 AAAAEvil", "mac": "0" * 64}).encode()
                       + b"\n")
        assert lines(forger) == [{"refused": "node 1's answer does not prove the job's launch secret"}]
    # The real node 1 still joins, and only its host key is pinned.
    c, out = child(port, 1)
    t.join(10)
    gathered = result["gathered"]
    assert [(n.index, n.host_key) for n in gathered.nodes] == [(0, ""), (1, GOOD_KEY)]
    assert "Evil" not in launch.known_hosts(gathered.nodes)
    assert any("does not prove" in why for why in gathered.refused)
    gathered.release(0)
    c.join(5)
    assert out == [0]


def test_a_silent_peer_times_out_while_the_children_join():
    port = free_port()
    t, result = gathering(port, num_nodes=3, read_timeout_s=4)
    silent = connect(port)  # connects first and says nothing
    flood = connect(port)  # says too much: a line that never ends
    flood.sendall(b"x" * (launch.MAX_MESSAGE + 4096))
    children = [child(port, i) for i in (1, 2)]
    t.join(10)
    # The gathering ended while the silent peer was still connected: it held up no one.
    silent.setblocking(False)
    with pytest.raises(BlockingIOError):
        silent.recv(1)
    gathered = result["gathered"]
    assert [n.index for n in gathered.nodes] == [0, 1, 2]
    assert any("longer than" in why for why in gathered.refused)
    silent.setblocking(True)
    silent.settimeout(10)
    started = time.monotonic()
    assert silent.recv(4096) == b""  # dropped at its read timeout
    assert time.monotonic() - started < 6
    gathered.release(0)
    for c, out in children:
        c.join(5)
        assert out == [0]
    silent.close()
    flood.close()


def test_a_host_key_that_is_not_one_key_is_refused():
    port = free_port()
    t, result = gathering(port, timeout_s=3)
    # A newline would add a line of its own to known_hosts (say, a key for every host).
    c, out = child(port, 1, host_key=GOOD_KEY + "\n* ssh-ed25519 AAAAEvil")
    c.join(5)
    t.join(5)
    assert isinstance(out[0], launch.LaunchError) and "no SSH host key in ssh-keygen's form" in str(out[0])
    assert result["error"].startswith("nodes [1] never called in within 3 s")


def test_the_secret_comes_from_the_job_environment_and_leaves_it():
    env = {"RACKFORM_LAUNCH_SECRET": SECRET, "PATH": "/bin"}
    assert launch.take_secret(env) == SECRET and env == {"PATH": "/bin"}
    with pytest.raises(launch.LaunchError, match="RACKFORM_LAUNCH_SECRET is not set: .* rackform submit"):
        launch.take_secret(env)
    with pytest.raises(launch.LaunchError, match="shorter than 32 characters"):
        launch.take_secret({"RACKFORM_LAUNCH_SECRET": "short"})


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
    nodes = [launch.Node(0, "10.0.1.5", "ssh-ed25519 AAAAMain"), launch.Node(1, "10.0.1.7", GOOD_KEY)]
    launch.install_client_config(setup, nodes, home=tmp_path / "home")
    config = (tmp_path / "home/.ssh/config").read_text()
    assert f"Port {launch.SSH_PORT}" in config and f"IdentityFile {setup.key}" in config


def test_ssh_checks_every_host_against_the_keys_pinned_at_the_rendezvous(tmp_path):
    setup = launch.SshSetup(tmp_path / "ssh")
    setup.directory.mkdir()
    setup.host_key.with_suffix(".pub").write_text("ssh-ed25519 AAAAMain rackform-host\n")
    nodes = [launch.Node(1, "10.0.1.7", GOOD_KEY), launch.Node(0, "10.0.1.5", setup.host_public_key())]
    launch.install_client_config(setup, nodes, home=tmp_path / "home")
    assert setup.known_hosts.read_text() == (f"[10.0.1.5]:{launch.SSH_PORT} ssh-ed25519 AAAAMain\n"
                                             f"[10.0.1.7]:{launch.SSH_PORT} {GOOD_KEY}\n")
    assert setup.known_hosts.stat().st_mode & 0o077 == 0
    options = dict(line.split(None, 1) for line in (tmp_path / "home/.ssh/config").read_text().splitlines()[1:])
    assert options["StrictHostKeyChecking"] == "yes" and options["UserKnownHostsFile"] == str(setup.known_hosts)
    assert options["GlobalKnownHostsFile"] == "/dev/null"


def test_each_multi_node_submission_gets_its_own_secret_and_no_object_holds_it(example_deployed, example_plan):
    submitter, lookup = batch_clients(None, "us-east-2")
    sent = []
    submitter.meta.events.register("provide-client-params.batch.SubmitJob", lambda params, **_: sent.append(params))
    for run in ("m1", "m2"):
        submit(example_plan, rack="trn2-train", benchmark="allreduce", run_id=run, store=example_deployed["store"],
               submitter=submitter, lookup=lookup)
    submit(example_plan, rack="gpu", benchmark="gemm", run_id="m3", store=example_deployed["store"],
           submitter=submitter, lookup=lookup)
    found = []
    for request in sent:
        overrides = request.get("nodeOverrides", {}).get("nodePropertyOverrides", [{}])[0]
        env = overrides.get("containerOverrides", request.get("containerOverrides", {}))["environment"]
        found.append({e["name"]: e["value"] for e in env}.get("RACKFORM_LAUNCH_SECRET"))
    first, second, single = found
    assert len(first) >= launch.MIN_SECRET_CHARS and first != second and single is None
    s3, bucket = example_deployed["s3"], example_deployed["store"].bucket
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
        assert first not in body and second not in body, obj["Key"]


def test_a_child_whose_main_never_answers_fails_with_the_reason(tmp_path, monkeypatch):
    bench = Benchmark("mpi-test", "test", ("cpu",), nodes=2, max_nodes=2, steps=lambda ctx: (), ssh_launch=True)
    ctx = NodeContext(tier="cpu", node_index=1, num_nodes=2, local=True, master_port=free_port(),
                      work_dir=str(tmp_path))
    monkeypatch.setenv("RACKFORM_LAUNCH_SECRET", SECRET)
    status, reason, *_ = launched(bench, ctx, 0.5, [])
    assert status == "failed" and "never answered" in reason
    assert run_steps(bench, NodeContext(tier="cpu"), 1, [])[0] == "succeeded"


def test_the_images_carry_what_the_launcher_runs():
    docker = Path(__file__).resolve().parents[2] / "workloads" / "docker"
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

    job = JobEnvironment(run_id="mpi-1", master_port=free_port(), launch_secret=launch.new_secret())
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RACKFORM_", "AWS_BATCH_"))}
    procs = [subprocess.Popen([sys.executable, str(DATA / "mpi_job.py")], env=node_environment(
        base, job, job_id="job-1", nodes=2, index=i, work_dir=tmp_path), cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    outs = [p.communicate(timeout=90)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    # One gathering, then the launch once per repeat (three by default) through the same host file: one metric each.
    assert outs[0].count("127.0.0.1 slots=2") == 1 and "mpi-probe: succeeded; 3 metrics" in outs[0]
    assert [r for r in outs[0].splitlines() if r.startswith("[repeat ")] == ["[repeat 1/3]", "[repeat 2/3]",
                                                                           "[repeat 3/3]"]
    # Rank 0's line, under Open MPI's --tag-output prefix: two ranks, 1 + 2 all-reduced.
    lines = [r for r in outs[0].splitlines() if "RACKFORM_RESULT" in r]
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
            launch.join("127.0.0.1", port, index=1, job="j", secret=SECRET, get_ready=broken_sshd, timeout_s=10)
        except launch.LaunchError as e:
            errors.append(str(e))

    t = threading.Thread(target=child)
    t.start()
    with pytest.raises(launch.LaunchError, match="node 1 could not get ready: LaunchError: sshd exited 255: Bind"):
        launch.gather(port, num_nodes=3, job="j", secret=SECRET, public_key="k", timeout_s=10, bind="127.0.0.1")
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


def test_one_address_holding_connections_cannot_take_the_childrens_slots():
    """A host on the subnet that opens more silent connections than the main node serves at once (nodes + 32) held
    every slot for as long as each read deadline, and the children were closed on arrival until the gathering
    timed out. One address now holds at most PEER_CONNECTIONS of them."""
    port = free_port()
    t, result = gathering(port, timeout_s=5, read_timeout_s=30)
    time.sleep(0.3)
    flood = []
    for _ in range(2 + 32 + 8):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))  # another address than the child's 127.0.0.1: another host on the subnet
        s.connect(("127.0.0.1", port))
        flood.append(s)
    time.sleep(0.5)  # every flooding connection accepted (or closed) before the child calls
    t_child, out = child(port, 1)
    t.join(10)
    t_child.join(10)
    for s in flood:
        s.close()
    assert "error" not in result, result
    assert [n.index for n in result["gathered"].nodes] == [0, 1]
    result["gathered"].release(0)


def test_a_message_nested_past_the_parser_is_turned_away_by_name():
    port = free_port()
    t, result = gathering(port)
    time.sleep(0.3)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"[" * 16000 + b"\n")
        s.recv(100)
    t_child, out = child(port, 1)
    t.join(10)
    t_child.join(10)
    gathered = result["gathered"]
    assert any("nested too deeply" in why for why in gathered.refused), gathered.refused
    gathered.release(0)


def test_the_launch_secret_is_out_of_the_environment_before_the_health_step(tmp_path, monkeypatch):
    """The health step runs tools (nvidia-smi, neuron-ls, fi_info) before the benchmark: they must not inherit the
    secret either, and the launch must still find it."""
    from workloads import run

    seen = []

    def health_record(ctx, **kwargs):
        seen.append(os.environ.get(launch.SECRET_VARIABLE))
        raise RuntimeError("no checks in this test")

    bench = Benchmark("mpi-test", "test", ("cpu",), nodes=2, max_nodes=2, steps=lambda ctx: (), ssh_launch=True)
    monkeypatch.setitem(BENCHMARKS, "mpi-test", bench)
    monkeypatch.setattr(run.health, "health_record", health_record)
    monkeypatch.setenv(launch.SECRET_VARIABLE, SECRET)
    ctx = NodeContext(tier="cpu", node_index=1, num_nodes=2, local=True, master_port=free_port(),
                      work_dir=str(tmp_path))
    job = run.JobIdentity(run_id="r", benchmark="mpi-test", rack="r", node_group="g", tier="cpu",
                          instance_type="c7i.large")
    record = run.run_job(job, ctx, None, timeout_s=0.5, echo=False)
    assert seen == [None]
    assert launch.SECRET_VARIABLE not in os.environ
    assert "never answered" in record.reason  # the launch had the secret: it got as far as calling the main node
