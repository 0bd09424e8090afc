"""Strings from a log, a container or a user, made safe for where they are shown (#23 finding 6).

What blast-radius, preserve and report show came from outside: a header a client sent, a URL an
agent fetched, a line a container wrote. It is data, so it must not act on where it lands:

- :func:`plain` for a terminal: control characters (ESC, CR, newline, the other C0 and C1 codes,
  DEL) become a visible ``\\xHH``, so an escape sequence cannot move the cursor or erase a row;
  the CLI still passes the result through ``rich.markup.escape`` for Rich's own markup.
- :func:`md` for markdown (``report.md``, Prefect markdown artifacts): :func:`plain`, then HTML
  escaped (``<svg/onload=…>`` is text) and markdown's inline syntax backslash-escaped (no link,
  emphasis, code span or table cell can open), on one line.
"""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]#|~])")


def plain(text: object) -> str:
    """``text`` with every control character written as ``\\xHH``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02X}", str(text))


def md(text: object) -> str:
    """``text`` as inert markdown on one line: no HTML, no markup, no line or cell break."""
    return _MARKDOWN.sub(r"\\\1", html.escape(plain(text), quote=True))
