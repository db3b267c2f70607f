"""One benchmark's headlines over time, across runs: the rows `rackform history` prints, from records read out of S3
or from the Athena table over them (cdk_constructs/athena.py), and the SQL it sends to Athena.

The table's partitions `run_id`, `rack` and `node_group` are projected as `injected`: Athena reads only the
partitions a query names, and refuses a query that does not name each of them with static values
(https://docs.aws.amazon.com/athena/latest/ug/partition-projection-dynamic-id-partitioning.html). So the query names
every run (listed from the bucket by delimiter, one request per 1,000 runs), the spec's racks and node groups, and
the benchmark (an `enum` partition): Athena prunes to exactly those record folders.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from workloads.benchmarks import Headline
from workloads.results import REPEAT_LABEL, ResultRecord

from .summary import figure, headlines

# What each row carries besides its headlines, in the order the query selects them.
COLUMNS = ("run_id", "rack", "node_group", "instance_type", "node_count", "status", "started_at")


@dataclass(frozen=True)
class HistoryRow:
    run_id: str
    rack: str
    node_group: str
    instance_type: str
    node_count: int
    status: str
    started_at: str  # ISO 8601, as the record has it
    figures: tuple[float | None, ...]  # one per headline of the benchmark, the median over repeats; None: not there


def record_row(record: ResultRecord) -> HistoryRow:
    """A record read from S3 as its history row."""
    found = [figure(record, h) for h in headlines(record.benchmark)]
    return HistoryRow(record.run_id, record.rack, record.node_group, record.instance_type, record.node_count,
                      record.status, record.started_at.isoformat(),
                      tuple(f.value if f is not None and not f.failed else None for f in found))


def ordered(rows: Sequence[HistoryRow]) -> list[HistoryRow]:
    """Oldest first, then by rack and node group."""
    return sorted(rows, key=lambda r: (r.started_at, r.rack, r.node_group, r.run_id))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _values_of(h: Headline) -> str:
    """The values of the metrics that are headline `h` (its name and exactly its labels, a repeat label aside)."""
    labels = dict(h.labels)
    conditions = [f"m.name = {_literal(h.metric)}",
                  f"cardinality(map_filter(m.labels, (k, v) -> k <> {_literal(REPEAT_LABEL)})) = {len(labels)}",
                  *(f"element_at(m.labels, {_literal(k)}) = {_literal(v)}" for k, v in sorted(labels.items()))]
    return f"transform(filter(metrics, m -> {' AND '.join(conditions)}), m -> m.value)"


def history_sql(table: str, benchmark: str, run_ids: Sequence[str], racks: Sequence[str],
                node_groups: Sequence[str]) -> str:
    """The query of one benchmark's records in the runs, racks and node groups named: every partition column given
    with static values, so Athena reads those record folders and nothing else. `table` is `database.table`."""
    if not (run_ids and racks and node_groups):
        raise ValueError("a history query names at least one run, rack and node group (the table's injected "
                         "partitions)")
    name = ".".join(f'"{part}"' for part in table.split("."))
    selected = [*COLUMNS, *(_values_of(h) for h in headlines(benchmark))]

    def among(column: str, values: Sequence[str]) -> str:
        return f"{column} IN ({', '.join(_literal(v) for v in sorted(set(values)))})"

    return (f"SELECT {', '.join(selected)}\nFROM {name}\n"
            f"WHERE {among('run_id', run_ids)}\n  AND {among('rack', racks)}\n  AND {among('node_group', node_groups)}"
            f"\n  AND benchmark = {_literal(benchmark)}\n  AND status IS NOT NULL\n"  # a node log's lines read as nulls
            "ORDER BY started_at, rack, node_group")


def numbers(text: str | None) -> list[float]:
    """An array<double> as Athena returns it in a result set: `[1.5, 2.0, NaN]` (empty or null: none)."""
    inner = (text or "").strip().removeprefix("[").removesuffix("]").strip()
    return [float(v) for v in inner.split(",")] if inner else []


def athena_row(cells: Sequence[str | None]) -> HistoryRow:
    """One result row of `history_sql` (every cell a string, or None for null) as its history row."""
    fixed, values = cells[:len(COLUMNS)], cells[len(COLUMNS):]
    figures = []
    for text in values:
        finite = [v for v in numbers(text) if math.isfinite(v)]
        figures.append(statistics.median(finite) if finite else None)
    run_id, rack, node_group, instance_type, node_count, status, started_at = (c or "" for c in fixed)
    return HistoryRow(run_id, rack, node_group, instance_type, int(node_count or 0), status, started_at,
                      tuple(figures))
