"""The plain parts of `synth cluster` and `synth submit`, without Ray: process groups, the entrypoint."""

import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from synth import cluster
from synth.errors import SynthError
from synth.spec import load_job
from synth.stages.submit import submission

from ..conftest import QUICKSTART, run_cli


def sleeper_group() -> subprocess.Popen:
    """A process group like a node's: a leader and a child of its own."""
    return subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300"], start_new_session=True)


def test_down_stops_only_the_recorded_process_groups(tmp_path):
    mine, other = sleeper_group(), sleeper_group()
    try:
        temp = tmp_path / "ray-temp"
        temp.mkdir()
        (tmp_path / cluster.STATE).write_text(
            json.dumps({"temp_dir": str(temp), "nodes": [{"role": "head", "pid": mine.pid, "log": "x"}]})
        )
        assert cluster.alive(mine.pid) and cluster.alive(other.pid)
        stopped, _killed = cluster.down(tmp_path, timeout=2)
        assert stopped == 1 and not cluster.alive(mine.pid) and not temp.exists()
        assert cluster.alive(other.pid)  # not ours to stop
        assert not (tmp_path / cluster.STATE).exists()
        with pytest.raises(SynthError, match="no cluster started from here"):
            cluster.down(tmp_path)
    finally:
        for p in (mine, other):
            os.killpg(p.pid, 9) if cluster.alive(p.pid) else None
            p.wait()


def test_free_range_is_free_and_below_the_ephemeral_ports():
    lo, hi = cluster.free_range(100)
    assert hi - lo == 99 and 10000 <= lo and hi < 32768


def test_submitted_entrypoint_carries_the_job_through_the_shell_unchanged(tmp_path):
    """The job's YAML (here with %, quotes, $ and backslashes in its name) reaches `synth run` intact."""
    job = load_job(QUICKSTART, [])
    job = job.model_copy(update={"data": job.data.model_copy(update={"path": "a %s 'q' \"dq\" $HOME \\\\ b"})})
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\ncat "$4" > "$OUT_COPY"; echo "$@" > "$OUT_ARGS"\n')
    fake.chmod(0o755)
    entrypoint, env, meta = submission(job, QUICKSTART, tmp_path / "out", "http://127.0.0.1:8265", str(fake))
    copy, args = tmp_path / "copy.yaml", tmp_path / "args"
    run = subprocess.run(
        ["sh", "-c", entrypoint],
        env={**os.environ, **env["env_vars"], "OUT_COPY": str(copy), "OUT_ARGS": str(args)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert copy.read_text() == job.to_yaml()
    words = args.read_text().split()
    assert words[:3] == ["-m", "synth.cli", "run"] and words[4:] == [
        "--out",
        str(tmp_path / "out"),
        "--address",
        "auto",
    ]
    assert not os.path.exists(words[3])  # the temporary job file is removed
    assert meta == {"synth_job": str(QUICKSTART), "synth_out": str(tmp_path / "out"), "synth_name": job.output.name}
    assert env["py_modules"][0].endswith("/synth") and sys.executable  # synth's code travels with the job


def test_shard_nodes_are_written_into_an_out_folder_never_trained_on_ray(tmp_path):
    from synth.stages.nodes import read_shard_nodes, write_shard_nodes

    out = tmp_path / "copied-generator"  # e.g. checkpoints copied from another run: no .synth/nodes yet
    out.mkdir()
    write_shard_nodes(out, {"q-000001.tar": "node-b", "q-000000.tar": "node-a"})
    assert read_shard_nodes(out) == {"q-000000.tar": "node-a", "q-000001.tar": "node-b"}


def test_folder_lock_admits_one_up_or_down_at_a_time(tmp_path):
    said: list[str] = []
    busy = r"another `synth cluster up` or `down` has held this folder for 0 s"
    with (
        cluster.folder_lock(tmp_path),
        pytest.raises(SynthError, match=busy),
        cluster.folder_lock(tmp_path, wait_s=0.3, say=said.append),
    ):
        pass
    assert said == [f"waiting for another `synth cluster up` or `down` on {tmp_path} to finish"]
    with cluster.folder_lock(tmp_path, wait_s=0.3):  # released: the folder is free again
        pass


def test_a_waiting_command_goes_on_once_the_holder_is_done(tmp_path):
    order: list[str] = []
    held = threading.Event()

    def holder():
        with cluster.folder_lock(tmp_path):
            held.set()
            time.sleep(0.5)
            order.append("holder done")

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    with cluster.folder_lock(tmp_path, wait_s=10, say=order.append):
        order.append("waiter in")
    thread.join()
    assert order == [
        f"waiting for another `synth cluster up` or `down` on {tmp_path} to finish",
        "holder done",
        "waiter in",
    ]


def test_down_on_a_folder_that_never_held_a_cluster_creates_nothing(tmp_path):
    with pytest.raises(SynthError, match="no cluster started from here"):
        cluster.down(tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_token_is_made_once_private_and_refused_when_others_can_read_it(tmp_path):
    path = tmp_path / "home" / "ray_token"
    assert cluster.ensure_token(path) is True
    first = path.read_text()
    assert len(first) == 64 and int(first, 16) > 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert cluster.ensure_token(path) is False and path.read_text() == first  # kept, never replaced
    path.chmod(0o644)
    with pytest.raises(SynthError, match=r"readable by others \(mode 644\); chmod 600"):
        cluster.ensure_token(path)


def test_token_command_prints_how_to_use_it_and_one_line_on_a_readable_token(tmp_path):
    path = tmp_path / "ray_token"
    made = run_cli("cluster", "token", "--path", str(path))
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines() == [
        f"token: {path} (new; readable by you alone)",
        f"use it: export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={path}",
    ]
    path.chmod(0o640)
    refused = run_cli("cluster", "token", "--path", str(path))
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        f"error: {path}: the token is readable by others (mode 640); chmod 600 {path}"
    ]
