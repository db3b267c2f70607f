"""Tables for the terminal, drawn by rich: the one table function every command prints through.

A table fits the terminal without a name or number cut: columns are left out by rank (said so below it; names,
instances, counts and prices never, nor those the caller names essential), cells wrap at spaces (a word longer than
its column folds at any character), and where that is not enough each row is printed as a block of `header: value`
lines; `wide=True` (`--wide`) keeps every column at full width. Numbers are aligned on
their decimal point. `wrap` folds the prose around the tables to the terminal.
Colour only on a terminal, and never with NO_COLOR set (https://no-color.org) or TERM=dumb.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO, cast

from ..textsafe import visible

GAP = 2  # spaces between columns
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


def coloured(text: str, style: str, colour: bool | None = None) -> str:
    """`text` in a rich style (e.g. "bold red") on a terminal (colour_on(): None), as it is elsewhere."""
    if not (colour_on() if colour is None else colour):
        return text
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="standard", width=10**6, highlight=False, markup=False,
            emoji=False).print(text, style=style, end="")
    return out.getvalue()


def terminal_width(stream: TextIO | None = None) -> int | None:
    """The width of the terminal `stream` writes to (COLUMNS, when set, overrides it); None, no limit, when the
    output is not a terminal: piped output is for grep and files, and test runners export COLUMNS without any
    terminal."""
    stream = stream or sys.stdout
    if not getattr(stream, "isatty", lambda: False)():
        return None
    if (columns := os.environ.get("COLUMNS", "")).isdigit() and int(columns) > 0:
        return int(columns)
    try:  # stderr's own terminal: stdout may be a pipe (`rackform submit ... | xargs`)
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return shutil.get_terminal_size().columns


class FoldedLines:
    """A terminal's stream whose lines fold at spaces to its width (wrap) as they end: the prose and errors the
    commands write to stderr, which no table layout has fitted. A line with control characters (a progress bar
    redrawn in place with \\r, colour) and a line's text flushed before it ends go out as they are."""

    def __init__(self, stream: TextIO, width: int) -> None:
        self._stream, self._width = stream, width
        self._line, self._sent = "", False  # the line so far; whether part of it was flushed already

    def write(self, text: str) -> int:
        *ended, self._line = (self._line + text).split("\n")
        for line in ended:
            self._stream.write((line if self._sent or not line.isprintable() else wrap(line, self._width)) + "\n")
            self._sent = False
        return len(text)

    def flush(self) -> None:
        if self._line:
            self._stream.write(self._line)
            self._line, self._sent = "", True
        self._stream.flush()

    def __getattr__(self, name: str) -> object:  # isatty, fileno, encoding: the terminal's
        return getattr(self._stream, name)


@contextmanager
def folded_stderr() -> Iterator[None]:
    """sys.stderr folded to its terminal's width (FoldedLines) for the block; as it is when it is not a terminal
    (scripts and logs read it line by line)."""
    if (width := terminal_width(sys.stderr)) is None:
        yield
        return
    stream = sys.stderr
    sys.stderr = cast(TextIO, FoldedLines(stream, width))
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = stream


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


def _rank(index: int, header: str) -> int:
    """What a narrow terminal gives up last (low) and first (high): the row's name (the first column), the instance,
    the count, the metric and its value, prices and per-dollar figures; then the rest; architecture and ids (quota
    codes, job ids) first."""
    h = header.lower()
    if index == 0:
        return 0
    if "instance" in h or "rack/node" in h or h in ("node group", "workload", "benchmark", "check"):
        return 1
    if h in ("count", "nodes", "jobs", "metric", "value"):
        return 2
    if ("$" in h or "per dollar" in h) and not h.endswith(" unit"):  # a unit is also in the metric's name
        return 3
    if h in ("arch", "quota", "job", "id") or h.endswith((" id", " ids", "arn")):
        return 5
    return 4


KEEP_RANK = 3  # a column ranked this or better is never left out: the table turns vertical instead
FOLD = 12  # the narrowest a text column's long word is folded to before the table turns vertical


