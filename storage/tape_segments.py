"""A directory of tape segments with a disk bound: what a trading daemon
records into (``record.enabled``) when it may run for days.

Each segment is a tape of its own (``tape-<UTC start>.arbt``, each readable
alone by ``arbd backtest``), closed at ``segment_bytes``. Before a new one
opens, the oldest segments are deleted until the directory's tapes, plus the
new segment's worst case, fit in ``max_bytes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.tape import Frame, TapeWriter

SUFFIX = ".arbt"


class SegmentSink:
    def __init__(self, directory: Path, meta: dict[str, Any], *, segment_bytes: int, max_bytes: int,
                 chunk_bytes: int = 512 << 10, flush_s: float = 1.0,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        if segment_bytes <= 0 or max_bytes < segment_bytes:
            raise ValueError("need 0 < segment_bytes <= max_bytes")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self.flush_s = flush_s
        self.clock_ns = clock_ns
        self.full = False  # never: a segment directory rotates instead
        self.deleted = 0
        self.writer: TapeWriter | None = None

    def segments(self) -> list[Path]:
        return sorted(p for p in self.dir.glob(f"tape-*{SUFFIX}") if p.is_file())

    def _open(self) -> TapeWriter:
        budget = self.max_bytes - self.segment_bytes
        olds = self.segments()
        total = sum(p.stat().st_size for p in olds)
        while olds and total > budget:
            victim = olds.pop(0)
            total -= victim.stat().st_size
            victim.unlink()
            self.deleted += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.clock_ns() / 1e9))
        path = self.dir / f"tape-{stamp}{SUFFIX}"
        n = 1
        while path.exists():
            path = self.dir / f"tape-{stamp}-{n}{SUFFIX}"
            n += 1
        # The hard cap is only a backstop: add() rotates before the open chunk,
        # even uncompressed, could take the segment past segment_bytes.
        return TapeWriter(path, self.meta, chunk_bytes=min(self.chunk_bytes, self.segment_bytes // 4),
                          flush_s=self.flush_s, max_bytes=2 * self.segment_bytes)

    def add(self, frame: Frame) -> None:
        w = self.writer
        if w is not None and (w.full or w.bytes_written + w.pending_raw + len(frame.data) + 64
                              >= self.segment_bytes):
            w.close()
            w = self.writer = None
        if w is None:
            w = self.writer = self._open()
        w.add(frame)

    def tick(self, now_ns: int) -> None:
        if self.writer is not None:
            self.writer.tick(now_ns)
            if self.writer.full:
                self.writer.close()
                self.writer = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
