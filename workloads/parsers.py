"""Parsers for the raw output of the benchmark tools: one pure function per tool, from text to a `Parsed` record.

Every parser takes whatever the tool (and its launcher) wrote and never raises on it: output it cannot read is
`Parsed(ok=False, reason=...)` with no metrics and a reason a user can act on, never a guessed number. The policy
for partial output is the same for every table-printing tool: rows parsed but the summary footer missing (the tool
died mid-sweep) is ok=True with details["truncated"] = "true"; no rows at all is a failure.

Units are the ones `results.Metric` documents: GB/s and MB/s are decimal (10^9 and 10^6 B/s) whatever the tool
printed, so numbers from different tools compare directly.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .results import Metric, Parsed

TOOLS: tuple[str, ...] = ("nccl-tests", "nccom-test", "fio", "sysbench-cpu", "sysbench-memory", "fi_pingpong",
                          "iperf3")

GB_PER_GIB = 2**30 / 1e9  # 1.073741824


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers

_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_INT = re.compile(r"[0-9]+")
# What launchers put before each line: srun -l ("0: "), Open MPI --tag-output ("[1,0]<stdout>:"), MPICH and Intel
# MPI's mpiexec -l ("[0] "), torchrun-style wrappers ("[rank 1] "), and pdsh or a host-tagging wrapper ("node-1: ",
# see _HOST_PREFIX); also a terminal's echo of Ctrl-C ("^C"), which lands in front of what the interrupted tool
# prints next (iperf3's JSON, for one).
_LAUNCHER_PREFIX = re.compile(r"^(?:\[[0-9]+,[0-9]+\]<std(?:out|err)>:\s?|\[(?:rank ?)?[0-9]+\]\s?|[0-9]+:\s|\^C)",
                              re.A)
# A host tag looks like the tools' own "FATAL: ...", "fio: ...", "iperf3: error ..." lines, so it is stripped only
# when it starts most lines (a launcher tags every line it relays) and is not one of those words.
_HOST_PREFIX = re.compile(r"^([A-Za-z][\w.-]*):\s", re.A)
_TOOL_WORDS = frozenset({"fatal", "warning", "error", "note", "info", "debug", "fio", "iperf3", "sysbench"})


def _number(token: str) -> float | None:
    """A finite number written the way C's printf writes one; None for anything else ("N/A", "nan", "1_0")."""
    if not _NUMBER.fullmatch(token):
        return None
    value = float(token)
    return value if math.isfinite(value) else None


def _finite(value: object) -> float:
    """A finite float from a JSON value; anything else raises, which `_never_raises` reports as unreadable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _host_tag(line: str) -> re.Match[str] | None:
    m = _HOST_PREFIX.match(line)
    return m if m and m.group(1).lower() not in _TOOL_WORDS else None


def _strip_prefixes(line: str, hosts: bool) -> str:
    # Launchers nest (pdsh running mpirun), so a line can carry more than one prefix.
    for _ in range(3):
        m = _LAUNCHER_PREFIX.match(line) or (_host_tag(line) if hosts else None)
        if m is None:
            break
        line = line[m.end():]
    return line


def _unprefixed_lines(text: str) -> list[str]:
    """The output's lines without launcher prefixes; every parser reads these, whatever started the tool."""
    lines = text.splitlines()
    plain = [_strip_prefixes(line, hosts=False) for line in lines]
    nonblank = [line for line, raw in zip(plain, lines, strict=True) if raw.strip()]
    tagged = sum(1 for line in nonblank if _host_tag(line))
    if 2 * tagged <= len(nonblank):
        return plain
    return [_strip_prefixes(line, hosts=True) for line in lines]


def _unprefixed(text: str) -> str:
    return "\n".join(_unprefixed_lines(text))


_JSON_PASSES = 16
# A tool's JSON, of whatever shape it printed: the parsers index it as the tool documents it, and a shape no check
# anticipated raises, which `_never_raises` reports as unreadable output.
JsonObject = dict[str, Any]


def _json_object(text: str) -> JsonObject | None:
    """The first JSON object that starts a line: warnings may precede it and the runner appends stderr after it."""
    decoder = json.JSONDecoder()
    # A failed attempt costs up to a pass over the text (json's error counts lines from the start; a RecursionError
    # costs a thousand levels): attempts stop once they have cost _JSON_PASSES passes, so a log of many '{' lines
    # that are not JSON (a fio file whose every job holds a bare -nan) stays linear.
    budget = _JSON_PASSES * (len(text) + 1)
    for start in re.finditer(r"^[ \t]*\{", text, re.M):
        try:
            doc, _ = decoder.raw_decode(text, start.end() - 1)
        except ValueError as e:
            budget -= getattr(e, "pos", len(text))
            if budget < 0:
                return None
            continue
        except RecursionError:
            budget -= len(text) + 1
            if budget < 0:
                return None
            continue
        if isinstance(doc, dict):
            return doc
    return None


