"""The engine: BookTops in, Opportunities out.

Books come straight from the feeds' streams, Opportunities go straight to
the position on the engine's stream (``opp.<symbol>``; a copy on the bus
four times a second per symbol for status and metrics, see ``bus_every``).
Not point-to-point: like the books they are made of, each opportunity is a
snapshot that the next one supersedes, so the position takes them
latest-value (conflated) and nothing needs acknowledging. Orders start at
the position's intents, which are point-to-point.

Warm restart. The premium baselines are the engine's only state a restart
would lose (a cold warm-up is ``baseline.warmup_s``, 30 s by default, without
a single opportunity). They are written, every ``STATE_EVERY_S``, to a small
state file in the run directory, ``state/engine_baseline.json`` (atomic:
tmp + fsync + rename, on a writer thread of its own, see
``supervisors.statefile``), and read back in ``on_start``. A file rather than
the supervisor's last-value snapshot on the bus because

- it is read synchronously before the first book is evaluated, whereas a
  snapshot reply races the direct book streams (a cold baseline could start
  on the first books and the snapshot arrive after them);
- it outlives the supervisor: a daemon restart within
  ``baseline.restore_max_age_s`` is warm too, and killing the supervisor
  loses nothing;
- it is a file one can read, age and break on purpose in a test.

A restored baseline is not trusted until the first live samples agree with
it (``arbitrage.baseline``: ``restore_verify_samples`` within
``restore_tolerance_pct``); until then, as during a cold warm-up, the engine
emits no opportunity. A file that is too old, corrupt, truncated or of
another version is one log line (``baseline state unusable``) and a cold
start.
"""

from __future__ import annotations

import logging
import math
import time

from actors.base import RoleActor
from arbitrage.baseline import PremiumBaseline, dump_state, load_state
from arbitrage.premium import FX_SYMBOL, PremiumCalculator, mid_premium_pct
from messages import BookTop, clock
from supervisors import logjson
from supervisors.metricnames import key
from supervisors.statefile import StateWriter, read_state

log = logging.getLogger("arbd.engine")

STATE_FILE = "engine_baseline.json"  # under the run directory's state/
STATE_EVERY_S = 1.0


