"""Premium math, checked against numbers worked out by hand.

Common setting: fx = Upbit USDT mid = (1399.5 + 1400.5) / 2 = 1400 KRW,
baseline 2.0 %, entry threshold 0.2 %, fees 0.05 % + 0.10 % = 0.15 %.
"""

from __future__ import annotations

import time

import pytest

from arbitrage.premium import (
    FEES_PCT,
    PremiumCalculator,
    PremiumConfig,
    meets_minimums,
    mid_premium_pct,
    premium_pct,
)
from messages import BUY_UPBIT, SELL_UPBIT, BookTop

NOW = 1_700_000_000.0
BASELINE = 2.0


def book(venue: str, symbol: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]],
         recv_s: float = NOW) -> BookTop:
    return BookTop(venue=venue, symbol=symbol, bid=bids[0][0], ask=asks[0][0], bid_size=bids[0][1],
                   ask_size=asks[0][1], bids=tuple(bids), asks=tuple(asks), recv_ts_ns=int(recv_s * 1e9))


def fx_book(recv_s: float = NOW) -> BookTop:
    return book("upbit", "USDT", [(1399.5, 1e6)], [(1400.5, 1e6)], recv_s)


def calc(**overrides: float) -> PremiumCalculator:
    cfg = PremiumConfig(**{"entry_threshold_pct": 0.2, "max_quote_age_s": 2.0, **overrides})
    return PremiumCalculator(cfg, now=lambda: NOW)


# Upbit rich: 143.5M KRW bid vs 100,000 USDT * 1400 = 140M KRW -> 2.5 % premium at the top.
UPBIT_RICH = book("upbit", "BTC", [(143_500_000, 0.01), (143_400_000, 0.02), (143_000_000, 0.5)],
                  [(143_600_000, 0.01), (143_700_000, 1.0)])
BINANCE_SELL_SIDE = book("binance", "BTC", [(99_990.0, 1.0)], [(100_000.0, 0.015), (100_010.0, 0.5)])


def test_fees_are_both_venues_taker_fees_in_percent() -> None:
    assert abs(FEES_PCT - 0.15) < 1e-12


def test_premium_is_upbit_over_bridged_binance_minus_one_in_percent() -> None:
    assert premium_pct(143_500_000, 100_000, 1400) == pytest.approx(2.5)


def test_sell_upbit_walks_both_books_while_the_marginal_level_clears_the_entry_threshold() -> None:
    # Clears while up_bid >= bn_ask * 1400 * 1.0235 (= 2.0 + 0.15 + 0.2 %):
    #   143.5M vs 100,000 (needs 143.29M): take 0.01      (upbit level 0 used up)
    #   143.4M vs 100,000:                 take 0.005     (binance level 0 used up)
    #   143.4M vs 100,010 (needs 143.3043M): take 0.015   (upbit level 1 used up)
    #   143.0M vs 100,010: fails -> stop. qty 0.03 at worst prices 143.4M / 100,010.
    opp, reason = calc().evaluate(UPBIT_RICH, BINANCE_SELL_SIDE, fx_book(), BASELINE)

    assert reason == ""
    q = opp.sell_upbit
    assert q.direction == SELL_UPBIT
    assert q.qty == pytest.approx(0.03)
    assert (q.upbit_price, q.binance_price) == (143_400_000, 100_010.0)
    # 143,400,000 / (100,010 * 1400 = 140,014,000) - 1 = 2.418329...%
    assert q.premium_pct == pytest.approx(2.4183296)
    assert q.edge_pct == pytest.approx(2.4183296 - 2.0 - 0.15)


def test_the_wrong_direction_has_no_quantity_and_quotes_top_of_book() -> None:
    opp, _ = calc().evaluate(UPBIT_RICH, BINANCE_SELL_SIDE, fx_book(), BASELINE)

    q = opp.buy_upbit
    assert q.qty == 0.0
    assert (q.upbit_price, q.binance_price) == (143_600_000, 99_990.0)
    # 143,600,000 / (99,990 * 1400 = 139,986,000) - 1 = 2.581686...%; edge = 2.0 - 2.5817 - 0.15
    assert q.premium_pct == pytest.approx(2.5816867)
    assert q.edge_pct == pytest.approx(2.0 - 2.5816867 - 0.15)


