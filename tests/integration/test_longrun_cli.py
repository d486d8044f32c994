"""`arbd start --longrun DURATION` runs that long, shows progress, ends with the summary."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.daemon import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_longrun_prints_progress_and_the_run_summary(tmp_path: Path) -> None:
    out = subprocess.run([str(ROOT / "bin/arbd"), "start", "--run-dir", str(tmp_path / "run"),
                          "--longrun", "0.2m", "--set", f"metrics.port={free_port()}"],
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    progress = [line for line in out.stdout.splitlines() if line.startswith("longrun ")]
    assert len(progress) >= 5
    assert "/ 0:00:12" in progress[0]
    assert "Duration:" in out.stdout and "Exit:           max runtime reached" in out.stdout


def test_a_bad_longrun_duration_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run([str(ROOT / "bin/arbd"), "start", "--run-dir", str(tmp_path / "run"),
                          "--longrun", "72 hours"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "72h" in out.stderr
    assert not (tmp_path / "run").exists()
