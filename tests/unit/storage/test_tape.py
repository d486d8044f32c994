"""The tape format: frames come back byte for byte; a cut tape replays what is
whole and says where it was cut; a damaged one names the damaged chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.tape import Frame, TapeError, TapeReader, TapeWriter
from storage.tape_segments import SegmentSink

META = {"format": "arbd-tape", "symbols": ["BTC"], "source": "test"}


def frames(n: int, start_ns: int = 1_000_000_000) -> list[Frame]:
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(Frame(start_ns + i * 1000, "upbit", "orderbook:KRW-BTC",
                             b'{"type":"orderbook","i":%d}' % i + bytes([0xC3, 0xA9]), True))
        elif i % 3 == 1:
            out.append(Frame(start_ns + i * 1000, "binance", "btcusdt@depth20@100ms",
                             b'{"stream":"btcusdt@depth20@100ms","data":{"i":%d}}' % i, False))
        else:
            out.append(Frame(start_ns + i * 1000, "upbit", "other", b"\x00\xff" * (i % 7), True))
    return out


def write(path: Path, items: list[Frame], chunk_bytes: int = 2000) -> list[int]:
    """Write ``items``; return the offset of every chunk."""
    with TapeWriter(path, META, chunk_bytes=chunk_bytes) as w:
        for f in items:
            w.add(f)
    return [c.offset for c in TapeReader(path).scan()]


def test_frames_come_back_byte_for_byte_in_order_across_chunks(tmp_path: Path) -> None:
    items = frames(500)
    offsets = write(tmp_path / "t.arbt", items)

    r = TapeReader(tmp_path / "t.arbt")
    assert len(offsets) > 5
    assert list(r.frames()) == items
    assert r.meta == META
    assert r.truncated_at is None


def test_a_chunk_is_written_once_its_first_frame_is_older_than_flush_s(tmp_path: Path) -> None:
    w = TapeWriter(tmp_path / "t.arbt", META, chunk_bytes=1 << 20, flush_s=1.0)
    w.add(frames(1)[0])
    w.maybe_flush(1_000_000_000 + 900_000_000)
    assert w.chunks == 0
    w.maybe_flush(1_000_000_000 + 1_000_000_000)
    assert w.chunks == 1 and len(list(TapeReader(tmp_path / "t.arbt").frames())) == 1
    w.close()


def test_a_tape_cut_inside_a_chunk_replays_every_whole_chunk_and_names_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "t.arbt"
    items = frames(300)
    offsets = write(path, items)
    size = path.stat().st_size
    with path.open("r+b") as f:  # what a kill during the last write leaves
        f.truncate(offsets[-1] + (size - offsets[-1]) // 2)

    r = TapeReader(path)
    got = list(r.frames())

    assert r.truncated_at == offsets[-1]
    assert got == items[: len(got)] and 0 < len(got) < len(items)


def test_a_tape_cut_inside_a_chunk_header_is_a_cut_too(tmp_path: Path) -> None:
    path = tmp_path / "t.arbt"
    offsets = write(path, frames(300))
    with path.open("r+b") as f:
        f.truncate(offsets[-1] + 10)
    r = TapeReader(path)
    assert len(r.scan()) == len(offsets) - 1
    assert r.truncated_at == offsets[-1]


@pytest.mark.parametrize("where", [0, 20, 200])
def test_a_damaged_chunk_is_an_error_naming_its_offset(tmp_path: Path, where: int) -> None:
    path = tmp_path / "t.arbt"
    offsets = write(path, frames(300))
    bad = offsets[2]
    data = bytearray(path.read_bytes())
    data[bad + where] ^= 0x5A
    path.write_bytes(bytes(data))

    r = TapeReader(path)
    with pytest.raises(TapeError) as err:
        list(r.frames())
    assert err.value.offset == bad
    assert f"at byte {bad}" in str(err.value)
    with pytest.raises(TapeError):
        r.scan()


def test_a_file_that_is_not_a_tape_is_refused_at_byte_0(tmp_path: Path) -> None:
    path = tmp_path / "t.arbt"
    path.write_bytes(b"hello, I am a CSV file\n1,2,3\n")
    with pytest.raises(TapeError) as err:
        TapeReader(path)
    assert err.value.offset == 0 and "not an arbd tape" in str(err.value)


def test_a_damaged_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.arbt"
    write(path, frames(10))
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the metadata
    path.write_bytes(bytes(data))
    with pytest.raises(TapeError, match="header"):
        TapeReader(path)


def test_a_tape_is_never_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "t.arbt"
    write(path, frames(3))
    with pytest.raises(FileExistsError):
        TapeWriter(path, META)


def test_max_bytes_bounds_the_file_and_marks_the_writer_full(tmp_path: Path) -> None:
    path = tmp_path / "t.arbt"
    w = TapeWriter(path, META, chunk_bytes=2000, max_bytes=6000)
    for f in frames(2000):
        w.add(f)
    w.close()
    assert w.full
    assert path.stat().st_size <= 6000
    assert len(list(TapeReader(path).frames())) == w.frames_written > 0


def test_segments_rotate_and_the_oldest_go_to_keep_the_directory_under_max_bytes(tmp_path: Path) -> None:
    clock = iter(range(10**9, 10**12, 10**9))
    sink = SegmentSink(tmp_path / "tapes", META, segment_bytes=4000, max_bytes=12_000, chunk_bytes=1000,
                       clock_ns=lambda: next(clock))
    items = frames(3000)
    for f in items:
        sink.add(f)
    sink.close()

    segs = sink.segments()
    assert sink.deleted > 0 and len(segs) >= 2
    assert sum(p.stat().st_size for p in segs) <= 12_000
    kept = [f for p in segs for f in TapeReader(p).frames()]
    assert kept == items[len(items) - len(kept):]  # the newest frames, none lost between segments
