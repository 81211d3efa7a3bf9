"""What the generators (`balance.cgan`, `balance.diffusion`) share: the samples they return, the check of
their training data, the average of their weights and the per-class sample counts. One copy, so the two
generators take and give the same things and fail with the same messages (naming which generator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from ctnodule.atomic import atomic_path
from ctnodule.errors import ConfigError, RunError


class Samples(NamedTuple):
    """Generated images (M, C, H, W) float32 in [0, 1], masks (M, H, W) uint8 or None, labels (M,) int64."""

    images: np.ndarray
    masks: np.ndarray | None
    labels: np.ndarray


def check_training_data(images: np.ndarray, labels: np.ndarray, masks: np.ndarray | None,
                         who: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) in [0, 1] with the mask appended as the last channel; labels int64. `who` names
    the generator in error messages."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ConfigError(f"{who}: expects images (N, H, W) or (N, C, H, W), got shape {x.shape}")
    size = x.shape[-1]
    if x.shape[-2] != size or size < 16 or size & (size - 1):
        raise ConfigError(f"{who}: images must be square with a power-of-two side >= 16 (e.g. the 64 x 64 "
                          f"nodule view), got {x.shape[-2]} x {x.shape[-1]}")
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise ConfigError(f"{who}: images must be preprocessed floats in [0, 1] (run the preprocess pipeline)")
    y = np.asarray(labels)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise ConfigError(f"{who}: labels must be {len(x)} non-negative class indices, got shape {y.shape}")
    if len(x) < 2:
        raise ConfigError(f"{who}: needs at least 2 training images")
    if masks is not None:
        m = np.asarray(masks)
        if m.shape != (len(x), size, size):
            raise ConfigError(f"{who}: masks must have shape {(len(x), size, size)} (one per image), got {m.shape}")
        x = np.concatenate([x, (m > 0).astype(np.float32)[:, None]], axis=1)
    return np.ascontiguousarray(x), y.astype(np.int64)


def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """target <- decay * target + (1 - decay) * source; the caller warms `decay` up from ~0.1 so the average
    forgets the random initial weights (TensorFlow's ExponentialMovingAverage num_updates rule)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, 1.0 - decay)
        for t, s in zip(target.buffers(), source.buffers()):
            t.copy_(s)


def per_class(n_per_class: int | dict[int, int] | np.ndarray, n_classes: int, who: str) -> np.ndarray:
    """Counts by class from one count for all, a {class: count} dict or an array by class."""
    if isinstance(n_per_class, dict):
        counts = np.zeros(n_classes, dtype=np.int64)
        for c, n in n_per_class.items():
            if not 0 <= int(c) < n_classes:
                raise ConfigError(f"{who}.sample: class {c} is outside 0..{n_classes - 1}")
            counts[int(c)] = int(n)
    elif np.ndim(n_per_class) == 0:
        counts = np.full(n_classes, int(n_per_class), dtype=np.int64)
    else:
        counts = np.asarray(n_per_class, dtype=np.int64)
        if counts.shape != (n_classes,):
            raise ConfigError(f"{who}.sample: n_per_class needs {n_classes} counts, got {counts.shape}")
    if (counts < 0).any():
        raise ConfigError(f"{who}.sample: counts must be >= 0")
    return counts


def to_samples(x: np.ndarray, n_channels: int, has_mask: bool, labels: np.ndarray) -> Samples:
    """A generator's raw output (M, C [+ 1 mask], H, W) in [-1, 1] as `Samples`: images back to [0, 1], the
    mask channel thresholded at 0."""
    images = np.clip((x[:, :n_channels] + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)
    masks = (x[:, n_channels] > 0).astype(np.uint8) if has_mask else None
    return Samples(images, masks, labels)


#: what `fit` learns besides the network's weights, saved and restored alike by both generators
FITTED = ("n_classes", "image_size", "model_size", "n_channels", "has_mask", "history", "fit_seconds",
          "fit_cpu_seconds", "class_counts")


def save_generator(path: str | Path, fmt: str, model: Any, params: dict[str, Any], key: str,
                   network: nn.Module, extra: dict[str, Any] | None = None) -> Path:
    """One file (written atomically): format tag, constructor params, the fitted attributes (`FITTED`), the
    sampling network's state dict under `key` and a generator's own `extra` entries (plain Python values)."""
    blob = {"format": fmt, "params": params, **{k: getattr(model, k + "_") for k in FITTED},
            key: network.state_dict(), **(extra or {})}
    blob["class_counts"] = np.asarray(blob["class_counts"]).tolist()
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


def load_generator(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    """The blob `save_generator` wrote; `RunError` naming the file when it is unreadable or of another format."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RunError(f"{path}: not a readable {what} checkpoint ({exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        raise RunError(f"{path}: not a ctnodule {what} file (expected format {fmt!r}); re-run synthesize")
    return blob


def restore_fitted(model: Any, blob: dict[str, Any], key: str, network: nn.Module, attribute: str) -> None:
    """Load `blob[key]` into `network` and set it (as `attribute`, e.g. 'generator_') and the fitted attributes
    on a new model."""
    network.load_state_dict(blob[key])
    setattr(model, attribute, network.eval())
    for k in FITTED:
        setattr(model, k + "_", blob[k])
    model.class_counts_ = np.asarray(blob["class_counts"])
