"""``--since WHEN`` for people: an ISO time or a duration back from now.

- A duration is one or more ``<number><unit>`` parts, units ``s m h d w``:
  ``30m``, ``1h``, ``1h30m``, ``2d``, ``1.5h``.
- An ISO time is what :meth:`datetime.fromisoformat` reads (``2026-11-22``,
  ``2026-11-22T09:00``, ``2026-11-22 09:00:00+09:00``, ``...Z``). One without
  an offset is local time: the times ``arbctl trades`` prints are local too.
"""

from __future__ import annotations

import re
from datetime import datetime

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION = re.compile(rf"(?:{_PART.pattern})+")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
HINT = "expected an ISO time (2026-11-22T09:00, 2026-11-22T00:00Z) or a duration (30m, 1h, 2d)"


def parse_since(text: str, now_ns: int) -> int:
    """Epoch nanoseconds of ``text``; ``ValueError`` with a one-line reason."""
    s = text.strip()
    if not s:
        raise ValueError(f"--since: {HINT}, got an empty value")
    if _DURATION.fullmatch(s):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(s))
        return now_ns - int(seconds * 1e9)
    try:
        when = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"--since: {HINT}, got {text!r}") from None
    if when.tzinfo is None:
        when = when.astimezone()  # a naive time is local
    return int(when.timestamp() * 1e9)