def _last_line(text: str) -> str:
    """The output's last non-blank line, quoted into failure reasons: it is usually the tool's own error."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"; output ends with: {lines[-1][:200]!r}" if lines else "; the output is empty"


def _metric(name: str, value: float, unit: str, size: int | None = None, /, **labels: str) -> Metric:
    return Metric(name=name, value=value, unit=unit, size_bytes=size, labels=labels)


def _fail(tool: str, reason: str, **details: str) -> Parsed:
    return Parsed(tool=tool, ok=False, reason=reason, details=details)


def _never_raises(tool: str) -> Callable[[Callable[[str], Parsed]], Callable[[str], Parsed]]:
    """JSON from a crashed or foreign program can have any shape; one no check anticipated is unreadable output."""

    def wrap(parser: Callable[[str], Parsed]) -> Callable[[str], Parsed]:
        @functools.wraps(parser)
        def safe(text: str) -> Parsed:
            try:
                return parser(text)
            except KeyError as e:
                return _fail(tool, f"unreadable {tool} output: it has no {e.args[0]!r} field where one belongs")
            except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError, RecursionError) as e:
                return _fail(tool, f"unreadable {tool} output ({type(e).__name__}: {e})")

        return safe

    return wrap


def _joined(values: Iterable[str]) -> str:
    return ",".join(dict.fromkeys(v for v in values if v))


# ---------------------------------------------------------------------------------------------------------------
# Collectives: nccl-tests and nccom-test


class _Sample(NamedTuple):
    """One placement of one row of a collective benchmark's table, bandwidths in the tool's own unit."""

    size: int
    placement: str
    time_us: float
    algbw: float
    busbw: float
    wrong: float | None  # wrong elements; None where the tool did not check (N/A, builds with a float error column)
    datatype: str
    redop: str = ""


def _collective_metrics(samples: list[_Sample], avg_reported: float | None, to_gb: float = 1.0,
                        **labels: str) -> list[Metric]:
    metrics = []
    for s in samples:
        metrics += [_metric("algbw", s.algbw * to_gb, "GB/s", s.size, placement=s.placement, **labels),
                    _metric("busbw", s.busbw * to_gb, "GB/s", s.size, placement=s.placement, **labels),
                    _metric("time_us", s.time_us, "us", s.size, placement=s.placement, **labels)]
    out_of_place = [s.busbw for s in samples if s.placement == "out-of-place"]
    if out_of_place:
        metrics.append(_metric("busbw_max", max(out_of_place) * to_gb, "GB/s", **labels))
    if avg_reported is not None:
        metrics.append(_metric("busbw_avg_reported", avg_reported * to_gb, "GB/s", **labels))
    return metrics


def _wrong_results(tool: str, samples: list[_Sample], details: dict[str, str]) -> Parsed | None:
    wrong = [s for s in samples if s.wrong]
    if not wrong:
        return None
    first = wrong[0]
    return _fail(tool, f"wrong results: {len(wrong)} measurement(s) with #wrong > 0, first at {first.size} B "
                 f"{first.placement} ({first.wrong:g} wrong elements)", **details)


_NCCL_TIME = ("time", "cputime")
_NCCL_WRONG = ("#wrong", "error")
_NCCL_OOB = re.compile(r"Out of bounds values\s*:\s*([0-9]+)\s+(OK|FAILED)")
_NCCL_AVG = re.compile(r"Avg bus bandwidth\s*:\s*(\S+)(?:\s+(OK|FAILED))?")
_NCCL_FAILURE = re.compile(r"Test (?:NCCL |CUDA )?failure.*")
# "#  Rank  0 Group  0 Pid ..." (older builds: "#   Rank  0 Pid ..."); a log pasted into a GitHub issue outside a
# code block loses the '#' (Markdown takes it for a heading), so it is optional and the Group/Pid word anchors it.
_NCCL_RANK = re.compile(r"^#?\s*Rank\s+([0-9]+)\s+(?:Group|Pid)\s", re.A)
_NCCL_NRANKS = re.compile(r"\bnranks ([0-9]+)\b", re.A)
_NCCL_VERSION = re.compile(r"nccl-tests version (\S+) ", re.A)
_NCCL_LIBRARY = re.compile(r"nccl-library=([0-9]+)", re.A)


def _nccl_header(line: str) -> tuple[list[str], list[dict[str, int]]] | None:
    """Column names of a results header line and, per placement, where its time/algbw/busbw/#wrong columns are."""
    tokens = line.lstrip().removeprefix("#").split()
    if tokens[:3] != ["size", "count", "type"] or "busbw" not in tokens:
        return None
    groups: list[dict[str, int]] = []
    for i, token in enumerate(tokens):
        if token in _NCCL_TIME:
            groups.append({"time": i})
        elif groups and token in ("algbw", "busbw"):
            groups[-1][token] = i
        elif groups and token in _NCCL_WRONG:
            groups[-1]["wrong"] = i
    groups = [g for g in groups if {"time", "algbw", "busbw"} <= g.keys()]
    return (tokens, groups) if groups else None


def _nccl_positions(tokens: list[str], header: list[str]) -> list[int | None] | None:
    """Where each header column's cell is among a data row's tokens (None: a blank cell), or None when the line is
    not a whole row.

    Builds before September 2022 print an empty redop cell (six blanks) for the collectives without a reduction
    (alltoall and all_gather pass "" for the op's name before NVIDIA/nccl-tests d313d20), so such a row has one
    token fewer than its header and the cells after the
    blank one sit one place to the left. A blank redop is told apart from a row cut short at its end by the cell
    where the redop belongs: a redop is a word, whereas what follows it (root, time) is a number.
    """
    if len(tokens) >= len(header):
        return list(range(len(header)))
    if len(tokens) == len(header) - 1 and "redop" in header:
        at = header.index("redop")
        if at < len(tokens) and _number(tokens[at]) is not None:
            return [i if i < at else None if i == at else i - 1 for i in range(len(header))]
    return None


def _nccl_row(tokens: list[str], header: list[str], groups: list[dict[str, int]]) -> list[_Sample]:
    """The samples of one data row, or [] when the line is not one (log noise, a row cut off by a crash)."""
    if len(tokens) < 3 or not (_INT.fullmatch(tokens[0]) and _INT.fullmatch(tokens[1])):
        return []
    where = _nccl_positions(tokens, header)
    if where is None:
        return []

    def cell(column: int) -> str:
        return "" if (at := where[column]) is None else tokens[at]

    redop = cell(header.index("redop")) if "redop" in header else ""
    samples = []
    # A header may hold one group of columns (some builds print only one placement) or two.
    for placement, cols in zip(("out-of-place", "in-place"), groups, strict=False):
        time, algbw, busbw = (_number(cell(cols[k])) for k in ("time", "algbw", "busbw"))
        if time is None or algbw is None or busbw is None:
            return []
        wrong = _number(cell(cols["wrong"])) if "wrong" in cols and header[cols["wrong"]] == "#wrong" else None
        samples.append(_Sample(int(tokens[0]), placement, time, algbw, busbw, wrong, tokens[2], redop))
    return samples


