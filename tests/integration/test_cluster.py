"""A real 2-node Ray cluster on this machine (`synth cluster up`), a job sent to it with `synth submit`,
and the same job on the embedded Ray: the same shards, byte for byte."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from synth.cluster import alive
from synth.shards import md5_file

from ..conftest import QUICKSTART, ROOT, run_cli

JOB = [
    "--set",
    "data.limit=600",
    "--set",
    "train.steps=20",
    "--set",
    "train.log_every=10",
    "--set",
    "train.num_workers=2",
    "--set",
    "train.checkpoint_every=20",
    "--set",
    "generate.count=120",
    "--set",
    "generate.shard_size=40",
    "--set",
    "generate.batch_size=16",
    "--set",
    "evaluate.num_samples=30",
    "--set",
    "evaluate.classifier_epochs=1",
    "--set",
    "evaluate.inception=false",
    "--set",
    "evaluate.cas=false",
    "--set",
    "output.name=onnodes",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    proc = run_cli("cluster", "up", "--nodes", "2", "--cpus-per-node", "1", "--dir", str(root), timeout_s=300)
    state = json.loads((root / "cluster.json").read_text()) if (root / "cluster.json").is_file() else None
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        env = {
            "RAY_ADDRESS": state["dashboard"],
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(root / "auth_token"),
        }
        yield root, state, env
    finally:
        down = run_cli("cluster", "down", "--dir", str(root), timeout_s=120)
        assert down.returncode == 0, down.stderr[-2000:]
        if state:
            assert not any(alive(n["pid"]) for n in state["nodes"])


def test_cluster_is_two_nodes_on_loopback_with_a_private_token(cluster):
    root, state, _ = cluster
    proc = run_cli("cluster", "status", "--dir", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "2 node(s) alive" in proc.stdout and proc.stdout.count("127.0.0.1") >= 3
    assert state["address"].startswith("127.0.0.1:") and state["dashboard"].startswith("http://127.0.0.1:")
    assert stat.S_IMODE(os.stat(root / "auth_token").st_mode) == 0o600
    assert [n["role"] for n in state["nodes"]] == ["head", "worker"] and all(alive(n["pid"]) for n in state["nodes"])
    again = run_cli("cluster", "up", "--nodes", "2", "--dir", str(root))
    assert again.returncode == 2 and "still up" in again.stderr


def test_a_request_without_the_token_is_refused(cluster):
    _, state, env = cluster
    proc = run_cli("jobs", "--address", state["dashboard"], env={"RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        (
            f"error: --address {state['dashboard']}: refused: this cluster wants its token (set RAY_AUTH_MODE=token "
            "and RAY_AUTH_TOKEN_PATH, e.g. source the cluster's env file)"
        )
    ]
    with_token = run_cli("jobs", "--address", state["dashboard"], env=env)
    assert with_token.returncode == 0, with_token.stderr


def test_submitted_job_runs_on_both_nodes_and_makes_the_embedded_runs_bytes(cluster, tmp_path):
    root, _state, env = cluster
    out = tmp_path / "on-cluster"
    proc = run_cli("submit", str(QUICKSTART), "--out", str(out), *JOB, "--wait", env=env, timeout_s=900)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    job_id = proc.stdout.split("submitted: ", 1)[1].split()[0]
    assert f"job {job_id} SUCCEEDED" in proc.stdout and "trained: 20 steps on 2 worker(s) on 2 node(s)" in proc.stdout
    assert json.loads((out / "checkpoints" / "state.json").read_text())["world_size"] == 2
    status = run_cli("cluster", "status", "--dir", str(root))
    node_ids = {line.split()[0] for line in status.stdout.splitlines()[1:]}
    assert len(node_ids) == 2
    # the training ranks ran on different nodes, and the shards were written on both
    train = [(out / ".synth" / "nodes" / f"train-{r}").read_text() for r in range(2)]
    shards = json.loads((out / ".synth" / "nodes" / "shards.json").read_text())
    assert sorted(shards) == [f"onnodes-{i:06d}.tar" for i in range(3)]
    assert len(set(train)) == 2 and len(set(shards.values())) == 2
    assert {n[:12] for n in train} == {n[:12] for n in shards.values()} == node_ids
    assert "on 2 nodes" in proc.stdout
    local = tmp_path / "embedded"
    ran = run_cli("run", str(QUICKSTART), "--out", str(local), *JOB, timeout_s=900)
    assert ran.returncode == 0, ran.stderr[-3000:]
    shards = sorted(p.name for p in (out / "shards").glob("*.tar"))
    assert shards == [f"onnodes-{i:06d}.tar" for i in range(3)]
    assert [md5_file(out / "shards" / s) for s in shards] == [md5_file(local / "shards" / s) for s in shards]
    # the job tools
    status = run_cli("status", job_id, env=env)
    assert status.returncode == 0 and f"{job_id}: SUCCEEDED" in status.stdout
    listed = run_cli("jobs", env=env)
    assert job_id in listed.stdout and str(out) in listed.stdout
    logs = run_cli("logs", job_id, env=env)
    assert "generated: 120 images in 3 shards" in logs.stdout


def test_job_tools_say_one_line_for_bad_input(cluster, tmp_path):
    _, _state, env = cluster
    for command in (["status"], ["logs"], ["logs", "--follow"], ["stop"]):
        proc = run_cli(*command, "raysubmit_nosuchjob", env=env)
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.strip() == "error: job raysubmit_nosuchjob: no such job on this cluster", command
    nobody = run_cli("jobs", "--address", "http://127.0.0.1:9")  # nothing listens there
    assert nobody.returncode == 2 and len(nobody.stderr.strip().splitlines()) == 1
    assert "cannot reach the Ray Jobs API" in nobody.stderr
    proc = run_cli("submit", str(QUICKSTART), "--out", str(tmp_path / "x"), "--address", "127.0.0.1:6379")
    assert proc.returncode == 2 and "needs the dashboard's address" in proc.stderr
    failing = run_cli(
        "submit",
        str(QUICKSTART),
        "--out",
        str(tmp_path / "bad"),
        "--set",
        "data.source=folder",
        "--set",
        f"data.path={tmp_path / 'no-such-folder'}",
        "--wait",
        env=env,
        timeout_s=300,
    )
    assert failing.returncode == 1 and "FAILED" in failing.stderr.splitlines()[-1]


def processes_of(root) -> list[int]:
    """Every live process started for the cluster in ``root``: its nodes' processes all carry its token path."""
    marker = f"RAY_AUTH_TOKEN_PATH={root / 'auth_token'}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def test_up_and_down_at_once_on_one_folder_leave_no_node_behind(tmp_path):
    """`down` from a second shell while `up` is starting: it waits for `up`, then stops every node."""
    root = tmp_path / "racing"
    cmd = [sys.executable, "-m", "synth.cli", "cluster"]
    up = subprocess.Popen(
        [*cmd, "up", "--nodes", "2", "--cpus-per-node", "1", "--dir", str(root)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (root / "cluster.json").is_file():  # written before the first node starts
            assert up.poll() is None and time.monotonic() < deadline, up.communicate()
            time.sleep(0.05)
        down = run_cli("cluster", "down", "--dir", str(root), timeout_s=300)
        up_out, up_err = up.communicate(timeout=300)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, up_err[-3000:]
    assert "cluster up: 2 node(s)" in up_out
    assert down.returncode == 0, down.stderr[-3000:]
    assert f"waiting for another `synth cluster up` or `down` on {root} to finish" in down.stdout
    assert "cluster down: 2 node(s) stopped" in down.stdout
    deadline = time.monotonic() + 30
    while processes_of(root) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(root) == []


def raylet_of(driver_pid: int) -> int | None:
    """The raylet that the embedded Ray of ``driver_pid`` started (a child of the driver)."""
    for child in psutil.Process(driver_pid).children():
        if any(part.endswith("raylet/raylet") for part in child.cmdline()):
            return child.pid
    return None


def test_a_lost_node_ends_the_run_with_one_line_and_the_rerun_resumes(tmp_path):
    """The embedded Ray's dashboard agent dies mid-training (Ray fate-shares the node with it)."""
    from synth.engine import node_agents

    out = tmp_path / "out"
    sets = [s for s in JOB[1::2] if not s.startswith(("train.", "output."))]
    sets += ["train.steps=100", "train.log_every=10", "train.checkpoint_every=10", "output.name=lost"]
    job = [str(QUICKSTART), "--out", str(out), *(w for s in sets for w in ("--set", s))]
    log = tmp_path / "run.log"
    with open(log, "w") as fh:
        driver = subprocess.Popen([sys.executable, "-m", "synth.cli", "run", *job], cwd=ROOT, stdout=fh, stderr=fh)
    try:
        deadline = time.monotonic() + 300
        while "[synth] train: " not in log.read_text() or not (out / "checkpoints" / "state.json").exists():
            assert driver.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        raylet = raylet_of(driver.pid)
        agents = [pid for pid, name in node_agents(raylet).items() if name == "dashboard agent"]
        assert len(agents) == 1, (raylet, node_agents(raylet))
        os.kill(agents[0], 9)
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    lines = log.read_text().strip().splitlines()
    assert driver.returncode == 1, lines[-20:]
    assert lines[-1] == (
        f"error: the Ray node running this command was lost (its dashboard agent (pid {agents[0]}) died, and Ray "
        "ends the node with it); finished steps and shards are kept: run the same command again to resume"
    )
    step = json.loads((out / "checkpoints" / "state.json").read_text())["step"]
    assert 0 < step < 100
    again = run_cli("run", *job, timeout_s=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"steps {step}->100" in again.stderr and "trained: 100 steps" in again.stdout
