"""The rules of the house (ARCHITECTURE section 2), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_pure_logic_and_messages_import_no_runtime_or_io_package() -> None:
    banned = ("actors", "supervisors", "venues", "storage", "zmq", "pykka", "ccxt", "websockets",
              "aiohttp", "sqlite3", "socket", "psutil")
    for pkg in ("arbitrage", "messages"):
        for path in modules(pkg):
            bad = {m for m in imports(path) if m.split(".")[0] in banned}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_actors_never_import_each_other() -> None:
    for path in modules("actors"):
        others = {m for m in imports(path) if m.startswith("actors.") and m != "actors.base"}
        assert not others, f"{path.relative_to(ROOT)} imports {others}"


def test_only_the_codec_touches_msgpack() -> None:
    for pkg in ("actors", "supervisors", "venues", "arbitrage", "storage"):
        for path in modules(pkg):
            assert "msgpack" not in {m.split(".")[0] for m in imports(path)}, path