def test_buy_upbit_walks_upbit_asks_against_binance_bids() -> None:
    # Clears while up_ask <= bn_bid * 1400 * 1.0165 (= 2.0 - 0.15 - 0.2 %) = 142.31M:
    #   142.1M: take 0.01; 142.3M: take 0.01; 142.4M: fails. qty 0.02 at 142.3M / 100,000.
    upbit = book("upbit", "BTC", [(142_000_000, 1.0)],
                 [(142_100_000, 0.01), (142_300_000, 0.01), (142_400_000, 1.0)])
    binance = book("binance", "BTC", [(100_000.0, 1.0)], [(100_010.0, 1.0)])

    opp, _ = calc().evaluate(upbit, binance, fx_book(), BASELINE)

    q = opp.buy_upbit
    assert q.direction == BUY_UPBIT
    assert q.qty == pytest.approx(0.02)
    assert (q.upbit_price, q.binance_price) == (142_300_000, 100_000.0)
    # 142.3M / 140M - 1 = 1.642857 %; in BUY_UPBIT's favour: 2.0 - 1.642857 - 0.15
    assert q.premium_pct == pytest.approx(1.6428571)
    assert q.edge_pct == pytest.approx(0.2071429)
    assert opp.sell_upbit.qty == 0.0


def test_the_opportunity_carries_mid_premium_baseline_fx_and_timestamps() -> None:
    fx = fx_book(recv_s=NOW - 0.5)
    upbit = book("upbit", "BTC", UPBIT_RICH.bids, UPBIT_RICH.asks, recv_s=NOW - 0.1)

    opp, _ = calc(opportunity_ttl_s=1.5).evaluate(upbit, BINANCE_SELL_SIDE, fx, BASELINE)

    assert opp.symbol == "BTC"
    assert opp.fx == 1400.0
    assert opp.baseline_pct == BASELINE
    assert opp.premium_pct == pytest.approx(mid_premium_pct(upbit, BINANCE_SELL_SIDE, fx))
    assert opp.ts_ns == int(NOW * 1e9)
    assert opp.expires_ns == int(NOW * 1e9) + 1_500_000_000
    assert opp.origin_ts_ns == int(NOW * 1e9)  # the newest of the three quotes


def test_limit_prices_round_to_tick_conservatively_sell_down_buy_up() -> None:
    # Upbit BTC ticks are 1,000 KRW above 1M; Binance BTC ticks are 0.01 USDT.
    upbit = book("upbit", "BTC", [(143_500_700, 0.01)], [(143_900_000, 1.0)])
    binance = book("binance", "BTC", [(99_990.0, 1.0)], [(100_000.004, 0.01)])

    opp, _ = calc().evaluate(upbit, binance, fx_book(), BASELINE)

    assert opp.sell_upbit.upbit_price == 143_500_000  # a sell rounds down
    assert opp.sell_upbit.binance_price == 100_000.01  # a buy rounds up


def test_quantity_is_rounded_down_to_the_common_lot() -> None:
    # Binance BTC lot is 0.00001: 0.0123456 -> 0.01234.
    upbit = book("upbit", "BTC", [(143_500_000, 0.0123456)], [(143_900_000, 1.0)])
    binance = book("binance", "BTC", [(99_990.0, 1.0)], [(100_000.0, 1.0)])

    opp, _ = calc().evaluate(upbit, binance, fx_book(), BASELINE)

    assert opp.sell_upbit.qty == 0.01234


def test_depth_caps_quantity_at_the_thinner_book() -> None:
    upbit = book("upbit", "BTC", [(143_500_000, 5.0)], [(143_900_000, 1.0)])
    binance = book("binance", "BTC", [(99_990.0, 1.0)], [(100_000.0, 0.2), (101_000.0, 9.0)])

    opp, _ = calc().evaluate(upbit, binance, fx_book(), BASELINE)

    assert opp.sell_upbit.qty == pytest.approx(0.2)  # 101,000 USDT no longer clears


def test_max_levels_limits_how_deep_the_walk_goes() -> None:
    upbit = book("upbit", "BTC", [(143_500_000, 0.01)] * 5, [(143_900_000, 1.0)])
    binance = book("binance", "BTC", [(99_990.0, 1.0)], [(100_000.0, 1.0)])

    opp, _ = calc(max_levels=2).evaluate(upbit, binance, fx_book(), BASELINE)

    assert opp.sell_upbit.qty == pytest.approx(0.02)


def test_nothing_clears_when_the_top_edge_is_under_the_threshold() -> None:
    # 143.2M / 140M - 1 = 2.2857 %: edge 0.1357 % < 0.2 % entry.
    upbit = book("upbit", "BTC", [(143_200_000, 1.0)], [(143_900_000, 1.0)])
    binance = book("binance", "BTC", [(99_990.0, 1.0)], [(100_000.0, 1.0)])

    opp, _ = calc().evaluate(upbit, binance, fx_book(), BASELINE)

    assert opp.sell_upbit.qty == 0.0
    assert opp.sell_upbit.edge_pct == pytest.approx(2.2857143 - 2.0 - 0.15)


