"""Tapes: every WebSocket frame of both venues, byte for byte with its receive
time, in an append-only file of zstandard-compressed chunks.

Layout (little-endian)::

    file   := head chunk*
    head   := b"ARBDTAPE" u16 version u32 meta_len meta(JSON, UTF-8) u32 crc32(meta)
    chunk  := b"CHNK" u32 comp_len u32 raw_len u32 frames i64 first_ns i64 last_ns
              u32 crc32(the 32 header bytes before it + comp) comp
    comp   := zstd(raw)
    raw    := u16 n_streams (u16 len, bytes)*n_streams  frame*
    frame  := i64 recv_ns u8 venue u8 flags u16 stream u32 len bytes

Each chunk is complete in itself (its own stream-name table, one zstd frame),
and is written with one ``write`` on an ``O_APPEND`` descriptor. A killed
recorder therefore leaves every chunk before the one it was writing whole;
:class:`TapeReader` replays those and names the byte where the cut one starts
(``truncated_at``). A chunk that is there but wrong (bad magic, crc, zstd or
frame table) raises :class:`TapeError` naming its offset: that is damage, not a
kill, and a backtest must not quietly skip a stretch of market.

Why zstandard chunks and not Parquet: the write cost is one compression of
~0.5 MB of JSON per chunk (a few ms at level 3) and one append, with nothing
to finish at close. A Parquet file is only readable once its footer is
written, so a killed recorder would lose the whole file (or every row group
not yet closed into a file of its own); and pyarrow is a ~100 MB dependency
for what is a byte stream keyed by time. Replay reads sequentially:
zstandard decompresses at hundreds of MB/s and the frame table is a fixed
16-byte struct per frame, so reading is far from what a replay through the
daemon costs (``bench/replay.py`` prints both).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

MAGIC = b"ARBDTAPE"
CHUNK_MAGIC = b"CHNK"
VERSION = 1
VENUES = ("upbit", "binance")
_VENUE_ID = {v: i for i, v in enumerate(VENUES)}
BINARY = 0x01  # the frame was a binary WebSocket message (Upbit's), else text

_FILE_HEAD = struct.Struct("<8sHI")
_CRC = struct.Struct("<I")
_CHUNK_HEAD = struct.Struct("<4sIIIqqI")
_COUNT = struct.Struct("<H")
_FRAME = struct.Struct("<qBBHI")
MAX_META = 1 << 20
MAX_CHUNK = 64 << 20  # a chunk claiming more than this is damage, not data


class TapeError(Exception):
    """A tape that cannot be read: ``offset`` is the byte where the problem is."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"{reason} at byte {offset}")
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket message as a feed received it.

    ``stream`` routes it on replay: ``orderbook:KRW-BTC`` / ``trade:KRW-BTC``
    for Upbit, the stream name (``btcusdt@depth20@100ms``) for Binance."""

    recv_ns: int
    venue: str
    stream: str
    data: bytes
    binary: bool


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    offset: int
    comp_len: int
    raw_len: int
    frames: int
    first_ns: int
    last_ns: int


class TapeWriter:
    """Appends frames; a chunk goes to disk when it holds ``chunk_bytes`` of raw
    frames or when :meth:`maybe_flush` finds it older than ``flush_s``.

    ``max_bytes`` (0: none) bounds the file: a chunk that would take it past
    the bound is not written, and the writer is ``full`` from then on (later
    frames are dropped)."""

    def __init__(self, path: str | os.PathLike[str], meta: dict[str, Any], *, chunk_bytes: int = 512 << 10,
                 flush_s: float = 1.0, level: int = 3, max_bytes: int = 0) -> None:
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.flush_ns = int(flush_s * 1e9)
        self.max_bytes = max_bytes
        self.full = False
        self._zstd = zstandard.ZstdCompressor(level=level)
        # O_EXCL: a tape is never appended to after the fact (a cut chunk in
        # the middle would then read as damage).
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        body = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        head = _FILE_HEAD.pack(MAGIC, VERSION, len(body)) + body + _CRC.pack(zlib.crc32(body))
        os.write(self._fd, head)
        self.bytes_written = len(head)
        self.frames_written = 0
        self.raw_written = 0
        self.chunks = 0
        self._reset()

    def _reset(self) -> None:
        self._parts: list[bytes] = []
        self._streams: dict[str, int] = {}
        self._raw = 0
        self._n = 0
        self._first = 0
        self._last = 0

    @property
    def pending_frames(self) -> int:
        return self._n

    @property
    def pending_raw(self) -> int:
        """Raw bytes of the open chunk (its compressed size is less, for JSON)."""
        return self._raw

    def add(self, frame: Frame) -> None:
        if self.full:
            return
        idx = self._streams.get(frame.stream)
        if idx is None:
            if len(self._streams) >= 0xFFFF:
                self.flush()
            idx = self._streams[frame.stream] = len(self._streams)
        data = frame.data
        self._parts.append(_FRAME.pack(frame.recv_ns, _VENUE_ID[frame.venue], BINARY if frame.binary else 0,
                                       idx, len(data)))
        self._parts.append(data)
        if not self._n:
            self._first = frame.recv_ns
        self._last = frame.recv_ns
        self._n += 1
        self._raw += _FRAME.size + len(data)
        if self._raw >= self.chunk_bytes:
            self.flush()

    def maybe_flush(self, now_ns: int) -> None:
        """Write the open chunk if its first frame is older than ``flush_s``: what a
        kill can lose is bounded in time as well as in size."""
        if self._n and now_ns - self._first >= self.flush_ns:
            self.flush()

    def flush(self) -> None:
        if not self._n:
            return
        table = [_COUNT.pack(len(self._streams))]
        for name in self._streams:
            b = name.encode()
            table += [_COUNT.pack(len(b)), b]
        raw = b"".join(table + self._parts)
        comp = self._zstd.compress(raw)
        fields = (CHUNK_MAGIC, len(comp), len(raw), self._n, self._first, self._last)
        head = _CHUNK_HEAD.pack(*fields, zlib.crc32(comp, zlib.crc32(_CHUNK_HEAD.pack(*fields, 0)[:-4])))
        if self.max_bytes and self.bytes_written + len(head) + len(comp) > self.max_bytes:
            self.full = True
            self._reset()
            return
        os.write(self._fd, head + comp)  # one append: whole, or cut only by a crash mid-write
        self.bytes_written += len(head) + len(comp)
        self.frames_written += self._n
        self.raw_written += len(raw)
        self.chunks += 1
        self._reset()

    def tick(self, now_ns: int) -> None:
        self.maybe_flush(now_ns)

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TapeWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class TapeReader:
    """Reads a tape front to back. Opening checks the head (``meta``);
    :meth:`scan` checks every chunk without keeping frames (what a backtest
    does before it starts); :meth:`frames` yields them in order."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.size = self.path.stat().st_size
        except OSError as exc:
            raise TapeError(0, f"cannot read the tape ({exc.strerror or exc})") from None
        self.truncated_at: int | None = None  # where a partly written last chunk starts
        self._unzstd = zstandard.ZstdDecompressor()
        with self.path.open("rb") as f:
            self.meta, self.data_offset = self._read_head(f)

    def _read_head(self, f: BinaryIO) -> tuple[dict[str, Any], int]:
        head = f.read(_FILE_HEAD.size)
        if len(head) < _FILE_HEAD.size or head[:8] != MAGIC:
            raise TapeError(0, "not an arbd tape (no ARBDTAPE header)")
        _, version, meta_len = _FILE_HEAD.unpack(head)
        if version != VERSION:
            raise TapeError(8, f"tape format version {version} (this build reads {VERSION})")
        if meta_len > MAX_META:
            raise TapeError(10, f"tape header claims {meta_len} bytes of metadata")
        body = f.read(meta_len)
        crc = f.read(_CRC.size)
        if len(body) < meta_len or len(crc) < _CRC.size:
            raise TapeError(_FILE_HEAD.size, "tape header is cut short")
        if _CRC.unpack(crc)[0] != zlib.crc32(body):
            raise TapeError(_FILE_HEAD.size, "tape header is corrupt (crc mismatch)")
        try:
            meta = json.loads(body)
        except ValueError:
            raise TapeError(_FILE_HEAD.size, "tape header is corrupt (metadata is not JSON)") from None
        if not isinstance(meta, dict):
            raise TapeError(_FILE_HEAD.size, "tape header is corrupt (metadata is not an object)")
        return meta, _FILE_HEAD.size + meta_len + _CRC.size

    def _chunks(self, f: BinaryIO, decode: bool) -> Iterator[tuple[ChunkInfo, bytes]]:
        offset = self.data_offset
        f.seek(offset)
        while True:
            head = f.read(_CHUNK_HEAD.size)
            if not head:
                return
            if len(head) < _CHUNK_HEAD.size:
                self.truncated_at = offset
                return
            magic, comp_len, raw_len, n, first, last, crc = _CHUNK_HEAD.unpack(head)
            if magic != CHUNK_MAGIC:
                raise TapeError(offset, "corrupt chunk (bad chunk marker)")
            if comp_len > MAX_CHUNK or raw_len > MAX_CHUNK or first > last:
                raise TapeError(offset, "corrupt chunk (impossible header)")
            comp = f.read(comp_len)
            if len(comp) < comp_len:
                self.truncated_at = offset
                return
            if zlib.crc32(comp, zlib.crc32(head[:-4])) != crc:
                raise TapeError(offset, "corrupt chunk (crc mismatch)")
            raw = b""
            if decode:
                try:
                    raw = self._unzstd.decompress(comp, max_output_size=raw_len)
                except zstandard.ZstdError as exc:
                    raise TapeError(offset, f"corrupt chunk (zstd: {exc})") from None
                if len(raw) != raw_len:
                    raise TapeError(offset, "corrupt chunk (wrong decompressed size)")
            yield ChunkInfo(offset, comp_len, raw_len, n, first, last), raw
            offset += _CHUNK_HEAD.size + comp_len

    def first_ns(self) -> int:
        """The first frame's receive time, from the first chunk's header (0: no chunk)."""
        with self.path.open("rb") as f:
            f.seek(self.data_offset)
            head = f.read(_CHUNK_HEAD.size)
        if len(head) < _CHUNK_HEAD.size or head[:4] != CHUNK_MAGIC:
            return 0
        return int(_CHUNK_HEAD.unpack(head)[4])

    def scan(self) -> list[ChunkInfo]:
        """Every whole chunk's header, each checked against its crc."""
        with self.path.open("rb") as f:
            return [info for info, _ in self._chunks(f, decode=False)]

    def frames(self) -> Iterator[Frame]:
        with self.path.open("rb") as f:
            for info, raw in self._chunks(f, decode=True):
                yield from _decode_frames(info, raw)


def _decode_frames(info: ChunkInfo, raw: bytes) -> list[Frame]:
    def damaged(what: str) -> TapeError:
        return TapeError(info.offset, f"corrupt chunk ({what})")

    view = memoryview(raw)
    try:
        (n_streams,) = _COUNT.unpack_from(view, 0)
        pos = _COUNT.size
        names = []
        for _ in range(n_streams):
            (length,) = _COUNT.unpack_from(view, pos)
            pos += _COUNT.size
            names.append(bytes(view[pos:pos + length]).decode())
            pos += length
        out = []
        unpack, size, end = _FRAME.unpack_from, _FRAME.size, len(raw)
        for _ in range(info.frames):
            ts, venue, flags, idx, length = unpack(view, pos)
            pos += size
            if pos + length > end:
                raise damaged("frame runs past the chunk")
            out.append(Frame(ts, VENUES[venue], names[idx], bytes(view[pos:pos + length]), bool(flags & BINARY)))
            pos += length
    except (struct.error, IndexError, UnicodeDecodeError):
        raise damaged("frame table") from None
    if pos != end:
        raise damaged("bytes after the last frame")
    return out
