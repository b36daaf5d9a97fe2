"""The training loop: Accelerate lives here and nowhere else.

``train(job, out_dir)`` runs in every training process: inside a Ray Train
worker (where Ray has set up the process group) or alone in a plain process.
Each step's data and latents come from (job seed, step, rank) alone, so a
resumed run takes exactly the batches an uninterrupted run would have taken.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synth.data import load_dataset
from synth.errors import SynthError
from synth.layout import TRAIN_LOG, checkpoints
from synth.models import family_for
from synth.models.common import EMA, from_uint8
from synth.models.family import ImageShape, StepData
from synth.placement import check_precision
from synth.spec import Job
from synth.train import checkpoint as ckpt

log = logging.getLogger("synth.train")


@dataclass(frozen=True)
class TrainResult:
    step: int
    world_size: int
    replica_max_diff: float
    generator_digest: str


def make_accelerator(use_gpu: bool | None, mixed_precision: str = "no"):
    """An Accelerator on GPU when present (and allowed), else on CPU; ``mixed_precision``: no, bf16, fp16.

    On CPU, ``cpu=True`` matters: it makes Accelerate join the gloo process
    group Ray Train set up. Without it each worker trains alone.
    """
    from accelerate import Accelerator

    gpu = torch.cuda.is_available() if use_gpu is None else use_gpu
    check_precision(mixed_precision, gpu)
    return Accelerator(cpu=not gpu, mixed_precision=mixed_precision)


def model_config(job: Job, num_classes: int) -> dict:
    """What a checkpoint must match to be resumed."""
    return {
        **job.model.canonical(),
        "resolution": job.data.resolution,
        "channels": job.data.channels,
        "num_classes": num_classes,
    }


def step_indices(seed: int, step: int, dataset_size: int, global_batch: int, sub: int = 0) -> np.ndarray:
    """The global batch of dataset indices for sub-batch ``sub`` of one step, from (seed, step, sub) alone."""
    key = (1, step) if sub == 0 else (1, step, sub)
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))
    return rng.choice(dataset_size, size=global_batch, replace=global_batch > dataset_size)


def step_generator(seed: int, step: int, rank: int, device) -> torch.Generator:
    """The torch generator for one rank's latents and fake labels at one step."""
    words = np.random.SeedSequence(entropy=seed, spawn_key=(2, step, rank)).generate_state(2, np.uint32)
    gen = torch.Generator(device=device)
    gen.manual_seed(((int(words[0]) << 32) | int(words[1])) & (2**63 - 1))
    return gen


