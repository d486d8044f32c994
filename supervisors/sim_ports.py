"""Fix the embedded exchange's ports before anything starts, so its URLs
stay the same when the sim actor restarts and feeds can simply reconnect."""

from __future__ import annotations

import socket
from dataclasses import replace

from supervisors.config import ArbdConfig


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def assign_sim_ports(cfg: ArbdConfig) -> ArbdConfig:
    sim = dict(cfg.sim)
    host = str(sim.get("host", "127.0.0.1"))
    for key in ("upbit_port", "binance_port", "admin_port"):
        if not sim.get(key):
            sim[key] = _free_port(host)
    # A sim listening on every address (nodes on other hosts read it: see
    # supervisors.node.actor_config) is reached here on loopback.
    url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    venues = replace(
        cfg.venues,
        upbit_rest=f"http://{url_host}:{sim['upbit_port']}",
        upbit_ws=f"ws://{url_host}:{sim['upbit_port']}/websocket/v1",
        binance_rest=f"http://{url_host}:{sim['binance_port']}",
        binance_ws=f"ws://{url_host}:{sim['binance_port']}/ws",
    )
    return replace(cfg, sim=sim, venues=venues)