class EngineActor(RoleActor):
    role = "engine"
    # Books straight from the feeds' streams (no proxy hop); only the latest of each matters.
    direct = {"feed.upbit": ("book.",), "feed.binance": ("book.",)}
    conflate = ("book.",)
    streams = ("opp.",)
    bus_every = {"opp.": 0.25}  # every one to the position, four a second per symbol to the bus
    tick_interval_s = 0.5

    def on_start(self) -> None:
        cfg = self.ctx.config
        self.symbols = tuple(cfg.venues.symbols)
        self.calc = PremiumCalculator(cfg.engine, clock.time)
        self.baseline = PremiumBaseline(cfg.baseline, clock.monotonic)
        self.books: dict[tuple[str, str], BookTop] = {}
        self._keys: dict[str, tuple[str, str, str, str]] = {}
        self.c = self.ctx.counters
        self.c.setdefault("loops", 0)
        self.c.setdefault("loop_ms_total", 0.0)
        self.state_path = self.ctx.run.state_dir / STATE_FILE
        self.restored = self._restore()
        self.c[key("g", "arbd_engine_baseline_restored")] = float(len(self.restored))
        self._writer = StateWriter(self.state_path)
        self._saved_at = time.monotonic()
        self._last_doc: dict | None = None
        # Premium samples for people's reports (report.premium_sample_s): the
        # latest mid premium per coin, written to the event log on the tick.
        self._mid: dict[str, float] = {}
        self._sampled_at = clock.monotonic()

    # -- warm restart --------------------------------------------------------------
    def _restore(self) -> list[str]:
        cfg = self.ctx.config.baseline
        data, why = read_state(self.state_path)
        if data is None and not why:
            logjson.log(log, logging.INFO, "no saved baseline state: cold warm-up", path=str(self.state_path))
            return []
        states: dict[str, tuple[float, int]] = {}
        if data is not None:
            states, why = load_state(data, time.time(), cfg.restore_max_age_s)
        if why:
            logjson.log(log, logging.WARNING, f"baseline state unusable ({why}): cold warm-up",
                        path=str(self.state_path), reason=why)
            return []
        restored = [s for s, (v, n) in states.items() if s in self.symbols and self.baseline.restore(s, v, n)]
        logjson.log(log, logging.INFO, f"baseline restored for {', '.join(restored) or 'no symbol'}; "
                    f"checking against the first {cfg.restore_verify_samples} live samples",
                    path=str(self.state_path), symbols=restored,
                    age_s=round(time.time() - float(data["ts"]), 3))
        return restored

    def _save(self) -> None:
        doc = dump_state(self.baseline, time.time())
        if not doc["symbols"]:
            return  # nothing trusted yet: keep what a predecessor left (it may still verify)
        self._writer.submit(doc)

    def on_tick(self, now_ns: int) -> None:
        for sym, outcome, detail in self.baseline.take_outcomes():
            level = logging.INFO if outcome == "verified" else logging.WARNING
            logjson.log(log, level, f"restored baseline {sym} {outcome}: {detail}"
                        + ("" if outcome == "verified" else "; cold warm-up"),
                        symbol=sym, outcome=outcome)
            self.ctx.count(key("c", "arbd_engine_baseline_restore_total", outcome=outcome))
        now = time.monotonic()
        if now - self._saved_at >= STATE_EVERY_S:
            self._saved_at = now
            self._save()
        every = self.ctx.config.report.premium_sample_s
        market_now = clock.monotonic()  # a backtest samples per tape second, not per wall second
        if every > 0 and market_now - self._sampled_at >= every and self._mid:
            self._sampled_at = market_now
            self._sample_premium()

    def _sample_premium(self) -> None:
        """One ``premium`` line in the event log: what ``arbctl report`` plots.
        Only coins quoted since the last sample (a silent feed leaves a gap,
        not a flat line); a baseline still warming up is ``null``."""
        fx = self.books.get(("upbit", FX_SYMBOL))
        mids, self._mid = self._mid, {}
        self.ctx.record_sample("premium", {
            "premium_pct": {s: round(v, 4) for s, v in sorted(mids.items())},
            "baseline_pct": {s: None if (b := self.baseline.value(s)) is None else round(b, 4)
                             for s in sorted(mids)},
            "fx": round((fx.bid + fx.ask) / 2, 4) if fx is not None else None})

    def on_stop(self) -> None:
        self._save()
        self._writer.close()

    def warmth(self) -> tuple[bool, str]:
        waiting = []
        for sym in self.symbols:
            if self.baseline.status(sym) != "warm":
                waiting.append(self.baseline.progress(sym))
        missing = [f"{v}.{s}" for s in (*self.symbols, FX_SYMBOL) for v in ("upbit", "binance")
                   if (v, s) not in self.books and not (v == "binance" and s == FX_SYMBOL)]
        if missing:
            waiting.insert(0, "books " + ", ".join(missing))
        if waiting:
            return False, "; ".join(waiting)
        return True, ""

    def _handle_book_top(self, msg: BookTop) -> None:
        t0 = time.perf_counter()
        k = (msg.venue, msg.symbol)
        prev = self.books.get(k)
        if prev is not None and prev.recv_ts_ns > msg.recv_ts_ns:
            return  # an older quote (e.g. from a snapshot) never replaces a newer one
        self.books[k] = msg
        fx = self.books.get(("upbit", FX_SYMBOL))
        affected = self.symbols if msg.symbol == FX_SYMBOL else (msg.symbol,)
        for sym in affected:
            self._evaluate(sym, fx)
        self.c["loops"] += 1
        self.c["loop_ms_total"] += (time.perf_counter() - t0) * 1e3

    def _evaluate(self, sym: str, fx: BookTop | None) -> None:
        up = self.books.get(("upbit", sym))
        bn = self.books.get(("binance", sym))
        if up is None or bn is None or fx is None or fx.bid <= 0:
            return
        mid = mid_premium_pct(up, bn, fx)
        if math.isfinite(mid):
            self._mid[sym] = mid
        base = self.baseline.update(sym, mid)
        opp, reason = self.calc.evaluate(up, bn, fx, base)
        if opp is None:
            self.ctx.count(key("c", "arbd_engine_skips_total", reason=reason.split(" ")[0]))
            return
        self.ctx.publish(opp)
        c = self.c
        k_mid, k_sell, k_buy, k_base = self._gauge_keys(sym)
        c[k_mid] = opp.premium_pct
        c[k_sell] = opp.sell_upbit.premium_pct
        c[k_buy] = opp.buy_upbit.premium_pct
        c[k_base] = opp.baseline_pct

    def _gauge_keys(self, sym: str) -> tuple[str, str, str, str]:
        keys = self._keys.get(sym)
        if keys is None:  # built once per symbol: this runs on every quote
            keys = self._keys[sym] = (
                key("g", "arbd_premium_pct", symbol=sym, direction="mid"),
                key("g", "arbd_premium_pct", symbol=sym, direction="sell_upbit"),
                key("g", "arbd_premium_pct", symbol=sym, direction="buy_upbit"),
                key("g", "arbd_premium_baseline_pct", symbol=sym))
        return keys
