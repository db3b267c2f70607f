"""The benchmark images' Dockerfiles, read as text: nothing here builds them (the build machine has no Docker engine;
`make test` also lints them with hadolint, pinned in requirements-dev.txt, under .hadolint.yaml).

What they must get right: pinned base images, and in the GPU image the EFA steps of AWS's NGC-based samples (remove
NGC's own verbs and HPC-X first, verify the pinned installer, put the aws-ofi-nccl plugin on the loader's path).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cdk_constructs.user_data import EFA_INSTALLER_SHA256, EFA_INSTALLER_VERSION
from workloads.launch import NCCL_SOCKET_IFNAME

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "workloads" / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


def instructions(path: Path) -> list[str]:
    """The file's instructions, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            out.append(current.strip())
            current = ""
    return out


def args(path: Path) -> dict[str, str]:
    return dict(i.split(None, 1)[1].split("=", 1) for i in instructions(path) if i.startswith("ARG ") and "=" in i)


def runs(path: Path) -> list[str]:
    return [i for i in instructions(path) if i.startswith("RUN ")]


GPU = DOCKER / "gpu.Dockerfile"


def test_the_three_images_are_there():
    assert [p.name for p in DOCKERFILES] == ["cpu.Dockerfile", "gpu.Dockerfile", "neuron.Dockerfile"]


# A base that cannot move under the build: a digest, or a tag naming one release (a date, NGC's YY.MM, a Neuron SDK
# version). "latest", "3.11-slim" and the like follow whatever is pushed next.
PINNED = re.compile(r"(@sha256:[0-9a-f]{64}$)|(:.*(\d{8}|\b\d{2}\.\d{2}-py3$|sdk\d+\.\d+\.\d+))")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_pinned_from_a_known_registry(path):
    base = args(path)["BASE_IMAGE"]
    assert PINNED.search(base), f"{path.name}: {base} is not pinned by digest or by a dated/release tag"
    assert base.split("/")[0] in {"public.ecr.aws", "nvcr.io"}
    assert [i for i in instructions(path) if i.startswith("FROM ")] == ["FROM ${BASE_IMAGE}"]
    assert "docker buildx imagetools inspect" in path.read_text(), "say how to bump and pin the base"


def test_gpu_image_installs_the_hosts_efa_version_with_its_published_checksum():
    a = args(GPU)
    assert (a["EFA_INSTALLER_VERSION"], a["EFA_INSTALLER_SHA256"]) == (EFA_INSTALLER_VERSION, EFA_INSTALLER_SHA256)
    (efa,) = [r for r in runs(GPU) if "efa_installer.sh" in r]
    assert "latest" not in efa
    assert efa.index("sha256sum -c") < efa.index("tar -xf") < efa.index("./efa_installer.sh")
    # User space only: a container never loads a kernel module, and it has no EFA device to self-test on.
    assert re.search(r"\./efa_installer\.sh -y -g .*--skip-kmod", efa) and "--no-verify" in efa


NGC_VERBS = ("ibverbs-utils", "libibverbs-dev", "libibverbs1", "libmlx5-1")


def test_gpu_image_removes_ngc_verbs_and_hpcx_before_the_efa_installer():
    steps = instructions(GPU)
    installer = next(n for n, r in enumerate(steps) if "efa_installer.sh" in r)
    removal = next(n for n, r in enumerate(steps) if "apt-get remove" in r)
    hpcx = next(n for n, r in enumerate(steps) if r.startswith("RUN rm -rf /opt/hpcx/ompi"))
    assert removal < installer and hpcx < installer
    for package in NGC_VERBS:
        assert re.search(rf"\s{re.escape(package)}(\s|;|$)", steps[removal]), package
    assert "--allow-change-held-packages" in steps[removal]
    removed = steps[hpcx].split()
    assert {"/opt/hpcx/ompi", "/opt/hpcx/nccl_rdma_sharp_plugin", "/usr/local/mpi"} <= set(removed)
    assert "ldconfig" in removed
    # NGC points OPAL_PREFIX at HPC-X's Open MPI; it is cleared once that is gone, and nothing sets it again.
    opal = [(n, i) for n, i in enumerate(steps) if re.match(r"ENV .*\bOPAL_PREFIX=", i)]
    assert [i for _, i in opal] == ["ENV OPAL_PREFIX="] and hpcx < opal[0][0] < installer


