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
import pandas as pd
import torch
from scipy import linalg

from ctnodule.data.measure import equivalent_diameter_mm
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


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of a generated sample manifold (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls around its points reaching their k-th nearest neighbour.
    Precision: share of generated points inside the real manifold (are samples realistic?); recall: share
    of real points inside the generated manifold (do samples cover the real variety?). Both ~ the same
    for two halves of one distribution, which is the reference to read them against.
    """
    real, fake = _check_features(real, fake)
    if min(len(real), len(fake)) <= k:
        raise ConfigError(f"precision/recall: need more than k={k} samples per set, got {len(real)} and {len(fake)}")

    def inside(points: np.ndarray, support: np.ndarray) -> float:
        d_ss = _distances(support, support)
        radius = np.sort(d_ss, axis=1)[:, k]  # column 0 is the point itself
        return float((_distances(points, support) <= radius[None]).any(axis=1).mean())

    return inside(fake, real), inside(real, fake)


def nearest(query: np.ndarray, reference: np.ndarray, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, n) and Euclidean distances (Q, n) of each query row's `n` nearest reference rows."""
    query, reference = _check_features(query, reference)
    d = _distances(query, reference)
    idx = np.argsort(d, axis=1)[:, :n]
    return idx, np.take_along_axis(d, idx, axis=1)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def compare(real: np.ndarray, real_y: np.ndarray, groups: np.ndarray, fake: np.ndarray, fake_y: np.ndarray,
            repeats: int = 20, seed: int = 0) -> pd.DataFrame:
    """KID and FID of synthetic vs real beside the real-vs-real reference at the SAME sample size, pooled
    over classes, with a 95% interval over `repeats` resamplings.

    Each repeat splits the patients at random into halves A and B; the reference is A vs B, the synthetic
    score is A vs a draw (without replacement) of synthetic rows with B's class counts. So both numbers
    use the same A, the same n and the same class mix, and the interval covers which patients and which
    samples happened to be drawn. `fake` needs at least as many rows per class as a half of the real set
    (generate as many as the real class counts). Returns one row per (comparison, metric) with the
    median and the 2.5/97.5 percentiles, plus precision/recall of the same halves.
    """
    real, fake = _check_features(real, fake)
    real_y, fake_y, groups = np.asarray(real_y), np.asarray(fake_y), np.asarray(groups)
    rng = np.random.default_rng(seed)
    patients = np.unique(groups)
    values: dict[tuple[str, str], list[float]] = {}
    for r in range(repeats):
        half = np.isin(groups, rng.permutation(patients)[: len(patients) // 2])
        a, b = real[half], real[~half]
        counts = np.bincount(real_y[~half], minlength=int(max(real_y.max(), fake_y.max())) + 1)
        picks = []
        for c, n in enumerate(counts):
            pool = np.flatnonzero(fake_y == c)
            if n > len(pool):
                raise ConfigError(f"quality: class {c} has {len(pool)} synthetic samples but a real half has {n}; "
                                  "generate at least the real class counts")
            picks.append(rng.choice(pool, n, replace=False))
        s = fake[np.concatenate(picks)]
        for name, other in (("real A vs real B (reference)", b), ("real A vs synthetic", s)):
            kid_mean, _ = kid(a, other, subsets=20, seed=seed + r)
            p, rc = precision_recall(a, other)
            for metric, v in (("KID", kid_mean), ("FID", fid(a, other)), ("precision", p), ("recall", rc)):
                values.setdefault((name, metric), []).append(v)
    rows = [{"comparison": name, "metric": metric, "n per side": f"{int((~half).sum())}",
             "median": float(np.median(v)), "ci_low": float(np.percentile(v, 2.5)),
             "ci_high": float(np.percentile(v, 97.5))} for (name, metric), v in values.items()]
    return pd.DataFrame(rows)


def mask_statistics(images: np.ndarray, masks: np.ndarray, labels: np.ndarray, spacing: tuple[float, float],
                    class_names: list[str], kind: str) -> pd.DataFrame:
    """Per class: equivalent mask diameter (mm) and the intensity inside the mask (image units, the centre
    channel) as mean ± sd, and the share of empty masks — what a score-5 sample must share with a score-5
    nodule."""
    images = np.asarray(images)
    centre = images[:, images.shape[1] // 2] if images.ndim == 4 else images
    masks = np.asarray(masks) > 0
    diameter = equivalent_diameter_mm(masks, spacing)
    inside = np.array([centre[i][masks[i]].mean() if masks[i].any() else np.nan for i in range(len(masks))])
    rows = []
    for c, name in enumerate(class_names):
        sel = np.asarray(labels) == c
        if not sel.any():
            continue
        d, v = diameter[sel], inside[sel]
        rows.append({"class": name, "set": kind, "n": int(sel.sum()),
                     "diameter mm": f"{d.mean():.1f} ± {d.std():.1f}",
                     "intensity in mask": f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}",
                     "empty masks": f"{(~masks[sel].any(axis=(1, 2))).mean():.0%}"})
    return pd.DataFrame(rows)
