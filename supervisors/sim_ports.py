"""Fix the embedded exchange's ports before anything starts, so its URLs
stay the same when the sim actor restarts and feeds can simply reconnect.

A port that is only probed (bind, close) is free again for anyone: the
kernel hands it out as the source port of the next outgoing connection,
and a sim starting a second later then fails to bind, again and again,
until the supervisor escalates (seen in CI under load). So the daemon keeps
each port bound for its whole life with SO_REUSEPORT, which takes it out
of the kernel's ephemeral choices, and the sim binds it with SO_REUSEPORT
too. A bound socket that never listens receives no connections: the sim's
listener gets them all."""

from __future__ import annotations

import errno
import socket
from dataclasses import replace

from supervisors.config import ArbdConfig
from supervisors.ports import listenable, pick_port

PORT_KEYS = ("upbit_port", "binance_port", "admin_port")


class PortReservation:
    """Sockets holding ports bound until ``close()`` (or the process's end)."""

    def __init__(self) -> None:
        self._socks: list[socket.socket] = []

    def take(self, host: str) -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # SO_REUSEPORT alone: a socket with SO_REUSEADDR could share a
            # port whose holder is not listening and has that option too.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((host, 0))
        except BaseException:
            s.close()
            raise
        self._socks.append(s)
        return int(s.getsockname()[1])

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(int(s.getsockname()[1]) for s in self._socks)

    def close(self) -> None:
        for s in self._socks:
            s.close()
        self._socks.clear()


def assign_sim_ports(cfg: ArbdConfig) -> tuple[ArbdConfig, PortReservation]:
    """The config with the sim's ports and URLs fixed, and the reservation
    to keep open while the daemon runs. Ports an operator fixed are left to
    a plain bind: only ports chosen here are reserved (and then all three)."""
    sim = dict(cfg.sim)
    host = str(sim.get("host", "127.0.0.1"))
    # The admin API listens on loopback only, whatever sim.host says.
    bind_hosts = {"upbit_port": host, "binance_port": host, "admin_port": "127.0.0.1"}
    hold = PortReservation()
    if not any(sim.get(key) for key in PORT_KEYS):
        for key in PORT_KEYS:
            sim[key] = hold.take(bind_hosts[key])
        sim["reuse_port"] = True
    else:
        for key in PORT_KEYS:
            bind_host = bind_hosts[key]
            if not sim.get(key):
                sim[key] = pick_port(bind_host)
            elif not listenable(bind_host, int(sim[key])):
                # Refused here, in one line: else the sim crash-loops into an escalation.
                raise OSError(errno.EADDRINUSE, f"sim.{key}: {bind_host}:{sim[key]} is in use")
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
    return replace(cfg, sim=sim, venues=venues), hold
