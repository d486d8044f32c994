import pytest

from arbitrage.paper_fill import fill_ioc
from messages import BookTop


def book(venue: str = "binance") -> BookTop:
    return BookTop(venue=venue, symbol="BTC", bid=100.0, ask=101.0, bid_size=1.0, ask_size=1.0,
                   bids=((100.0, 1.0), (99.0, 2.0)), asks=((101.0, 1.0), (102.0, 2.0)))


def test_a_buy_walks_the_asks_up_to_its_limit() -> None:
    f = fill_ioc(book(), "buy", 2.0, 102.0)
    assert f.filled_qty == pytest.approx(2.0)
    assert f.avg_price == pytest.approx((101.0 + 102.0) / 2)
    assert f.fee_quote == pytest.approx(203.0 * 0.001)


def test_a_buy_stops_at_its_limit_price() -> None:
    f = fill_ioc(book(), "buy", 2.0, 101.5)
    assert f.filled_qty == pytest.approx(1.0)


def test_a_sell_below_the_bid_fills_nothing_when_limit_is_above_it() -> None:
    assert fill_ioc(book(), "sell", 1.0, 100.5).filled_qty == 0.0


def test_upbit_fills_pay_upbit_fees() -> None:
    f = fill_ioc(book("upbit"), "sell", 1.0, 100.0)
    assert f.fee_quote == pytest.approx(100.0 * 0.0005)
