"""The `cgan` and `diffusion` balancers: train the conditional GAN (`balance.cgan`) or the conditional
diffusion model (`balance.diffusion`) on the training fold, append generated minority images.

The generator sees only the images handed to `resample` — the training fold — so nothing generated can carry
information from a validation fold. Each class is topped up to the majority count (or `per_class`, the
seed's fixed target such as 1330); generated rows are marked `is_synthetic`.

Channels: the generator draws all channels jointly, so a 2.5D stack (a slice and its neighbours) is
generated as a stack; channels that are identical copies of one grey slice (a 2D slice fed to an ImageNet
backbone) are modelled as one and repeated back. Masks: `resample` gets images only; a caller that has the
fold's nodule masks passes them as `masks=` and finds the generated ones in `masks_` (rows aligned with
the output, real rows keep theirs), so descriptor-based models can measure synthetic nodules.
"""

from __future__ import annotations

import numpy as np

from ctnodule.balance.base import BALANCERS, Balancer, check_xy
from ctnodule.balance.cgan import ConditionalGAN
from ctnodule.balance.diffusion import ConditionalDiffusion
from ctnodule.errors import ConfigError


@BALANCERS.register("cgan")
class CganOversample(Balancer):
    """Top up every class with cGAN samples trained on this training fold (see module docstring)."""

    name, generator = "cgan", ConditionalGAN

    def __init__(self, epochs: int = 300, per_class: int | None = None, width: int = 16, batch_size: int = 32,
                 progress: bool = False) -> None:
        self.epochs = epochs
        self.per_class = per_class
        self.width = width
        self.batch_size = batch_size
        self.progress = progress

    def resample(self, X: np.ndarray, y: np.ndarray, seed: int,
                 masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, y = check_xy(X, y)
        if X.ndim != 4:
            raise ConfigError(f"{self.name}: generates images (N, C, H, W) but got shape {X.shape}; for feature "
                              "vectors use --imbalance smote_embed")
        copies = X.shape[1] > 1 and np.array_equal(X, np.broadcast_to(X[:, :1], X.shape))
        counts = np.bincount(y)
        target = int(self.per_class) if self.per_class is not None else int(counts.max())
        need = np.maximum(target - counts, 0)
        need[counts == 0] = 0  # a class absent from the fold cannot be learned, so it is not generated
        gan = self.generator(epochs=self.epochs, batch_size=self.batch_size, width=self.width, seed=seed)
        self.generator_ = gan.fit(X[:, :1] if copies else X, y, masks, progress=self.progress)
        fake = gan.sample(need, seed=seed + 1)
        images = np.repeat(fake.images, X.shape[1], axis=1) if copies else fake.images
        X2 = np.concatenate([X, images.astype(X.dtype)])
        y2 = np.concatenate([y, fake.labels])
        synthetic = np.arange(len(y2)) >= len(y)
        self.masks_ = None if masks is None else np.concatenate([np.asarray(masks) > 0, fake.masks > 0])
        self.sample_indices_ = np.where(synthetic, -1, np.arange(len(y2)))
        self.class_counts_ = np.bincount(y2)
        return X2, y2, synthetic


@BALANCERS.register("diffusion")
class DiffusionOversample(CganOversample):
    """Top up every class with samples of a conditional diffusion model trained on this training fold."""

    name, generator = "diffusion", ConditionalDiffusion

    def __init__(self, epochs: int = 200, per_class: int | None = None, width: int = 16, batch_size: int = 32,
                 progress: bool = False) -> None:
        super().__init__(epochs, per_class, width, batch_size, progress)
