"""The ``synth`` command line. Thin: parse, load the job, call one stage (synth.stages), print its result.

Heavy libraries (torch, ray) are imported inside the commands, so ``synth --help`` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from synth.stages.results import EvaluateResult, GenerateResult, TrainResult

app = typer.Typer(
    name="synth",
    help="Train an image generative model on real data, mass-generate WebDataset shards with Ray, and judge them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JobArg = Annotated[Path, typer.Argument(help="job spec (YAML), e.g. jobs/quickstart.yaml", show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output folder of this job", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a field: section.field=value (repeatable)", show_default=False),
]
DryOpt = Annotated[bool, typer.Option("--dry-run", help="print the resolved job and exit")]
AddrOpt = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster to use (e.g. ray://host:10001 or auto); default: embedded local Ray"),
]


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def load(job_path: Path, sets: list[str] | None, dry_run: bool):
    """Load and validate the job; with --dry-run print it and exit 0."""
    from synth.spec import load_job

    job = load_job(job_path, sets or [])
    if dry_run:
        typer.echo(job.to_yaml().rstrip())
        raise typer.Exit(0)
    return job


def node_lost(cause: str) -> None:
    """errors.on_node_lost for the CLI: the embedded Ray's node died under the command; say so, exit 1."""
    from synth.errors import node_lost_line

    sys.stdout.flush()
    print(f"error: {node_lost_line(cause)}", file=sys.stderr, flush=True)
    os._exit(1)  # Ray cannot shut down a node that is gone; what is finished is on disk


