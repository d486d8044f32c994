"""Small state files in the run directory that an actor reads back when it
starts again (warm restart): written atomically (tmp + fsync + rename, see
:func:`supervisors.runfiles.atomic_write_text`) from a thread of their own,
so the fsync never stalls the actor that owns the state.

Reading never raises: a missing, unreadable, truncated or corrupt file is
``(None, why)``, and the caller logs ``why`` once and starts cold.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from supervisors.runfiles import atomic_write_text

log = logging.getLogger("arbd.statefile")


def read_state(path: Path) -> tuple[Any, str]:
    """``(document, "")`` or ``(None, why)``; ``why`` is "" only when the file is absent."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, ""
    except (OSError, UnicodeDecodeError) as e:
        return None, f"unreadable: {type(e).__name__}: {e}"
    try:
        return json.loads(text), ""
    except ValueError as e:
        return None, f"corrupt or truncated ({len(text)} bytes): {e}"


class StateWriter:
    """Writes the latest document handed to :meth:`submit` on a daemon thread.

    Only the newest document matters: one submitted while another is being
    written replaces any that is still waiting. :meth:`close` writes what is
    pending, then ends the thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writes = 0
        self.errors = 0
        self._cv = threading.Condition()
        self._pending: str | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"state-{path.stem}", daemon=True)
        self._thread.start()

    def submit(self, doc: Any) -> None:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
        with self._cv:
            self._pending = text
            self._cv.notify()

    def close(self, timeout: float = 2.0) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closed:
                    self._cv.wait()
                text, self._pending = self._pending, None
                closed = self._closed
            if text is not None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(self.path, text)
                    self.writes += 1
                except OSError as e:
                    self.errors += 1
                    if self.errors == 1 or self.errors % 100 == 0:
                        log.warning("could not write %s: %s (%d so far)", self.path, e, self.errors)
            if closed:
                with self._cv:
                    if self._pending is None:
                        return
