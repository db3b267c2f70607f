"""A CPU quota for one local process tree: the kernel's CFS bandwidth control, through a cgroup of its own.

The acceptance rehearsal slows one node for real. A quota does it without spending anything: the kernel runs the
node's processes (and every process they start, which stays in the cgroup) for at most `share` of one CPU in each
scheduler period and holds them off the CPU for the rest, as cpulimit's SIGSTOP/SIGCONT cycle would, but without
signals: a stopped and continued process sees some blocking calls fail with EINTR (signal(7)), which fails
fi_pingpong. cgroup v1's cpu controller takes cpu.cfs_quota_us and cpu.cfs_period_us
(https://docs.kernel.org/scheduler/sched-bwc.html), cgroup v2's takes both in cpu.max
(https://docs.kernel.org/admin-guide/cgroup-v2.html, "cpu.max"). Making a cgroup needs a writable hierarchy with
the cpu controller (root, or a delegated subtree): `CpuQuota.make` says None where there is none.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 100_000  # the kernel's default period, 100 ms


@dataclass(frozen=True)
class CpuQuota:
    """A cgroup of its own that holds its processes to a share of one CPU."""

    path: Path

    @classmethod
    def make(cls, name: str, share: float, *, mounts: str = "/proc/self/mounts",
             membership: str = "/proc/self/cgroup") -> CpuQuota | None:
        """A new cgroup `name` under this process's own (on v2, else under the root), in the hierarchy that has
        the cpu controller (v1's cpu mount, else v2's), limited to `share` of one CPU; None where this process may
        not make one (or this is no Linux that says where its cgroups are)."""
        quota = max(1000, round(share * PERIOD_US))  # the kernel refuses a quota under 1 ms (sched-bwc)
        try:
            candidates = _candidates(Path(mounts).read_text(), Path(membership).read_text())
        except OSError:
            return None
        for parent, limits in candidates:
            path = parent / name
            try:
                if "cpu.max" in limits:  # v2: the parent must hand the cpu controller down
                    (parent / "cgroup.subtree_control").write_text("+cpu")
                path.mkdir()
            except OSError:
                continue
            try:
                for file, value in limits.items():
                    (path / file).write_text(value.format(quota=quota, period=PERIOD_US))
            except OSError:
                CpuQuota(path).remove()
                continue
            return cls(path)
        return None

    def add(self, pid: int) -> None:
        """Move the process into the cgroup; the processes it starts from then on are born in it."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Remove the cgroup once its processes have ended (a cgroup with processes left stays, as the kernel
        keeps it)."""
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _candidates(mounts: str, membership: str) -> list[tuple[Path, dict[str, str]]]:
    """(a cgroup directory to make the quota's cgroup in, the files that set a quota there) in each hierarchy with
    the cpu controller: cgroup v1's cpu mount first (where both are mounted, v2 holds no cpu controller), then v2's.
    The directory is this process's own cgroup; in v2 also the hierarchy's root, the one cgroup that may hand a
    controller down while it holds processes (v2's no-internal-process rule), which only root may write."""
    own: dict[str, str] = {}  # controllers ("" for v2) -> this process's path in that hierarchy
    for line in membership.splitlines():
        _, controllers, where = line.split(":", 2)
        own[controllers] = where
    found: list[tuple[Path, dict[str, str]]] = []
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point, kind, options = fields[1], fields[2], fields[3].split(",")
        if kind == "cgroup" and "cpu" in options:
            path = next((p for c, p in own.items() if "cpu" in c.split(",")), None)
            limits = {"cpu.cfs_period_us": "{period}", "cpu.cfs_quota_us": "{quota}"}
        elif kind == "cgroup2":
            path, limits = own.get(""), {"cpu.max": "{quota} {period}"}
        else:
            continue
        if path is None:
            continue
        found.append((Path(point) / path.lstrip("/"), limits))
        if kind == "cgroup2" and path != "/":
            found.append((Path(point), limits))
    return sorted(found, key=lambda c: "cpu.max" in c[1])