def guarded(fn):
    """Turn SynthError into one line on stderr and exit 2; Ctrl-C into exit 130; a Ray node or process
    lost mid-job into Ray's message (the exception's text), then one line that says so, and exit 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from synth.errors import SynthError

        try:
            return fn(*args, **kwargs)
        except SynthError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume", 130)
        except Exception as exc:
            from synth.errors import ray_failure_line

            line = ray_failure_line(exc)
            if line is None:
                raise
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)  # Ray's account of what died
            fail(line, 1)

    return wrapper


@app.command()
@guarded
def run(job: JobArg, out: OutOpt, set_: SetOpt = None, dry_run: DryOpt = False, address: AddrOpt = None) -> None:
    """Train, generate and evaluate: the whole job.

    Examples:

      synth run jobs/quickstart.yaml --out runs/quickstart

      synth run jobs/quickstart.yaml --out runs/small --set train.steps=500 --set generate.count=2000

      synth run jobs/quickstart.yaml --out runs/q --dry-run
    """
    spec = load(job, set_, dry_run)
    from synth import engine
    from synth.report import save_summary
    from synth.stages.evaluate import run_evaluate
    from synth.stages.generate import run_generate
    from synth.stages.outdir import check_out_dir
    from synth.stages.train import preflight, run_train

    check_out_dir(out, spec)
    data = preflight(spec)
    with engine.ray_session(address):
        engine.placement(spec, "generate", warn=False)  # before training, not after it
        trained = run_train(spec, out, data)
        save_summary(out, "train", trained)
        _say_trained(trained)
        made = run_generate(spec, out)
        save_summary(out, "generate", made)
        _say_generated(made, out)
        figures = run_evaluate(spec, out, ray_ready=lambda: None)  # Ray is up
    _say_evaluated(figures, out)


@app.command()
@guarded
def train(job: JobArg, out: OutOpt, set_: SetOpt = None, dry_run: DryOpt = False, address: AddrOpt = None) -> None:
    """Train the job's model (resuming from the last checkpoint in --out).

    Examples:

      synth train jobs/quickstart.yaml --out runs/quickstart

      synth train jobs/quickstart.yaml --out runs/quickstart --set train.steps=6000   # train longer
    """
    spec = load(job, set_, dry_run)
    from synth import engine
    from synth.report import save_summary
    from synth.stages.outdir import check_out_dir
    from synth.stages.train import preflight, run_train

    check_out_dir(out, spec)
    data = preflight(spec)
    with engine.ray_session(address):
        trained = run_train(spec, out, data)
    save_summary(out, "train", trained)
    _say_trained(trained)


@app.command()
@guarded
def generate(job: JobArg, out: OutOpt, set_: SetOpt = None, dry_run: DryOpt = False, address: AddrOpt = None) -> None:
    """Generate the shards and manifest from the trained model (skips shards already done).

    Examples:

      synth generate jobs/quickstart.yaml --out runs/quickstart

      synth generate jobs/quickstart.yaml --out runs/quickstart --set generate.count=100000
    """
    spec = load(job, set_, dry_run)
    from synth import engine
    from synth.report import save_summary
    from synth.stages.generate import preflight_generate, run_generate

    preflight_generate(spec, out)
    with engine.ray_session(address):
        made = run_generate(spec, out)
    save_summary(out, "generate", made)
    _say_generated(made, out)


@app.command()
@guarded
def evaluate(
    out: OutOpt,
    job: Annotated[
        Path | None, typer.Argument(help="job spec (YAML) whose output to judge", show_default=False)
    ] = None,
    generated: Annotated[
        Path | None,
        typer.Option(
            "--generated",
            help="judge these images instead: a synth dataset folder, WebDataset shards (a .tar or a "
            "folder of them) or a folder of images (class sub-folders named as the real classes, or none)",
            show_default=False,
        ),
    ] = None,
    real: Annotated[
        str | None,
        typer.Option(
            "--real",
            help="the real data to judge against: a source (digits, mnist_subset, mnist, fashion_mnist) or a "
            "folder with one sub-folder of images per class; sets data.source/data.path",
            show_default=False,
        ),
    ] = None,
    set_: SetOpt = None,
    dry_run: DryOpt = False,
    address: AddrOpt = None,
) -> None:
    """Judge generated images against real data; write report.json and report.html under --out.

    Examples:

      synth evaluate jobs/quickstart.yaml --out runs/quickstart

      synth evaluate jobs/quickstart.yaml --out runs/quickstart --set evaluate.inception=false

      synth evaluate --generated my_samples/ --real fashion_mnist --out reports/mine

      synth evaluate --generated shards/ --real data/train_folder --out reports/x --set data.resolution=32
    """
    from synth.spec import DataSpec, apply_overrides, job_from_dict

    if job is None and generated is None:
        fail("give a JOB to judge its output, or --generated PATH (and --real) to judge other images")
    sets = list(set_ or [])
    if real is not None:
        sources = DataSpec.model_fields["source"].annotation.__args__
        if real in sources and real != "folder":
            sets.insert(0, f"data.source={real}")
        elif Path(real).is_dir():
            sets[:0] = ["data.source=folder", f"data.path={Path(real).resolve()}"]
        else:
            fail(
                f"--real {real}: neither a data source ({', '.join(s for s in sources if s != 'folder')}) nor a folder"
            )
    if job is not None:
        spec = load(job, sets, dry_run)
    else:
        raw = apply_overrides({"output": {"name": "evaluation"}}, sets)
        if not any(s.startswith(("data.resolution=", "data.channels=")) for s in sets):
            raw = apply_overrides(raw, _shape_of_first_image(generated))
        spec = job_from_dict(raw, source="--set")
        if dry_run:
            typer.echo(spec.to_yaml().rstrip())
            raise typer.Exit(0)
    from synth import engine
    from synth.stages.evaluate import run_evaluate

    with engine.ray_on_demand(address) as ray_ready:  # Ray starts if the Inception pass needs it
        figures = run_evaluate(spec, out, generated, ray_ready=ray_ready)
    _say_evaluated(figures, out)


def _shape_of_first_image(path: Path) -> list[str]:
    """data.resolution/channels overrides from the first image at ``path`` (judge images at their own size)."""
    from synth.metrics.inputs import first_image_shape

    resolution, channels = first_image_shape(path)
    return [f"data.resolution={resolution}", f"data.channels={channels}"]


@app.command()
@guarded
def interpolate(
    job: JobArg,
    out: OutOpt,
    seeds: Annotated[str, typer.Option("--seeds", help="sample seeds to pass through, comma-separated")] = "1,2,3",
    steps: Annotated[int, typer.Option("--steps", help="images per segment between two seeds")] = 8,
    classes: Annotated[str | None, typer.Option("--classes", help="class names or indexes (default: all)")] = None,
    set_: SetOpt = None,
) -> None:
    """Write a grid of images along a path between seeds' latents: one row per class.

    GAN and VAE: a spherical path between the seeds' latents; diffusion: between their starting
    noise, sampled with deterministic DDIM. Writes OUT/interpolation.png.

    Examples:

      synth interpolate jobs/quickstart.yaml --out runs/quickstart --seeds 1,2,3 --steps 8

      synth interpolate jobs/mnist-cvae.yaml --out runs/mnist-cvae --seeds 7,8 --classes 3,8
    """
    spec = load(job, set_, False)
    from synth.errors import SynthError
    from synth.stages.interpolate import run_interpolate

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise SynthError(f"--seeds {seeds!r}: expected integers separated by commas") from None
    if any(not 0 <= s < 2**63 for s in seed_list):
        raise SynthError(f"--seeds {seeds!r}: seeds must be in [0, 2**63)")
    class_list = [c.strip() for c in classes.split(",")] if classes else None
    path = run_interpolate(spec, out, seed_list, steps, class_list)
    typer.echo(f"interpolation: {path}")


@app.command()
@guarded
def models() -> None:
    """List every model (model.name): its family, what it is conditioned on, what it can do.

    The table is Markdown (README's model table is this output); plugins (SYNTH_PLUGINS) are listed too.
    """
    from synth.models.registry import models_table

    typer.echo(models_table(), nl=False)


@app.command()
@guarded
def verify(
    dataset: Annotated[
        str, typer.Argument(help="a job's --out folder, or a dataset folder or fsspec URL", show_default=False)
    ],
) -> None:
    """Check every shard against the manifest: count, checksum, images decode, labels in range.

    Exits 0 if all is well, 1 naming each bad shard.

    Examples:

      synth verify runs/quickstart

      synth verify s3://bucket/datasets/digits-synth
    """
    from synth.manifest import read_shard_index
    from synth.manifest import verify as verify_dataset
    from synth.progress import Progress

    store = _dataset_location(dataset)
    index = read_shard_index(store)  # fails in one line, before the bar, if there is none
    with Progress("verify", len(index["shardlist"]), "shards") as bar:
        checks = verify_dataset(store, on_shard=lambda check: bar.update(1))
    bad = [c for c in checks if c.problems]
    for check in bad:
        for problem in check.problems:
            print(f"bad shard {check.name}: {problem}", file=sys.stderr)
    samples = sum(c.samples for c in checks)
    if bad:
        typer.echo(f"verify: {len(bad)} of {len(checks)} shards bad ({samples:,} samples in the manifest)")
        raise typer.Exit(1)
    typer.echo(f"verify: ok, {len(checks)} shards, {samples:,} samples at {store.where()}")


def _dataset_location(text: str):
    """A dataset's Store: the folder or URL itself, or the output.url of the job whose --out this is."""
    from synth.errors import SynthError
    from synth.layout import JOB_FILE, WIDS_INDEX
    from synth.storage import Store, is_url

    if not is_url(text):
        path = Path(text)
        if not path.is_dir():
            raise SynthError(f"{text}: no such folder")
        job_file = path / JOB_FILE
        if not (path / WIDS_INDEX).is_file() and job_file.is_file():
            url = json.loads(job_file.read_text()).get("job", {}).get("output", {}).get("url")
            if url:
                return Store(url)
    return Store(text)


JobsAddrOpt = Annotated[
    str | None,
    typer.Option(
        "--address", help="the cluster's Ray dashboard, http://HOST:8265 (default: RAY_ADDRESS)", show_default=False
    ),
]
IdArg = Annotated[str, typer.Argument(help="the job's id, as `synth submit` printed it", show_default=False)]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@app.command()
@guarded
def submit(
    job: JobArg,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="output folder on the cluster: a path every node sees (relative paths are made absolute here)",
            show_default=False,
        ),
    ],
    set_: SetOpt = None,
    address: JobsAddrOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the job's log until it ends; exit with its status")
    ] = False,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            help="the cluster's Python (default: this one on a local cluster, else `python`)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Send the job to a Ray cluster through its Jobs API (`synth run` there); print the job's id.

    Examples:

      synth submit jobs/quickstart.yaml --out /shared/runs/q --address http://head:8265

      synth submit jobs/quickstart.yaml --out /shared/runs/q --set train.num_workers=4 --wait

      synth status raysubmit_XYZ;  synth logs raysubmit_XYZ --follow;  synth stop raysubmit_XYZ
    """
    from synth import engine
    from synth.stages.submit import submission

    spec = load(job, set_, False)
    url = engine.jobs_address(address)
    entrypoint, runtime_env, metadata = submission(spec, job, out.resolve(), url, python)
    job_id = engine.submit_job(url, entrypoint, runtime_env, metadata)
    typer.echo(f"submitted: {job_id} to {url}")
    if not wait:
        typer.echo(
            f"follow it: synth logs {job_id} --follow --address {url}   (synth status {job_id}, synth stop {job_id})"
        )
        return
    _wait_for(url, job_id)


def _wait_for(url: str, job_id: str) -> None:
    import time

    from synth import engine

    try:
        engine.follow_job_logs(url, job_id, lambda text: typer.echo(text, nl=False))
        info = engine.job_info(url, job_id)
        while info["status"] not in TERMINAL:  # the log can end a moment before the status does
            time.sleep(1.0)
            info = engine.job_info(url, job_id)
    except KeyboardInterrupt:  # stops the waiting, not the job
        fail(f"stopped waiting; job {job_id} runs on (synth logs {job_id} --follow, synth stop {job_id})", 130)
    if info["status"] != "SUCCEEDED":
        lines = (info["message"] or "").strip().splitlines()
        fail(f"job {job_id} {info['status']}" + (f": {lines[-1]}" if lines else ""), 1)
    typer.echo(f"job {job_id} SUCCEEDED")


@app.command()
@guarded
def status(job_id: IdArg, address: JobsAddrOpt = None) -> None:
    """A submitted job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED) and its message.

    Example: synth status raysubmit_XYZ --address http://head:8265
    """
    from synth import engine

    info = engine.job_info(address, job_id)
    typer.echo(f"{job_id}: {info['status']}" + (f" ({info['message'].strip()})" if info["message"] else ""))


@app.command()
@guarded
def logs(
    job_id: IdArg,
    address: JobsAddrOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the job ends")] = False,
) -> None:
    """A submitted job's log (its driver's output: progress lines, the summary, errors).

    Example: synth logs raysubmit_XYZ --follow
    """
    from synth import engine

    if follow:
        engine.follow_job_logs(address, job_id, lambda text: typer.echo(text, nl=False))
    else:
        typer.echo(engine.job_logs(address, job_id), nl=False)


@app.command()
@guarded
def stop(job_id: IdArg, address: JobsAddrOpt = None) -> None:
    """Stop a submitted job (what it finished stays: rerun resumes).

    Example: synth stop raysubmit_XYZ
    """
    from synth import engine

    stopped = engine.stop_job(address, job_id)
    typer.echo(f"{job_id}: {'stopping' if stopped else 'not running'}")


@app.command()
@guarded
def jobs(address: JobsAddrOpt = None) -> None:
    """The cluster's jobs, newest first: id, status, synth job and output folder.

    Example: synth jobs --address http://head:8265
    """
    from synth import engine

    rows = sorted(engine.list_jobs(address), key=lambda j: j["start_time"] or 0, reverse=True)
    for j in rows:
        meta = j["metadata"]
        what = f"{meta.get('synth_job', j['entrypoint'])} -> {meta.get('synth_out', '')}".rstrip(" ->")
        typer.echo(f"{j['id']}  {j['status']:<9}  {what}")
    if not rows:
        typer.echo("no jobs")


cluster_app = typer.Typer(
    help="A multi-node Ray cluster on this machine (on 127.0.0.1, with its own token): up, status, down; "
    "and the token for the clusters that cluster/*.yaml and manifests/ start.",
    no_args_is_help=True,
)
app.add_typer(cluster_app, name="cluster")
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="the cluster's folder (default: $SYNTH_CLUSTER_DIR or ~/.synth/cluster)", show_default=False
    ),
]


def _cluster_root(dir_: Path | None) -> Path:
    from synth import cluster

    return (dir_ or cluster.default_dir()).resolve()


@cluster_app.command("up")
@guarded
def cluster_up(
    nodes: Annotated[int, typer.Option("--nodes", "-n", help="nodes, the head included")] = 2,
    cpus: Annotated[
        int | None,
        typer.Option(
            "--cpus-per-node", help="CPUs each node offers (default: the machine's, shared out)", show_default=False
        ),
    ] = None,
    object_store_mb: Annotated[int, typer.Option("--object-store-mb", help="object store per node, MiB")] = 256,
    dir_: DirOpt = None,
) -> None:
    """Start a head and NODES-1 worker nodes on this machine, on 127.0.0.1, with their own token.

    Examples:

      synth cluster up --nodes 2 && source ~/.synth/cluster/env

      synth submit jobs/quickstart.yaml --out $PWD/runs/q --wait;  synth cluster down
    """
    from synth import cluster

    root = _cluster_root(dir_)
    state = cluster.up(root, nodes, cpus, object_store_mb, say=typer.echo)
    typer.echo(
        f"cluster up: {nodes} node(s), {state['cpus_per_node']} CPU(s) each; Ray at {state['address']}, "
        f"Jobs API at {state['dashboard']}"
    )
    typer.echo(
        f"use it: source {root / cluster.ENV}   (RAY_ADDRESS and the cluster's token), then "
        f"synth submit JOB --out DIR; stop it: synth cluster down --dir {root}"
    )


@cluster_app.command("token")
@guarded
def cluster_token(
    path: Annotated[
        Path | None,
        typer.Option("--path", help="the token file (default: ~/.synth/ray_token)", show_default=False),
    ] = None,
) -> None:
    """Make the token for a cluster that cluster/*.yaml or manifests/ start (kept if it exists).

    Ray's token authentication needs one token on every node and client. The file is readable by
    you alone; `ray up` copies it to the nodes, Kubernetes takes it as a Secret, and a client uses
    it with: export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=~/.synth/ray_token
    """
    from synth import cluster

    path = (path or cluster.default_token_path()).expanduser().resolve()
    made = cluster.ensure_token(path)
    typer.echo(f"token: {path} ({'new' if made else 'kept: it was there'}; readable by you alone)")
    typer.echo(f"use it: export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={path}")


@cluster_app.command("status")
@guarded
def cluster_status(dir_: DirOpt = None) -> None:
    """The cluster's nodes and their resources."""
    from synth import cluster

    root = _cluster_root(dir_)
    state, nodes = cluster.status(root)
    typer.echo(f"Ray at {state['address']}, Jobs API at {state['dashboard']}: {len(nodes)} node(s) alive")
    for n in nodes:
        res = n.get("resources_total", {})
        typer.echo(
            f"  {n.get('node_id', '')[:12]}  {'head' if n.get('is_head_node') else 'worker'}  "
            f"{n.get('node_ip')}  CPU {res.get('CPU', 0):g}  GPU {res.get('GPU', 0):g}"
        )


@cluster_app.command("down")
@guarded
def cluster_down(dir_: DirOpt = None) -> None:
    """Stop the nodes `synth cluster up` started from this folder (theirs only, by process id)."""
    from synth import cluster

    root = _cluster_root(dir_)
    stopped, killed = cluster.down(root)
    typer.echo(f"cluster down: {stopped} node(s) stopped" + (f" ({killed} killed after 10 s)" if killed else ""))


def _say_trained(t: TrainResult) -> None:
    if t.skipped:
        typer.echo(f"trained: already at step {t.step}; nothing to do")
    elif t.fixed:
        typer.echo("trained: nothing to train (the model is fixed); its nets are exported for generation")
    else:
        nodes = len({n for n in t.nodes or [] if n})
        where = f" on {nodes} node(s)" if nodes > 1 else ""
        typer.echo(f"trained: {t.step} steps on {t.world_size} worker(s){where} in {t.seconds or 0:.0f} s")


def _say_generated(g: GenerateResult, out: Path) -> None:
    typer.echo(
        f"generated: {g.count:,} images in {g.shards} shards under {g.location.rstrip('/')}/shards "
        f"({g.generated:,} new, {g.images_per_s:,.0f} images/s; {g.skipped_shards} shards already done"
        + (f"; on {g.nodes} nodes" if g.nodes > 1 else "")
        + ")"
    )
    if g.features_for_report:
        typer.echo(
            f"features: InceptionV3 features of {g.features_for_report:,} samples for the report, computed "
            "by the workers (included in the time above)"
        )
    typer.echo(f"manifest: {g.manifest} (+ shardindex.json for wids, _info.json for timm)")


def _say_evaluated(result: EvaluateResult, out: Path) -> None:
    f = result.figures
    parts = [f"domain FID {f['fid_domain']:.2f}"]
    if f.get("label_fidelity") is not None:
        parts.insert(0, f"label fidelity {100 * f['label_fidelity']:.2f}%")
    if f.get("prdc_domain"):
        parts.append(f"coverage {f['prdc_domain']['coverage']:.3f}")
    if "reconstruction_mae" in f:
        parts.append(f"reconstruction error {f['reconstruction_mae']:.1f} grey levels")
    if "fid_inception" in f:
        parts.append(
            f"Inception FID {f['fid_inception']:.2f} ({f['fid_inception_num_generated']} vs {f['fid_inception_num_real']})"
        )
    typer.echo("evaluated: " + ", ".join(parts))
    typer.echo(f"report: {result.report}")


def main() -> None:
    from synth import errors

    errors.on_node_lost = node_lost
    app()


if __name__ == "__main__":
    main()
