"""The one exception type that reaches the user as a single line, and the CLI's lines for Ray failing
under a job."""

from collections.abc import Callable


class SynthError(Exception):
    """A user-facing error: bad input, missing file, refused operation.

    The CLI prints ``error: <message>`` on one line and exits non-zero; no
    traceback. Raise it only for things the user can fix; bugs stay exceptions.
    """


# Ray's errors for lost processes and nodes (ray.exceptions), by name: this module does not import Ray.
NODE_LOST = ("NodeDiedError", "LocalRayletDiedError")
PROCESS_LOST = ("ActorDiedError", "WorkerCrashedError", "OwnerDiedError", "ObjectLostError", "RaySystemError")
NODE_LOST_WORDS = ("node has crashed", "node died", "raylet died", "raylet has died", "node is dead")


def ray_failure_line(exc: BaseException) -> str | None:
    """One line for a job that Ray lost under us (a node, or a process on it), or None for other errors.

    What was finished is on disk (checkpoints, shards), so the line says how to go on. Ray prints
    its own account first; this is the line a user acts on.
    """
    names = {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith("ray")}
    if not names & {*NODE_LOST, *PROCESS_LOST}:
        return None
    text = str(exc).lower()
    if names & set(NODE_LOST) or any(words in text for words in NODE_LOST_WORDS):
        return node_lost_line("its raylet, or a process Ray fate-shares with it, died")
    return resume_line(f"Ray lost a process of the job ({type(exc).__name__})")


def node_lost_line(cause: str) -> str:
    """The line for an embedded Ray's node lost under a command (``cause``: what died)."""
    return resume_line(f"the Ray node running this command was lost ({cause})")


def resume_line(what: str) -> str:
    return f"{what}; finished steps and shards are kept: run the same command again to resume"


# Called from a watcher thread (engine.watch_node) with the cause (text) when the node of an
# embedded Ray dies under a command. The CLI sets it to print one line and exit; library use leaves
# it None, and Ray's own errors surface.
on_node_lost: Callable[[str], None] | None = None
