"""One benchmark's headlines over time, across runs: the rows `rackform history` prints, from records read out of S3
or from the Athena table over them (cdk_constructs/athena.py), and the SQL it sends to Athena.

The table's partitions are `run_id` and `benchmark`, registered in Glue (rackform/cli/athena.py), so a query may
filter them with any predicate and Athena reads only the partitions it matches
(https://docs.aws.amazon.com/athena/latest/ug/partitions.html): the benchmark always, the runs when some are named.
Rack and node group are columns of the record, filtered after the read; each partition holds records only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from workloads.benchmarks import Headline
from workloads.results import REPEAT_LABEL, ResultRecord

from .query import among, literal, quoted_table
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


def _values_of(h: Headline) -> str:
    """The values of the metrics that are headline `h` (its name and exactly its labels, a repeat label aside)."""
    labels = dict(h.labels)
    conditions = [f"m.name = {literal(h.metric)}",
                  f"cardinality(map_filter(m.labels, (k, v) -> k <> {literal(REPEAT_LABEL)})) = {len(labels)}",
                  *(f"element_at(m.labels, {literal(k)}) = {literal(v)}" for k, v in sorted(labels.items()))]
    return f"transform(filter(metrics, m -> {' AND '.join(conditions)}), m -> m.value)"


def history_sql(table: str, benchmark: str, racks: Sequence[str], node_groups: Sequence[str],
                run_ids: Sequence[str] = ()) -> str:
    """The query of one benchmark's records on the racks and node groups named, in every run, or in `run_ids`:
    the benchmark (and the runs) are partitions, so Athena reads those records and nothing else."""
    selected = [*COLUMNS, *(_values_of(h) for h in headlines(benchmark))]
    runs = f"  AND {among('run_id', run_ids)}\n" if run_ids else ""
    return (f"SELECT {', '.join(selected)}\nFROM {quoted_table(table)}\n"
            f"WHERE benchmark = {literal(benchmark)}\n{runs}  AND {among('rack', racks)}\n"
            f"  AND {among('node_group', node_groups)}\n  AND status IS NOT NULL\n"  # a damaged object reads as nulls
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