def _removal(tmp_path: Path, installed: set[str], known: set[str]) -> tuple[subprocess.CompletedProcess, str]:
    """The image's removal step under sh, with dpkg-query and apt-get standing in for a base image in which
    `installed` packages are installed and `known` ones are known to apt but not installed."""
    (step,) = [r for r in runs(GPU) if "apt-get remove" in r]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "apt-get.calls"
    # As dpkg-query and apt-get answer: unknown names are an error (apt-get exits 100 and removes nothing).
    (bin_dir / "dpkg-query").write_text(f"""#!/bin/sh
for p in {' '.join(installed)}; do [ "$p" = "$3" ] && printf installed && exit 0; done
for p in {' '.join(known)}; do [ "$p" = "$3" ] && printf not-installed && exit 0; done
echo "dpkg-query: no packages found matching $3" >&2; exit 1
""")
    (bin_dir / "apt-get").write_text(f"""#!/bin/sh
echo "$*" >> {calls}
for arg in "$@"; do case "$arg" in -*|remove) ;; *) case " {' '.join(installed)} " in *" $arg "*) ;; *) exit 100;; esac;; esac; done
""")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    proc = subprocess.run(["sh", "-c", step.removeprefix("RUN ")], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)
    return proc, calls.read_text() if calls.exists() else ""


def test_gpu_image_removes_only_the_ngc_verbs_packages_the_base_has(tmp_path):
    proc, calls = _removal(tmp_path, installed={"libibverbs1", "libmlx5-1"}, known={"ibverbs-utils"})
    assert proc.returncode == 0, proc.stderr
    assert calls == "remove -y --allow-change-held-packages libibverbs1 libmlx5-1\n"


def test_gpu_image_removal_is_a_no_op_on_a_base_without_them(tmp_path):
    proc, calls = _removal(tmp_path, installed=set(), known=set())
    assert proc.returncode == 0 and calls == "", proc.stderr


def test_gpu_image_nccl_interfaces_are_the_launchers_and_exclude_awsvpc_ecs():
    (env,) = [i for i in instructions(GPU) if i.startswith("ENV ") and "NCCL_SOCKET_IFNAME=" in i]
    value = re.search(r"NCCL_SOCKET_IFNAME=(\S+)", env).group(1)
    assert value == NCCL_SOCKET_IFNAME, "mpirun -x gives ranks on other nodes the launcher's value: keep them equal"
    assert value.startswith("^") and {"lo", "docker", "ecs"} <= set(value[1:].split(","))


def test_gpu_image_puts_the_ofi_nccl_plugin_on_the_loader_path():
    (env,) = [i for i in instructions(GPU) if i.startswith("ENV ") and "LD_LIBRARY_PATH=" in i]
    path = re.search(r"LD_LIBRARY_PATH=(\S+)", env).group(1).split(":")
    # Ubuntu's multiarch directories, where the installer puts aws-ofi-nccl, and the plain one newer installers use.
    for d in ("/opt/amazon/ofi-nccl/lib/x86_64-linux-gnu", "/opt/amazon/ofi-nccl/lib/aarch64-linux-gnu",
              "/opt/amazon/ofi-nccl/lib", "/opt/amazon/efa/lib"):
        assert d in path, d
    assert path[-1] == "$LD_LIBRARY_PATH", "keep the base image's own paths (CUDA, NCCL) after ours"


def test_every_lint_exception_says_why():
    config_text = (ROOT / ".hadolint.yaml").read_text()
    config = yaml.safe_load(config_text)
    lines = config_text.splitlines()
    for rule in config["ignored"]:
        at = lines.index(f"  - {rule}")
        assert lines[at - 1].lstrip().startswith("#") and rule in "\n".join(lines[:at]), f"{rule} has no reason"
    for path in DOCKERFILES:
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if line.startswith("# hadolint ignore="):
                assert lines[n - 1].startswith("#"), f"{path.name}:{n + 1}: inline ignore without its reason above"
