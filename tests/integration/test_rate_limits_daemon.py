"""arbd never crosses a venue's published REST limits, judged by the exchange.

One live_trading daemon for 60 s at the highest opportunity rate the
embedded exchange makes: a volatile premium with jumps, no cool-down between
opens, pairs held at most a second, three open pairs per coin, so that
decisions come far faster than the venues' order limits allow (Upbit: 8
orders a second). The exchange enforces the published limits and counts
every request past one (``GET /_sim/limits``); arbd's own rate budgets must
keep every count at zero, and the daemon must have pressed against them
(its budget refused decisions, and the busiest second on Upbit's order group
used most of the allowance).
"""

from __future__ import annotations

import re
import time
import urllib.request
from typing import Any

import pytest

from tests.support.run_daemon import LIVE_TRADING, config, sim_runs, with_keys

RUN_S = 60.0
HOT = config(LIVE_TRADING, {
    "position_adv": {"base_position_size_krw": 60_000, "max_exposure_krw": 2_000_000},
    "strategy": {"cooldown_s": 0, "max_hold_s": 1, "max_open_pairs_per_symbol": 3},
    "engine": {"entry_threshold_pct": 0.01, "exit_threshold_pct": 0.01},
})
SIM_HOT = ("--set", "sim.update_hz=100", "--set", "sim.premium_vol_pct=1.5", "--set", "sim.jump_prob=0.5",
           "--set", "sim.jump_pct=1.0")

pytestmark = pytest.mark.timeout(240)


def unsent_by_budget(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(
        r'^arbd_decisions_unsent_total\{[^}]*reason="budget"[^}]*\} ([0-9.e+-]+)$', text, re.M))


def test_a_minute_at_the_highest_opportunity_rate_crosses_no_venue_limit(tmp_path_factory: Any) -> None:
    with sim_runs(tmp_path_factory.mktemp("hot")) as runs:
        run = runs.make(HOT, env=with_keys(), args=SIM_HOT, max_runtime_s=RUN_S + 120)
        run.admin("/_sim/limits/reset", method="POST", body={})
        run.arm_live()
        time.sleep(RUN_S)
        limits = run.admin("/_sim/limits")
        orders = run.sim_orders()
        refused = unsent_by_budget(int(run.config["metrics"]["port"]))
        run.halt("rate test over")

    over = {f"{v}.{name}": lim["violations"] for v, group in limits.items() for name, lim in group.items()
            if lim.get("violations")}
    assert not over, f"the exchange counted requests past its limits: {over}"
    assert len(orders) >= 200, f"only {len(orders)} orders in {RUN_S:g}s: not the highest rate"
    assert refused > 0, "the rate budget never had to refuse a decision: the test did not press the limits"
    busiest = limits["upbit"]["order"]["max_in_window"]
    assert busiest >= 0.5 * limits["upbit"]["order"]["limit"], \
        f"Upbit's busiest second carried {busiest} orders of {limits['upbit']['order']['limit']}"
