"""Actor lifecycle: whether an actor is ready to serve trading (warm)."""

from __future__ import annotations

from dataclasses import dataclass

from messages.base import Message, register


@register("warm")
@dataclass(frozen=True, slots=True, kw_only=True)
class WarmState(Message):
    """An actor's readiness, published on change and about once a second.

    ``warm`` means the actor has everything it needs to serve trading (the
    engine a trusted baseline and fresh books, a feed a connection that
    delivers books, ...); otherwise ``waiting_for`` says what is missing, and
    ``since_ns`` (wall clock) when the actor last stopped being warm (or
    started). One topic per actor, so the bus's last-value cache holds each
    actor's current state for ``arbctl status``; ``incarnation`` lets a
    reader ignore what a dead predecessor said."""

    actor: str
    incarnation: int
    warm: bool
    waiting_for: str
    since_ns: int

    def topic(self) -> str:
        return f"warm.{self.actor}"
