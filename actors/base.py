"""The actor shell every role shares: a pykka ThreadingActor fed by its host.

A role subclasses :class:`RoleActor`, declares what it subscribes to, and
implements ``_handle_<message>`` methods (``_handle_book_top`` for
``BookTop``). A role that needs something before it can serve trading (a
baseline, a connection) overrides :meth:`RoleActor.warmth`; the shell
publishes it as a ``WarmState`` on change and about once a second (with the
heartbeat). Unknown messages are counted and logged, never fatal. An
exception in a handler stops the actor (pykka ``tell`` semantics); the host
then exits non-zero and the supervisor restarts the process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pykka

from messages import Command, Message, WarmState

if TYPE_CHECKING:
    from supervisors.actor_context import ActorContext

log = logging.getLogger("arbd.actor")

# A WarmState is re-sent this often even unchanged: the bus's PUB drops what it
# sends before the proxy's subscription reaches a freshly started process.
WARM_REPUBLISH_S = 1.0


@dataclass(frozen=True, slots=True)
class Beat:
    sent_ns: int


@dataclass(frozen=True, slots=True)
class Tick:
    now_ns: int


@dataclass(frozen=True, slots=True)
class Inbound:
    msg: Message
    sender: str
    channel: str  # "bus" | "inbox" | "sup" | "snapshot"
    ack_to: bytes | None = None  # ROUTER identity to acknowledge (trade path)


class LatestBox:
    """A conflating mailbox: the latest message per topic, for topics where
    only the newest value matters (books). The host's I/O thread puts; the
    actor thread takes everything at once. A busy actor therefore never
    works through a queue of stale quotes: it sees the freshest one of each
    book, and the ones it skipped are counted, not lost track of."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[bytes, Inbound] = {}
        self.replaced = 0  # messages superseded before the actor saw them

    def put(self, topic: bytes, inbound: Inbound) -> bool:
        """Store; True when the box was empty (the actor must be told)."""
        with self._lock:
            items = self._items
            was_empty = not items
            if topic in items:
                self.replaced += 1
                del items[topic]  # re-inserted last: dispatch follows arrival order
            items[topic] = inbound
            return was_empty

    def take(self) -> list[Inbound]:
        with self._lock:
            items, self._items = self._items, {}
        return list(items.values())


