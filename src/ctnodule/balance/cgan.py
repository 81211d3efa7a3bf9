"""A conditional GAN for nodule crops: noise + class -> one grey 64 x 64 slice (DCGAN-style, CPU-sized).

Generator: class embedding concatenated with the noise, a linear layer to a 4 x 4 map, then transposed
convolutions (GroupNorm, ReLU) doubling the size up to the image, tanh out. Discriminator: strided
convolutions with spectral normalisation and a projection head (Miyato & Koyama 2018: the class enters as
an inner product with the pooled features), trained with the hinge loss. With a few hundred training
nodules per fold a GAN memorises or collapses quickly, so three cheap, standard stabilisers are used:
spectral norm in D, random flips/90-degree rotations of the real images (a nodule has no preferred
orientation, so the distribution is unchanged), and an exponential moving average of the generator's
weights, which is what `sample` uses.

Measured on the LIDC VOI crops (64 x 64), width 16, batch 64, one torch thread, 2-core CPU: ~2 s per
epoch of 640 crops when the cores are free (10 epochs in 18-25 s per CV fold), 12-25 s per epoch while
other jobs share them (10 epochs on 798 crops: 226 s; 30 epochs: 579 s).
Tried and rejected on this data: BatchNorm in G (eval-mode samples were texture noise) and TTUR
(`lr_d=4e-4, lr=1e-4`: D won, G produced dark noise). Known limit: with minutes of CPU training the
samples are class-dependent but blurry and low in diversity within a class (see KID in the report).

`ConditionalGAN` follows the estimator shape: parameters in `__init__`, `fit(images, labels)` learns
`generator_` (+ `n_classes_`, `image_size_`, `history_`, `fit_seconds_`), `sample(n_per_class, seed)`
draws, `save`/`load` round-trip through one file.
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
from torch import nn
from torch.nn.utils import spectral_norm

from ctnodule.errors import ConfigError, RunError

FORMAT = "ctnodule-cgan/1"


class Generator(nn.Module):
    """(z, class) -> image in [-1, 1], shape (N, 1, size, size); size a power of two >= 16."""

    def __init__(self, n_classes: int, size: int, z_dim: int = 64, width: int = 32):
        super().__init__()
        n_up = int(math.log2(size)) - 2
        chans = [width * 2 ** min(n_up - 1 - i, 3) for i in range(n_up)]  # e.g. 256,128,64,32 at width 32
        self.z_dim = z_dim
        self.embed = nn.Embedding(n_classes, z_dim)
        self.project = nn.Sequential(nn.Linear(2 * z_dim, chans[0] * 16), nn.ReLU())
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(chans):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), _norm(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(chans[-1], 1, 4, 2, 1), nn.Tanh()]
        self.chans0 = chans[0]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], dim=1))
        return self.body(h.view(len(z), self.chans0, 4, 4))


def _norm(channels: int) -> nn.Module:
    """GroupNorm, not DCGAN's BatchNorm: no running statistics, so the EMA generator samples in eval mode
    exactly as it trained (BatchNorm's running stats made eval-mode samples pure texture noise)."""
    return nn.GroupNorm(min(8, channels // 2), channels)


class Discriminator(nn.Module):
    """Projection discriminator: image (N, 1, size, size) + class -> real/fake score (N,)."""

    def __init__(self, n_classes: int, size: int, width: int = 32):
        super().__init__()
        n_down = int(math.log2(size)) - 2
        chans = [width * 2 ** min(i, 3) for i in range(n_down)]
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in chans:
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Linear(c_in, 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, c_in))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(x).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


class ConditionalGAN:
    """Class-conditional image generator trained on one training fold (see the module docstring)."""

    def __init__(self, epochs: int = 30, batch_size: int = 64, z_dim: int = 64, width: int = 16,
                 lr: float = 2e-4, lr_d: float | None = None, ema: float = 0.995, seed: int = 0,
                 num_threads: int | None = None):
        self.epochs = epochs
        self.batch_size = batch_size
        self.z_dim = z_dim
        self.width = width
        self.lr = lr
        self.lr_d = lr_d
        self.ema = ema
        self.seed = seed
        self.num_threads = num_threads

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("epochs", "batch_size", "z_dim", "width", "lr", "lr_d", "ema", "seed",
                                            "num_threads")}

    def fit(self, images: np.ndarray, labels: np.ndarray, progress: bool = False) -> ConditionalGAN:
        """Train on `images` (N, H, W) or (N, 1, H, W), values in [0, 1], with class indices `labels`.

        `num_threads` (if set) applies to this call only: on a busy 2-core machine one thread is several
        times faster than two fighting for the cores (measured: 0.7 s vs 4.5 s per batch of 64).
        """
        x, y = _check_training_data(images, labels)
        previous = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            return self._fit(x, y, progress)
        finally:
            torch.set_num_threads(previous)

    def _fit(self, x: np.ndarray, y: np.ndarray, progress: bool) -> ConditionalGAN:
        size = x.shape[-1]
        n_classes = int(y.max()) + 1
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        gen, disc = Generator(n_classes, size, self.z_dim, self.width), Discriminator(n_classes, size, self.width)
        ema_gen = copy.deepcopy(gen).eval()
        opt_g = torch.optim.Adam(gen.parameters(), lr=self.lr, betas=(0.0, 0.9))
        opt_d = torch.optim.Adam(disc.parameters(), lr=self.lr_d or self.lr, betas=(0.0, 0.9))
        real_all = torch.from_numpy(x * 2.0 - 1.0)  # tanh range
        y_all = torch.from_numpy(y)
        bs = min(int(self.batch_size), len(y))
        steps = max(1, len(y) // bs)
        history = []
        start = time.perf_counter()
        epochs = range(int(self.epochs))
        if progress:
            from tqdm import tqdm

            epochs = tqdm(epochs, desc="cGAN", unit="epoch")
        for _ in epochs:
            order = torch.from_numpy(rng.permutation(len(y)))
            d_sum = g_sum = 0.0
            for s in range(steps):
                idx = order[s * bs:(s + 1) * bs]
                real, lab = _dihedral(real_all[idx], rng), y_all[idx]
                z = torch.randn(len(idx), self.z_dim)
                fake = gen(z, lab)
                d_loss = (torch.relu(1 - disc(real, lab)).mean() + torch.relu(1 + disc(fake.detach(), lab)).mean())
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                g_loss = -disc(fake, lab).mean()
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                _ema_update(ema_gen, gen, min(self.ema, (1 + len(history) * steps + s) / (10 + len(history) * steps + s)))
                d_sum += float(d_loss.detach())
                g_sum += float(g_loss.detach())
            history.append({"d_loss": d_sum / steps, "g_loss": g_sum / steps})
        self.fit_seconds_ = time.perf_counter() - start
        self.generator_ = ema_gen
        self.n_classes_ = n_classes
        self.image_size_ = size
        self.history_ = history
        self.class_counts_ = np.bincount(y, minlength=n_classes)
        return self

    def sample(self, n_per_class: int | dict[int, int] | np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Generate images (M, 1, H, W) float32 in [0, 1] and their labels (M,): `n_per_class` is one count
        for every class, a {class: count} dict or an array indexed by class."""
        self._check_fitted()
        counts = _per_class(n_per_class, self.n_classes_)
        labels = np.repeat(np.arange(self.n_classes_), counts).astype(np.int64)
        gen = torch.Generator().manual_seed(int(seed))
        out = []
        with torch.no_grad():
            for start in range(0, len(labels), 256):
                lab = torch.from_numpy(labels[start:start + 256])
                z = torch.randn(len(lab), self.z_dim, generator=gen)
                out.append(self.generator_(z, lab))
        images = torch.cat(out) if out else torch.zeros(0, 1, self.image_size_, self.image_size_)
        return ((images + 1.0) / 2.0).clamp(0.0, 1.0).numpy().astype(np.float32), labels

    def save(self, path: str | Path) -> Path:
        """One file: format tag, params, fitted attributes and the generator's state dict (atomic)."""
        from ctnodule.atomic import atomic_path

        self._check_fitted()
        blob = {"format": FORMAT, "params": self.get_params(), "n_classes": self.n_classes_,
                "image_size": self.image_size_, "history": self.history_, "fit_seconds": self.fit_seconds_,
                "class_counts": self.class_counts_.tolist(), "generator": self.generator_.state_dict()}
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ConditionalGAN:
        path = Path(path)
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise RunError(f"{path}: not a readable cGAN checkpoint ({exc})") from exc
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise RunError(f"{path}: not a ctnodule cGAN file (expected format {FORMAT!r}); re-run synthesize")
        gan = cls(**blob["params"])
        gen = Generator(blob["n_classes"], blob["image_size"], gan.z_dim, gan.width)
        gen.load_state_dict(blob["generator"])
        gan.generator_, gan.n_classes_, gan.image_size_ = gen.eval(), blob["n_classes"], blob["image_size"]
        gan.history_, gan.fit_seconds_ = blob["history"], blob["fit_seconds"]
        gan.class_counts_ = np.asarray(blob["class_counts"])
        return gan

    def _check_fitted(self) -> None:
        if not hasattr(self, "generator_"):
            raise ConfigError("ConditionalGAN is not fitted yet: call fit(images, labels) or ConditionalGAN.load")


def _check_training_data(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ConfigError(f"cGAN: expects grey images (N, H, W) or (N, 1, H, W), got shape {x.shape}")
    size = x.shape[-1]
    if x.shape[-2] != size or size < 16 or size & (size - 1):
        raise ConfigError(f"cGAN: images must be square with a power-of-two side >= 16 (e.g. the 64 x 64 "
                          f"nodule view), got {x.shape[-2]} x {x.shape[-1]}")
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise ConfigError("cGAN: images must be preprocessed floats in [0, 1] (run the preprocess pipeline)")
    y = np.asarray(labels)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise ConfigError(f"cGAN: labels must be {len(x)} non-negative class indices, got shape {y.shape}")
    if len(x) < 2:
        raise ConfigError("cGAN: needs at least 2 training images")
    return np.ascontiguousarray(x), y.astype(np.int64)


def _dihedral(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One random flip/90-degree rotation per batch: orientation carries no class information."""
    k = int(rng.integers(4))
    x = torch.rot90(x, k, dims=(2, 3))
    return torch.flip(x, dims=(3,)) if rng.integers(2) else x


def _ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """target <- decay * target + (1 - decay) * source; the caller warms `decay` up from ~0.1 so the average
    forgets the random initial weights (TensorFlow's ExponentialMovingAverage num_updates rule)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, 1.0 - decay)
        for t, s in zip(target.buffers(), source.buffers()):
            t.copy_(s)


def _per_class(n_per_class: int | dict[int, int] | np.ndarray, n_classes: int) -> np.ndarray:
    if isinstance(n_per_class, dict):
        counts = np.zeros(n_classes, dtype=np.int64)
        for c, n in n_per_class.items():
            if not 0 <= int(c) < n_classes:
                raise ConfigError(f"cGAN.sample: class {c} is outside 0..{n_classes - 1}")
            counts[int(c)] = int(n)
    elif np.ndim(n_per_class) == 0:
        counts = np.full(n_classes, int(n_per_class), dtype=np.int64)
    else:
        counts = np.asarray(n_per_class, dtype=np.int64)
        if counts.shape != (n_classes,):
            raise ConfigError(f"cGAN.sample: n_per_class needs {n_classes} counts, got {counts.shape}")
    if (counts < 0).any():
        raise ConfigError("cGAN.sample: counts must be >= 0")
    return counts
