"""What `rackform use` remembers: the results bucket and its Region, in one small JSON file.

$XDG_CONFIG_HOME/rackform/context.json (else ~/.config/rackform/context.json), written whole (a private temporary file
renamed over it, 0600) and validated on every read. rackform.cli.common reads it; rackform.cli.context has the
commands that write and show it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationError

from ..spec.base import Frozen
from ..spec.problems import Problem, SpecError
from ..textsafe import visible

# S3's bucket naming rules, in short (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html):
# 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit.
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d+$"


class RememberedContext(Frozen):
    """What `rackform use` remembers."""

    bucket: str = Field(pattern=BUCKET_PATTERN, description="the results bucket")
    region: str | None = Field(None, pattern=REGION_PATTERN, description="the bucket's Region")
    spec: str | None = Field(None, description="the spec the bucket was read from, if one was given")


def context_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rackform" / "context.json"


def load_context() -> RememberedContext | None:
    """The remembered context, None where there is none; a file that is not one is an error naming it and the fix."""
    path = context_path()
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _broken(path, e.strerror or str(e)) from None
    try:
        return RememberedContext.model_validate_json(text)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _broken(path, f"{where + ': ' if where else ''}{first['msg']}") from None


def _broken(path: Path, why: str) -> SpecError:
    return SpecError([Problem("error", "context", visible(
        f"{path} is not a rackform context ({why}): run `rackform use --bucket BUCKET` to write it again, or "
        "delete it"))])


def save_context(context: RememberedContext) -> Path:
    from .outputs import OutputError, replace_private

    path = context_path()
    try:
        replace_private(path, context.model_dump_json(indent=2, exclude_none=True) + "\n")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    return path
