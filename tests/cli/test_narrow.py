"""Issue 25 item 4: on a terminal 80 columns wide (a pseudo-terminal, as a user's shell gives) no line is longer,
no name or number is cut, names, instances, counts and prices stay while architecture and quota ids go first, and
prose folds at spaces under its label."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from rackform.jobs.local import EmbeddedAWS, without_credentials
from tests.conftest import ROOT

SPEC = "examples/demo.yaml"
COLUMNS = 80


def on_terminal(*argv: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """`rackform ARGV` on a pseudo-terminal COLUMNS wide: its exit code and the lines it showed."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    env = {**(env or os.environ), "COLUMNS": str(COLUMNS), "TERM": "xterm", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rackform", *argv], stdin=child, stdout=child, stderr=child,
                            env=env, cwd=ROOT)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    return proc.wait(timeout=60), out.decode().replace("\r\n", "\n").splitlines()


def fits(lines: list[str]) -> None:
    assert lines and all(len(line) <= COLUMNS for line in lines), max(lines, key=len)


def test_plan_keeps_names_counts_and_prices_and_leaves_out_arch_and_quota_ids():
    code, lines = on_terminal("plan", SPEC)
    assert code == 0
    fits(lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("rack/node"))
    assert all(h in lines[header] for h in ("instance", "count", "$/hour")) and "arch" not in lines[header]
    rows = {line.split()[0]: line for line in lines[header + 2:header + 16] if "/" in line.split()[0]}
    assert set(rows) == {"graviton/head", "graviton/cpu", "trainium/workers", "gpu/h100"}  # no name folded
    assert rows["trainium/workers"].split()[2:4] == ["trn1.32xlarge", "2"] and rows["gpu/h100"].endswith(" 110.08")
    footer = " ".join(line.strip() for line in lines if "left out" in line or "--wide" in line)
    assert "arch" in footer and "quota" in footer and "$/hour" not in footer
    quotas = next(i for i, line in enumerate(lines) if line.startswith("quotas   "))
    assert lines[quotas + 1].startswith(" " * 9) and "L-2C3B7624" in " ".join(lines[quotas:quotas + 3])


def test_cost_fits_with_every_price_whole():
    code, lines = on_terminal("cost", SPEC)
    assert code == 0
    fits(lines)
    text = "\n".join(lines)
    for figure in ("110.08", "80,358.40", "43.00", "31,390.00", "0.1632"):
        assert f" {figure}" in text
    total = next(i for i, line in enumerate(lines) if line.startswith("total    "))
    assert lines[total + 1].startswith(" " * 9)  # folded under its label


def test_preflight_on_the_embedded_aws_fits():
    with EmbeddedAWS("us-east-1") as aws:
        code, lines = on_terminal("preflight", SPEC, env={**without_credentials(os.environ), **aws.env})
    assert code == 1
    fits(lines)
    assert any(line.startswith("blocker  data repository") for line in lines)
    assert "Traceback" not in "\n".join(lines)
