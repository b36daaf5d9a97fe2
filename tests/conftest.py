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


# Run one after another in one test process, in this order (scripts/test.sh runs 2 processes with
# pytest-xdist): the tests that kill or stop a Ray (a 2-node cluster's `down`, a CLI run killed
# mid-generation) run before that process starts its own Ray (ray_in_process), never while it has
# one: a Ray kept in the test process across those once hung in a later call.
SAME_PROCESS = ("test_cluster.py", "test_generate.py", "test_inputs.py", "test_jobs.py", "test_train_sync.py")


def pytest_collection_modifyitems(items) -> None:
    """Every test under tests/integration is an integration test: the fast tier (scripts/test.sh) leaves them out."""
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


def work_unit(nodeid: str) -> str:
    """What pytest-xdist hands a test process at once: a test's file (its module fixtures run once), or
    SAME_PROCESS's files together."""
    path = nodeid.split("::", 1)[0]
    return (
        "integration: Ray in order"
        if path.startswith("tests/integration/") and Path(path).name in SAME_PROCESS
        else path
    )


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: pytest-xdist's hook
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with work_unit's grouping. (xdist_group marks cannot do it: pytest 9 ignores the
    node ids that xdist's loadgroup rewrites.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByWorkUnit(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


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
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def cli():
    return run_cli


_RAY_IN_PROCESS = False  # set once ray_in_process has started Ray here
_EXIT_STATUS = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def ray_in_process():
    """One embedded Ray in the pytest process, started when a test first asks and shut down at the end
    of the session. Never start a second one in this process (ray.init after ray.shutdown): CI saw
    the interpreter crash at exit (SIGSEGV, after every test had passed) once three modules each ran
    their own cycle. A test that needs a Ray of its own runs it in a child interpreter. Tests that kill
    Rays run before this one starts (SAME_PROCESS)."""
    from synth import engine

    global _RAY_IN_PROCESS
    _RAY_IN_PROCESS = True
    with engine.ray_session():
        yield


def pytest_sessionfinish(session, exitstatus) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """Once Ray has run in this process, leave without the interpreter's teardown: its native threads
    (Ray's core worker, gRPC) can crash it after every test passed and every report was written
    (CI saw exit 139 so). The tests' verdict is the exit status pytest decided."""
    if not _RAY_IN_PROCESS:
        return
    remove_session_cache()  # atexit hooks do not run after os._exit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(config.stash.get(_EXIT_STATUS, 1))


@pytest.fixture(scope="session")
def cli_on_one_ray(ray_in_process):
    """The CLI's own code (typer's CliRunner), run in this process on the session's embedded Ray: a
    command pays for its work, not for starting Python and Ray again (about 12 s each on 2 cores).
    Returns a CompletedProcess, as run_cli does. For tests of one command's behaviour on its own Ray
    (start-up, shutdown, signals), use run_cli."""
    from typer.testing import CliRunner

    from synth.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> subprocess.CompletedProcess:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    return invoke


# Caches (synth.cache) go to a folder of this test session's, never the user's (even one named by
# SYNTH_CACHE_DIR): no test result comes from outside the session. CLI subprocesses and Ray workers
# the tests start inherit it.
os.environ["SYNTH_CACHE_DIR"] = tempfile.mkdtemp(prefix="synth-test-cache-")


def remove_session_cache() -> None:
    shutil.rmtree(os.environ["SYNTH_CACHE_DIR"], ignore_errors=True)


atexit.register(remove_session_cache)


def hash_classifier(path: Path, pixels: int, class_names: list[str], never: int = -1, names: bool = True) -> Path:
    """Write a TorchScript classifier that scores each class by a fixed pseudo-random function of the
    pixels, so each class tops about 1/K of any varied images, each row on its own (``never``: a class it
    never puts first). ``names``: store the class names in the file, as a user's exporter may."""
    import json

    import torch

    class HashClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            gen = torch.Generator().manual_seed(0)
            self.register_buffer("w", torch.randn(len(class_names), pixels, generator=gen) * 50.0)
            self.register_buffer("b", torch.zeros(len(class_names)))
            self.never = never

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = torch.cos(torch.nn.functional.linear(x.flatten(1), self.w, self.b)) * 5.0
            if self.never >= 0:
                z[:, self.never] = -10.0
            return z

    extra = {"class_names.json": json.dumps(class_names)} if names else {}
    torch.jit.save(torch.jit.script(HashClassifier()), str(path), _extra_files=extra)
    return path