def _nccl_version(code: int) -> str:
    # NCCL_VERSION_CODE is major*10000 + minor*100 + patch since NCCL 2.9.
    return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"


def _nccl_preamble(preamble: list[str], text: str) -> dict[str, str]:
    """Collective, rank count and versions, from what nccl-tests (and NCCL_DEBUG=INFO) print before the table."""
    details = {}
    joined = "\n".join(preamble)
    # Recent builds (2.17) name their binary; older logs show it only in a launcher's command echo, which may lie.
    if m := re.search(r"Collective test starting: (\w+?)_perf\b", joined):
        details["collective"] = m.group(1)
    ranks = {int(m.group(1)) for line in preamble if (m := _NCCL_RANK.match(line))}
    nranks = [int(n) for n in _NCCL_NRANKS.findall(text)]
    if ranks or nranks:
        details["ranks"] = str(len(ranks) or max(nranks))
    # Line by line, the library searched for after the version: one regex `version (\S+) .*nccl-library=` rescans
    # the rest of the line from every "nccl-tests version", which is quadratic on a long line.
    for line in preamble:
        if "nccl-library=" in line and (v := _NCCL_VERSION.search(line)) and \
                (lib := _NCCL_LIBRARY.search(line, v.end())):
            details |= {"nccl_tests_version": v.group(1), "nccl_version": _nccl_version(int(lib.group(1)))}
            break
    return details


@_never_raises("nccl-tests")
def parse_nccl_tests(text: str) -> Parsed:
    """nccl-tests (all_reduce_perf and friends): its stdout, or the JSON file it writes with -J.

    Reads the table by its header line, so builds with a #wrong or a float `error` column, with or without redop and
    root columns, and with per-iteration columns all work; lines may carry launcher prefixes. Fails when #wrong > 0
    on any row, when the footer says "Out of bounds values : N FAILED", or when the output holds more than one
    run. A float `error` column (builds before 2022) is a numeric tolerance, not a verdict: those builds are judged
    by the Out of bounds footer alone.
    """
    lines = _unprefixed_lines(text)
    doc = _json_object("\n".join(lines))
    if doc is not None and "results" in doc:
        return _nccl_json(doc)
    headers = [(i, h) for i, line in enumerate(lines) if (h := _nccl_header(line)) is not None]
    details = _nccl_preamble(lines[:headers[0][0]] if headers else lines, text)
    failure = next((m.group(0).strip() for line in lines if (m := _NCCL_FAILURE.search(line))), "")
    if failure:
        details["failure"] = failure
    if not headers:
        if failure:
            return _fail("nccl-tests", f"nccl-tests stopped before printing results: {failure}", **details)
        return _fail("nccl-tests", "no nccl-tests results table found (is this all_reduce_perf output?)"
                     + _last_line(text), **details)
    if len(headers) > 1:
        return _fail("nccl-tests", f"{len(headers)} nccl-tests result tables in one output, expected one: "
                     "nccl-tests built without MPI=1 and started by mpirun runs one independent test per process",
                     **details)
    start, (header, groups) = headers[0]
    samples = [s for line in lines[start + 1:] for s in _nccl_row(line.split(), header, groups)]
    details |= {k: v for k, v in (("datatype", _joined(s.datatype for s in samples)),
                                  ("redop", _joined(s.redop for s in samples))) if v}

    if not samples:
        return _fail("nccl-tests", "nccl-tests printed its table header but no result rows"
                     + (f": {failure}" if failure else _last_line(text)), **details)
    if wrong := _wrong_results("nccl-tests", samples, details):
        return wrong
    oob = next((m for line in lines if (m := _NCCL_OOB.search(line))), None)
    if oob and oob.group(2) == "FAILED":
        return _fail("nccl-tests", f"nccl-tests found {oob.group(1)} out-of-bounds values: the results are wrong",
                     **details)
    avg = next((m for line in lines if (m := _NCCL_AVG.search(line))), None)
    if avg and avg.group(2) == "FAILED":
        return _fail("nccl-tests", f"average bus bandwidth {avg.group(1)} GB/s is below the minimum nccl-tests was "
                     "asked to check", **details)
    if avg is None:
        details["truncated"] = "true"
    return Parsed(tool="nccl-tests", ok=True, details=details,
                  metrics=tuple(_collective_metrics(samples, _number(avg.group(1)) if avg else None)))


def _nccl_json(doc: JsonObject) -> Parsed:
    """The -J file, as nccl-tests' src/util.cu writes it (JSON_FILE_VERSION 2)."""
    samples = []
    for row in doc["results"]:
        for placement, key in (("out-of-place", "out_of_place"), ("in-place", "in_place")):
            if (body := row.get(key)) is None:  # trace replay writes no out-of-place result
                continue
            wrong = body.get("nwrong")
            samples.append(_Sample(int(_finite(row["size"])), placement,
                                   _finite(body["time"] if "time" in body else body["cpu_time"]),
                                   _finite(body["alg_bw"]), _finite(body["bus_bw"]),
                                   None if wrong is None else _finite(wrong), str(row["type"]),
                                   str(row.get("redop", ""))))
    details = {"json": "true", "datatype": _joined(s.datatype for s in samples),
               "redop": _joined(s.redop for s in samples)}
    config = doc.get("config") or {}
    if args := doc.get("args"):
        if m := re.search(r"(?<!\w)(\w+?)_perf\Z", str(args[0])):  # from word starts only: linear
            details["collective"] = m.group(1)
    if devices := config.get("devices"):
        # One entry per process (only each process's first device line is parsed), each driving nthreads x ngpus.
        details["ranks"] = str(len(devices) * int(config.get("nthreads", 1)) * int(config.get("ngpus", 1)))
    if isinstance(version := doc.get("nccl_version"), int):
        details["nccl_version"] = _nccl_version(version)
    details = {k: v for k, v in details.items() if v}
    if not samples:
        return _fail("nccl-tests", "nccl-tests JSON has no result rows", **details)
    if wrong := _wrong_results("nccl-tests", samples, details):
        return wrong
    oob = doc.get("out_of_bounds") or {}
    if int(oob.get("count", 0)) > 0:
        return _fail("nccl-tests", f"nccl-tests found {oob['count']} out-of-bounds values: the results are wrong",
                     **details)
    avg = doc.get("average_bus_bandwidth")
    if avg is None:
        details["truncated"] = "true"
    elif avg.get("okay") in (False, "false"):  # util.cu writes booleans as strings
        return _fail("nccl-tests", f"average bus bandwidth {avg['bandwidth']} GB/s is below the minimum nccl-tests "
                     "was asked to check", **details)
    return Parsed(tool="nccl-tests", ok=True, details=details,
                  metrics=tuple(_collective_metrics(samples, _finite(avg["bandwidth"]) if avg else None)))


