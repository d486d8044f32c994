"""State files for warm restarts: atomic writes from a thread, reads that never raise."""

from __future__ import annotations

import json
from pathlib import Path

from supervisors.statefile import StateWriter, read_state


def test_a_written_document_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "x.json"
    w = StateWriter(path)
    w.submit({"a": 1})
    w.submit({"a": 2})  # only the newest matters
    w.close()
    assert read_state(path) == ({"a": 2}, "")
    assert not list(path.parent.glob(".*.tmp"))  # tmp + rename leaves nothing behind


def test_missing_truncated_and_corrupt_files_are_none_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    assert read_state(path) == (None, "")
    path.write_text(json.dumps({"version": 1, "symbols": {"BTC": {"value": 2.0}}})[:17])
    doc, why = read_state(path)
    assert doc is None and "truncated" in why
    path.write_bytes(b"\xff\xfe\x00garbage")
    doc, why = read_state(path)
    assert doc is None and why