def replica_max_diff(modules: list[torch.nn.Module]) -> tuple[int, float]:
    """(world size, largest difference between ranks of a per-tensor checksum).

    Uses torch.distributed directly: if Accelerate failed to join the process
    group, ranks would drift apart and this would show it.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 1, 0.0
    sums = torch.stack([p.detach().double().sum().cpu() for m in modules for p in m.parameters()])
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    sums = sums.to(device)
    gathered = [torch.zeros_like(sums) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, sums)
    spread = torch.stack(gathered).max(0).values - torch.stack(gathered).min(0).values
    return dist.get_world_size(), float(spread.max().item())


def train(job: Job, out_dir: str | Path, log_lines: bool = True, use_gpu: bool | None = None) -> TrainResult:
    """Train the job's model; checkpoint and export the EMA generator under out_dir.

    ``log_lines`` prints a line per ``train.log_every`` steps (for cluster logs);
    the CLI turns it off when it draws a progress bar from train_log.csv instead.
    ``use_gpu``: None, a GPU when this process sees one (engine.py decides it for a Ray Train worker).
    """
    out_dir = Path(out_dir)
    folder = checkpoints(out_dir)
    tcfg = job.train
    accelerator = make_accelerator(use_gpu, tcfg.mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    if tcfg.batch_size % world:
        raise SynthError(f"train.batch_size: {tcfg.batch_size} does not split evenly across {world} workers")
    per_rank = tcfg.batch_size // world

    data = load_dataset(job.data, job.seed)
    family = family_for(job.model.name)
    with torch.random.fork_rng(devices=[]):  # same initial weights on every rank, from the job seed
        torch.manual_seed(job.seed)
        nets = family.build(job.model, ImageShape(job.data.resolution, job.data.channels, data.num_classes))
    export_key = family.export_net
    ema = EMA(nets[export_key], tcfg.ema_decay, tcfg.ema_start)
    levels = job.model.capabilities().pixels == "levels"
    opts = family.optimizers(nets, tcfg)
    mcfg = model_config(job, data.num_classes)
    start = 0
    state = ckpt.read_state(folder)
    if state is not None:
        ckpt.check_same_model(state, mcfg, folder)
        start = ckpt.load_training_checkpoint(folder, state, {**nets, f"{export_key}_ema": ema.shadow}, opts)
    # channels-last: oneDNN's and cuDNN's preferred conv layout (~20% faster steps on CPU here)
    names = list(nets)
    prepared = accelerator.prepare(*(nets[k].to(memory_format=torch.channels_last) for k in names), *opts.values())
    nets = dict(zip(names, prepared[: len(names)]))
    opts = dict(zip(opts, prepared[len(names) :]))
    ema.shadow.to(accelerator.device)
    device = accelerator.device
    labels_all = torch.from_numpy(data.labels)
    curves = TrainLog(out_dir / TRAIN_LOG, family.log_fields, accelerator.is_main_process, start, tcfg.steps, log_lines)
    if accelerator.is_main_process and log_lines:
        precision = f" ({tcfg.mixed_precision})" if tcfg.mixed_precision != "no" else ""
        log.info(
            f"[synth train] {job.model.name}: {len(data)} images, {data.num_classes} classes, {world} worker(s) "
            f"on {device}{precision}; steps {start}->{tcfg.steps}"
        )

    averaged = accelerator.unwrap_model(nets[export_key])  # once: unwrap_model looks for DeepSpeed on disk each call

    def unwrapped() -> dict[str, torch.nn.Module]:
        return {k: accelerator.unwrap_model(m) for k, m in nets.items()}

    def save(step: int) -> None:
        world_size, diff = replica_max_diff(list(nets.values()))
        if accelerator.is_main_process:
            ckpt.save_training_checkpoint(
                folder,
                step,
                {**unwrapped(), f"{export_key}_ema": ema.shadow},
                opts,
                {"model_config": mcfg, "world_size": world_size, "replica_max_diff": diff, "job_seed": job.seed},
            )
        accelerator.wait_for_everyone()

    for step in range(start, tcfg.steps):

        def real(sub: int, step=step) -> tuple[torch.Tensor, torch.Tensor]:
            idx = step_indices(job.seed, step, len(data), tcfg.batch_size, sub)[rank * per_rank : (rank + 1) * per_rank]
            pixels = (
                torch.from_numpy(data.images[idx]).permute(0, 3, 1, 2).long()
                if levels
                else from_uint8(data.images[idx])
            )
            images = pixels.to(device).contiguous(memory_format=torch.channels_last)
            return images, labels_all[idx].to(device)

        data_step = StepData(real, step_generator(job.seed, step, rank, device), per_rank, data.num_classes, job.model)
        figures = family.train_step(nets, opts, data_step, accelerator.backward)
        ema.update(averaged, step)

        done = step + 1
        if done % tcfg.log_every == 0 or done == tcfg.steps:
            values = torch.stack([figures[k].float() for k in family.log_fields])
            curves.write(done, accelerator.reduce(values, reduction="mean").tolist(), tcfg.batch_size)
        if done % tcfg.checkpoint_every == 0 and done != tcfg.steps:
            save(done)

    end = max(start, tcfg.steps)
    save(end)
    world_size, diff = replica_max_diff(list(nets.values()))
    digest = ""
    if accelerator.is_main_process:
        digest = export_model(family, ema.shadow, mcfg, job, end, folder, data.class_names)
    accelerator.wait_for_everyone()
    curves.close()
    return TrainResult(end, world_size, diff, digest)


def export_fixed(job: Job, out_dir: str | Path) -> TrainResult:
    """A member with nothing to train (capabilities ``trained=False``): export its nets as built from
    the job seed, as training would export them, so generation reads them the same way."""
    out_dir = Path(out_dir)
    data = load_dataset(job.data, job.seed)
    family = family_for(job.model.name)
    mcfg = model_config(job, data.num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job.seed)
        net = family.build_export(mcfg)
    digest = export_model(family, net, mcfg, job, 0, checkpoints(out_dir), data.class_names)
    return TrainResult(0, 1, 0.0, digest)


def export_model(family, ema_net, mcfg: dict, job: Job, step: int, folder: Path, class_names) -> str:
    """Prepare the EMA average of the family's ``export_net`` (``family.finalize``) and save it for generation."""
    import copy

    net = copy.deepcopy(ema_net).cpu().eval()
    family.finalize(net, job.seed)
    meta = {"model_config": mcfg, "step": step, "family": family.name, "class_names": list(class_names)}
    return ckpt.save_generator(folder, net, meta)


class TrainLog:
    """Loss curves: CSV always (appending on resume), TensorBoard when installed. Main process only."""

    def __init__(
        self,
        path: Path,
        fields: tuple[str, ...],
        active: bool,
        start_step: int,
        total_steps: int,
        log_lines: bool = True,
    ):
        self.active, self.total, self.log_lines = active, total_steps, log_lines
        self.fields = ["step", *fields, "images_per_s", "elapsed_s"]
        self.start = self.last = time.perf_counter()
        self.last_step = start_step
        self.fh = self.writer = self.tb = None
        if not active:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self.fh = open(path, "a", newline="")  # noqa: SIM115 -- open for the run, closed by close()
        self.writer = csv.writer(self.fh)
        if new:
            self.writer.writerow(self.fields)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(path.parent / "tensorboard"))
        except Exception:  # noqa: BLE001 -- tensorboard not installed: CSV only
            self.tb = None

    def write(self, step: int, figures: list[float], global_batch: int) -> dict:
        now = time.perf_counter()
        rate = (step - self.last_step) * global_batch / max(now - self.last, 1e-9)
        self.last, self.last_step = now, step
        row = dict(zip(self.fields, [step, *figures, rate, now - self.start]))
        if self.active:
            self.writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row.values()])
            self.fh.flush()
            if self.tb is not None:
                for key in self.fields[1:-2]:
                    self.tb.add_scalar(f"train/{key}", row[key], step)
        if self.active and self.log_lines:
            shown = " ".join(f"{k}={row[k]:.3f}" for k in self.fields[1:-2] if k.startswith("loss"))
            log.info(f"[synth train] step {step}/{self.total} {shown} {rate:.0f} img/s")
        return row

    def close(self) -> None:
        if self.fh:
            self.fh.close()
        if self.tb:
            self.tb.close()
