"""The only module that talks to Ray: start/connect, train with TorchTrainer, map shard tasks.

Everything Ray runs here is a plain function from elsewhere in the package
(``synth.train.loop.train``, ``synth.generate.worker.write_one_shard``).
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from synth import errors
from synth.errors import SynthError
from synth.layout import NODES_DIR, RAY_TRAIN_DIR, checkpoints
from synth.placement import Placement, place
from synth.spec import Job

log = logging.getLogger("synth")


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Use the running Ray (``ray.is_initialized``), connect to ``address``, or start an embedded one.

    The embedded Ray listens on 127.0.0.1 for its dashboard (Ray Train's
    clean-up monitor needs the state API it serves) and is shut down on exit;
    a Ray we connected to is left running.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    from_env = os.environ.get("RAY_ADDRESS")
    if not address and from_env and not from_env.startswith(("http://", "https://")):
        address = from_env  # a Ray address in RAY_ADDRESS: use that cluster
    if address:
        kwargs["address"] = address
    else:  # "local": a new Ray of our own, never one a `ray start` left running on this machine
        kwargs.update(address="local", include_dashboard=True, dashboard_host="127.0.0.1")
        # No node of an embedded Ray is ever drained or preempted, so Ray Train's watcher for that is
        # one more process whose main thread wakes 100 times a second on the cores that train.
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    hidden = os.environ.pop("RAY_ADDRESS", None) if not address else None  # an http one is for the Jobs API
    global _EMBEDDED
    try:
        ray.init(**kwargs)
        _EMBEDDED = not address
    except ConnectionError as exc:
        raise SynthError(f"--address {address}: cannot connect to Ray ({exc})") from None
    finally:
        if hidden is not None:
            os.environ["RAY_ADDRESS"] = hidden
    lost = errors.on_node_lost
    watch = watch_node(lost) if _EMBEDDED and lost is not None else None
    try:
        yield
    except BaseException as exc:
        if watch is not None and errors.ray_failure_line(exc) is not None:
            # Ray's error may come a few milliseconds before the raylet is gone: if it goes, say that the
            # node was lost, rather than let ray.shutdown crash on the dead node's object store
            try:
                code = watch.raylet.wait(timeout=3)
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                watch.set()
                lost(f"its raylet exited with code {code}")
        raise
    finally:
        if watch is not None:
            watch.set()  # before shutdown stops the raylet on purpose
        _EMBEDDED = False
        ray.shutdown()


_EMBEDDED = False  # the Ray in use is one ray_session started here: it cannot add nodes


class NodeWatch(threading.Event):
    """Set it to stop watching; ``raylet`` is the raylet's process (``subprocess.Popen``)."""

    raylet: Any = None


# how the raylet's agents show in their command lines (process titles once started), and their names
AGENTS = {
    "DashboardAgent": "dashboard agent",
    "dashboard/agent.py": "dashboard agent",
    "RuntimeEnvAgent": "runtime-env agent",
    "runtime_env/agent": "runtime-env agent",
}