# (?<![0-9]): a match starts only where a run of digits does; otherwise every digit of a long run starts a scan of
# the rest of it, which is quadratic (a 32 KB line of digits took seconds).
_NCCOM_FAILED = re.compile(r"(?<![0-9])([0-9]+) errors? found - test failed")
_NCCOM_AVG = re.compile(r"Avg bus bandwidth:\s*([0-9.]+)\s*GB/s")
_NCCOM_OPS = {"allr": "all_reduce", "allg": "all_gather", "redsct": "reduce_scatter"}
_NCCOM_OP_NAMES = {"all_reduce", "all_gather", "reduce_scatter", "sendrecv", "alltoall", "alltoallv", "permute"}


def _nccom_time_key(columns: Iterable[str]) -> str | None:
    times = [c for c in columns if c.startswith("time")]
    return next((c for c in times if c == "time:avg(us)"), times[0] if times else None)


def _nccom_unit(samples: list[_Sample], time_key: str) -> float:
    """GB per unit nccom-test printed: GB_PER_GIB if it printed GiB/s, 1.0 if decimal GB/s.

    The Neuron guide defines algbw as size / time in GiB/s, and tables from releases printing a `time(us)` column
    agree (1073741824 B in 41806 us is printed 23.92); tables from releases printing `time:avg(us)` are decimal
    (524288 B in 14.83 us is printed 35.34). So recompute size / time on the row with the most significant digits
    and see which unit the printed algbw matches; fall back on the header when rounding leaves it undecided.
    """
    best = max(samples, key=lambda s: s.algbw)
    if best.algbw > 0 and best.time_us > 0:
        ratio = best.size / best.time_us / 1e3 / best.algbw
        for unit in (GB_PER_GIB, 1.0):
            if abs(ratio / unit - 1) < 0.03:
                return unit
    return GB_PER_GIB if time_key == "time(us)" else 1.0


def _nccom_command(lines: list[str]) -> dict[str, str]:
    """Collective and ranks from an echoed `nccom-test ...` command line, when the log has one."""
    for line in lines:
        if (i := line.find("nccom-test ")) < 0:
            continue
        tokens, found = line[i:].split()[1:], {}
        for j, token in enumerate(tokens):
            op = _NCCOM_OPS.get(token, token)
            if op in _NCCOM_OP_NAMES and "collective" not in found:
                found["collective"] = op
            elif token in ("-r", "--nworkers") and j + 1 < len(tokens) and _INT.fullmatch(tokens[j + 1]):
                found["ranks"] = tokens[j + 1]
            elif token.startswith("--nworkers=") and _INT.fullmatch(token.partition("=")[2]):
                found["ranks"] = token.partition("=")[2]
        return found
    return {}


def _nccom_samples(rows: Iterable[JsonObject], time_key: str, number: Callable[[Any], float]) -> list[_Sample]:
    return [_Sample(int(number(r["size(B)"])), "out-of-place", number(r[time_key]), number(r["algbw(GB/s)"]),
                    number(r["busbw(GB/s)"]), None, str(r.get("type", ""))) for r in rows]


def _nccom_parsed(tables: list[tuple[list[_Sample], float | None]], time_key: str, details: dict[str, str],
                  truncated: bool) -> Parsed:
    """One table per stream: with several (--streams-json), every metric is labelled with its stream (0, 1, ...) and
    each stream keeps its own busbw_max and average, never merged: the streams ran different operations at once."""
    samples = [s for table, _ in tables for s in table]
    unit = _nccom_unit(samples, time_key)
    details = details | {"datatype": _joined(s.datatype for s in samples),
                         "nccom_unit": "GiB/s" if unit == GB_PER_GIB else "GB/s"}
    if len(tables) > 1:
        # Each stream's operation comes from the streams JSON file, which the output does not echo.
        details = {k: v for k, v in details.items() if k != "collective"} | {"streams": str(len(tables))}
    if truncated:
        details["truncated"] = "true"
    metrics = [m for i, (table, avg) in enumerate(tables)
               for m in _collective_metrics(table, avg, unit, **({"stream": str(i)} if len(tables) > 1 else {}))]
    return Parsed(tool="nccom-test", ok=True, details={k: v for k, v in details.items() if v}, metrics=tuple(metrics))


def _nccom_rows(lines: list[str], columns: list[str], time_key: str) -> list[dict[str, str]]:
    rows = []
    for line in lines:
        tokens = line.split()
        row = dict(zip(columns, tokens, strict=False))  # a row of another length is skipped just below
        if len(tokens) != len(columns) or not _INT.fullmatch(row["size(B)"]):
            continue
        if all(_number(row[c]) is not None for c in (time_key, "algbw(GB/s)", "busbw(GB/s)")):
            rows.append(row)
    return rows


