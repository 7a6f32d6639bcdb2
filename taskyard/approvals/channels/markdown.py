"""Markdown for approval requests posted on GitHub and Linear: text an agent wrote is shown
in code spans and fences that nothing inside it can close (so it cannot mention anyone,
forge a marker or break the layout), cut at a length the platform holds."""

from __future__ import annotations

import re
from typing import Any

_TICKS = re.compile(r"`+")
CUT_NOTE = "\n… (cut here; `taskyard approvals status` shows all of it)"


def code(text: Any) -> str:
    """`text` on one line as a code span no backtick inside can close."""
    flat = " ".join(str(text).split()) or " "
    fence = "`" * (max(map(len, _TICKS.findall(flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def block(text: str, language: str, limit: int) -> str:
    """`text` (cut at `limit` characters) as a fenced block no fence inside can close."""
    shown = text if len(text) <= limit else text[:limit] + CUT_NOTE
    fence = "`" * max(3, max(map(len, _TICKS.findall(shown)), default=0) + 1)
    return f"{fence}{language}\n{shown}\n{fence}"
