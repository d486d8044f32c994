"""Endpoints: every transport gives each actor an inbox (if it has one) and a
stream endpoint, all distinct, and survives the JSON round trip scripts use."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisors.endpoints import Endpoints, make_endpoints
from supervisors.runfiles import RunDir


@pytest.mark.parametrize("transport", ["ipc", "inproc", "tcp"])
def test_streams_and_inboxes_are_distinct_and_round_trip(tmp_path: Path, transport: str) -> None:
    ep = make_endpoints(transport, RunDir.at(tmp_path), ["guard", "executor"], "127.0.0.1",
                        ["engine", "feed.upbit", "guard"])
    assert set(ep.inboxes) == {"guard", "executor"}
    assert set(ep.streams) == {"engine", "feed.upbit", "guard"}
    every = [ep.bus_in, ep.bus_out, ep.sup, *ep.inboxes.values(), *ep.streams.values()]
    assert len(set(every)) == len(every)
    assert ep.stream("engine") == ep.streams["engine"]
    assert Endpoints.from_json(ep.to_json()) == ep
    if transport == "tcp":
        assert all(e.startswith("tcp://127.0.0.1:") for e in every)


def test_an_endpoints_file_without_streams_still_loads(tmp_path: Path) -> None:
    old = '{"bus_in": "a", "bus_out": "b", "sup": "c", "control": "d", "inboxes": {"guard": "e"}}'
    ep = Endpoints.from_json(old)
    assert ep.streams == {} and ep.inbox("guard") == "e"
