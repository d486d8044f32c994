"""What a backtest traded, from its ledger: the durable record the executor
wrote before every send and after every answer (never from the bus, whose
last values a shutdown may leave a step behind).

Trades, PnL and the drawdown are the position actor's own accounting
(``arbitrage.accounting.Portfolio``) replayed over the ledger's events; the
drawdown is the deepest fall of cumulative realized PnL from its high. Times
are tape times (the executor stamps the ledger with the market clock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arbitrage.accounting import Portfolio
from storage.ledger import Ledger


def ledger_result(ledger_path: Path) -> dict[str, Any]:
    if not ledger_path.exists():
        return {"trades_opened": 0, "trades_closed": 0, "open_pairs": 0, "pnl_krw": 0.0, "orders": 0,
                "fills": 0, "fees_krw": 0.0, "max_drawdown_krw": 0.0, "fill_log": []}
    ledger = Ledger(ledger_path, readonly=True)
    try:
        rows = ledger.orders()
        events = list(ledger.events())
    finally:
        ledger.close()
    last_ns = events[-1].ts_ns if events else 0
    book = Portfolio(lambda: last_ns / 1e9)
    peak = drawdown = 0.0
    for ev in events:
        book.apply(ev)
        pnl = book.realized_pnl_krw
        peak = max(peak, pnl)
        drawdown = max(drawdown, peak - pnl)
    first_fill: dict[str, int] = {}
    for ev in events:
        if ev.filled_qty > 0:
            first_fill.setdefault(ev.client_order_id, ev.ts_ns)
    filled = sorted((r for r in rows if r.filled_qty > 0),
                    key=lambda r: (first_fill.get(r.client_order_id, r.created_ns), r.venue))
    pairs: dict[str, int] = {}
    fill_log = [[first_fill.get(r.client_order_id, r.created_ns), pairs.setdefault(r.pair_id, len(pairs)),
                 r.action, r.venue, r.symbol, r.side, round(r.filled_qty, 10), round(r.avg_price, 10),
                 round(r.fee_krw, 4)] for r in filled]
    return {
        "trades_opened": book.trades_opened,
        "trades_closed": book.trades_closed,
        "open_pairs": book.open_pairs,
        "pnl_krw": round(book.realized_pnl_krw, 2),
        "orders": len(rows),
        "fills": len(filled),
        "fees_krw": round(sum(r.fee_krw for r in rows), 2),
        "max_drawdown_krw": round(drawdown, 2),
        # [tape ns of its first fill, pair (numbered in order of appearance), action, venue, symbol,
        #  side, qty, price, fee KRW]
        "fill_log": fill_log,
    }
