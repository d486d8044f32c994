"""The daemon holds the embedded exchange's ports for its whole life: nobody
else can take one between a probe and the sim's bind, or while the sim
restarts, and the sim (restarted or not) still gets every connection. A
port an operator fixed that is in use refuses the start in one line."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from actors.sim import sim_config
from supervisors.config import load_config
from supervisors.ports import listenable
from supervisors.sim_ports import PORT_KEYS, assign_sim_ports
from tests.support.daemon import ARBD
from venues.sim.testing import sim_thread


def test_ephemeral_sim_ports_stay_reserved_and_a_restarted_sim_serves_on_them() -> None:
    cfg, hold = assign_sim_ports(load_config())
    try:
        ports = [cfg.sim[k] for k in PORT_KEYS]
        assert sorted(hold.ports) == sorted(ports) and len(set(ports)) == 3
        assert cfg.venues.upbit_rest.endswith(f":{cfg.sim['upbit_port']}")
        # Another program (or an outgoing connection's source port) cannot take them.
        assert not any(listenable("127.0.0.1", p) for p in ports)
        for _incarnation in range(2):  # a sim restarted by the supervisor binds them again
            sim = sim_thread(sim_config(dict(cfg.sim), tuple(cfg.venues.symbols)))
            urls = sim.start()
            try:
                assert urls["upbit"]["rest"] == cfg.venues.upbit_rest
                for _ in range(5):  # the reservation never takes a connection
                    with urllib.request.urlopen(f"{urls['upbit']['rest']}/v1/market/all", timeout=5) as r:
                        assert isinstance(json.loads(r.read()), list)
            finally:
                sim.stop()
    finally:
        hold.close()
    assert all(listenable("127.0.0.1", p) for p in ports)  # released with the daemon


def test_ports_an_operator_fixed_are_not_shared() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        fixed = s.getsockname()[1]
    cfg, hold = assign_sim_ports(load_config(overrides=[f"sim.upbit_port={fixed}"]))
    try:
        assert hold.ports == () and cfg.sim["upbit_port"] == fixed
        assert not cfg.sim.get("reuse_port")
    finally:
        hold.close()


@pytest.mark.parametrize("value", ["1", "maybe"])
def test_reuse_port_must_be_a_boolean(value: str) -> None:
    from supervisors.config import ConfigError

    with pytest.raises(ConfigError, match="sim.reuse_port: expected true/false"):
        load_config(overrides=[f"sim.reuse_port={value}"])


def test_a_fixed_sim_port_in_use_refuses_the_start_in_one_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = subprocess.run([str(ARBD), "start", "--run-dir", str(tmp_path / "run"), "--set", "metrics.enabled=false",
                              "--set", f"sim.admin_port={port}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert lines[-1] == f"arbd: cannot start: [Errno 98] sim.admin_port: 127.0.0.1:{port} is in use", lines
    assert not (tmp_path / "run" / "arbd.pid").exists()