def node_agents(raylet_pid: int) -> dict[int, str]:
    """The raylet's agent processes, pid -> name: Ray ends the node when one of them dies."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != raylet_pid:  # after the name: state, ppid
                continue
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        for marker, name in AGENTS.items():
            if marker in command:
                found[int(stat.parent.name)] = name
    return found


def watch_node(lost: Callable[[str], None], interval_s: float = 0.5) -> NodeWatch:
    """Call ``lost(cause)`` from a daemon thread when the embedded Ray's node dies: its raylet exits,
    or one of the agents that the raylet fate-shares with does. Set the returned event to stop.

    The driver's core worker ends the process itself tens of milliseconds after it learns that its
    node is dead, with no Python code run after it (seen here). An agent's death comes seconds
    before that (the raylet takes that long to notice and exit), and the raylet's exit wakes this
    thread at once (a pidfd), so this is the one place that can still say what happened. When an
    error from the node's death reaches ``ray_session`` first, it calls ``lost`` there, before
    ``ray.shutdown`` (which Ray's own code ends abruptly then).
    """
    from ray._private import ray_constants
    from ray._private.worker import _global_node

    raylet = _global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
    stop = NodeWatch()
    stop.raylet = raylet

    def open_pidfd(pid: int) -> int | None:
        try:  # Linux 5.3+: readable the moment the process exits
            return os.pidfd_open(pid)
        except (AttributeError, OSError):
            return None

    def run() -> None:
        raylet_fd = open_pidfd(raylet.pid)
        agents: dict[int, tuple[str, int | None]] = {}
        while not stop.is_set():
            if len(agents) < 2:  # the agents may start after ray.init returns
                for pid, name in node_agents(raylet.pid).items():
                    agents.setdefault(pid, (name, open_pidfd(pid)))
            fds = [fd for fd in [raylet_fd, *(fd for _, fd in agents.values())] if fd is not None]
            if fds:
                ready = select.select(fds, [], [], interval_s)[0]
            else:  # no pidfds here: look every interval
                stop.wait(interval_s)
                ready = []
            if stop.is_set():
                return
            code = raylet.poll()
            if code is not None:
                lost(f"its raylet exited with code {code}")
                return
            for pid, (name, fd) in agents.items():
                if fd in ready or (fd is None and not Path(f"/proc/{pid}").exists()):
                    lost(f"its {name} (pid {pid}) died, and Ray ends the node with it")
                    return

    threading.Thread(target=run, name="synth-node-watch", daemon=True).start()
    return stop


def placement(job: Job, stage: str, warn: bool = True) -> Placement:
    """The job's placement on the Ray in use (placement.place) for ``stage`` (train, generate);
    raises SynthError for a request this Ray cannot meet, logs the waits (``warn``)."""
    import ray

    found = ray.cluster_resources()
    nodes = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    placed, warnings = place(
        job,
        int(found.get("CPU", 0)),
        float(found.get("GPU", 0)),
        not _EMBEDDED,
        stage,
        node_cpus=int(max(nodes, default=0)) or None,
    )
    for line in warnings if warn else ():
        log.warning(f"[synth] {line}")
    return placed


@contextmanager
def ray_on_demand(address: str | None = None) -> Iterator[Callable[[], None]]:
    """Yield a function that opens ``ray_session(address)`` when first called (so a command that may
    not need Ray checks its input before Ray starts); a session it opened closes on exit."""
    with ExitStack() as stack:
        opened: list[bool] = []

        def ready() -> None:
            if not opened:
                stack.enter_context(ray_session(address))
                opened.append(True)

        yield ready


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def _train_worker(config: dict) -> None:
    """Ray Train entry point: one per worker process."""
    import ray.train
    import torch

    from synth.memtune import keep_freed_memory
    from synth.spec import job_from_dict
    from synth.train.loop import train

    logging.getLogger("synth").setLevel(logging.INFO)
    keep_freed_memory()  # Ray Train runs this function in a thread: see synth/memtune.py
    torch.set_num_threads(int(config["threads_per_worker"]))
    if ray.train.get_context().get_world_size() == 1:
        _leave_process_group()
    job = job_from_dict(config["job"])
    _note_node(Path(config["out_dir"]), f"train-{ray.train.get_context().get_world_rank()}")
    train(job, config["out_dir"], log_lines=config.get("log_lines", True), use_gpu=config["use_gpu"])


def _leave_process_group() -> None:
    """A lone worker has no one to synchronise with: leave Ray Train's process group, so Accelerate
    does not wrap the nets in DistributedDataParallel (6% of a step on CPU here, bench/RESULTS.md)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    for name in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):  # what Accelerate reads to go distributed
        os.environ.pop(name, None)


def _note_node(out_dir: Path, what: str) -> None:
    import ray

    folder = out_dir / NODES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / what).write_text(ray.get_runtime_context().get_node_id())


def train_nodes(out_dir: Path, world_size: int) -> list[str | None]:
    """The node of each training rank of the last run (None where not recorded)."""
    folder = out_dir / NODES_DIR
    return [
        (folder / f"train-{r}").read_text() if (folder / f"train-{r}").is_file() else None for r in range(world_size)
    ]