@_never_raises("nccom-test")
def parse_nccom_test(text: str) -> Parsed:
    """nccom-test (Neuron): its table, or the `--report-to-json-file` JSON ({"results": [...]}).

    One placement, reported as out-of-place. Its GB/s are converted to decimal GB/s: see `_nccom_unit` for why the
    unit is read from the numbers rather than assumed. "N errors found - test failed" is a failure. With
    `--streams-json` it prints one table and one "Avg bus bandwidth" per stream: see `_nccom_parsed`.
    """
    lines = _unprefixed_lines(text)
    details = _nccom_command(lines)
    doc = _json_object("\n".join(lines))
    if doc is not None and "results" in doc:
        rows = doc["results"]
        time_key = _nccom_time_key(rows[0]) if rows else None
        if time_key is None:
            return _fail("nccom-test", "nccom-test JSON has no result rows with a time column")
        return _nccom_parsed([(_nccom_samples(rows, time_key, _finite), None)], time_key, details | {"json": "true"},
                             truncated=False)

    if m := next((m for line in lines if (m := _NCCOM_FAILED.search(line))), None):
        log = next((line.split("log file", 1)[1].strip() for line in lines if "log file" in line), "")
        return _fail("nccom-test", f"nccom-test: {m.group(0)}" + (f" (neuron-bench log: {log})" if log else ""),
                     **details)
    headers = [i for i, line in enumerate(lines) if "size(B)" in line and "busbw(GB/s)" in line]
    if not headers:
        return _fail("nccom-test", "no nccom-test results table found" + _last_line(text), **details)
    tables = []
    time_key = ""  # the last table's, which names the time metric of all (set by the first pass: headers is not empty)
    for n, start in enumerate(headers):
        columns = lines[start].split()
        key = _nccom_time_key(columns)
        if key is None or not {"size(B)", "algbw(GB/s)"} <= set(columns):
            return _fail("nccom-test", f"nccom-test table header without size, time and algbw columns: "
                         f"{lines[start].strip()!r}", **details)
        time_key = key
        body = lines[start + 1:headers[n + 1] if n + 1 < len(headers) else len(lines)]
        rows = _nccom_rows(body, columns, time_key)
        if not rows:
            which = f"stream {n}'s table header" if len(headers) > 1 else "its table header"
            return _fail("nccom-test", f"nccom-test printed {which} but no result rows" + _last_line(text), **details)
        avg = next((_number(m.group(1)) for line in body if (m := _NCCOM_AVG.search(line))), None)
        tables.append((_nccom_samples(rows, time_key, float), avg))
    return _nccom_parsed(tables, time_key, details, truncated=any(avg is None for _, avg in tables))


# ---------------------------------------------------------------------------------------------------------------
# fio


def _percentile(latency: JsonObject, pct: float) -> float | None:
    """fio's percentile map is keyed by strings like "99.000000"."""
    for key, value in (latency.get("percentile") or {}).items():
        if _number(key) == pct:
            return _finite(value)
    return None


def _fio_measured(latency: JsonObject) -> bool:
    """Whether fio timed any I/O into this latency block. With gtod_reduce=1 (or disable_lat, disable_clat) it
    times none and still writes the block, as zeros: fio 3 with "N": 0, fio 2 (no N) with a max of 0."""
    return _finite(latency["N"]) > 0 if "N" in latency else _finite(latency.get("max", 0)) > 0


def _fio_latency(stats: JsonObject) -> tuple[JsonObject, float]:
    """The latency block to report and its units per microsecond: completion latency, or total latency where only
    that carries percentiles (--lat_percentiles). fio 3 writes nanoseconds (clat_ns), fio 2 microseconds (clat).
    A block fio timed nothing into is no block: its zeros are not a latency."""
    for clat, lat, per_us in (("clat_ns", "lat_ns", 1e3), ("clat", "lat", 1.0)):
        if clat in stats or lat in stats:
            block = (stats.get(clat) if "percentile" in (stats.get(clat) or {}) else stats.get(lat)) or {}
            return (block if _fio_measured(block) else {}), per_us
    return {}, 1.0


def _fio_direction(direction: str, stats: list[JsonObject], labels: dict[str, str]) -> list[Metric]:
    # fio 3 writes bw_bytes (B/s); fio 2 only bw, in KiB/s (fio 3 still writes bw, as bw_bytes / 1024).
    if all("bw_bytes" in s for s in stats):
        bandwidth = sum(_finite(s["bw_bytes"]) for s in stats)
    else:
        bandwidth = sum(_finite(s["bw"]) for s in stats) * 1024
    metrics = [_metric(f"{direction}_bw", bandwidth / 1e6, "MB/s", **labels),
               _metric(f"{direction}_iops", sum(_finite(s["iops"]) for s in stats), "IOPS", **labels)]
    latencies = [_fio_latency(s) for s in stats]
    for pct in (50.0, 99.0):
        values = [v / per_us for lat, per_us in latencies if (v := _percentile(lat, pct)) is not None]
        if values:
            metrics.append(_metric(f"{direction}_lat_p{pct:.0f}_us", max(values), "us", **labels))
    ios = [_finite(s.get("total_ios", 0)) for s in stats]
    if sum(ios) > 0 and all("mean" in lat for lat, _ in latencies):
        weighted = zip(latencies, ios, strict=True)
        mean = sum(_finite(lat["mean"]) / per_us * n for (lat, per_us), n in weighted) / sum(ios)
        metrics.append(_metric(f"{direction}_lat_mean_us", mean, "us", **labels))
    return metrics


