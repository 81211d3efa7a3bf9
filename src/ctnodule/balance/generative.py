"""The `cgan` balancer: train the conditional GAN on the training fold, append generated minority images.

The GAN sees only the images handed to `resample` — the training fold — so nothing generated can carry
information from a validation fold. Each class is topped up to the majority count (or `per_class`, the
seed's fixed target such as 1330); generated rows are marked `is_synthetic`.

Channels: images whose channels are identical copies of one grey slice (a 2D slice fed to an ImageNet
backbone) are modelled as one channel and repeated back; genuinely different channels (a 2.5D stack of
neighbouring slices) are refused with a clear message, since the generator draws one slice.
"""

from __future__ import annotations

import numpy as np

from ctnodule.balance.base import BALANCERS, Balancer, check_xy
from ctnodule.balance.cgan import ConditionalGAN
from ctnodule.errors import ConfigError


@BALANCERS.register("cgan")
class CganOversample(Balancer):
    """Top up every class with cGAN samples trained on this training fold (see module docstring)."""

    def __init__(self, epochs: int = 30, per_class: int | None = None, width: int = 16, batch_size: int = 64,
                 progress: bool = False) -> None:
        self.epochs = epochs
        self.per_class = per_class
        self.width = width
        self.batch_size = batch_size
        self.progress = progress

    def resample(self, X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, y = check_xy(X, y)
        if X.ndim != 4:
            raise ConfigError(f"cgan: generates images (N, C, H, W) but got shape {X.shape}; for feature "
                              "vectors use --imbalance smote_embed")
        if X.shape[1] > 1 and not np.array_equal(X, np.broadcast_to(X[:, :1], X.shape)):
            raise ConfigError(f"cgan: the {X.shape[1]} channels differ (a 2.5D stack?); the generator draws "
                              "single slices — train 2D (one slice repeated) or use another balancer")
        counts = np.bincount(y)
        target = int(self.per_class) if self.per_class is not None else int(counts.max())
        need = np.maximum(target - counts, 0)
        need[counts == 0] = 0  # a class absent from the fold cannot be learned, so it is not generated
        gan = ConditionalGAN(epochs=self.epochs, batch_size=self.batch_size, width=self.width, seed=seed)
        self.gan_ = gan.fit(X[:, 0], y, progress=self.progress)
        fake, fake_y = gan.sample(need, seed=seed + 1)
        fake = np.repeat(fake, X.shape[1], axis=1).astype(X.dtype)
        X2 = np.concatenate([X, fake])
        y2 = np.concatenate([y, fake_y])
        synthetic = np.arange(len(y2)) >= len(y)
        self.sample_indices_ = np.where(synthetic, -1, np.arange(len(y2)))
        self.class_counts_ = np.bincount(y2)
        return X2, y2, synthetic
