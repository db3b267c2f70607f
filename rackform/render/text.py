"""Tables for the terminal, drawn by rich: the one table function every command prints through.

A table fits the terminal: columns not named essential are dropped from the right (and said so) until it does, then
cells wrap; `wide=True` (`--wide`) keeps every column at full width. Numbers are aligned on their decimal point.
Colour only on a terminal, and never with NO_COLOR set (https://no-color.org) or TERM=dumb.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..textsafe import visible

GAP = 2  # spaces between columns
MAX_WORD = 14  # a text column narrows to its longest word, at most this: longer words fold
# A number as the renderers write one (render.numbers): sign, thousands separators, decimals, maybe a % or a bound.
_NUMBER = re.compile(r"(?:≥ ?)?[-+]?[0-9][0-9,]*(?:\.[0-9]+)?%?")
_NOT_A_FIGURE = {"", "unknown", "n/a", "-"}


@dataclass(frozen=True)
class Styled:
    """A cell with a colour: shown in that colour on a terminal, as plain text elsewhere."""

    text: str
    style: str

    def __str__(self) -> str:
        return self.text


def red(text: str) -> Styled:
    return Styled(text, "bold red")


def colour_on(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def terminal_width(stream: TextIO | None = None) -> int | None:
    """The terminal's width (COLUMNS, when set, overrides it); None, no limit, when the output is not a terminal:
    piped output is for grep and files, and test runners export COLUMNS without any terminal."""
    stream = stream or sys.stdout
    if not getattr(stream, "isatty", lambda: False)():
        return None
    return shutil.get_terminal_size().columns


_HTML_PAGE = re.compile(r"<(?:!doctype\s+html|html|head|body)\b", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_TAGS = re.compile(r"<[^>]*>")


def without_html_page(text: str) -> str:
    """An error page an endpoint (a proxy, a load balancer, a moto server) sent as the error text: its title and size,
    never its markup, in a table cell."""
    if (start := _HTML_PAGE.search(text)) is None:
        return text
    page = text[start.start():]
    title = _TITLE.search(page)
    what = " ".join(_TAGS.sub(" ", title.group(1)).split())[:80] if title else ""
    return (text[:start.start()].rstrip() + f" [an HTML page of {len(page):,} characters"
            + (f": {what}" if what else "") + "]").strip()


def _numeric(column: Sequence[str], styled: Sequence[bool]) -> bool:
    """Every plain cell is a number (or unknown, n/a, -); a styled cell may say why there is none (a failure)."""
    figures = [c for c, s in zip(column, styled, strict=True) if c not in _NOT_A_FIGURE and not s]
    return bool(figures) and all(_NUMBER.fullmatch(c) for c in figures)


def _decimal_aligned(column: list[str]) -> list[str]:
    """Pad each number's fraction to the column's longest, so right-justified numbers line up on the point."""
    def frac(c: str) -> str:
        return c.rstrip("%").partition(".")[2] if _NUMBER.fullmatch(c) else ""

    def tail(c: str) -> int:  # characters right of the units digit: the point, the decimals, a % sign
        return len(frac(c)) + ("." in c) + c.endswith("%")

    width = max((tail(c) for c in column if _NUMBER.fullmatch(c)), default=0)
    padded = [c + " " * (width - tail(c)) if _NUMBER.fullmatch(c) else c for c in column]
    # Every figure at the same width: rich drops trailing blanks, which would undo the padding. Text that says why
    # there is no figure (a failure) is left to wrap.
    figure = [_NUMBER.fullmatch(c) is not None or c in _NOT_A_FIGURE for c in column]
    full = max((len(c) for c, f in zip(padded, figure, strict=True) if f), default=0)
    return [c.rjust(full) if f else c for c, f in zip(padded, figure, strict=True)]


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], *, wide: bool = False, width: int | None = None,
          essential: Collection[str] | None = None, colour: bool | None = None) -> str:
    """rows of cells (str, numbers, or Styled) under header. width: the terminal's (None: terminal_width());
    essential: the header names never dropped to fit (default: every column is)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # A cell never moves the cursor or breaks a line; Text is never read as rich markup.
    styles = [[c.style if isinstance(c, Styled) else "" for c in r] for r in rows]
    cells = [[visible(without_html_page(str(c))) for c in r] for r in rows]
    head = [visible(h) for h in header]
    columns = [[r[i] for r in cells] for i in range(len(head))]
    numeric = [_numeric(col, [bool(s[i]) for s in styles]) for i, col in enumerate(columns)]
    columns = [_decimal_aligned(col) if n else col for col, n in zip(columns, numeric, strict=True)]
    natural = [max([len(head[i]), *(len(c) for c in columns[i])]) for i in range(len(head))]
    # What a column cannot go below: its numbers whole (a failure's text in it may wrap), or its longest word.
    least = [max([len(head[i]), *(len(c) for c, st in zip(columns[i], styles, strict=True) if not st[i])])
             if numeric[i] else
             min(natural[i], MAX_WORD, max((len(w) for c in [head[i], *columns[i]] for w in c.split()), default=1))
             for i in range(len(head))]
    columns = [[c.rjust(least[i]) if len(c) < least[i] else c for c in col] if numeric[i] else col
               for i, col in enumerate(columns)]
    full = sum(natural) + GAP * len(natural) + 1  # everything at its own width, for output that is not a terminal
    natural = [least[i] if numeric[i] else natural[i] for i in range(len(head))]
    width = None if wide else (width if width is not None else terminal_width())
    keep = list(range(len(head)))
    dropped: list[str] = []
    if width is not None:
        def fits(widths: list[int]) -> bool:
            return sum(widths[k] for k in keep) + GAP * (len(keep) - 1) <= width

        # Columns that are not essential go first, from the right, until the rest fits at full width (then wraps);
        # if even the essential ones cannot fit at their narrowest, they go too, all but the first two.
        for i in reversed(range(len(head))):
            if fits(natural):
                break
            if essential is not None and header[i] not in essential:
                keep.remove(i)
                dropped.append(head[i])
        for i in reversed(keep[2:]):
            if fits(least):
                break
            keep.remove(i)
            dropped.append(head[i])
        dropped.sort(key=head.index, reverse=True)
    colour = colour_on() if colour is None else colour
    t = Table(box=box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True), show_edge=False,
              pad_edge=False, padding=(0, 1), collapse_padding=True, header_style="bold" if colour else "",
              expand=False)
    for i in keep:
        # Numbers are never cut: a numeric column keeps its width and the text columns wrap around it.
        t.add_column(Text(head[i].rjust(least[i]) if numeric[i] else head[i]), justify="left", overflow="fold",
                     no_wrap=width is None, min_width=least[i])
    for k in range(len(cells)):
        t.add_row(*(Text(columns[i][k], style=styles[k][i] if colour else "") for i in keep))
    out = io.StringIO()
    Console(file=out, width=width if width is not None else full, force_terminal=colour, no_color=not colour,
            color_system="standard" if colour else None, highlight=False, emoji=False, markup=False,
            legacy_windows=False).print(t)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    if dropped:
        lines.append(f"({len(dropped)} column(s) left out to fit {width} characters: "
                     f"{', '.join(reversed(dropped))}; --wide shows every column)")
    return "\n".join(lines)
