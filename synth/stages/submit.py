"""``synth submit``: what goes to a Ray cluster's Jobs API to run the job there."""

from __future__ import annotations

from pathlib import Path

from synth.spec import Job


def submission(job: Job, job_path: Path, out: Path, address: str, python: str | None = None) -> tuple[str, dict, dict]:
    """What `synth submit` sends: (entrypoint, runtime_env, metadata).

    The resolved job (its --set applied, so the cluster runs what was checked here) travels in an
    environment variable that the entrypoint writes to a temporary file on the head node (a Ray
    working_dir would do, but Ray reclaims it when the job's Ray Train workers end, under the
    driver's feet); synth's own code travels as a py_module, so the cluster runs this version of
    it; the rest of the environment (torch, ray, ...) must be on the cluster. The job's driver runs
    `synth run` against the cluster it is on, writing to ``out``: a path every node sees the same
    (or set output.url to an fsspec URL for the dataset).
    """
    import shlex
    import sys
    from urllib.parse import urlparse

    import synth

    host = urlparse(address).hostname or ""
    python = python or (sys.executable if host in ("127.0.0.1", "localhost", "::1") else "python")
    run = (
        shlex.join([python, "-m", "synth.cli", "run"]) + ' "$f" ' + shlex.join(["--out", str(out), "--address", "auto"])
    )
    entrypoint = (
        f'f=$(mktemp -t synth-job.XXXXXX) && printf "%s" "$SYNTH_JOB_YAML" > "$f" && {{ {run}; s=$?; '
        'rm -f "$f"; exit $s; }'
    )
    runtime_env = {
        "py_modules": [str(Path(synth.__file__).parent)],
        "env_vars": {"SYNTH_JOB_YAML": job.to_yaml(), "RAY_DEDUP_LOGS": "0", "PYTHONUNBUFFERED": "1"},
    }
    metadata = {"synth_job": str(job_path), "synth_out": str(out), "synth_name": job.output.name}
    return entrypoint, runtime_env, metadata
