import atexit
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "jobs" / "quickstart.yaml"


def members(*tars: Path) -> dict[str, bytes]:
    """Every member of these tar files, by name, read with tarfile."""
    found = {}
    for path in tars:
        with tarfile.open(path) as tar:
            found.update({m.name: tar.extractfile(m).read() for m in tar.getmembers()})
    return found


def run_cli(*args: str, timeout_s: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the synth CLI in a fresh interpreter, as a user would (``env``: variables to add)."""
    return subprocess.run(
        [sys.executable, "-m", "synth.cli", *args],
        capture_output=True, text=True, timeout=timeout_s, cwd=ROOT, env={**os.environ, **(env or {})},
    )


@pytest.fixture
def cli():
    return run_cli


# Caches (synth.cache) go to a folder of this test session's, never the user's (even one named by
# SYNTH_CACHE_DIR): no test result comes from outside the session. CLI subprocesses and Ray workers
# the tests start inherit it.
os.environ["SYNTH_CACHE_DIR"] = tempfile.mkdtemp(prefix="synth-test-cache-")
atexit.register(shutil.rmtree, os.environ["SYNTH_CACHE_DIR"], ignore_errors=True)