def test_a_quantity_below_binance_notional_minimum_is_zero_even_if_upbit_accepts_it() -> None:
    # 0.00004 BTC: 5,740 KRW on Upbit (>= 5,000) but 4 USDT on Binance (< 5).
    upbit = book("upbit", "BTC", [(143_500_000, 0.00004)], [(143_900_000, 1.0)])
    binance = book("binance", "BTC", [(99_990.0, 1.0)], [(100_000.0, 1.0)])

    opp, _ = calc().evaluate(upbit, binance, fx_book(), BASELINE)

    assert opp.sell_upbit.qty == 0.0
    assert opp.sell_upbit.upbit_price == 143_500_000  # top of book when nothing is tradable


def test_minimums_need_both_legs() -> None:
    assert meets_minimums("BTC", 0.00005, 143_500_000, 100_000)  # 7,175 KRW and 5.0 USDT
    assert not meets_minimums("BTC", 0.00004, 143_500_000, 100_000)  # 4 USDT
    assert not meets_minimums("XRP", 5.0, 900, 0.7)  # 4,500 KRW


@pytest.mark.parametrize("which", ["upbit", "binance", "fx"])
def test_a_stale_quote_is_rejected_with_its_venue_and_symbol(which: str) -> None:
    old = NOW - 2.5
    upbit = book("upbit", "BTC", UPBIT_RICH.bids, UPBIT_RICH.asks, old if which == "upbit" else NOW)
    binance = book("binance", "BTC", BINANCE_SELL_SIDE.bids, BINANCE_SELL_SIDE.asks,
                   old if which == "binance" else NOW)
    fx = fx_book(old if which == "fx" else NOW)

    opp, reason = calc().evaluate(upbit, binance, fx, BASELINE)

    assert opp is None
    expected = {"upbit": "upbit BTC", "binance": "binance BTC", "fx": "upbit USDT"}[which]
    assert reason.startswith(f"stale {expected} quote")


def test_a_crossed_book_is_rejected() -> None:
    crossed = book("binance", "BTC", [(100_001.0, 1.0)], [(100_000.0, 1.0)])

    opp, reason = calc().evaluate(UPBIT_RICH, crossed, fx_book(), BASELINE)

    assert opp is None
    assert reason.startswith("crossed or empty binance BTC book")


def test_a_missing_fx_rate_is_rejected() -> None:
    opp, reason = calc().evaluate(UPBIT_RICH, BINANCE_SELL_SIDE, None, BASELINE)

    assert opp is None
    assert "fx" in reason


def test_no_opportunity_while_the_baseline_warms_up() -> None:
    opp, reason = calc().evaluate(UPBIT_RICH, BINANCE_SELL_SIDE, fx_book(), None)

    assert opp is None
    assert reason == "baseline warming up"


def test_a_book_with_only_a_top_level_is_walked_as_one_level() -> None:
    upbit = BookTop(venue="upbit", symbol="BTC", bid=143_500_000, ask=143_900_000, bid_size=0.05,
                    ask_size=1.0, recv_ts_ns=int(NOW * 1e9))
    binance = BookTop(venue="binance", symbol="BTC", bid=99_990.0, ask=100_000.0, bid_size=1.0,
                      ask_size=1.0, recv_ts_ns=int(NOW * 1e9))

    opp, _ = calc().evaluate(upbit, binance, fx_book(), BASELINE)

    assert opp.sell_upbit.qty == pytest.approx(0.05)


def test_config_rejects_nonsense_with_every_error_at_once() -> None:
    with pytest.raises(ValueError, match="max_levels.*max_quote_age_s"):
        PremiumConfig(max_levels=0, max_quote_age_s=0)


def test_evaluate_is_fast_enough_for_every_quote() -> None:
    # Ten levels a side, every level clearing, so both walks go the full depth.
    upbit = book("upbit", "BTC", [(150_000_000 - i * 1000, 0.01) for i in range(10)],
                 [(150_100_000 + i * 1000, 0.01) for i in range(10)])
    binance = book("binance", "BTC", [(99_990.0 - i, 0.01) for i in range(10)],
                   [(100_000.0 + i, 0.01) for i in range(10)])
    c, fx = calc(), fx_book()
    n = 20_000

    t0 = time.perf_counter()
    for _ in range(n):
        c.evaluate(upbit, binance, fx, BASELINE)
    us = (time.perf_counter() - t0) / n * 1e6

    print(f"\nPremiumCalculator.evaluate: {us:.1f} us/call (10 levels a side)")
    assert c.evaluate(upbit, binance, fx, BASELINE)[0].sell_upbit.qty == pytest.approx(0.1)
    assert us < 200  # generous: a loaded CI box, not this machine's ~15 us
