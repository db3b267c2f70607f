"""The rehearsal's slowed node: a cgroup CPU quota where the machine allows one, a busy process beside it elsewhere;
either way the node really runs slower."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rackform.jobs import local
from rackform.jobs.local import SlowNode, slow_down
from rackform.jobs.throttle import PERIOD_US, CpuQuota

V1 = "cgroup {root}/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\ncgroup {root}/pids cgroup rw,pids 0 0\n"
V2 = "cgroup2 {root}/unified cgroup2 rw,nosuid 0 0\n"


def tree(tmp_path: Path, mounts: str, membership: str) -> tuple[str, str]:
    (tmp_path / "mounts").write_text(mounts.format(root=tmp_path))
    (tmp_path / "cgroup").write_text(membership)
    return str(tmp_path / "mounts"), str(tmp_path / "cgroup")


def test_cgroup_v1_a_quota_of_the_share_of_one_cpu_in_a_cgroup_under_this_processs_own(tmp_path):
    (tmp_path / "cpu,cpuacct" / "user" / "me").mkdir(parents=True)
    mounts, membership = tree(tmp_path, V1, "4:pids:/user/me\n3:cpu,cpuacct:/user/me\n0::/\n")
    quota = CpuQuota.make("slow-1", 0.1, mounts=mounts, membership=membership)
    assert quota is not None and quota.path == tmp_path / "cpu,cpuacct" / "user" / "me" / "slow-1"
    assert (quota.path / "cpu.cfs_quota_us").read_text() == str(PERIOD_US // 10)
    assert (quota.path / "cpu.cfs_period_us").read_text() == str(PERIOD_US)
    quota.add(1234)
    assert (quota.path / "cgroup.procs").read_text() == "1234"


def test_cgroup_v2_the_parent_hands_down_the_cpu_controller_and_cpu_max_holds_both(tmp_path):
    (tmp_path / "unified" / "box").mkdir(parents=True)
    mounts, membership = tree(tmp_path, V2, "0::/box\n")
    quota = CpuQuota.make("slow-1", 0.25, mounts=mounts, membership=membership)
    assert quota is not None and quota.path == tmp_path / "unified" / "box" / "slow-1"
    assert (tmp_path / "unified" / "box" / "cgroup.subtree_control").read_text() == "+cpu"
    assert (quota.path / "cpu.max").read_text() == f"{PERIOD_US // 4} {PERIOD_US}"


def test_cgroup_v2_a_cgroup_with_processes_cannot_hand_down_cpu_so_the_quota_goes_under_the_root(tmp_path):
    # A non-root v2 cgroup that holds processes refuses "+cpu" in its subtree_control (EBUSY); a directory where
    # that file would be fails the write here the same way.
    (tmp_path / "unified" / "user.slice" / "session.scope" / "cgroup.subtree_control").mkdir(parents=True)
    mounts, membership = tree(tmp_path, V2, "0::/user.slice/session.scope\n")
    quota = CpuQuota.make("slow-1", 0.1, mounts=mounts, membership=membership)
    assert quota is not None and quota.path == tmp_path / "unified" / "slow-1"
    assert (quota.path / "cpu.max").read_text() == f"{PERIOD_US // 10} {PERIOD_US}"


def test_where_v1_holds_the_cpu_controller_beside_v2_the_quota_is_v1s(tmp_path):
    for d in ("cpu,cpuacct", "unified"):
        (tmp_path / d).mkdir()
    mounts, membership = tree(tmp_path, V2 + V1, "3:cpu,cpuacct:/\n0::/\n")
    quota = CpuQuota.make("slow-1", 0.1, mounts=mounts, membership=membership)
    assert quota is not None and quota.path.parent == tmp_path / "cpu,cpuacct"


def test_no_quota_without_a_cpu_hierarchy_this_process_may_write(tmp_path):
    mounts, membership = tree(tmp_path, "proc /proc proc rw 0 0\n" + V1.splitlines()[1], "4:pids:/\n0::/\n")
    assert CpuQuota.make("slow-1", 0.1, mounts=mounts, membership=membership) is None
    # mounted, but its directory cannot be made (not root, no delegated subtree): none, and nothing left behind
    mounts, membership = tree(tmp_path, V1, "3:cpu,cpuacct:/not-there\n")
    assert CpuQuota.make("slow-1", 0.1, mounts=mounts, membership=membership) is None
    assert not (tmp_path / "cpu,cpuacct").exists()
    # no /proc to say where the cgroups are
    assert CpuQuota.make("slow-1", 0.1, mounts=str(tmp_path / "none"), membership=membership) is None


SPIN = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end:\n    pass\nprint(time.process_time())"


@pytest.mark.parametrize("where", ["this machine's way", "busy process"])
def test_the_slowed_process_really_runs_slower(where, monkeypatch):
    """Two processes spin for the same 2 s of wall time side by side; the slowed one gets the CPU time of about its
    share of one CPU, whichever way this machine slows it (a quota here as root; a busy process where no cgroup may
    be made), the other what the machine gives it."""
    if where == "busy process":
        monkeypatch.setattr(local.CpuQuota, "make", lambda *a, **k: None)
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN.format(s=2)], stdout=subprocess.PIPE, text=True)
                for _ in range(2)]
    slowed = slow_down(spinners[0].pid, slow := SlowNode("job", 1))
    try:
        slowed_cpu, other_cpu = (float(p.communicate(timeout=30)[0]) for p in spinners)
    finally:
        slowed.release()
    assert ("quota" in slowed.how) == (slowed.quota is not None) and ("busy" in slowed.how) == bool(slowed.busy)
    if where == "busy process":
        assert slowed.busy and all(p.poll() is not None for p in slowed.busy)  # ended with the release
    assert slowed_cpu < 1.5 * slow.share * 2 and slowed_cpu < 0.5 * other_cpu, (slowed.how, slowed_cpu, other_cpu)
    if slowed.quota is not None:
        assert not slowed.quota.path.exists()  # removed once its process had ended
