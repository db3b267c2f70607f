"""Reading back what submit and run wrote: one typed wrapper over the store's one reader, shared by both (a module
of its own so that neither imports the other at load time)."""

from __future__ import annotations

from typing import Any

from workloads.store import ResultStore


def read_verified(store: ResultStore, key: str) -> dict[str, Any] | None:
    """A decision or a workload job marker, through the store's one reader (workloads/objects.py is its schema):
    None when there is none; store.Refused, named in store.problems, when it cannot be believed."""
    found = store.read_one(key)
    if found is None or isinstance(found, dict):
        return found
    raise TypeError(f"{key} holds a {type(found).__name__}, not a decision or a job marker")