@_never_raises("fio")
def parse_fio(text: str) -> Parsed:
    """fio --output-format=json (fio 3: bw_bytes and *_ns latencies; fio 2: bw in KiB/s and microseconds), with
    anything before or after the JSON.

    Jobs of one reporting group run together: per direction that moved data, bandwidth and IOPS are summed over its
    jobs (a run without --group_reporting lists each job), p50 and p99 are the worst job's (the slowest job bounds
    the workload), mean latency is weighted by each job's completed I/Os. Groups (stonewall, new_group) run one after
    another, so they are never summed: with more than one, every metric carries labels group (the groupid) and job
    (the group's first job name). Latency is completion latency, or total latency where only that carries
    percentiles (--lat_percentiles).
    """
    doc = _json_object(_unprefixed(text))
    if doc is None:
        return _fail("fio", "no fio JSON found (was fio run with --output-format=json?)" + _last_line(text))
    jobs = doc.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        return _fail("fio", "fio JSON has no jobs")
    names = _joined(str(job.get("jobname", "")) for job in jobs)
    groups: dict[str, list[JsonObject]] = {}
    for job in jobs:
        groups.setdefault(str(job.get("groupid", 0)), []).append(job)
    details = {"fio_version": str(doc.get("fio version", "")), "jobs": names,
               "groups": str(len(groups)) if len(groups) > 1 else ""}
    details = {k: v for k, v in details.items() if v}
    # fio says what went wrong only in its "fio: ..." lines; the JSON holds just an errno, or nothing.
    said = m.group(0) if (m := re.search(r"^fio: .*$", text, re.M)) else ""
    if failed := next((job for job in jobs if job.get("error")), None):
        return _fail("fio", f"fio job {failed.get('jobname')!r} failed with error {failed['error']}"
                     + (f" ({said})" if said else ""), **details)
    metrics = []
    for group, members in groups.items():
        labels = {"group": group, "job": str(members[0].get("jobname", ""))} if len(groups) > 1 else {}
        for direction in ("read", "write"):
            stats = [job[direction] for job in members if (job.get(direction) or {}).get("io_bytes", 0) > 0]
            if stats:
                metrics += _fio_direction(direction, stats, labels)
    if not metrics:
        return _fail("fio", "fio moved no data: every job read and wrote 0 bytes" + (f" ({said})" if said else ""),
                     **details)
    return Parsed(tool="fio", ok=True, metrics=tuple(metrics), details=details)


# ---------------------------------------------------------------------------------------------------------------
# sysbench (0.4, 0.5, 1.0, 1.1)


def _sysbench_details(text: str) -> dict[str, str]:
    details = {}
    if m := re.search(r"^sysbench ([0-9][^\s:]*)", text, re.M):  # "sysbench 1.0.20 (using ...", "sysbench 0.4.12:  ..."
        details["version"] = m.group(1)
    if m := re.search(r"Number of threads:\s*([0-9]+)", text):
        details["threads"] = m.group(1)
    return details


def _sysbench_latency(text: str) -> list[Metric]:
    """The "Latency (ms):" block: avg and the percentile line (95th unless --percentile changed it)."""
    # Indentation, then a non-blank: two quantifiers over the same blanks (`[ \t]+.*`, `[ \t]*[\w ]+?`) would try
    # every split of a long run of blanks, quadratic in the line (a 32 KB line took 11 s).
    block = re.search(r"^Latency \(ms\):\n((?:[ \t]+[^ \t\n].*:[ \t]*[0-9.]+\n?)+)", text, re.M)
    if block is None:
        return []
    metrics = []
    for name, value in re.findall(r"^[ \t]*(\w[\w ]*?):[ \t]*([0-9.]+)[ \t]*$", block.group(1), re.M):
        if (number := _number(value)) is not None and (m := _latency(name, number, r"([0-9]+)th percentile")):
            metrics.append(m)
    return metrics


def _latency(name: str, number: float, percentile: str) -> Metric | None:
    """A latency line of either sysbench wording: `avg`, or the percentile `percentile` matches (group 1: N)."""
    if name == "avg":
        return _metric("latency_avg_ms", number, "ms")
    if m := re.fullmatch(percentile, name):
        return _metric(f"latency_p{m.group(1)}_ms", number, "ms")
    return None


def _sysbench_request_stats(text: str) -> list[Metric]:
    """sysbench 0.4's "per-request statistics:" block: "avg: 4.61ms", "approx.  95 percentile: 4.65ms"."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "per-request statistics:"), None)
    metrics = []
    for line in lines[start + 1:] if start is not None else []:
        name, colon, value = line.strip().partition(":")
        number = _number(value.strip().removesuffix("ms"))
        if not colon or number is None:
            break
        if m := _latency(name, number, r"approx\. +([0-9]+) percentile"):
            metrics.append(m)
    return metrics


# What tells a run's test apart, in 1.x and in 0.4 wording.
_SYSBENCH_MARKERS = {
    "cpu": ("Prime numbers limit", "CPU speed:", "Doing CPU performance benchmark", "Maximum prime number checked"),
    "memory": ("Running memory speed test", "Doing memory operations speed test", "MiB transferred (",
               "MB transferred ("),
}


def _sysbench_runs(text: str) -> list[str]:
    """The output cut into one text per sysbench run: a run starts at the banner ("sysbench 1.0.20 (using ...",
    "sysbench 0.4.12:  multi-threaded ...") or, where banners were cut off, at a second "Running the test with
    following options"."""
    runs: list[list[str]] = [[]]
    options = False
    for line in _unprefixed_lines(text):
        starts_options = line.startswith("Running the test with following options")
        if runs[-1] and (re.match(r"sysbench [0-9]", line) or (starts_options and options)):
            runs.append([])
            options = False
        runs[-1].append(line)
        options = options or starts_options
    return ["\n".join(run) for run in runs]


def _sysbench_run(text: str, test: str, tool: str) -> tuple[str, Parsed | None]:
    """The one run of `test` in a log that may hold several sysbench tests, so that the figure and its details
    (threads, block size) come from the same run; a log with several runs of `test` is refused, not guessed at."""
    runs = _sysbench_runs(text)
    mine = [run for run in runs if any(marker in run for marker in _SYSBENCH_MARKERS[test])]
    if len(mine) > 1:
        threads = ", ".join(f"threads={_sysbench_details(run).get('threads', '?')}" for run in mine)
        return "", _fail(tool, f"{len(mine)} sysbench {test} runs in one output ({threads}): give the parser one run "
                         "at a time")
    # No run of this test: the whole output goes to the caller, whose checks say what is missing (or FATAL).
    return (mine[0] if mine else "\n".join(runs)), None


def _sysbench_fatal(text: str, tool: str) -> Parsed | None:
    if m := re.search(r"^FATAL: (.*)$", text, re.M):
        return _fail(tool, f"sysbench failed: {m.group(1).strip()}", **_sysbench_details(text))
    return None


