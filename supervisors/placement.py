"""Placement: which host runs which actor, and where its endpoints are.

``placement: {feed.upbit: seoul, feed.binance: tokyo}`` puts actors on nodes
(``cluster.nodes``); every other actor runs on the main host. The main daemon
computes every endpoint, its own and the nodes', from the config alone, so an
actor on main can connect to a node's stream before the node is even up
(ZeroMQ connects when the peer binds). A node's actor number ``i`` (in start
order) binds its stream on ``port_base + 2i`` and its inbox on
``port_base + 2i + 1`` of the node's address: fixed ports, as a firewall
between hosts wants them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from supervisors.curve import MAIN, is_loopback, tcp_host
from supervisors.endpoints import Endpoints
from supervisors.runfiles import RunDir

if TYPE_CHECKING:
    from supervisors.config import ArbdConfig
    from supervisors.supervisor import ChildSpec

# The embedded exchange writes the main run directory's sim.json: it stays on main.
PLACEABLE = ("feed.upbit", "feed.binance", "engine", "position", "guard", "executor", "watchdog")


def host_of(cfg: ArbdConfig, actor: str) -> str:
    return cfg.placement.get(actor, MAIN)


def config_problems(cfg: ArbdConfig) -> list[str]:
    """Placement and clear-text rules across sections (ArbdConfig checks them
    at load, so a bad cluster config never starts)."""
    out: list[str] = []
    nodes = cfg.cluster.nodes
    for actor, node in cfg.placement.items():
        if actor not in PLACEABLE:
            out.append(f"placement {actor}: not an actor that can run on a node "
                       f"(one of {', '.join(PLACEABLE)})")
        elif node != MAIN and node not in nodes:
            out.append(f"placement {actor}: node {node!r} is not in cluster.nodes "
                       f"({', '.join(sorted(nodes)) or 'none configured'})")
    remote = any(n != MAIN for n in cfg.placement.values())
    if remote and cfg.bus.transport != "tcp":
        out.append(f"bus transport is {cfg.bus.transport!r}: actors on other hosts need transport: tcp")
    if not cfg.bus.curve.enabled:
        beyond = []
        if cfg.bus.transport == "tcp" and not is_loopback(cfg.bus.tcp_host):
            beyond.append(f"bus.tcp_host {cfg.bus.tcp_host}")
        beyond += [f"cluster.nodes.{n}.address {spec.address}" for n, spec in sorted(nodes.items())
                   if not is_loopback(spec.address)]
        main_host = tcp_host(cfg.cluster.main)
        if main_host is not None and not is_loopback(main_host):
            beyond.append(f"cluster.main {cfg.cluster.main}")
        if beyond:
            out.append(f"bus curve is off but {', '.join(beyond)} is not loopback: tcp beyond loopback "
                       f"needs CURVE (set bus.curve.enabled: true and bus.curve.keys_dir)")
    return out


def placed_specs(cfg: ArbdConfig, specs: list[ChildSpec]) -> list[ChildSpec]:
    """``specs`` with each one's host set from the placement."""
    return [replace(s, host=host_of(cfg, s.name)) for s in specs]


def node_specs(specs: list[ChildSpec], node: str) -> list[ChildSpec]:
    return [s for s in specs if s.host == node]


def place_endpoints(ep: Endpoints, cfg: ArbdConfig, specs: list[ChildSpec], run: RunDir) -> Endpoints:
    """Move the streams and inboxes of actors placed on nodes to their node's
    address and ports; with CURVE on, keep arbctl's control channel on ipc
    (it never needs to leave the host, so it never needs keys)."""
    streams, inboxes = dict(ep.streams), dict(ep.inboxes)
    placement: dict[str, str] = {}
    for node, spec in cfg.cluster.nodes.items():
        for i, child in enumerate(node_specs(specs, node)):
            placement[child.name] = node
            streams[child.name] = f"tcp://{spec.address}:{spec.port_base + 2 * i}"
            if child.has_inbox:
                inboxes[child.name] = f"tcp://{spec.address}:{spec.port_base + 2 * i + 1}"
    control = ep.control
    if cfg.bus.curve.enabled and control.startswith("tcp://"):
        control = f"ipc://{run.sock_dir}/control"
    return replace(ep, control=control, streams=streams, inboxes=inboxes, placement=placement)


def node_endpoint(cfg: ArbdConfig) -> str:
    """The main daemon's node channel."""
    return f"tcp://{cfg.bus.tcp_host}:{cfg.cluster.port}"
