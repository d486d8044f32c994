"""The public WebSocket front ends of a replay: the venues' protocols (the
same handshake, subscriptions and keep-alives as ``upbit_ws`` / ``binance_ws``),
but every market message is a recorded frame, sent as it was received.

Nothing is generated: no snapshot on subscribe (the next recorded frame is
the book), no book change after a backtest's own fill (the recorded stream
could not show it; the matching engine accounts for it, see
``replay_books``). Upbit frames go to the connections subscribed to their
code and type in the DEFAULT format; Binance frames, recorded on a combined
stream, go as they are to combined connections and as their ``data`` to raw
ones.
"""

from __future__ import annotations

from typing import Any

from arbitrage.venue_rules import BINANCE
from venues.sim.binance_ws import BinanceWs
from venues.sim.core import SimCore
from venues.sim.tape import PublicTrade
from venues.sim.upbit_ws import Sub, UpbitWs

_COMBINED_HEAD = b'{"stream":"'


class ReplayUpbitWs(UpbitWs):
    def on_update(self, coin: str, changed: bool, trade: PublicTrade | None) -> None:
        pass  # the tape is the stream

    def _message(self, sub: Sub, stream_type: str, trade: PublicTrade | None = None) -> dict[str, Any] | None:
        return None  # no generated snapshot on subscribe

    def subscribed(self, kind: str, code: str) -> bool:
        return any(s.type == kind and s.code == code for c in self.conns for s in c.subs)

    def send_recorded(self, kind: str, code: str, data: bytes, binary: bool) -> int:
        """``data`` to every DEFAULT-format connection subscribed to ``kind``/``code``;
        returns how many got it."""
        if not self.conns or self._active("pause"):
            return 0
        garbage = self._active("malformed")
        sent = 0
        for conn in self.conns:
            if conn.format != "DEFAULT" or not any(s.type == kind and s.code == code for s in conn.subs):
                continue
            if garbage:
                conn.send_garbage()
            else:
                conn.last_io = self.core.mono()
                if binary:
                    conn.send_bytes(data)
                else:
                    conn.send_text(data.decode())
            sent += 1
        return sent

    def backlog(self) -> int:
        return sum(c.queue.qsize() for c in self.conns)


class ReplayBinanceWs(BinanceWs):
    def __init__(self, core: SimCore) -> None:
        super().__init__(core)
        for book in core.books[BINANCE].values():
            book.pending.clear()  # no diff-depth stream in a replay: nothing would ever drain them

    def on_update(self, coin: str, changed: bool, trade: PublicTrade | None) -> None:
        pass

    def emit_interval(self, name: str) -> None:
        pass

    def subscribed(self, stream: str) -> bool:
        return bool(self.subs.get(stream))

    def send_recorded(self, stream: str, data: bytes) -> int:
        """A recorded combined-stream frame to every connection subscribed to
        ``stream``; returns how many got it."""
        conns = self.subs.get(stream)
        if not conns or self._active("pause"):
            return 0
        garbage = self._active("malformed")
        text = data.decode()
        raw: str | None = None
        for conn in conns:
            if garbage:
                conn.send_garbage()
            elif conn.combined or not data.startswith(_COMBINED_HEAD):
                conn.send_text(text)
            else:
                if raw is None:  # {"stream":"<name>","data":<payload>}
                    raw = text[len(_COMBINED_HEAD) + len(stream) + len('","data":'):-1]
                conn.send_text(raw)
        return len(conns)

    def backlog(self) -> int:
        return sum(c.queue.qsize() for c in self.conns)

