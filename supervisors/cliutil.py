"""Shared CLI plumbing: an argparse that fails in one line."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def fail(prog: str, message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"{prog}: {message}\n")
    raise SystemExit(code)
