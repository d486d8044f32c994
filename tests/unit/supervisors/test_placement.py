"""Placement config and endpoints (supervisors.placement), and the config a
node's actors run under (supervisors.node.actor_config)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from supervisors.config import ArbdConfig, load_config
from supervisors.config_loader import ConfigError
from supervisors.endpoints import Endpoints, make_endpoints
from supervisors.node import actor_config
from supervisors.nodes import config_data
from supervisors.placement import place_endpoints, placed_specs
from supervisors.roles import child_specs
from supervisors.runfiles import RunDir

CLUSTER = """
venues: {source: live}
bus: {transport: tcp, tcp_host: 198.18.0.1, curve: {enabled: true, keys_dir: /etc/arbd/keys}}
cluster:
  nodes:
    seoul: {address: 198.18.0.2, port_base: 7800}
    tokyo: {address: 198.18.0.3, port_base: 7900}
placement: {feed.upbit: seoul, feed.binance: tokyo, executor: seoul}
"""


def load(tmp_path: Path, text: str, *overrides: str) -> ArbdConfig:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path, overrides)


def problems(tmp_path: Path, text: str, *overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text, *overrides)
    return e.value.problems


def test_a_cluster_config_loads(tmp_path: Path) -> None:
    cfg = load(tmp_path, CLUSTER)

    assert cfg.placement == {"feed.upbit": "seoul", "feed.binance": "tokyo", "executor": "seoul"}
    assert cfg.cluster.nodes["tokyo"].port_base == 7900


def test_clear_text_beyond_loopback_is_refused_with_every_address_named(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, CLUSTER, "bus.curve.enabled=false")

    assert p.startswith("bus: curve is off but bus.tcp_host 198.18.0.1")
    assert "cluster.nodes.seoul.address 198.18.0.2" in p and "needs CURVE" in p


def test_a_node_refuses_a_main_beyond_loopback_without_curve(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "cluster: {host: seoul, main: 'tcp://198.18.0.1:7700'}\n")

    assert "cluster.main tcp://198.18.0.1:7700" in p and "needs CURVE" in p


def test_loopback_tcp_may_stay_in_clear_text(tmp_path: Path) -> None:
    cfg = load(tmp_path, "bus: {transport: tcp}\n")

    assert cfg.bus.transport == "tcp" and not cfg.bus.curve.enabled


def test_bad_placements_are_each_named(tmp_path: Path) -> None:
    got = problems(tmp_path, CLUSTER, "placement={sim: seoul, engine: osaka, feed.upbit: seoul}",
                   "bus.transport=ipc")

    assert any(p.startswith("placement: sim: not an actor that can run on a node") for p in got), got
    assert any("engine: node 'osaka' is not in cluster.nodes (seoul, tokyo)" in p for p in got), got
    assert any("actors on other hosts need transport: tcp" in p for p in got), got


def test_curve_needs_a_keys_dir_and_main_is_no_node_name(tmp_path: Path) -> None:
    got = problems(tmp_path, "bus: {curve: {enabled: true}}\ncluster: {nodes: {main: {address: 127.0.0.1, "
                             "port_base: 7000}}}\n")

    assert any(p.startswith("bus.curve.keys_dir: must name") for p in got), got
    assert any("'main' is the main daemon's name" in p for p in got), got


def endpoints(tmp_path: Path, cfg: ArbdConfig) -> Endpoints:
    specs = placed_specs(cfg, child_specs(cfg))
    ep = make_endpoints("tcp", RunDir.at(tmp_path), [s.name for s in specs if s.has_inbox], "127.0.0.1",
                        [s.name for s in specs])
    return place_endpoints(ep, cfg, specs, RunDir.at(tmp_path))


def test_placed_actors_bind_on_their_nodes_fixed_ports(tmp_path: Path) -> None:
    cfg = load(tmp_path, CLUSTER)
    ep = endpoints(tmp_path, cfg)

    # seoul's actors in start order: executor (0), feed.upbit (1); tokyo: feed.binance (0)
    assert ep.inboxes["executor"] == "tcp://198.18.0.2:7801"
    assert ep.streams["executor"] == "tcp://198.18.0.2:7800"
    assert ep.streams["feed.upbit"] == "tcp://198.18.0.2:7802"
    assert ep.streams["feed.binance"] == "tcp://198.18.0.3:7900"
    assert ep.placement == {"executor": "seoul", "feed.upbit": "seoul", "feed.binance": "tokyo"}
    assert ep.control.startswith("ipc://")  # arbctl never needs keys
    assert ep.server_of(ep.streams["feed.binance"]) == "tokyo"
    assert ep.server_of(ep.inboxes["guard"]) == "main" and ep.server_of(ep.bus_in) == "main"
    assert Endpoints.from_json(ep.to_json()) == ep


def test_a_nodes_actors_run_under_mains_config_with_the_nodes_own_keys_name_and_hooks(tmp_path: Path) -> None:
    main = replace(load(tmp_path, CLUSTER, "venues.source=sim", "sim.host=0.0.0.0"),
                   venues=replace(ArbdConfig().venues, source="sim", upbit_ws="ws://127.0.0.1:5001/websocket/v1",
                                  binance_ws="ws://127.0.0.1:5002/ws"))
    own = load(tmp_path, "bus: {curve: {enabled: true, keys_dir: /srv/seoul-keys}}\nlog_level: DEBUG\n"
                         "cluster: {host: seoul, main: 'tcp://198.18.0.1:7700'}\ntesting: {clock_skew_s: 0.5}\n")

    cfg = actor_config(config_data(main), own)

    assert cfg.cluster.host == "seoul" and cfg.bus.curve.keys_dir == "/srv/seoul-keys"
    assert cfg.log_level == "DEBUG" and cfg.testing["clock_skew_s"] == 0.5
    assert cfg.placement == main.placement and cfg.cluster.nodes == main.cluster.nodes
    assert cfg.supervision == main.supervision and cfg.strategy == main.strategy
    # the embedded exchange is main's actor: from the node it is at main's address
    assert cfg.venues.upbit_ws == "ws://198.18.0.1:5001/websocket/v1"
    assert cfg.venues.binance_ws == "ws://198.18.0.1:5002/ws"


def test_the_config_a_node_gets_rebuilds_to_the_same_config() -> None:
    cfg = ArbdConfig()

    assert actor_config(config_data(cfg), cfg) == cfg


def test_the_shipped_cluster_configs_load_and_agree() -> None:
    root = Path(__file__).resolve().parents[3] / "configs" / "cluster"
    main = load_config(root / "main.yaml")
    nodes = {n: load_config(root / f"{n}.yaml") for n in ("seoul", "tokyo")}

    assert set(main.placement.values()) == set(nodes) == set(main.cluster.nodes)
    for name, node in nodes.items():
        assert node.cluster.host == name and node.bus.curve.enabled
        assert node.cluster.main == f"tcp://{main.bus.tcp_host}:{main.cluster.port}"
