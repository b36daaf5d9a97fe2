import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "jobs" / "quickstart.yaml"


def run_cli(*args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """Run the synth CLI in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "synth.cli", *args],
        capture_output=True, text=True, timeout=timeout_s, cwd=ROOT,
    )


@pytest.fixture
def cli():
    return run_cli
