"""A real 2-node Ray cluster on this machine (`synth cluster up`), a job sent to it with `synth submit`,
and the same job on the embedded Ray: the same shards, byte for byte."""

import json
import os
import stat

import pytest

from synth.cluster import alive
from synth.shards import md5_file

from ..conftest import QUICKSTART, run_cli

JOB = [
    "--set", "data.limit=600", "--set", "train.steps=20", "--set", "train.log_every=10", "--set", "train.num_workers=2",
    "--set", "train.checkpoint_every=20", "--set", "generate.count=120", "--set", "generate.shard_size=40",
    "--set", "generate.batch_size=16", "--set", "evaluate.num_samples=30", "--set", "evaluate.classifier_epochs=1",
    "--set", "evaluate.inception=false", "--set", "evaluate.cas=false", "--set", "output.name=onnodes",
]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    proc = run_cli("cluster", "up", "--nodes", "2", "--cpus-per-node", "1", "--dir", str(root), timeout_s=300)
    state = json.loads((root / "cluster.json").read_text()) if (root / "cluster.json").is_file() else None
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        env = {"RAY_ADDRESS": state["dashboard"], "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(root / "auth_token")}
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
        f"error: --address {state['dashboard']}: refused: this cluster wants its token (set RAY_AUTH_MODE=token "
        "and RAY_AUTH_TOKEN_PATH, e.g. source the cluster's env file)"]
    with_token = run_cli("jobs", "--address", state["dashboard"], env=env)
    assert with_token.returncode == 0, with_token.stderr


def test_submitted_job_runs_on_both_nodes_and_makes_the_embedded_runs_bytes(cluster, tmp_path):
    root, state, env = cluster
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
    _, state, env = cluster
    for command in (["status"], ["logs"], ["logs", "--follow"], ["stop"]):
        proc = run_cli(*command, "raysubmit_nosuchjob", env=env)
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.strip() == "error: job raysubmit_nosuchjob: no such job on this cluster", command
    nobody = run_cli("jobs", "--address", "http://127.0.0.1:9")  # nothing listens there
    assert nobody.returncode == 2 and len(nobody.stderr.strip().splitlines()) == 1
    assert "cannot reach the Ray Jobs API" in nobody.stderr
    proc = run_cli("submit", str(QUICKSTART), "--out", str(tmp_path / "x"), "--address", "127.0.0.1:6379")
    assert proc.returncode == 2 and "needs the dashboard's address" in proc.stderr
    failing = run_cli("submit", str(QUICKSTART), "--out", str(tmp_path / "bad"), "--set", "data.source=folder",
                      "--set", f"data.path={tmp_path / 'no-such-folder'}", "--wait", env=env, timeout_s=300)
    assert failing.returncode == 1 and "FAILED" in failing.stderr.splitlines()[-1]
