"""A multi-node Ray cluster on this machine: ``synth cluster up|status|down``.

Each node is one ``ray start --block`` process that we start in a session of its own, so that
``down`` stops exactly what ``up`` started (the process group of each node, by the ids recorded in
the cluster folder), never other Ray processes on the machine. Every node listens on 127.0.0.1 (Ray
keeps to it when only the loopback interface exists: run inside a loopback-only network namespace,
as scripts/loopback.sh does, for a guarantee), on ports free at start-up (worker ports in a range
below the kernel's ephemeral ports, checked free), and requires the cluster's own token (Ray's
token authentication; the file is created private to the user).

The cluster folder (``--dir``, default ``$SYNTH_CLUSTER_DIR`` or ``~/.synth/cluster``) holds
``cluster.json`` (addresses, nodes, process ids), ``auth_token``, ``env`` (what a shell sources to
use the cluster: RAY_ADDRESS, the Jobs API's address, and the token settings) and each node's log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from synth.errors import SynthError
from synth.fsutil import atomic_write_bytes

STATE = "cluster.json"
TOKEN = "auth_token"
ENV = "env"
LOCK = ".lock"


def default_dir() -> Path:
    return Path(os.environ.get("SYNTH_CLUSTER_DIR") or Path.home() / ".synth" / "cluster")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_executable() -> str:
    here = Path(sys.executable).parent / "ray"
    found = str(here) if here.is_file() else shutil.which("ray")
    if not found:
        raise SynthError("the `ray` command is not installed next to this Python; install ray[default]")
    return found


def auth_env(root: Path) -> dict[str, str]:
    """What every process of the cluster (nodes, drivers, job clients) needs to be let in."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(root / TOKEN)}


@contextlib.contextmanager
def folder_lock(root: Path, wait_s: float = 300.0, say=print):
    """Hold the cluster folder for one ``up`` or ``down`` at a time (an flock on ``root/.lock``).

    Two shells running ``up`` and ``down`` on one folder would otherwise interleave: ``down`` could
    stop the head while ``up`` starts a worker that no state file records. The second command waits
    for the first (up to ``wait_s``), then sees the folder as the first left it. The kernel drops the
    lock when its holder exits, killed or not, so no stale lock outlives a crash.
    """
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(root / LOCK, "a") as fh:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SynthError(
                        f"{root}: another `synth cluster up` or `down` has held this folder for {wait_s:.0f} s; "
                        "wait for it to finish, or stop it"
                    ) from None
                if not told:
                    say(f"waiting for another `synth cluster up` or `down` on {root} to finish")
                    told = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def default_token_path() -> Path:
    """Where ``synth cluster token`` keeps the token of the clusters that synth's launcher configs and
    Kubernetes manifests start (``~/.synth/ray_token``)."""
    return Path.home() / ".synth" / "ray_token"


def write_token(path: Path) -> None:
    """A new random token at ``path``, private to the user from its first byte (mode 600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))


def ensure_token(path: Path) -> bool:
    """Make the token at ``path`` unless one is there; True if made. Refuses a token others can read."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SynthError(f"{path}: the token is readable by others (mode {mode:o}); chmod 600 {path}")
        if not path.read_text().strip():
            raise SynthError(f"{path}: the token file is empty; remove it and run `synth cluster token` again")
        return False
    write_token(path)
    return True


