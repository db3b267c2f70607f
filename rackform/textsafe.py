"""Text that is safe to put on a terminal.

Names, reasons, log excerpts and AZs printed by rackform come from specs, from AWS and from objects in the results
bucket that any job can write. A value carrying ESC or another control character could move the cursor, rewrite
earlier lines, change the window title or hide text (ECMA-48 escape sequences), and a bidirectional override could
show text in another order than it is. `visible` writes every such character as a Python-style escape instead, so
the reader sees that it is there and the terminal never acts on it.
"""

from __future__ import annotations

import re

# C0 controls (NUL..US, including TAB, CR, LF and ESC), DEL, C1 controls, and the Unicode bidirectional
# embeddings, overrides and isolates (the "Trojan Source" characters, CVE-2021-42574).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NEWLINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (
        f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def visible(value: object, *, keep_newlines: bool = False) -> str:
    """`str(value)` with control characters shown as escapes (`\\x1b`, `\\n`, `\\u202e`), never sent to the terminal.

    Line breaks are escaped too unless `keep_newlines`: a table cell or a one-line message must stay one line.
    """
    text = str(value)
    return (_UNSAFE_KEEP_NEWLINES if keep_newlines else _UNSAFE).sub(_escape, text)