def train_on_ray(job: Job, out_dir: Path, log_lines: bool = True, placed: Placement | None = None) -> dict:
    """Train with a TorchTrainer of ``train.num_workers`` workers.

    Returns the final checkpoint state that rank 0 wrote (step, world size,
    replica spread): files are the interface, so this holds on a cluster too.
    """
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    placed = placed or placement(job, "train")
    workers = job.train.num_workers
    resources = {"CPU": placed.train_cpus, **({"GPU": placed.train_gpus} if placed.gpu else {})}
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={
            "job": job.model_dump(mode="json"),
            "out_dir": str(out_dir.resolve()),
            "threads_per_worker": placed.train_cpus,
            "use_gpu": placed.gpu,
            "log_lines": log_lines,
        },
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=placed.gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name="train",
            storage_path=str((out_dir / RAY_TRAIN_DIR).resolve()),
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    for stale in (out_dir / NODES_DIR).glob("train-*"):
        stale.unlink()  # a rank this run does not have must not be reported
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps worker errors; surface a user error as its own line
        user = _find_user_error(exc)
        if user is not None:
            raise user from None
        raise
    if result.error is not None:
        raise result.error
    from synth.train.checkpoint import read_state

    state = read_state(checkpoints(out_dir)) or {}
    keys = ("step", "world_size", "replica_max_diff", "weights")
    found = {k: state[k] for k in keys if k in state}
    found["nodes"] = train_nodes(out_dir, workers)
    return found


def _find_user_error(exc: BaseException) -> SynthError | None:
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen or e is None:
            continue
        seen.add(id(e))
        if isinstance(e, SynthError):
            return e
        stack += [e.__cause__, e.__context__, *getattr(e, "worker_failures", {}).values()]
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            stack.append(cause)
    return None


def _on_its_node(fn: Callable, threads: int, work, *shared) -> tuple[str, Any]:
    """A map_shards task: (the node it ran on, ``fn(work, *shared)``), torch on ``threads`` threads."""
    import ray
    import torch

    torch.set_num_threads(threads)  # a reused worker process may have run a task of another size
    return ray.get_runtime_context().get_node_id(), fn(work, *shared)


def map_shards(
    fn: Callable,
    works: Iterable,
    shared: tuple,
    max_in_flight: int,
    on_result: Callable[[Any], None],
    max_retries: int = 3,
    num_cpus: int = 1,
    num_gpus: float = 0,
    on_node: Callable[[Any, str], None] | None = None,
) -> int:
    """Run ``fn(work, *shared)`` as one Ray task per work item, at most ``max_in_flight`` at once.

    ``works`` is consumed lazily, so the driver holds only the tasks in
    flight, whatever the number of shards. Each of ``shared`` (weights: the
    generator's, Inception's) is put in the object store once. A task whose worker dies is retried by
    Ray (``max_retries``); ``fn`` is idempotent. Each task takes ``num_cpus`` CPUs (torch runs that
    many threads in it) and ``num_gpus`` GPUs.
    ``on_node(result, node_id)``: told which Ray node made each result. Returns the number of tasks run.
    """
    import ray

    # named after fn: the dashboard, `ray list tasks` and the workers' process titles say what runs
    # max_calls=0: a GPU task's worker is kept for the next task (Ray's default for GPU tasks is a new
    # process each time), so CUDA starts and the weights load once per worker, not once per shard
    options = {"max_calls": 0} if num_gpus else {}
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries, **options)(_on_its_node)
    remote = remote.options(name=fn.__name__)
    shared_refs = [ray.put(x) for x in shared]
    pending: set = set()
    works = iter(works)
    exhausted = False
    finished = 0
    while not exhausted or pending:
        while not exhausted and len(pending) < max_in_flight:
            work = next(works, None)
            if work is None:
                exhausted = True
            else:
                pending.add(remote.remote(fn, num_cpus, work, *shared_refs))
        if not pending:
            break
        # A bounded wait returns to Python often, so Ctrl-C stops the driver within a second (an
        # unbounded ray.wait sees the signal only when a task ends).
        done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
        for ref in done:
            pending.discard(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause  # the task's own exception: its message alone, not Ray's traceback text
                if isinstance(cause, SynthError):
                    raise SynthError(str(cause)) from None
                raise
            node, result = result
            finished += 1
            if on_node is not None:
                on_node(result, node)
            on_result(result)
    return finished


# ---- Ray Jobs: `synth submit|status|logs|stop|jobs` -------------------------------------------


def jobs_address(address: str | None) -> str:
    """The Jobs API address: ``address``, else RAY_API_SERVER_ADDRESS or RAY_ADDRESS (an http(s) one)."""
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise SynthError("no cluster to talk to: give --address http://HOST:8265 or set RAY_ADDRESS")
    if address == "auto" or not address.startswith(("http://", "https://")):
        raise SynthError(f"--address {address}: the Jobs API needs the dashboard's address, http://HOST:8265")
    return address


def job_client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)  # its INFO lines are noise here

    address = jobs_address(address)
    try:
        return JobSubmissionClient(address)
    except _api_errors() as exc:
        if type(exc).__name__ == "AuthenticationError":
            raise SynthError(
                f"--address {address}: refused: this cluster wants its token (set RAY_AUTH_MODE=token "
                "and RAY_AUTH_TOKEN_PATH, e.g. source the cluster's env file)"
            ) from None
        raise SynthError(f"--address {address}: cannot reach the Ray Jobs API ({_first_line(exc)})") from None


