"""The SQL rackform sends to Athena, built here and nowhere else: every value a string literal with its quotes
doubled, every name checked, never user input pasted in. The calls are rackform/cli/athena.py's.

`records_sql` returns whole records, each as one JSON document built from the table's columns and their Hive types
(as Glue describes the deployed table: workloads/layout.py derives them from ResultRecord, so a table deployed by an
older release is asked only for the columns it has): a struct becomes a MAP of its fields, then JSON, because casting a
MAP with VARCHAR keys to JSON gives a JSON object in every Athena engine, where casting a ROW gives an array in
some (https://docs.aws.amazon.com/athena/latest/ug/converting-native-data-types-to-json.html).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pydantic import ValidationError

from workloads.results import ResultRecord

# Glue names are lowercase letters, digits and underscores
# (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-catalog-tables.html); upper case is folded.
TABLE = re.compile(r"[A-Za-z0-9_]{1,255}\.[A-Za-z0-9_]{1,255}")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def literal(text: str) -> str:
    """A SQL string literal: a quote inside is doubled, so no value can end it."""
    return "'" + text.replace("'", "''") + "'"


def quoted_table(table: str) -> str:
    """`database.table` as a quoted SQL name; anything but DATABASE.TABLE in Glue's letters is refused, never
    pasted into the SQL."""
    if not TABLE.fullmatch(table):
        raise ValueError(f"table {table!r} is not DATABASE.TABLE (letters, digits and underscores)")
    return ".".join(f'"{part}"' for part in table.split("."))


def among(column: str, values: Sequence[str]) -> str:
    """`column IN (...)` of string literals, each escaped."""
    if not values:
        raise ValueError(f"no value of {column} to query")
    return f"{column} IN ({', '.join(literal(v) for v in sorted(set(values)))})"


def _split(types: str) -> list[str]:
    """A Hive type list (`a,map<b,c>`) split at its top-level commas."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(types):
        depth += {"<": 1, ">": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(types[start:i])
            start = i + 1
    return [*parts, types[start:]]


def as_json(expr: str, hive: str, depth: int = 0) -> str:
    """SQL giving the JSON of `expr`, a value of Hive type `hive` (scalars, array<>, map<string,>, struct<>)."""
    if hive.startswith("array<"):
        return f"CAST(transform({expr}, x{depth} -> {as_json(f'x{depth}', hive[6:-1], depth + 1)}) AS JSON)"
    if hive.startswith("map<"):
        key, value = _split(hive[4:-1])
        if key != "string":
            raise ValueError(f"a map's keys must be strings to become a JSON object, not {key}")
        return (f"CAST(transform_values({expr}, (k{depth}, v{depth}) -> "
                f"{as_json(f'v{depth}', value, depth + 1)}) AS JSON)")
    if hive.startswith("struct<"):
        fields = [f.split(":", 1) for f in _split(hive[7:-1])]
        if bad := [name for name, _ in fields if not _FIELD.fullmatch(name)]:
            raise ValueError(f"struct field {bad[0]!r} is no SQL name")
        names = ", ".join(literal(name) for name, _ in fields)
        values = ", ".join(as_json(f'{expr}."{name}"', t, depth) for name, t in fields)
        return f"IF({expr} IS NULL, NULL, CAST(MAP(ARRAY[{names}], ARRAY[{values}]) AS JSON))"
    return f"CAST({expr} AS JSON)"


def record_json(columns: Sequence[tuple[str, str]]) -> str:
    """The SQL of one row's whole record as a JSON document (a string): `columns` are (name, Hive type), the
    partition keys among them."""
    if bad := [name for name, _ in columns if not _FIELD.fullmatch(name)]:
        raise ValueError(f"column {bad[0]!r} is no SQL name")
    names = ", ".join(literal(name) for name, _ in columns)
    values = ", ".join(as_json(f'"{name}"', hive) for name, hive in columns)
    return f"json_format(CAST(MAP(ARRAY[{names}], ARRAY[{values}]) AS JSON))"


def records_sql(table: str, columns: Sequence[tuple[str, str]], run_ids: Sequence[str],
                benchmarks: Sequence[str] = ()) -> str:
    """The query of the runs' records (of `benchmarks`, else of every benchmark), one JSON document a row: the runs
    and benchmarks are partitions, so Athena reads those records and nothing else."""
    kinds = f"  AND {among('benchmark', benchmarks)}\n" if benchmarks else ""
    return (f"SELECT {record_json(columns)}\nFROM {quoted_table(table)}\nWHERE {among('run_id', run_ids)}\n{kinds}"
            "  AND status IS NOT NULL\n"  # a damaged object reads as nulls
            "ORDER BY run_id, benchmark, rack, node_group")


def record_of(document: str | None) -> ResultRecord:
    """A row of `records_sql` as the record it is: JSON nulls are fields the record left out (their defaults), and
    the record is validated like one read from S3 (ValueError, saying why, when it is none)."""
    try:
        fields = {k: v for k, v in json.loads(document or "null").items() if v is not None}
        return ResultRecord.model_validate_json(json.dumps(fields))
    except (AttributeError, ValueError, ValidationError) as e:
        raise ValueError(f"not a result record: {str(e).splitlines()[0]}") from None
