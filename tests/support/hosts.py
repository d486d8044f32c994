"""Hosts made of Linux network namespaces, and arbd processes inside them.

:class:`NetHosts` makes one namespace per host - ``main`` plus the nodes -
named after this test run (``arbd<pid>x<n>-<host>``), joined by veth pairs
to a bridge in main's namespace (198.18.0.0/24, the range RFC 2544 sets
aside for such tests; the addresses exist only inside the namespaces). Each
link gets a ``tc netem`` delay when the kernel has sch_netem; when it does
not (``netem`` is then False and ``netem_error`` says why) the links run
without an added delay. :meth:`NetHosts.cut` and :meth:`NetHosts.restore`
take a node's link down and up. :meth:`NetHosts.destroy` removes only the
namespaces this object made.

:class:`NsSimDaemon` is ``arbd start`` inside main's namespace (the embedded
exchange's admin API is reached through a helper run in that namespace);
:class:`NodeRun` is ``arbd node`` inside a node's. Both carry the test-run
marker, so ``teardown_runs`` finds and ends exactly their processes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.daemon import ARBCTL, ARBD, ROOT, DaemonRun, run_cli
from tests.support.run_daemon import SimDaemon

NETNS_SCRIPT = ROOT / "scripts" / "netns.sh"
SUBNET = "198.18.0"
_COUNTER = itertools.count()


def sh(*cmd: str, check: bool = True, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


class NetHosts:
    def __init__(self, nodes: tuple[str, ...], delay_ms: float) -> None:
        self.tag = f"arbd{os.getpid()}x{next(_COUNTER)}"
        self.hosts = ("main", *nodes)
        self.nodes = nodes
        self.delay_ms = delay_ms
        self.addresses = {h: f"{SUBNET}.{i + 1}" for i, h in enumerate(self.hosts)}
        self.made: list[str] = []  # namespaces this object created (and only these are removed)
        self.netem = False
        self.netem_error = ""

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def exec_prefix(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host)]

    def create(self) -> NetHosts:
        main = self.ns("main")
        for h in self.hosts:
            sh("ip", "netns", "add", self.ns(h))
            self.made.append(self.ns(h))
            sh("ip", "-n", self.ns(h), "link", "set", "lo", "up")
        sh("ip", "-n", main, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", main, "addr", "add", f"{self.addresses['main']}/24", "dev", "br0")
        sh("ip", "-n", main, "link", "set", "br0", "up")
        for node in self.nodes:
            port = self.port(node)
            sh("ip", "-n", main, "link", "add", port, "type", "veth", "peer", "name", "eth0",
               "netns", self.ns(node))
            sh("ip", "-n", main, "link", "set", port, "master", "br0")
            sh("ip", "-n", main, "link", "set", port, "up")
            sh("ip", "-n", self.ns(node), "addr", "add", f"{self.addresses[node]}/24", "dev", "eth0")
            sh("ip", "-n", self.ns(node), "link", "set", "eth0", "up")
        self._delay()
        return self

    def port(self, node: str) -> str:
        return f"v-{node}"[:15]

    def _delay(self) -> None:
        """``delay_ms`` each way on every link (both ends of each veth)."""
        if self.delay_ms <= 0:
            return
        for node in self.nodes:
            for ns, dev in ((self.ns(node), "eth0"), (self.ns("main"), self.port(node))):
                r = sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "delay",
                       f"{self.delay_ms:g}ms", check=False)
                if r.returncode != 0:
                    self.netem = False
                    self.netem_error = r.stderr.strip() or f"tc exited {r.returncode}"
                    return
        self.netem = True

    def cut(self, node: str) -> None:
        sh("ip", "-n", self.ns(node), "link", "set", "eth0", "down")

    def restore(self, node: str) -> None:
        sh("ip", "-n", self.ns(node), "link", "set", "eth0", "up")

    def run_in(self, host: str, *cmd: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.exec_prefix(host), *cmd], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=str(ROOT),
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    def http(self, host: str, url: str, method: str = "GET", body: Any = None) -> Any:
        """An HTTP request made from inside ``host`` (its loopback is its own)."""
        args = [sys.executable, "-m", "tests.support.netns_http", method, url]
        if body is not None:
            args.append(json.dumps(body))
        r = self.run_in(host, *args)
        if r.returncode != 0:
            raise OSError(f"{method} {url} in {host}: {r.stderr.strip()[-500:]}")
        return json.loads(r.stdout)

    def destroy(self) -> list[str]:
        problems = []
        for ns in reversed(self.made):
            r = sh("ip", "netns", "del", ns, check=False)
            if r.returncode != 0:
                problems.append(f"ip netns del {ns}: {r.stderr.strip()}")
        self.made.clear()
        return problems


def make_keys(base: Path, hosts: tuple[str, ...]) -> dict[str, Path]:
    """``arbctl keys new`` for every host; main authorises every node, each node main."""
    dirs = {}
    for h in hosts:
        d = base / h
        r = run_cli(ARBCTL, "keys", "new", h, "--dir", str(d))
        assert r.returncode == 0, r.stderr
        (d / "authorized").mkdir()
        dirs[h] = d
    for h in hosts:
        if h == "main":
            continue
        (dirs["main"] / "authorized" / f"{h}.key").write_bytes((dirs[h] / f"{h}.key").read_bytes())
        (dirs[h] / "authorized" / "main.key").write_bytes((dirs["main"] / "main.key").read_bytes())
    return dirs


class NsSimDaemon(SimDaemon):
    """``arbd start`` with its real roles, in main's namespace."""

    def __init__(self, root: Path, cfg: dict[str, Any], env: dict[str, str | None], hosts: NetHosts) -> None:
        super().__init__(root, cfg, env)
        self.hosts = hosts

    def command(self, *extra: str, max_runtime_s: float = 300.0) -> list[str]:
        return [*self.hosts.exec_prefix("main"), *super().command(*extra, max_runtime_s=max_runtime_s)]

    def admin(self, path: str, method: str = "GET", body: Any = None) -> Any:
        return self.hosts.http("main", self.sim()["admin"] + path, method, body)

    def clear_faults(self) -> None:
        with contextlib.suppress(OSError):
            self.admin("/_sim/fault", "DELETE")


class NodeRun(DaemonRun):
    """``arbd node`` in a node's namespace."""

    def __init__(self, root: Path, config: dict[str, Any], hosts: NetHosts, host: str) -> None:
        super().__init__(root, config)
        self.hosts = hosts
        self.host = host

    def start(self, *extra: str, wait_running: bool = False, timeout: float = 30.0,
              max_runtime_s: float = 300.0) -> NodeRun:
        assert self.proc is None or self.proc.poll() is not None, "already started"
        self.started_at = time.time()
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [*self.hosts.exec_prefix(self.host), str(ARBD), "node", "--config", str(self.config_path),
                 "--run-dir", str(self.run_dir), *extra],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env, cwd=str(self.root))
        return self

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def log_records(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict):
                out.append(rec)
    return out
