"""A small class-conditional diffusion model for nodule crops (+ masks) that trains on a CPU.

Why beside the GAN: diffusion models are trained by plain regression (no adversary), so they cover the
data's variety instead of collapsing to one sample per class, the cGAN's failure on the dev VOIs (recall
0.00, one nodule size per class).

What it is (Ho et al. 2020; Nichol & Dhariwal 2021; Salimans & Ho 2022; Song et al. 2021):
- continuous-time cosine noise schedule, alpha_bar(t) = cos^2(pi/2 * (t + s) / (1 + s)), t ~ U(0, 1);
- v-prediction with an MSE loss (well-behaved at both ends of the schedule, unlike epsilon at t -> 1);
- a compact U-Net: residual blocks whose GroupNorm scale/shift come from the sum of a sinusoidal time
  embedding, a learned class embedding and (`size_condition`, the default when masks are given) an embedding
  of the nodule's size — the equivalent mask diameter as a share of the side; sampling draws each sample's
  size from its class's training nodules (or takes `sizes`), so the size spread per score is the real one;
  one self-attention block at the coarsest level;
- the image channels and, when masks are given, the nodule mask as one more channel (thresholded at 0 when
  sampling), so every sample carries its own segmentation like the cGAN's;
- random flips/90-degree rotations of the training batch (a nodule has no preferred orientation);
- an exponential moving average of the weights, which is what `sample` uses;
- deterministic DDIM sampling with `sample_steps` steps (few network calls: CPU speed).

Like the cGAN it models the 64 x 64 nodule view at `train_size` 32 (same field of view at 1.4 mm/px) and
resamples its output back (bicubic); that down+up-sampling alone costs KID 0.025 / FID 26 on real crops.
Drawing the 64-px grid directly at the same cost per step (a pixel-unshuffle stem, 4988 steps, 786 CPU s)
was far worse: KID 0.62 / FID 163, grainy textures without vessels; a plain 64-px U-Net costs 3x per step.

Measured on the 798 dev VOI crops (quality.compare, n = 392 a side, 20 patient halves; 200 epochs = 4988
steps of 32, width 16 (0.18 M parameters), one thread; shared 2-core machine): with size conditioning
(`ctnodule synthesize data/voi --per-class 100`) training 729 CPU s / 20 min wall, 1.7 GB peak (794 CPU s in an
identical earlier run under heavier load), KID 0.110 [0.097, 0.120], FID 57.6 [53.0, 62.4] vs the same-n real-vs-real 0.000 /
19.0, precision 0.69, recall 0.13; mask diameter per score 7.6±3.4 / 7.8±3.4 / 7.8±3.7 / 11.5±3.8 /
18.0±5.3 mm vs real 7.2±3.0 / 7.4±2.9 / 8.0±3.9 / 12.2±4.1 / 18.9±5.7. Without it (class only): 747 CPU s,
KID 0.137 [0.124, 0.146], FID 61.8 [56.6, 66.4], recall 0.13, diameters' sd 1.9-4.1. cGAN, 150 epochs / 471
CPU s: KID 0.254, FID 147, recall 0.00. No copying: median feature distance to the nearest real crop 6.8
vs 6.2 real-to-real. Targets (KID <= 0.05, FID <= 3x reference = 57) not reached within the 15-min budget:
along the run (5 halves at 1250 / 2500 steps) KID 0.214 / 0.148 / 0.110 and FID 90 / 70 / 58 at 200 / 390 /
794 CPU s, i.e. KID falls ~ CPU^-0.4..0.5 and would need an extrapolated 4 000-9 000 CPU s (5-11x the
budget). Sampling with 100 DDIM steps instead of 40 changes nothing (KID 0.135 vs 0.137, class-only model):
the training budget, not the sampler, limits quality.

`ConditionalDiffusion` has the estimator shape of `ConditionalGAN`: parameters in `__init__`,
`fit(images, labels, masks)` learns `model_` (+ `n_classes_`, `image_size_`, `model_size_`, `n_channels_`,
`has_mask_`, `history_`, `fit_seconds_`, `fit_cpu_seconds_`, `class_counts_`, `sizes_` and `size_labels_`:
the training sizes and their classes, None without size conditioning), `sample(n_per_class, seed)` draws
`Samples`, `save`/`load` round-trip through one file.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ctnodule.balance.generator import (
    Samples,
    check_training_data,
    ema_update,
    load_generator,
    per_class,
    restore_fitted,
    save_generator,
    to_samples,
)
from ctnodule.data.measure import equivalent_diameter_mm
from ctnodule.errors import ConfigError
from ctnodule.runtime import torch_threads

FORMAT = "ctnodule-diffusion/1"


def alpha_bar(t: torch.Tensor, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule: the share of signal variance left at time t in [0, 1] (1 at t=0, 0 at t=1)."""
    return torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of continuous times t (N,) in [0, 1] -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the (time + class) embedding sets the second norm's scale and shift."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over the pixels of the coarsest feature map (global shape coherence, cheap at 8 x 8)."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = _norm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class UNet(nn.Module):
    """(x_t, t, class) -> v; widths `width * mults` at sizes size, size/2, size/4, ...; one ResBlock per level
    on the way down and two on the way up (the second after concatenating the skip)."""

    def __init__(self, n_classes: int, channels: int, width: int = 32, mults: tuple[int, ...] = (1, 2, 2),
                 sized: bool = False):
        super().__init__()
        emb_dim = 4 * width
        self.width = width
        self.time = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label = nn.Embedding(n_classes, emb_dim)
        self.size = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)) if sized else None
        chans = [width * m for m in mults]
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.down = nn.ModuleList()
        c = width
        for c_out in chans:
            self.down.append(ResBlock(c, c_out, emb_dim))
            c = c_out
        self.mid1, self.attn, self.mid2 = ResBlock(c, c, emb_dim), Attention(c), ResBlock(c, c, emb_dim)
        self.up = nn.ModuleList()
        for c_skip in reversed(chans):
            self.up.append(ResBlock(c + c_skip, c_skip, emb_dim))
            c = c_skip
        self.out_norm, self.out = _norm(c), nn.Conv2d(c, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                sizes: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.width)) + self.label(labels)
        if self.size is not None:
            emb = emb + self.size(timestep_embedding(sizes, self.width))
        emb = F.silu(emb)
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.down) - 1:
                h = F.avg_pool2d(h, 2)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for i, block in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))


