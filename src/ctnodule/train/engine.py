"""The training loop: plain PyTorch, single process or torch.distributed (DDP) under `torchrun`.

`fit(module, train, val, cfg, criterion, ...)` trains with Adam/AdamW (+ L1), reduce-LR-on-plateau and
early stopping on the validation loss, restores the best weights, and writes a checkpoint after every
epoch (atomically: Ctrl-C leaves the last good one, and `resume=True` continues from it with the same
optimizer, scheduler and RNG state).

Inputs come as a `Batches` source: fine-tuning feeds images (augmented online, flip-averaged with TTA),
a frozen backbone feeds cached feature views (a random flip view per sample while training — the
augmentation that costs nothing — and the mean over views when evaluating).

Under `torchrun` (WORLD_SIZE > 1) the process group is initialised (NCCL on CUDA, Gloo on CPU), the
module is wrapped in DistributedDataParallel and each rank sees its DistributedSampler shard; rank 0
writes checkpoints. The same code runs on one CPU, one GPU or many nodes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ctnodule.atomic import atomic_path
from ctnodule.errors import RunError
from ctnodule.models.batches import Batches, predict_logits
from ctnodule.recipe import TrainConfig


def distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group once when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def fit(module: nn.Module, train: Batches, val: Batches, cfg: TrainConfig, criterion: nn.Module,
        checkpoint: Path, fold: int, device: str = "cpu", resume: bool = False,
        log: Callable[[str], None] = print) -> list[dict]:
    """Train `module` in place (best weights restored); returns the history rows of this fold."""
    rank, world = distributed()
    if world > 1 and device == "cuda":  # one GPU per torchrun process, not every process on GPU 0
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
        torch.cuda.set_device(device)
    module.to(device)
    criterion = criterion.to(device)
    params = [p for p in module.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(_param_groups(module, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + fold)
    state = {"epoch": 0, "best_loss": math.inf, "best_state": None, "bad_epochs": 0, "history": []}
    if resume and checkpoint.is_file():
        state = _load_state(checkpoint, module, opt, sched, gen)
        log(f"fold {fold}: resuming after epoch {state['epoch']}")
    net = module
    if world > 1:
        net = nn.parallel.DistributedDataParallel(module, device_ids=[torch.device(device).index] if "cuda" in device else None)
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if state["bad_epochs"] >= cfg.patience:
            break
        net.train()
        total, correct, seen = 0.0, 0, 0
        for idx in _train_indices(len(train), cfg.batch_size, gen, rank, world, epoch, cfg.seed):
            x = train.take(idx, True, cfg, gen)[0].to(device)
            y = train.y[idx].to(device)
            extra = None if train.extra is None else train.extra[idx].to(device)
            logits = net(x, extra)
            loss = criterion(logits, y)
            if cfg.l1 > 0:
                loss = loss + cfg.l1 * sum(p.abs().sum() for p in params if p.ndim > 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        val_logits = predict_logits(module, val, cfg, device)
        val_loss = float(nn.functional.nll_loss(val_logits, val.y))
        val_acc = float((val_logits.argmax(1) == val.y).float().mean())
        sched.step(val_loss)
        row = {"epoch": epoch, "fold": fold, "train_loss": total / max(seen, 1), "val_loss": val_loss,
               "train_acc": correct / max(seen, 1), "val_acc": val_acc, "lr": opt.param_groups[-1]["lr"]}
        state["history"].append(row)
        if val_loss < state["best_loss"] - 1e-4:
            state.update(best_loss=val_loss, bad_epochs=0,
                         best_state={k: v.detach().clone() for k, v in module.state_dict().items()})
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        if rank == 0:
            _save_state(checkpoint, module, opt, sched, gen, state)
    if state["best_state"] is not None:
        module.load_state_dict(state["best_state"])
    return state["history"]


def _param_groups(module: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Backbone parameters may get their own (smaller) learning rate when fine-tuning."""
    backbone = getattr(module, "backbone", None)
    if backbone is None or cfg.backbone_lr is None:
        return [{"params": [p for p in module.parameters() if p.requires_grad]}]
    ids = {id(p) for p in backbone.parameters()}
    return [{"params": [p for p in backbone.parameters() if p.requires_grad], "lr": cfg.backbone_lr},
            {"params": [p for p in module.parameters() if p.requires_grad and id(p) not in ids]}]


def _train_indices(n: int, batch_size: int, gen: torch.Generator, rank: int, world: int, epoch: int,
                   seed: int) -> Iterator[torch.Tensor]:
    if world > 1:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
    else:
        order = torch.randperm(n, generator=gen)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if len(idx) > 1 or start == 0:  # a batch of 1 breaks BatchNorm in train mode
            yield idx


def _save_state(path: Path, module: nn.Module, opt, sched, gen: torch.Generator, state: dict) -> None:
    """Everything the next epoch depends on, the global RNGs included (dropout draws from torch's, or from
    CUDA's on a GPU): a run resumed from here continues exactly as the uninterrupted one would have."""
    blob = {"model": module.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, "state": state}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def _load_state(path: Path, module: nn.Module, opt, sched, gen: torch.Generator) -> dict:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        module.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        gen.set_state(blob["generator"])
        torch.set_rng_state(blob["torch_rng"])
        np.random.set_state(blob["numpy_rng"])
        if blob.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(blob["cuda_rng"])  # GPU dropout draws from the CUDA generators
        return blob["state"]
    except Exception as exc:
        raise RunError(f"{path}: cannot resume from this checkpoint ({exc}); delete it or train without "
                       "--resume") from exc


def seed_everything(seed: int) -> None:
    """Seed torch and numpy (model init, dropout); every other draw uses explicit generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
