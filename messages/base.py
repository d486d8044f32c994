"""The message base class and the registry of wire tags.

Every message is a frozen, keyword-only dataclass with an ``id`` and a
nanosecond ``ts_ns``. A class becomes sendable by decorating it with
:func:`register`, which gives it a short, stable wire tag.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from messages import clock

_COUNTER = itertools.count()
_PREFIX = f"{os.getpid():x}{time.time_ns() & 0xFFFFFF:06x}"


def new_id() -> str:
    """A process-unique, cheap, sortable-enough id (pid + start + counter).

    uuid4 costs ~1 µs and its randomness buys nothing here: ids only need to
    be unique across the processes of one deployment.
    """
    return f"{_PREFIX}{next(_COUNTER):x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    id: str = field(default_factory=new_id)
    ts_ns: int = field(default_factory=lambda: clock.time_ns())  # the market's clock (see messages.clock)

    TAG: ClassVar[str] = ""

    def topic(self) -> str:
        """Pub/sub topic; subscribers filter on its prefix."""
        return self.TAG


M = TypeVar("M", bound=type[Message])

REGISTRY: dict[str, type[Message]] = {}


def register(tag: str):
    """Give a message class its wire tag. Tags are part of the wire format."""

    def deco(cls: M) -> M:
        if tag in REGISTRY:
            raise ValueError(f"duplicate message tag {tag!r}")
        cls.TAG = tag
        REGISTRY[tag] = cls
        return cls

    return deco