def wrap(text: str, width: int | None = None) -> str:
    """Prose lines folded at spaces to the terminal (width: terminal_width(); None: as they are). A line that opens
    with a label ("network  VPC ...") or an indent continues under its text, not under the label."""
    import textwrap

    width = width if width is not None else terminal_width()
    if width is None:
        return text
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        label = re.match(r"^(\s*(?:\S+ {2,}|[-*] |\(?)?)", line)
        indent = " " * min(len(label[1]) if label else 0, width // 3)
        out += textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    return "\n".join(out)


def _vertical(head: list[str], cells: list[list[str]], width: int) -> str:
    """One block per row when the columns cannot share the width without a name or number cut: the first cell as
    its heading, then each other column as `header: value`, folded at spaces."""
    label = max(len(h) for h in head[1:]) if len(head) > 1 else 0
    lines: list[str] = []
    for row in cells:
        lines += ([""] if lines else []) + [row[0]]
        for h, c in zip(head[1:], row[1:], strict=True):
            if c.strip():
                lines.append(_hanging(f"  {(h + ':').ljust(label + 1)} ", c.strip(), width))
    return "\n".join(lines)


def _hanging(lead: str, text: str, width: int) -> str:
    import textwrap

    # A word longer than the line (an image URI) folds at any character, as in a table's cell.
    return "\n".join(textwrap.wrap(text, width, initial_indent=lead, subsequent_indent=" " * len(lead),
                                    break_long_words=True, break_on_hyphens=False) or [lead.rstrip()])


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
    essential: the header names never left out to fit, beside the first column and those _rank keeps (KEEP_RANK);
    None: any other may be, when the table does not fit at its narrowest."""
    # A cell never moves the cursor or breaks a line; rich reads it as Text, never as markup.
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
             min(natural[i], max((len(w) for c in [head[i], *columns[i]] for w in c.split()), default=1))
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

        # Only an optional column is ever left out: one not in `essential` and ranked below the names, instances,
        # counts and prices (_rank), ids and architecture first, the rightmost of a rank first. With an essential
        # list, until the rest fits at full width (then wraps); else (or still) until it fits at its narrowest.
        rank = [_rank(i, h) for i, h in enumerate(header)]
        optional = [i for i in sorted(range(1, len(head)), key=lambda i: (-rank[i], -i))
                    if rank[i] > KEEP_RANK and (essential is None or header[i] not in essential)]
        # The least a column folds to rather than be left out: a text column's long word (an image URI in a
        # reason) at any character, down to its header's longest word; names, counts, prices and numbers never.
        folds = [least[i] if numeric[i] or rank[i] <= KEEP_RANK else
                 min(least[i], max([FOLD, *(len(w) for w in head[i].split())])) for i in range(len(head))]
        for target in ([natural] if essential is not None else []) + [folds]:
            for i in (i for i in optional if i in keep):
                if fits(target):
                    break
                keep.remove(i)
                dropped.append(head[i])
        if not fits(folds):  # the essential columns cannot share the width: one block per row, every column in it
            return _vertical(head, cells, width)
        least = least if fits(least) else folds
    colour = colour_on() if colour is None else colour
    # Each column's width decided here, not by rich (which squeezes whichever column it likes, the last one's
    # numbers included): the widest text columns give way first, down to their longest word.
    given = {i: natural[i] for i in keep}
    if width is not None:
        budget = width - GAP * (len(keep) - 1)
        while sum(given.values()) > budget:
            i = max((i for i in keep if given[i] > least[i]), key=lambda i: (given[i], i))
            given[i] -= 1
    # A numeric column's header is right-aligned over its figures.
    headers = [head[i].rjust(least[i]) if numeric[i] else head[i] for i in range(len(head))]
    fixed = given if width is not None else None
    if (lines := _plain(headers, columns, styles, keep, least, fixed, colour)) is None:
        lines = _drawn(headers, columns, styles, keep, least, fixed, width if width is not None else full, colour)
    if dropped:
        # "the terminal", not the width given: a table indented under a heading (advise) is given less than that.
        lines.append(wrap(f"({len(dropped)} column(s) left out to fit the terminal: "
                          f"{', '.join(sorted(dropped, key=head.index))}; --wide shows every column)", width))
    return "\n".join(lines)


def _plain(headers: list[str], columns: list[list[str]], styles: list[list[str]], keep: list[int], least: list[int],
           given: dict[int, int] | None, colour: bool) -> list[str] | None:
    """The lines rich draws for this table, written directly where every character is one cell wide (printable
    ASCII): each column left-justified to its width, GAP apart, a rule of dashes under the header; a cell wider than
    its column folded by rich's own Text.wrap, the row as tall as its tallest cell; in colour, each cell and the
    header's padding in its style, as rich writes them. A 10,000-row report prints in tens of milliseconds instead of
    the half a minute rich takes to measure and lay out every cell (tests/render/test_table_at_scale.py holds the two
    to the same output). None where rich must lay it out."""
    widths: list[int] = []
    for i in keep:
        cells = [headers[i], *columns[i]]
        if not all(c.isascii() and c.isprintable() for c in cells):
            return None
        widths.append(given[i] if given is not None else max(max(len(c) for c in cells), least[i]))
    rule = " ".join("-" * (w + 1) for w in widths[:-1]) + (" " if len(widths) > 1 else "") + "-" * widths[-1]
    from rich.color import ColorSystem
    from rich.console import Console
    from rich.style import Style
    from rich.text import Text

    console = Console(file=io.StringIO(), width=max(widths))

    def folded(text: str, width: int) -> list[str]:
        if len(text) <= width:
            return [text]
        return [line.plain for line in Text(text).wrap(console, width, justify="left", overflow="fold")]

    def paint(text: str, style: str) -> str:
        return Style.parse(style).render(text, color_system=ColorSystem.STANDARD) if colour and style else text

    def row(cells: list[str], cell_styles: list[str], gap: str, blank_style: str, bottom: bool) -> list[str]:
        wrapped = [folded(c, w) for c, w in zip(cells, widths, strict=True)]
        height = max(len(p) for p in wrapped)
        # A shorter cell is padded with blank lines below it, in the header above it (rich aligns it to the bottom).
        parts = [[""] * (height - len(p)) + p if bottom else p for p in wrapped]
        blank = [[n < height - len(p) if bottom else n >= len(p) for n in range(height)] for p in wrapped]
        last = len(widths) - 1
        # A blank line fills the cell with its padding as one run of spaces, in the cell's style.
        return ["".join((paint(" " * (w + (j < last) * (GAP - 1)), blank_style) + " " * (j < last) if b[n] else
                         paint(p[n].ljust(w), st) + gap * (j < last))
                        for j, (p, b, st, w) in enumerate(zip(parts, blank, cell_styles, widths, strict=True))).rstrip()
                for n in range(height)]

    # The header's padding takes its style (bold on a terminal), a row's does not.
    bold = "bold" if colour else ""
    return [*row([headers[i] for i in keep], [bold] * len(keep), paint(" ", bold) + " " * (GAP - 1), bold, True),
            rule, *(line for k in range(len(columns[keep[0]]))
                    for line in row([columns[i][k] for i in keep], [styles[k][i] for i in keep], " " * GAP, "",
                                    False))]


def _drawn(headers: list[str], columns: list[list[str]], styles: list[list[str]], keep: list[int], least: list[int],
           given: dict[int, int] | None, width: int, colour: bool) -> list[str]:
    """The table laid out and drawn by rich: where a cell holds characters wider than one cell."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(box=box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True), show_edge=False,
              pad_edge=False, padding=(0, 1), collapse_padding=True, header_style="bold" if colour else "",
              expand=False)
    for i in keep:
        # Numbers are never cut: a numeric column keeps its width and the text columns wrap around it.
        t.add_column(Text(headers[i]), justify="left", overflow="fold", no_wrap=given is None, min_width=least[i],
                     width=None if given is None else given[i])
    for k in range(len(styles)):
        t.add_row(*(Text(columns[i][k], style=styles[k][i] if colour else "") for i in keep))
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=colour, no_color=not colour,
            color_system="standard" if colour else None, highlight=False, emoji=False, markup=False,
            legacy_windows=False).print(t)
    return [line.rstrip() for line in out.getvalue().splitlines()]