@_never_raises("sysbench-cpu")
def parse_sysbench_cpu(text: str) -> Parsed:
    """`sysbench cpu run` (1.0 "General statistics:", 1.1 "Throughput:") or `sysbench --test=cpu run` (0.4, 0.5).

    events_per_second is the "events per second:" line, else 1.1's "events/s (eps):"; builds that print neither
    (0.4, 0.5 and 1.0.7) get total events / total time, and details["events_per_second"] says so. In a log of
    several sysbench tests, everything comes from the cpu run.
    """
    text, several = _sysbench_run(text, "cpu", "sysbench-cpu")
    if several:
        return several
    if fatal := _sysbench_fatal(text, "sysbench-cpu"):
        return fatal
    details = _sysbench_details(text)
    if not any(marker in text for marker in _SYSBENCH_MARKERS["cpu"]):
        return _fail("sysbench-cpu", "not `sysbench cpu` output: no 'Prime numbers limit' line" + _last_line(text),
                     **details)
    eps = re.search(r"events per second:\s*([0-9.]+)", text) or re.search(r"events/s \(eps\):\s*([0-9.]+)", text)
    value = _number(eps.group(1)) if eps else None
    if value is None:
        events = re.search(r"total number of events:\s*([0-9]+)", text)
        seconds = re.search(r"(?:total time|time elapsed):\s*([0-9.]+)s", text)
        elapsed = _number(seconds.group(1)) if seconds else None
        if events is None or not elapsed:
            return _fail("sysbench-cpu", "no sysbench cpu result (no 'events per second' line and no total events "
                         "and time): the run did not finish?" + _last_line(text), **details)
        value = int(events.group(1)) / elapsed
        details["events_per_second"] = "total number of events / total time (this sysbench does not print it)"
    metrics = [_metric("events_per_second", value, "events/s"), *_sysbench_latency(text),
               *_sysbench_request_stats(text)]
    return Parsed(tool="sysbench-cpu", ok=True, metrics=tuple(metrics), details=details)


@_never_raises("sysbench-memory")
def parse_sysbench_memory(text: str) -> Parsed:
    """`sysbench memory run`: MiB/s from "N MiB transferred (X MiB/sec)", ops/s from "Total operations".

    sysbench 0.4 prints "N MB transferred (X MB/sec)" and "Operations performed: N (X ops/sec)"; its MB are MiB (it
    divides by 1024 * 1024). In a log of several sysbench tests, everything comes from the memory run.
    """
    text, several = _sysbench_run(text, "memory", "sysbench-memory")
    if several:
        return several
    if fatal := _sysbench_fatal(text, "sysbench-memory"):
        return fatal
    details = _sysbench_details(text)
    for key, old_key in (("block size", "Memory block size"), ("total size", "Memory transfer size"),
                         ("operation", "Memory operations type"), ("scope", "Memory scope type")):
        if m := re.search(rf"^[ \t]*(?:{key}|{old_key}):[ \t]*(\S+)", text, re.M):
            details[key.replace(" ", "_")] = m.group(1)
    # (?<![0-9.]): see _NCCOM_FAILED.
    transfer = re.search(r"(?<![0-9.])([0-9.]+) (?:MiB|MB) transferred \(([0-9.]+) (?:MiB|MB)/sec\)", text)
    rate = _number(transfer.group(2)) if transfer else None
    if rate is None:
        return _fail("sysbench-memory", "no 'MiB transferred (X MiB/sec)' line: not a finished `sysbench memory` "
                     "run" + _last_line(text), **details)
    metrics = [_metric("transfer_mib_per_s", rate, "MiB/s")]
    if (m := re.search(r"(?:Total operations|Operations performed):[ \t]*[0-9]+[ \t]*\([ \t]*([0-9.]+) "
                       r"(?:per second|ops/sec)\)", text)) and \
            (ops := _number(m.group(1))) is not None:
        metrics.append(_metric("ops_per_second", ops, "ops/s"))
    return Parsed(tool="sysbench-memory", ok=True, metrics=tuple(metrics), details=details)


# ---------------------------------------------------------------------------------------------------------------
# fi_pingpong (libfabric fabtests)

# fabtests' size_str: powers of 1024 with a one-digit fraction below 10 ("1.5k" is 1536).
_PINGPONG_SIZE = re.compile(r"([0-9]+(?:\.[0-9])?)([kmg]?)")
_PINGPONG_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}
_PINGPONG_COMMAND = re.compile(r"fi_pingpong\b")
_PINGPONG_PROVIDER = re.compile(r"\s-p\s+(\S+)")


