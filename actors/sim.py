"""The embedded exchange as a supervised actor (venue ``sim``, the default).

Its ports are fixed by the daemon before start, so a restarted sim comes
back at the same URLs and feeds simply reconnect. In a backtest
(``backtest.tape`` set) it is the replay exchange (``venues.sim.replay``),
its accounts funded as the ``paper:`` section says."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from actors.base import RoleActor
from supervisors.runfiles import atomic_write_text
from venues.sim.config import SimConfig
from venues.sim.server import SimThread


def sim_config(raw: dict[str, object], symbols: tuple[str, ...]) -> SimConfig:
    known = {f.name for f in dataclasses.fields(SimConfig)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in known}
    kwargs.setdefault("symbols", symbols)
    return SimConfig(**kwargs)


class SimActor(RoleActor):
    role = "sim"
    wants_snapshot = False

    def on_start(self) -> None:
        cfg = self.ctx.config
        sim_cfg = sim_config(dict(cfg.sim), tuple(cfg.venues.symbols))
        self.sim = SimThread(sim_cfg) if not cfg.backtest.tape else self._replay(sim_cfg)
        urls = self.sim.start()
        atomic_write_text(self.ctx.run.sim_file, json.dumps(urls, sort_keys=True) + "\n")

    def _replay(self, sim_cfg: SimConfig) -> SimThread:
        from venues.sim.replay import ReplayExchange, ReplayOptions

        cfg = self.ctx.config
        bt, paper = cfg.backtest, cfg.paper
        options = ReplayOptions(
            tape=Path(bt.tape), speed=bt.speed, latency_ms_upbit=bt.latency_ms_upbit,
            latency_ms_binance=bt.latency_ms_binance, queue=bt.queue, impact_decay_s=bt.impact_decay_s,
            step_ms=bt.step_ms, settle_timeout_s=bt.settle_timeout_s, run_root=self.ctx.run.root)
        coins: dict[str, Any] = dict(paper.coin_units)
        funded = dataclasses.replace(
            sim_cfg, upbit_balances=tuple({"KRW": paper.upbit_krw, **coins}.items()),
            binance_balances=tuple({"USDT": paper.binance_usdt, **coins}.items()))
        return SimThread(funded, factory=lambda c: ReplayExchange(c, options))

    def on_stop(self) -> None:
        self.sim.stop()