def read_state(root: Path) -> dict | None:
    try:
        return json.loads((root / STATE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthError(f"{root / STATE}: unreadable ({exc}); remove the folder if no cluster runs from it") from None


def alive(pid: int) -> bool:
    """True while the process group that ``pid`` leads has a live member (zombies do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: any member, zombie or not
        try:
            os.killpg(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    for stat_file in proc.glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid and fields[0] != "Z":  # fields after the name: state, ppid, pgrp
            return True
    return False


def node_command(
    ray: str, head: bool, cpus: int, object_store_mb: int, state: dict, worker_ports: tuple[int, int]
) -> list[str]:
    """``ray start --block`` for one node, every port of its own (several nodes share this machine)."""
    cmd = [
        ray,
        "start",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--num-cpus={cpus}",
        "--num-gpus=0",
        f"--object-store-memory={object_store_mb * 1024 * 1024}",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--min-worker-port={worker_ports[0]}",
        f"--max-worker-port={worker_ports[1]}",
    ]
    if head:
        cmd += [
            "--head",
            f"--port={state['gcs_port']}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={state['dashboard_port']}",
            f"--ray-client-server-port={free_port()}",
            f"--temp-dir={state['temp_dir']}",
        ]
    else:
        cmd += [f"--address={state['address']}"]
    return cmd


def up(
    root: Path,
    nodes: int,
    cpus_per_node: int | None = None,
    object_store_mb: int = 256,
    timeout: float = 120.0,
    say=print,
) -> dict:
    """Start a head and ``nodes - 1`` worker nodes; returns the cluster's state once all are alive.

    One ``up`` or ``down`` at a time holds the folder (``folder_lock``)."""
    with folder_lock(root, say=say):
        if nodes < 1:
            raise SynthError(f"--nodes {nodes}: need at least 1")
        old = read_state(root)
        if old is not None and any(alive(n["pid"]) for n in old["nodes"]):
            raise SynthError(
                f"{root}: a cluster started from here is still up; `synth cluster down --dir {root}` first"
            )
        cpus = cpus_per_node or max(1, (os.cpu_count() or 1) // nodes)
        ray = ray_executable()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = root / TOKEN
        token.unlink(missing_ok=True)
        write_token(token)
        gcs, dashboard = free_port(), free_port()
        state = {
            "address": f"127.0.0.1:{gcs}",
            "dashboard": f"http://127.0.0.1:{dashboard}",
            "gcs_port": gcs,
            "dashboard_port": dashboard,
            "temp_dir": tempfile.mkdtemp(prefix="synth-ray-", dir="/tmp"),  # short: Ray's socket paths are limited
            "cpus_per_node": cpus,
            "nodes": [],
        }
        env = {**os.environ, **auth_env(root)}
        env.pop("RAY_ADDRESS", None)
        save_state(root, state)  # before any process starts: whatever fails below, `down` finds what there is
        procs: list[subprocess.Popen] = []
        try:
            for i in range(nodes):
                log = root / f"node-{i}.log"
                cmd = node_command(ray, i == 0, cpus, object_store_mb, state, free_range(100))
                with open(log, "wb") as fh:
                    procs.append(
                        subprocess.Popen(
                            cmd,
                            stdout=fh,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            env=env,
                            start_new_session=True,
                        )
                    )
                state["nodes"].append({"role": "head" if i == 0 else "worker", "pid": procs[-1].pid, "log": str(log)})
                save_state(root, state)
                if i == 0:
                    wait_for(lambda: len(alive_nodes(state, root)) >= 1, timeout, "the head node", log, procs)
                    say(f"head node up: {state['address']} (dashboard {state['dashboard']})")
            wait_for(
                lambda: len(alive_nodes(state, root)) >= nodes,
                timeout,
                f"{nodes} nodes",
                root / f"node-{nodes - 1}.log",
                procs,
            )
        except BaseException:
            _down(root)
            raise
        # RAY_ADDRESS: the Jobs API (synth submit|status|logs|stop|jobs, and `ray job`); `synth run --address`
        # takes the Ray address itself (state["address"])
        (root / ENV).write_text(
            "".join(
                f"export {k}={shlex.quote(v)}\n"
                for k, v in {"RAY_ADDRESS": state["dashboard"], **auth_env(root)}.items()
            )
        )
        return state


def save_state(root: Path, state: dict) -> None:
    atomic_write_bytes(root / STATE, json.dumps(state, indent=2).encode())


def wait_for(check, timeout: float, what: str, log: Path, procs=()) -> None:
    """Until ``check()``; fails (naming the log) at ``timeout``, or at once if a node's process exited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError):
            pass
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise SynthError(
                f"a node's `ray start` exited ({dead[0].returncode}) before {what} were up; see {log.parent}/node-*.log"
            )
        time.sleep(1.0)
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
    raise SynthError(f"{what} not up after {timeout:.0f} s; see {log}" + (f" ({tail[0][:200]})" if tail else ""))


def free_range(n: int) -> tuple[int, int]:
    """A range of ``n`` free ports below the kernel's ephemeral range (where free_port's come from)."""
    import random

    for _ in range(200):
        start = random.randrange(10000, 32768 - n)
        taken = False
        for port in range(start, start + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    taken = True
                    break
        if not taken:
            return start, start + n - 1
    raise SynthError(f"no {n} free ports in a row on 127.0.0.1 between 10000 and 32767")


def api(state: dict, root: Path, path: str) -> dict:
    """GET the dashboard's JSON API with the cluster's token."""
    token = (root / TOKEN).read_text().strip()
    req = urllib.request.Request(state["dashboard"] + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def alive_nodes(state: dict, root: Path) -> list[dict]:
    """The cluster's alive nodes, from the dashboard's state API: id, address, resources."""
    data = api(state, root, "/api/v0/nodes?limit=1000&detail=true")
    rows = data["data"]["result"]["result"]
    return [r for r in rows if r.get("state") == "ALIVE"]


def status(root: Path) -> tuple[dict, list[dict]]:
    """(state, alive nodes); fails with one line if no cluster was started from ``root``."""
    state = read_state(root)
    if state is None:
        raise SynthError(f"{root}: no cluster started from here (synth cluster up --dir {root})")
    running = [n for n in state["nodes"] if alive(n["pid"])]
    if not running:
        raise SynthError(f"{root}: the cluster's processes are gone; `synth cluster down --dir {root}` cleans up")
    try:
        return state, alive_nodes(state, root)
    except (OSError, ValueError, KeyError) as exc:
        raise SynthError(f"{state['dashboard']}: the dashboard does not answer ({exc})") from None


def down(root: Path, timeout: float = 10.0) -> tuple[int, int]:
    """Stop the nodes started from ``root``; see ``_down``. Waits for an ``up`` or ``down`` that holds
    the folder (``folder_lock``)."""
    if not (root / STATE).is_file() and not (root / LOCK).is_file():
        raise SynthError(f"{root}: no cluster started from here")
    with folder_lock(root):
        return _down(root, timeout)


def _down(root: Path, timeout: float = 10.0) -> tuple[int, int]:
    """Stop the nodes started from ``root`` (workers first), by their process groups; returns (how many
    were running, how many of those had to be killed). SIGTERM asks ``ray start --block`` to stop
    its node's processes; a node still up after ``timeout`` (common once jobs have run: Ray's own
    shutdown takes tens of seconds) gets SIGKILL for its whole process group, which holds only what
    that ``ray start`` started."""
    state = read_state(root)
    if state is None:
        raise SynthError(f"{root}: no cluster started from here")
    nodes = list(reversed(state["nodes"]))
    running = [n for n in nodes if alive(n["pid"])]
    for n in running:
        try:
            os.kill(n["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    t0 = time.monotonic()
    while any(alive(n["pid"]) for n in running) and time.monotonic() - t0 < timeout:
        time.sleep(0.25)
    killed = 0
    for n in running:
        if alive(n["pid"]):
            killed += 1
            try:
                os.killpg(n["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    t0 = time.monotonic()
    while any(alive(n["pid"]) for n in running) and time.monotonic() - t0 < 10:
        time.sleep(0.25)
    shutil.rmtree(state["temp_dir"], ignore_errors=True)
    (root / STATE).unlink(missing_ok=True)
    (root / ENV).unlink(missing_ok=True)
    return len(running), killed
