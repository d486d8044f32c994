"""Feed actors: one per exchange, each a thin shell around a FeedClient
(WebSocket, parse, reconnect with backoff) that publishes BookTops."""

from __future__ import annotations

from typing import Any, ClassVar

from actors.base import RoleActor
from messages import BookTop, clock
from supervisors.metricnames import key
from supervisors.publisher import ThreadPublisher
from venues import make_adapter
from venues.feed_client import FeedClient

WARM_BOOK_AGE_S = 2.0  # a feed whose last book is older than this is not warm


class FeedActor(RoleActor):
    venue: ClassVar[str] = ""
    tick_interval_s = 0.5
    wants_snapshot = False
    streams = ("book.",)  # every book straight to the engine (and the paper executor)
    # The bus's readers (watchdog, guard, status, snapshots) need the current
    # book, not every one: ten copies a second per book keep their view
    # within 0.1 s and spare each of them ~1,000 wake-ups a second.
    bus_every = {"book.": 0.1}
    streams_from_thread = True

    def on_start(self) -> None:
        self._pub: ThreadPublisher | None = None
        cfg = self.ctx.config
        symbols = tuple(cfg.venues.symbols)
        adapter = make_adapter(self.venue, symbols, max_exchange_age_s=cfg.feeds.max_exchange_age_s)
        base = cfg.venues.upbit_ws if self.venue == "upbit" else cfg.venues.binance_ws
        self.client = FeedClient(adapter, base, symbols, self._on_top,
                                 ping_interval_s=cfg.feeds.ping_interval_s,
                                 stale_after_s=cfg.feeds.stale_after_s,
                                 backoff_max_s=cfg.feeds.backoff_max_s,
                                 clock_ns=clock.time_ns,  # receive times are market time
                                 on_frame=self._frame_done if self.ctx.progress is not None else None)
        self._frames_done = 0
        self.client.run_in_thread(name=f"ws-{self.venue}", on_thread_start=self._open_publisher,
                                  on_thread_exit=self._close_publisher)

    # The WebSocket thread publishes on a socket of its own: at feed rates the
    # hand-off to the host's I/O thread costs more than the parsing. It is
    # opened before the first connection so that the bus's subscription has
    # reached it by the first book (a PUB drops what it sends before that).
    def _open_publisher(self) -> None:
        self._pub = self.ctx.thread_publisher()

    def _close_publisher(self) -> None:
        if self._pub is not None:
            self._pub.close()

    def _on_top(self, top: BookTop) -> None:
        self._pub.publish(top)  # type: ignore[union-attr]  # set before any frame arrives

    def _frame_done(self) -> None:
        """A backtest: this frame's book is on the stream (the replay waits for it)."""
        self._frames_done += 1
        pub = self._pub
        self.ctx.progress.set(frames=self._frames_done,  # type: ignore[union-attr]
                              stream_sent=pub.stream_sent if pub is not None else 0)

    def on_stop(self) -> None:
        self.client.stop(timeout=2.0)

    def on_tick(self, now_ns: int) -> None:
        s = self.client.snapshot()
        c = self.ctx.counters
        v = self.venue
        c[key("c", "arbd_feed_frames_total", venue=v)] = s.frames
        c[key("c", "arbd_feed_books_total", venue=v)] = s.tops
        c[key("c", "arbd_feed_reconnects_total", venue=v)] = s.reconnects
        c[key("c", "arbd_feed_stale_disconnects_total", venue=v)] = s.stale_disconnects
        for reason, n in s.bad_frames.items():
            c[key("c", "arbd_feed_bad_frames_total", venue=v, reason=reason)] = n
        c[key("g", "arbd_feed_connected", venue=v)] = 1.0 if s.connected else 0.0

    def warmth(self) -> tuple[bool, str]:
        s = self.client.snapshot()
        if not s.connected:
            return False, f"connection to {self.venue}" + (f" (last: {s.last_error})" if s.last_error else "")
        if not s.last_top_ns or clock.time_ns() - s.last_top_ns > WARM_BOOK_AGE_S * 1e9:
            return False, f"books from {self.venue}"
        return True, ""

    def on_command(self, command: str, args: dict[str, Any]) -> Any:
        if command == "feed_stats":
            s = self.client.snapshot()
            return {"frames": s.frames, "tops": s.tops, "reconnects": s.reconnects,
                    "bad_frames": dict(s.bad_frames), "connected": s.connected}
        return super().on_command(command, args)


class UpbitFeedActor(FeedActor):
    role = "feed.upbit"
    venue = "upbit"


class BinanceFeedActor(FeedActor):
    role = "feed.binance"
    venue = "binance"