class ConditionalDiffusion:
    """Class-conditional diffusion generator of nodule crops (+ masks) (module docstring)."""

    def __init__(self, epochs: int = 200, batch_size: int = 32, width: int = 16, mults: tuple[int, ...] = (1, 2, 2),
                 train_size: int | None = 32, size_condition: bool = True, lr: float = 1e-3,
                 ema: float = 0.999, sample_steps: int = 40, seed: int = 0, num_threads: int | None = 1):
        self.epochs = epochs
        self.batch_size = batch_size
        self.width = width
        self.mults = mults
        self.train_size = train_size
        self.size_condition = size_condition
        self.lr = lr
        self.ema = ema
        self.sample_steps = sample_steps
        self.seed = seed
        self.num_threads = num_threads

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("epochs", "batch_size", "width", "mults", "train_size", "size_condition",
                                            "lr", "ema", "sample_steps", "seed", "num_threads")}

    def fit(self, images: np.ndarray, labels: np.ndarray, masks: np.ndarray | None = None,
            progress: bool = False) -> ConditionalDiffusion:
        """Train on `images` (N, H, W) or (N, C, H, W) in [0, 1] with class indices `labels` and, optionally,
        nodule `masks` (N, H, W) learned as one more channel. `num_threads` applies to this call only."""
        x, y = check_training_data(images, labels, masks, "diffusion")
        with torch_threads(self.num_threads):
            return self._fit(x, y, masks is not None, progress)

    def _fit(self, x: np.ndarray, y: np.ndarray, has_mask: bool, progress: bool) -> ConditionalDiffusion:
        out_size, channels = x.shape[-1], x.shape[1]
        size = min(int(self.train_size or out_size), out_size)
        if size < 8 or size % 2 ** (len(self.mults) - 1):
            raise ConfigError(f"diffusion: train_size {self.train_size} must be >= 8 and divisible by "
                              f"{2 ** (len(self.mults) - 1)} (one halving per level of mults={self.mults})")
        sized = has_mask and bool(self.size_condition)
        sizes = torch.from_numpy(equivalent_diameter(x[:, -1])) if sized else None
        data = torch.from_numpy(x * 2.0 - 1.0)
        if size < out_size:  # area averaging: the same field of view at a coarser mm/px
            data = F.interpolate(data, size=(size, size), mode="area")
        n_classes = int(y.max()) + 1
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        model = UNet(n_classes, channels, self.width, tuple(self.mults), sized)
        ema_model = copy.deepcopy(model).eval()
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=0.0)
        bs = min(int(self.batch_size), len(y))
        n_steps = max(1, math.ceil(int(self.epochs) * len(y) / bs))
        warmup = min(200, n_steps // 10 + 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
        y_all = torch.from_numpy(y)
        history, window = [], []
        start, cpu_start = time.perf_counter(), time.process_time()
        steps = range(n_steps)
        if progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc="diffusion", unit="step", mininterval=30)
        order, pos = rng.permutation(len(y)), 0
        for step in steps:
            if pos + bs > len(y):
                order, pos = rng.permutation(len(y)), 0
            idx = torch.from_numpy(order[pos:pos + bs])
            pos += bs
            x0 = _flip_rotate(data[idx], int(rng.integers(8)))
            t = torch.rand(len(idx))
            noise = torch.randn_like(x0)
            a = alpha_bar(t)[:, None, None, None]
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
            v = a.sqrt() * noise - (1 - a).sqrt() * x0
            loss = F.mse_loss(model(x_t, t, y_all[idx], sizes[idx] if sized else None), v)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            ema_update(ema_model, model, min(self.ema, (1 + step) / (10 + step)))
            window.append(float(loss.detach()))
            if len(window) == 100 or step == n_steps - 1:
                history.append({"step": step + 1, "loss": float(np.mean(window))})
                window = []
        self.fit_seconds_ = time.perf_counter() - start
        self.fit_cpu_seconds_ = time.process_time() - cpu_start
        self.model_ = ema_model
        self.n_classes_, self.image_size_, self.model_size_ = n_classes, out_size, size
        self.n_channels_, self.has_mask_ = channels - int(has_mask), has_mask
        self.history_ = history
        self.class_counts_ = np.bincount(y, minlength=n_classes)
        self.sizes_ = sizes.numpy() if sized else None
        self.size_labels_ = y if sized else None
        return self

    def sample(self, n_per_class: int | dict[int, int] | np.ndarray, seed: int = 0,
               sizes: np.ndarray | None = None) -> Samples:
        """Draw `n_per_class` samples per class (one count, a {class: count} dict or an array by class) with
        deterministic DDIM: images (M, C, H, W) in [0, 1], masks (M, H, W) uint8 or None, labels (M,).

        A size-conditioned model draws each sample's nodule size (equivalent diameter / image side) from the
        sizes of its class's training nodules, or takes `sizes` (M,) in the order of the labels."""
        self._check_fitted()
        counts = per_class(n_per_class, self.n_classes_, "diffusion")
        labels = np.repeat(np.arange(self.n_classes_), counts).astype(np.int64)
        if sizes is not None and self.sizes_ is None:
            raise ConfigError("diffusion.sample: sizes given, but this model is not size-conditioned (fit it with "
                              "size_condition=True and masks)")
        size_t = torch.from_numpy(self._sample_sizes(labels, sizes, seed)) if self.sizes_ is not None else None
        gen = torch.Generator().manual_seed(int(seed))
        total = self.n_channels_ + int(self.has_mask_)
        noise = torch.randn(len(labels), total, self.model_size_, self.model_size_, generator=gen)
        times = torch.linspace(1.0, 0.0, int(self.sample_steps) + 1)
        out = []
        with torch.no_grad():
            for start in range(0, len(labels), 256):
                lab = torch.from_numpy(labels[start:start + 256])
                size = size_t[start:start + 256] if size_t is not None else None
                x = noise[start:start + 256]
                for t, t_next in itertools.pairwise(times):
                    a, a_next = alpha_bar(t), alpha_bar(t_next)
                    v = self.model_(x, t.expand(len(x)), lab, size)
                    x0 = (a.sqrt() * x - (1 - a).sqrt() * v).clamp(-1.0, 1.0)
                    eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
                    x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
                if self.model_size_ < self.image_size_:  # back to the view's grid (mask: threshold after)
                    x = F.interpolate(x, size=(self.image_size_,) * 2, mode="bicubic", align_corners=False)
                out.append(x)
        x = torch.cat(out).numpy() if out else np.zeros((0, total, self.image_size_, self.image_size_), np.float32)
        return to_samples(x, self.n_channels_, self.has_mask_, labels)

    def _sample_sizes(self, labels: np.ndarray, sizes: np.ndarray | None, seed: int) -> np.ndarray:
        """Per sample: the given `sizes`, else a size drawn from its class's training nodules."""
        if sizes is not None:
            sizes = np.asarray(sizes, dtype=np.float32)
            if sizes.shape != labels.shape:
                raise ConfigError(f"diffusion.sample: sizes must have one value per sample {labels.shape}, "
                                  f"got {sizes.shape}")
            return sizes
        rng = np.random.default_rng([int(seed), 1])
        out = np.zeros(len(labels), np.float32)
        for c in np.unique(labels):
            pool = self.sizes_[self.size_labels_ == c]
            if len(pool) == 0:
                raise ConfigError(f"diffusion.sample: class {c} had no training nodules, so it has no sizes")
            out[labels == c] = rng.choice(pool, int((labels == c).sum()))
        return out

    def save(self, path: str | Path) -> Path:
        """One file: format tag, params, fitted attributes and the EMA network's state dict (atomic)."""
        self._check_fitted()
        sized = self.sizes_ is not None
        extra = {"sizes": self.sizes_.tolist() if sized else None,
                 "size_labels": self.size_labels_.tolist() if sized else None}
        return save_generator(path, FORMAT, self, {**self.get_params(), "mults": list(self.mults)}, "model",
                              self.model_, extra)

    @classmethod
    def load(cls, path: str | Path) -> ConditionalDiffusion:
        blob = load_generator(path, FORMAT, "diffusion")
        # files from before size conditioning lack the option: they were conditioned on the class only
        model = cls(**{"size_condition": False, **blob["params"], "mults": tuple(blob["params"]["mults"])})
        sized = blob.get("sizes") is not None
        net = UNet(blob["n_classes"], blob["n_channels"] + int(blob["has_mask"]), model.width, model.mults,
                   sized)
        restore_fitted(model, blob, "model", net, "model_")
        model.sizes_ = np.asarray(blob["sizes"], np.float32) if sized else None
        model.size_labels_ = np.asarray(blob["size_labels"], np.int64) if sized else None
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ConfigError("ConditionalDiffusion is not fitted yet: call fit(images, labels) or "
                              "ConditionalDiffusion.load")


def equivalent_diameter(masks: np.ndarray) -> np.ndarray:
    """Per mask (N, H, W): the diameter of the disc of the same area as a share of the side (0 = empty), the
    size the model is conditioned on (independent of the pixel spacing and the training resolution)."""
    side = 1.0 / masks.shape[-1]
    return equivalent_diameter_mm(masks, (side, side)).astype(np.float32)


def _flip_rotate(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips/90-degree rotations of the square (k in 0..7), the same for the whole batch."""
    x = torch.rot90(x, k % 4, dims=(2, 3))
    return torch.flip(x, dims=(3,)) if k >= 4 else x