class CommandError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class RoleActor(pykka.ThreadingActor):
    """Base for all roles. Subclasses set the class attributes below."""

    role: ClassVar[str] = ""
    subscriptions: ClassVar[tuple[str, ...]] = ()  # topic prefixes on the bus
    has_inbox: ClassVar[bool] = False  # binds a trade-path ROUTER
    tick_interval_s: ClassVar[float | None] = None
    wants_snapshot: ClassVar[bool] = True
    # Topic prefixes delivered latest-value-per-topic (see LatestBox), for
    # roles that only ever need the current quote.
    conflate: ClassVar[tuple[str, ...]] = ()
    # The hot path skips the bus proxy (one process hop less): a role lists
    # the topic prefixes it also publishes on a PUB of its own (``streams``),
    # and a consumer names the actors whose streams it reads straight
    # (``direct``: {actor: prefixes}) instead of subscribing on the bus.
    streams: ClassVar[tuple[str, ...]] = ()
    direct: ClassVar[dict[str, tuple[str, ...]]] = {}
    # The role publishes its streams from a thread of its own (a feed's
    # WebSocket thread, through ActorContext.thread_publisher), not the host.
    streams_from_thread: ClassVar[bool] = False
    # Market-data topic prefixes whose bus copies are thinned to one per
    # interval per topic (seconds); the stream still carries every message.
    bus_every: ClassVar[dict[str, float]] = {}

    @classmethod
    def subscriptions_for(cls, config: Any) -> tuple[str, ...]:
        """The topic prefixes to subscribe to under ``config`` (default: the class's)."""
        return cls.subscriptions

    @classmethod
    def direct_for(cls, config: Any) -> dict[str, tuple[str, ...]]:
        """The streams to read straight under ``config`` (default: the class's ``direct``)."""
        return cls.direct

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__()
        self.ctx = ctx
        ctx.actor = self  # the host's I/O thread may deliver inline (see host_run_lock)
        self._handlers: dict[type, Any] = {}
        # Inline delivery (see ActorHost._deliver): the host's I/O thread may
        # run a handler itself when the actor is idle, saving two thread
        # hand-offs per message. ``host_run_lock`` keeps the actor single-threaded
        # either way; ``host_ready`` says on_start is over; ``host_inbounds_done``
        # counts the deliveries this thread has finished, so the host inlines
        # only when nothing it handed over is still waiting (order is kept).
        self.host_run_lock = threading.Lock()
        self.host_ready = False
        self.host_inbounds_done = 0
        self._warm: bool | None = None  # last reported (see _report_warmth)
        self._warm_since_ns = time.time_ns()
        self._warm_sent_at = 0.0

    # pykka runs every message, and on_stop, through _handle_receive (pinned
    # pykka 4): holding host_run_lock there covers subclasses' on_receive too.
    def _handle_receive(self, message: Any) -> Any:
        with self.host_run_lock:
            self.host_ready = True
            return super()._handle_receive(message)

    def deliver(self, item: Inbound | LatestBox) -> None:
        """Dispatch one message, or everything in a LatestBox, on whichever
        thread holds host_run_lock (the host's inline or pykka's)."""
        if type(item) is LatestBox:
            items = item.take()
            for inbound in items:
                self._dispatch(inbound)
            n = len(items)
        else:
            self._dispatch(item)
            n = 1
        if self.ctx.progress is not None:  # a backtest: after the handler's sends were queued
            self.ctx.progress.update({"done": n}, {"pending": self.pending_work()})

    # -- pykka entry point -------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        if type(message) is Inbound or type(message) is LatestBox:  # handed over by the host
            self.deliver(message)
            self.host_inbounds_done += 1
            return None
        if type(message) is Beat:
            latency_ms = (time.time_ns() - message.sent_ns) / 1e6
            self.ctx.beat(latency_ms)
            self._report_warmth()
            return None
        if type(message) is Tick:
            self.on_tick(message.now_ns)
            if self.ctx.progress is not None:
                self.ctx.progress.update({"done": 1}, {"pending": self.pending_work()})
            return None
        log.warning("unknown local message %r", type(message).__name__)
        return None

    def _dispatch(self, inbound: Inbound) -> None:
        msg = inbound.msg
        if type(msg) is Command:
            self._run_command(msg)
        else:
            handler = self._handlers.get(type(msg))
            if handler is None:
                handler = getattr(self, f"_handle_{_snake(type(msg).__name__)}", None) or self._unhandled
                self._handlers[type(msg)] = handler
            handler(msg)
        if inbound.ack_to is not None:
            self.ctx.ack(inbound)

    def _unhandled(self, msg: Message) -> None:
        self.ctx.count("unhandled_messages")
        if self.ctx.counters.get("unhandled_messages", 0) <= 5:
            log.warning("%s ignores %s", self.ctx.name, type(msg).__name__)

    def _run_command(self, cmd: Command) -> None:
        try:
            result = self.on_command(cmd.command, dict(cmd.args))
        except CommandError as e:
            self.ctx.reply(cmd, ok=False, error_code=e.code, error_reason=e.reason)
        except Exception as e:  # a command must never kill the actor
            log.exception("command %s failed", cmd.command)
            self.ctx.reply(cmd, ok=False, error_code="internal", error_reason=f"{type(e).__name__}: {e}")
        else:
            self.ctx.reply(cmd, ok=True, result=result)

    def _report_warmth(self) -> None:
        warm, waiting_for = self.warmth()
        now = time.monotonic()
        changed = warm != self._warm
        if changed:
            self._warm = warm
            if not warm:
                self._warm_since_ns = time.time_ns()
        if changed or now - self._warm_sent_at >= WARM_REPUBLISH_S:
            self._warm_sent_at = now
            self.ctx.publish(WarmState(actor=self.ctx.name, incarnation=self.ctx.incarnation, warm=warm,
                                       waiting_for="" if warm else waiting_for,
                                       since_ns=self._warm_since_ns))

    # -- for subclasses ----------------------------------------------------
    def warmth(self) -> tuple[bool, str]:
        """``(True, "")`` when ready to serve trading, else ``(False, what it waits for)``.
        Called on the actor thread with every heartbeat. Default: warm once started."""
        return True, ""

    def on_command(self, command: str, args: dict[str, Any]) -> Any:
        raise CommandError("unknown_command", f"{self.ctx.name} has no command {command!r}")

    def on_tick(self, now_ns: int) -> None:
        """Called every ``tick_interval_s`` when set."""

    def pending_work(self) -> int:
        """Work this actor has in flight outside messages (the executor's legs at
        a venue): a backtest's clock waits for it. Default: none."""
        return 0
