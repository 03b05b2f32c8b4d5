"""A training loop for every recipe: time or step budget, the paper-style learning-rate plan,
deterministic seeds, periodic checkpoints (resumable) and a progress bar."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


@dataclass
class RunConfig:
    name: str
    steps: int | None = None  # stop after this many steps ...
    minutes: float | None = None  # ... or this much wall time, whichever comes first
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    workers: int = 1  # DataLoader processes making samples while the network trains
    checkpoint_dir: Path = Path("var/checkpoints")
    checkpoint_every_s: float = 120.0
    resume: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ValueError("give a step budget, a time budget, or both")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def learning_rate(base: float, done: float) -> float:
    """Constant for the first half of the budget, then halved every further tenth (the
    MIDeepSeg schedule: 150 of 300 epochs constant, halved every 30)."""
    if done < 0.5:
        return base
    return base * 0.5 ** (math.floor((done - 0.5) / 0.1) + 1)


def _budget_done(config: RunConfig, step: int, elapsed: float) -> float:
    parts = []
    if config.steps:
        parts.append(step / config.steps)
    if config.minutes:
        parts.append(elapsed / (60.0 * config.minutes))
    return max(parts)


# loss_fn(model output, target): the output is whatever the model's forward returns, a tensor
# (U-Net) or a tuple (P-Net / PC-Net: logits, features); nn.Module.__call__ is typed Any.
LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


def train(model: torch.nn.Module, batches: torch.utils.data.IterableDataset,
          loss_fn: LossFn, config: RunConfig) -> dict:
    """Train `model` in place on `batches` ((x, y) tensors) until the budget is spent.
    Returns {"steps", "wall_time_s", "final_loss", "device"}."""
    seed_everything(config.seed)
    dev = device()
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    checkpoint = Path(config.checkpoint_dir) / f"{config.name}.pt"
    step, elapsed_before = 0, 0.0
    if config.resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location=dev)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed_before = state["step"], state["elapsed"]
    loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=config.workers,
                                         persistent_workers=False)
    start, last_save, last_log = time.monotonic(), time.monotonic(), 0.0
    recent: list[float] = []
    plain_log = not config.quiet and not sys.stdout.isatty()  # a log file: one line / 30 s
    columns = [TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"),
               TextColumn("step {task.fields[step]}  loss {task.fields[loss]}  "
                          "lr {task.fields[lr]}"),
               TimeElapsedColumn()]
    with Progress(*columns, disable=config.quiet or plain_log) as bar:
        task = bar.add_task(config.name, total=1.0, step=step, loss="-", lr="-")
        for x, y in loader:
            elapsed = elapsed_before + time.monotonic() - start
            done = _budget_done(config, step, elapsed)
            if done >= 1.0:
                break
            lr = learning_rate(config.lr, done)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_fn(model(x.to(dev)), y.to(dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            recent = (recent + [float(loss.detach())])[-50:]
            bar.update(task, completed=done, step=step, loss=f"{np.mean(recent):.4f}",
                       lr=f"{lr:.1e}")
            if plain_log and time.monotonic() - last_log > 30:
                print(f"{config.name}: {done:.0%} step {step} loss {np.mean(recent):.4f} "
                      f"lr {lr:.1e} {elapsed:.0f}s", flush=True)
                last_log = time.monotonic()
            if time.monotonic() - last_save > config.checkpoint_every_s:
                _save(checkpoint, model, optimizer, step, elapsed)
                last_save = time.monotonic()
    elapsed = elapsed_before + time.monotonic() - start
    _save(checkpoint, model, optimizer, step, elapsed)
    model.cpu().eval()
    return {"steps": step, "wall_time_s": round(elapsed, 1),
            "final_loss": round(float(np.mean(recent)), 4) if recent else None,
            "device": str(dev)}


def _save(path: Path, model, optimizer, step: int, elapsed: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "elapsed": elapsed}, tmp)
    tmp.replace(path)
