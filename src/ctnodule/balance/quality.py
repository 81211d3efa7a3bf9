"""How close are generated images to real ones: KID and FID on backbone features, implemented here.

Both compare feature distributions of two image sets. FID (Heusel et al. 2017) fits a Gaussian to each
and takes the Fréchet distance; it is biased upwards for small sets (it needs many more samples than
feature dimensions to be stable), so numbers from a few hundred images only compare like with like.
KID (Bińkowski et al. 2018) is the unbiased estimate of the squared MMD with the polynomial kernel
k(x, y) = (x·y / d + 1)^3, averaged over random subsets; it is ~0 for two sets from one distribution,
whatever their size, which is why we lead with it. Always read them against a real-vs-real reference
(two disjoint halves of the real data) computed the same way.

Features: ImageNet EfficientNet-Lite0 (the offline weights the models stage loads), global-average
pooled, grey images repeated to 3 channels. Without those weights the features come from a RANDOM
network; `FeatureExtractor.weights_status` says which, and reports must print it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from ctnodule.errors import ConfigError


class FeatureExtractor:
    """[0, 1] images (N, H, W) / (N, C, H, W) -> pooled backbone features (N, F)."""

    def __init__(self, backbone: str = "efficientnet_lite0", batch_size: int = 128):
        self.backbone = backbone
        self.batch_size = batch_size

    def _net(self):
        if not hasattr(self, "net_"):
            import warnings

            from ctnodule.models.backbones import create_backbone

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a random-init backbone is reported via weights_status
                self.net_ = create_backbone(self.backbone, weights="auto", in_chans=3).eval()
            self.weights_status_ = self.net_.weights_status
        return self.net_

    @property
    def weights_status(self) -> str:
        self._net()
        return self.weights_status_

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4:
            raise ConfigError(f"features: expects images (N, H, W) or (N, C, H, W), got shape {x.shape}")
        if x.shape[1] == 1:
            x = np.repeat(x, 3, axis=1)
        net = self._net()
        out = []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                fmap = net(torch.from_numpy(x[start:start + self.batch_size]))
                out.append(fmap.mean(dim=(2, 3)).numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros((0, net.num_features))


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 50, subset_size: int = 100,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance on feature rows: (mean, sd) of the unbiased MMD² over random subsets.

    `subset_size` is capped by the smaller set; both sets need at least 2 rows.
    """
    real, fake = _check_features(real, fake)
    m = min(subset_size, len(real), len(fake))
    rng = np.random.default_rng(seed)
    d = real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        k_xx = (x @ x.T / d + 1.0) ** 3
        k_yy = (y @ y.T / d + 1.0) ** 3
        k_xy = (x @ y.T / d + 1.0) ** 3
        off = m * (m - 1)
        values.append((k_xx.sum() - np.trace(k_xx)) / off + (k_yy.sum() - np.trace(k_yy)) / off
                      - 2.0 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the two feature sets (biased for small sets)."""
    real, fake = _check_features(real, fake)
    a = (real - real.mean(0)) / np.sqrt(len(real) - 1)  # S1 = a.T @ a
    b = (fake - fake.mean(0)) / np.sqrt(len(fake) - 1)  # S2 = b.T @ b
    # Tr sqrtm(S1 S2) = the sum of singular values of a @ b.T (the nonzero eigenvalues of S1 S2 are those of
    # (a b^T)(a b^T)^T): exact, an (n1 x n2) SVD instead of a (D x D) matrix square root, and free of the
    # singular-matrix trouble scipy.linalg.sqrtm has when there are fewer samples than features
    cross = linalg.svdvals(a @ b.T).sum()
    mean_term = ((real.mean(0) - fake.mean(0)) ** 2).sum()
    return float(mean_term + (a ** 2).sum() + (b ** 2).sum() - 2.0 * cross)


def _check_features(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ConfigError(f"KID/FID: need two feature matrices (N, D) with equal D, got {real.shape} and {fake.shape}")
    if len(real) < 2 or len(fake) < 2:
        raise ConfigError(f"KID/FID: need at least 2 samples per set, got {len(real)} and {len(fake)}")
    return real, fake
