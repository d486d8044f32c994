"""The host freezes an actor's start-up heap (see supervisors.host._freeze_heap)."""

from __future__ import annotations

import gc

from supervisors.host import _freeze_heap


def test_what_is_alive_at_the_freeze_leaves_the_collectors_generations() -> None:
    held = [[i] for i in range(10_000)]  # container objects the collector tracks
    gc.unfreeze()
    try:
        _freeze_heap(collect=True)
        frozen = gc.get_freeze_count()
        assert frozen >= len(held)
        # Objects made afterwards are the collector's again; a second freeze takes them too.
        later = [[i] for i in range(5_000)]
        _freeze_heap(collect=False)
        assert gc.get_freeze_count() >= frozen + len(later)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0