@_never_raises("fi_pingpong")
def parse_fi_pingpong(text: str) -> Parsed:
    """fi_pingpong's table: `bytes #sent #ack total time MB/sec usec/xfer Mxfers/sec`.

    Sizes use binary suffixes; MB/sec is bytes per microsecond (10^6 B/s) and usec/xfer is one-way latency. Columns
    are read by their header, so a table cut after MB/sec (as some guides paste it) still gives its bandwidth, and no
    latency rather than a guessed one.
    Only the first table is read: wrappers like efa_test.sh print the server's and then the client's table of the
    same exchange (details["tables"] counts them). A #ack not prefixed "=" (replies lost or extra) is listed in
    details["ack_mismatch"].
    """
    lines = _unprefixed_lines(text)
    headers = [i for i, line in enumerate(lines) if line.split()[:1] == ["bytes"] and "MB/sec" in line.split()]
    error = next((m.group(0).strip() for line in lines if (m := re.search(r"\[error\].*", line))), "")
    if not headers:
        if error:
            return _fail("fi_pingpong", f"fi_pingpong failed: {error}")
        return _fail("fi_pingpong", "no fi_pingpong results table found" + _last_line(text))
    columns = lines[headers[0]].split()
    if "#ack" not in columns:
        return _fail("fi_pingpong", f"fi_pingpong header without an #ack column: {lines[headers[0]].strip()!r}")
    end = headers[1] if len(headers) > 1 else len(lines)
    details = {"tables": str(len(headers))} if len(headers) > 1 else {}
    if error:  # it prints no footer, so an error after some rows is the only sign the sweep stopped early
        details["error"] = error
    # The -p option is looked for after "fi_pingpong" line by line, for the reason given in _nccl_preamble.
    if m := re.search(r"prov_name:\s*(\S+)", text) or next(
            (p for line in lines if "fi_pingpong" in line and (f := _PINGPONG_COMMAND.search(line)) and
             (p := _PINGPONG_PROVIDER.search(line, f.end()))), None):
        details["provider"] = m.group(1).strip("\"'")  # a shell-quoted -p "tcp;ofi_rxm"
    metrics, mismatched = [], []
    for line in lines[headers[0] + 1:end]:
        row = dict(zip(columns, tokens := line.split(), strict=False))  # a row of another length is skipped below
        size = _PINGPONG_SIZE.fullmatch(row.get("bytes", ""))
        bandwidth, latency = _number(row.get("MB/sec", "")), _number(row.get("usec/xfer", ""))
        if len(tokens) != len(columns) or size is None or bandwidth is None or \
                (latency is None and "usec/xfer" in columns):
            continue
        size_bytes = round(float(size.group(1)) * _PINGPONG_UNITS[size.group(2)])
        if not row["#ack"].startswith("="):
            mismatched.append(f"{size_bytes}:{row['#sent']}/{row['#ack']}")
        metrics.append(_metric("bandwidth", bandwidth, "MB/s", size_bytes))
        if latency is not None:
            metrics.append(_metric("latency_us", latency, "us", size_bytes))
    if not metrics:
        return _fail("fi_pingpong", "fi_pingpong printed its table header but no result rows" + _last_line(text),
                     **details)
    if mismatched:
        details["ack_mismatch"] = ",".join(mismatched)
    latencies = [m.value for m in metrics if m.name == "latency_us"]
    metrics.append(_metric("bandwidth_max", max(m.value for m in metrics if m.name == "bandwidth"), "MB/s"))
    if latencies:
        metrics.append(_metric("latency_min_us", min(latencies), "us"))
    return Parsed(tool="fi_pingpong", ok=True, metrics=tuple(metrics), details=details)


# ---------------------------------------------------------------------------------------------------------------
# iperf3


@_never_raises("iperf3")
def parse_iperf3(text: str) -> Parsed:
    """iperf3 -J: received and sent Gbit/s (10^9 bit/s), TCP retransmits, UDP lost_percent.

    A top-level "error" is a failure, and so is a receiver that measured nothing (0 bytes received): that is a
    broken test, not a bandwidth of 0. iperf3 before 3.2 summarised UDP in end.sum only (the sender's bytes with the
    receiver's loss and jitter), which is read as the received figure and said so in details["bandwidth_gbps"].
    """
    doc = _json_object(_unprefixed(text))
    if doc is None:
        return _fail("iperf3", "no iperf3 JSON found (was iperf3 run with -J?)" + _last_line(text))
    start = doc.get("start") or {}
    test = start.get("test_start") or {}
    details = {"version": str(start.get("version", "")), "protocol": str(test.get("protocol", "")),
               "streams": str(test.get("num_streams", "")), "duration_s": str(test.get("duration", "")),
               "reverse": "true" if test.get("reverse") else ""}
    # The server's own JSON (iperf3 -s -J; a client's names connecting_to instead) writes the direction it did not
    # see as zeros: sum_sent when the client sent, sum_received under --reverse (esnet/iperf#1410).
    server = "accepted_connection" in start
    details = {k: v for k, v in details.items() if v} | ({"side": "server"} if server else {})
    if "error" in doc:
        return _fail("iperf3", f"iperf3 failed: {doc['error']}", **details)
    end = doc.get("end") or {}
    received = end.get("sum_received")
    if received is None and test.get("protocol") == "UDP" and "sum" in end:
        received = end["sum"]
        details["bandwidth_gbps"] = "end.sum: this iperf3 reports UDP as the sender's rate with the receiver's loss"
    if received is None:
        return _fail("iperf3", "iperf3 JSON without end.sum_received: the test did not finish", **details)
    if _finite(received.get("bytes", 0)) <= 0 or _finite(received["bits_per_second"]) <= 0:
        if server and test.get("reverse"):
            return _fail("iperf3", "the server's JSON of a --reverse test holds no received figure (the server sent): "
                         "read the client's -J output", **details)
        sent = (end.get("sum_sent") or {}).get("bytes")
        return _fail("iperf3", f"iperf3's receiver measured nothing: 0 bytes received in "
                     f"{_finite(received.get('seconds', 0)):g} s" + (f" ({sent} bytes sent)" if sent else ""),
                     **details)
    metrics = [_metric("bandwidth_gbps", _finite(received["bits_per_second"]) / 1e9, "Gbit/s")]
    # A sender that sent 0 bytes (the server's zeros, above) is a figure this side did not see, not a rate of 0.
    sent = end.get("sum_sent") or {}
    if "bits_per_second" in sent and _finite(sent.get("bytes", 1)) > 0:
        metrics.append(_metric("sent_gbps", _finite(sent["bits_per_second"]) / 1e9, "Gbit/s"))
        if "retransmits" in sent:
            metrics.append(_metric("retransmits", _finite(sent["retransmits"]), "count"))
    if "lost_percent" in received:
        metrics.append(_metric("lost_percent", _finite(received["lost_percent"]), "%"))
    return Parsed(tool="iperf3", ok=True, metrics=tuple(metrics), details=details)


# ---------------------------------------------------------------------------------------------------------------

_PARSERS: dict[str, Callable[[str], Parsed]] = {
    "nccl-tests": parse_nccl_tests,
    "nccom-test": parse_nccom_test,
    "fio": parse_fio,
    "sysbench-cpu": parse_sysbench_cpu,
    "sysbench-memory": parse_sysbench_memory,
    "fi_pingpong": parse_fi_pingpong,
    "iperf3": parse_iperf3,
}


def parse(tool: str, text: str) -> Parsed:
    """Parse one tool's raw output. Unknown tool names raise ValueError; bad output never raises."""
    if tool not in _PARSERS:
        raise ValueError(f"unknown tool {tool!r}; known tools: {', '.join(TOOLS)}")
    return _PARSERS[tool](text)
