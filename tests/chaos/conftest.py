"""A chaos run's directory lives until the test's verdict: a failed run's
logs, restart log and ledger explain it (its path is printed), a passed
run's directory is removed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chaos import runner

_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_PASSED] = report.passed


@pytest.fixture(autouse=True)
def _chaos_scratch(request: pytest.FixtureRequest) -> Iterator[None]:
    before = len(runner.SCRATCH)
    yield
    made = runner.SCRATCH[before:]
    del runner.SCRATCH[before:]
    if request.node.stash.get(_PASSED, False):
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
    else:
        for d in made:
            print(f"chaos run directory kept for inspection: {d}")
