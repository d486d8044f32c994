"""The embedded exchange as a supervised actor (venue ``sim``, the default).

Its ports are fixed by the daemon before start, so a restarted sim comes
back at the same URLs and feeds simply reconnect."""

from __future__ import annotations

import dataclasses
import json

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
        self.sim = SimThread(sim_config(dict(cfg.sim), tuple(cfg.venues.symbols)))
        urls = self.sim.start()
        atomic_write_text(self.ctx.run.sim_file, json.dumps(urls, sort_keys=True) + "\n")

    def on_stop(self) -> None:
        self.sim.stop()
