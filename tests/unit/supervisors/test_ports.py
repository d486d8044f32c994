"""Ports picked for a later bind come from below the kernel's ephemeral range."""

from __future__ import annotations

import socket

import pytest

from supervisors import ports


def test_a_picked_port_is_free_below_the_ephemeral_range_and_accepted() -> None:
    start, _ = ports.ephemeral_range()
    picked = {ports.pick_port("127.0.0.1", lambda p: p % 3 == 1) for _ in range(20)}
    assert all(p < start and p % 3 == 1 for p in picked)
    assert all(ports.bindable("127.0.0.1", p) for p in picked)


def test_a_port_in_use_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        busy = held.getsockname()[1]
        assert not ports.bindable("127.0.0.1", busy)
        with socket.socket() as probe:  # a neighbour that is free
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]

        class Draws:  # the busy port comes up first, then the free one
            def __init__(self) -> None:
                self.seq = iter([busy, busy, free])

            def randrange(self, lo: int, hi: int) -> int:
                return next(self.seq)

        monkeypatch.setattr(ports.random, "Random", Draws)
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (max(busy, free) + 1, 65535))
        assert ports.pick_port("127.0.0.1") == free


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (1024, 65535))
    p = ports.pick_port("127.0.0.1")
    assert 1024 <= p <= 65535 and ports.bindable("127.0.0.1", p)
