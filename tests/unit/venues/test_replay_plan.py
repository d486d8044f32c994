"""How a tape is cut into steps: one venue per step, no book twice, the FX book
alone, no more than step_ns of tape per step, trades ride along."""

from __future__ import annotations

from storage.tape import Frame
from venues.sim.replay_plan import plan_steps

MS = 1_000_000


def up(t_ms: int, code: str, kind: str = "orderbook") -> Frame:
    return Frame(t_ms * MS, "upbit", f"{kind}:KRW-{code}", b"{}", True)


def bn(t_ms: int, coin: str, kind: str = "depth20@100ms") -> Frame:
    return Frame(t_ms * MS, "binance", f"{coin.lower()}usdt@{kind}", b"{}", False)


def shape(frames: list[Frame], step_ms: int = 50) -> list[list[str]]:
    return [[f"{f.venue[0]}.{r.coin}.{r.kind}" for f, r in s.frames] for s in plan_steps(frames, step_ms * MS)]


def test_one_venues_books_share_a_step_and_the_other_venue_starts_a_new_one() -> None:
    frames = [up(0, "BTC"), up(1, "ETH"), up(1, "XRP"), bn(2, "BTC"), bn(2, "ETH"), up(3, "BTC")]
    assert shape(frames) == [["u.BTC.book", "u.ETH.book", "u.XRP.book"], ["b.BTC.book", "b.ETH.book"],
                             ["u.BTC.book"]]


def test_a_book_seen_twice_starts_a_new_step() -> None:
    assert shape([up(0, "BTC"), up(5, "ETH"), up(10, "BTC")]) == [["u.BTC.book", "u.ETH.book"], ["u.BTC.book"]]


def test_the_fx_book_is_a_step_of_its_own() -> None:
    frames = [up(0, "BTC"), up(0, "USDT"), up(1, "ETH"), up(2, "XRP")]
    assert shape(frames) == [["u.BTC.book"], ["u.USDT.book"], ["u.ETH.book", "u.XRP.book"]]


def test_a_step_spans_no_more_than_step_ns_and_its_time_is_its_last_frame() -> None:
    steps = list(plan_steps([up(0, "BTC"), up(30, "ETH"), up(60, "XRP")], 50 * MS))
    assert [[r.coin for _, r in s.frames] for s in steps] == [["BTC", "ETH"], ["XRP"]]
    assert [s.t_ns for s in steps] == [30 * MS, 60 * MS]


def test_trades_ride_along_and_unroutable_frames_are_dropped() -> None:
    frames = [up(0, "BTC"), up(0, "BTC", "trade"), Frame(1 * MS, "upbit", "other", b"{}", True),
              bn(1, "BTC", "trade"), up(2, "ETH")]
    assert shape(frames) == [["u.BTC.book", "u.BTC.trade", "b.BTC.trade", "u.ETH.book"]]


def test_a_clock_stepped_back_while_recording_keeps_steps_in_order() -> None:
    steps = list(plan_steps([up(10, "BTC"), bn(5, "BTC")], 50 * MS))
    assert [s.t_ns for s in steps] == [10 * MS, 10 * MS]
