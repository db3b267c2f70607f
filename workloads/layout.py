"""The results bucket's layout, in one place: the key prefix every writer and the bucket policy use, and the Athena
table's partitions and columns (derived from the record model, so a new record field is a new column).

cdk_constructs/storage.py (the write-once bucket policy and the roles' grants) and cdk_constructs/athena.py (the
Glue table) import these; workloads/store.py builds every key under RESULTS_PREFIX.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel

RESULTS_PREFIX = "results"
# results/<run_id>/<rack>/<node_group>/<benchmark>/record.json: the path segments, in order, are the partitions.
PARTITION_KEYS: tuple[str, ...] = ("run_id", "rack", "node_group", "benchmark")


def hive_type(annotation: Any) -> str:
    """The Hive/Athena type of a record field (OpenX JSON SerDe): timestamps stay ISO 8601 strings."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        return hive_type(kinds[0])
    if origin is Literal or annotation is str:
        return "string"
    if origin is typing.Annotated:
        return hive_type(get_args(annotation)[0])
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "bigint"
    if annotation is float:
        return "double"
    if annotation is AwareDatetime or (isinstance(annotation, type) and issubclass(annotation, dt.datetime)):
        return "string"
    if origin in (tuple, list):
        return f"array<{hive_type(get_args(annotation)[0])}>"
    if origin is dict:
        key, value = get_args(annotation)
        return f"map<{hive_type(key)},{hive_type(value)}>"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "struct<" + ",".join(f"{n}:{hive_type(f.annotation)}" for n, f in annotation.model_fields.items()) + ">"
    raise TypeError(f"no Hive type for {annotation!r}")


def table_columns(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """The model's fields as (name, Hive type), less the partition keys (Hive refuses a column that is also a
    partition key; its value comes from the path and equals the record's)."""
    return tuple((name, hive_type(f.annotation)) for name, f in model.model_fields.items()
                 if name not in PARTITION_KEYS)
