"""Shared CLI plumbing: an argparse that fails in one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from supervisors.config import ArbdConfig


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def fail(prog: str, message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"{prog}: {message}\n")
    raise SystemExit(code)


def config_or_exit(path: str | Path | None, overrides: list[str], mode: str | None = None) -> ArbdConfig:
    """``load_config``, or every problem as one ``arbd: config:`` line and exit 2."""
    from supervisors.config import load_config
    from supervisors.config_loader import ConfigError

    try:
        return load_config(path, overrides, mode)
    except ConfigError as e:
        for problem in e.problems:
            sys.stderr.write(f"arbd: config: {problem}\n")
        raise SystemExit(2) from None
