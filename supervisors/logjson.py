"""Structured logs: one JSON object a line on stderr, never a secret.

``setup(..., fmt="text")`` formats the same records for a person instead
(:mod:`supervisors.console`); ``auto`` picks text when stderr is a terminal."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TextIO

SECRETISH = re.compile(r"(?i)(secret|api[_-]?key|access[_-]?key|authorization|signature)")
_REDACT_VALUE = re.compile(
    r"(?i)((?:secret|api[_-]?key|access[_-]?key|signature|bearer)[\"'=: ]+)[A-Za-z0-9._\-+/]{8,}"
)


def redact(text: str) -> str:
    return _REDACT_VALUE.sub(r"\1***", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, actor: str) -> None:
        super().__init__()
        self._actor = actor

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "actor": self._actor,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            for k, v in extra.items():
                out[k] = "***" if SECRETISH.search(k) else v
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str, separators=(",", ":"))


LOG_FORMATS = ("auto", "json", "text")


def resolve_format(fmt: str, stream: TextIO) -> str:
    """``json`` or ``text``: ``auto`` is text on a terminal, JSON anywhere else (a pipe, a file)."""
    if fmt != "auto":
        return fmt
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # no stream, or a closed one
        return "json"


def setup(actor: str, level: str = "INFO", fmt: str = "json") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    h = logging.StreamHandler(sys.stderr)
    if resolve_format(fmt, sys.stderr) == "text":
        from supervisors.console import TextFormatter  # rich only where a person reads

        h.setFormatter(TextFormatter(actor))
    else:
        h.setFormatter(JsonFormatter(actor))
    root.addHandler(h)
    root.setLevel(level.upper())
    # Library chatter (ccxt, websockets, aiohttp) is noise at INFO.
    for noisy in ("websockets", "aiohttp", "ccxt", "asyncio", "pykka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log(logger: logging.Logger, level: int, msg: str, **fields: object) -> None:
    logger.log(level, msg, extra={"fields": fields})


def now_s() -> float:
    return time.time()
