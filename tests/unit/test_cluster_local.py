"""The plain parts of `synth cluster` and `synth submit`, without Ray: process groups, the entrypoint."""

import json
import os
import subprocess
import sys

import pytest

from synth import cluster
from synth.errors import SynthError
from synth.pipeline import submission
from synth.spec import load_job

from ..conftest import QUICKSTART


def sleeper_group() -> subprocess.Popen:
    """A process group like a node's: a leader and a child of its own."""
    return subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300"], start_new_session=True)


def test_down_stops_only_the_recorded_process_groups(tmp_path):
    mine, other = sleeper_group(), sleeper_group()
    try:
        temp = tmp_path / "ray-temp"
        temp.mkdir()
        (tmp_path / cluster.STATE).write_text(json.dumps({"temp_dir": str(temp), "nodes": [
            {"role": "head", "pid": mine.pid, "log": "x"}]}))  # fmt: skip
        assert cluster.alive(mine.pid) and cluster.alive(other.pid)
        stopped, killed = cluster.down(tmp_path, timeout=2)
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
    run = subprocess.run(["sh", "-c", entrypoint], env={**os.environ, **env["env_vars"], "OUT_COPY": str(copy),
                         "OUT_ARGS": str(args)}, capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert copy.read_text() == job.to_yaml()
    words = args.read_text().split()
    assert words[:3] == ["-m", "synth.cli", "run"] and words[4:] == ["--out", str(tmp_path / "out"), "--address", "auto"]
    assert not os.path.exists(words[3])  # the temporary job file is removed
    assert meta == {"synth_job": str(QUICKSTART), "synth_out": str(tmp_path / "out"), "synth_name": job.output.name}
    assert env["py_modules"][0].endswith("/synth") and sys.executable  # synth's code travels with the job


def test_shard_nodes_are_written_into_an_out_folder_never_trained_on_ray(tmp_path):
    from synth.pipeline import read_shard_nodes, write_shard_nodes

    out = tmp_path / "copied-generator"  # e.g. checkpoints copied from another run: no .synth/nodes yet
    out.mkdir()
    write_shard_nodes(out, {"q-000001.tar": "node-b", "q-000000.tar": "node-a"})
    assert read_shard_nodes(out) == {"q-000000.tar": "node-a", "q-000001.tar": "node-b"}