def _api_errors() -> tuple[type[BaseException], ...]:
    """What the Jobs API client raises for a refused, failed or unreachable request."""
    import aiohttp
    import requests
    from ray.exceptions import AuthenticationError

    return (
        ConnectionError,
        RuntimeError,
        ValueError,
        AuthenticationError,
        requests.RequestException,
        aiohttp.ClientError,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


@contextmanager
def _job_errors(job_id: str | None = None) -> Iterator[None]:
    """A Jobs API failure as one line (an unknown id, a refused request)."""
    try:
        yield
    except _api_errors() as exc:
        text = _first_line(exc)
        if job_id and ("404" in text or "does not exist" in text or "Not Found" in text):
            raise SynthError(f"job {job_id}: no such job on this cluster") from None
        raise SynthError(f"Ray Jobs API: {text}") from None


def submit_job(address: str | None, entrypoint: str, runtime_env: dict, metadata: dict) -> str:
    client = job_client(address)
    with _job_errors():
        return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, metadata=metadata)


def job_info(address: str | None, job_id: str) -> dict:
    """status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED), message, entrypoint, times, metadata."""
    client = job_client(address)
    with _job_errors(job_id):
        info = client.get_job_info(job_id)
    return {
        "id": job_id,
        "status": str(info.status.value if hasattr(info.status, "value") else info.status),
        "message": info.message,
        "entrypoint": info.entrypoint,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "metadata": info.metadata or {},
    }


def job_logs(address: str | None, job_id: str) -> str:
    client = job_client(address)
    with _job_errors(job_id):
        return client.get_job_logs(job_id)


def follow_job_logs(address: str | None, job_id: str, write: Callable[[str], None]) -> None:
    """Write the job's logs as they come, until it ends."""
    import asyncio

    client = job_client(address)

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            write(lines)

    with _job_errors(job_id):
        asyncio.run(tail())


def stop_job(address: str | None, job_id: str) -> bool:
    client = job_client(address)
    with _job_errors(job_id):
        return client.stop_job(job_id)


def list_jobs(address: str | None) -> list[dict]:
    client = job_client(address)
    with _job_errors():
        jobs = client.list_jobs()
    return [
        {
            "id": j.submission_id or j.job_id,
            "status": str(j.status.value if hasattr(j.status, "value") else j.status),
            "entrypoint": j.entrypoint,
            "start_time": j.start_time,
            "end_time": j.end_time,
            "metadata": j.metadata or {},
        }
        for j in jobs
    ]
