"""Every balancer on one fast frozen-feature path, images balanced BEFORE features are taken.

The training engine (`ctnodule.train.fold`) also balances a frozen-backbone recipe's training images
before taking features, but each engine run costs minutes. Here, per patient-grouped fold:
default nodule preprocessing fitted on the training fold -> the balancer on the training IMAGES (or, for
`smote_embed`, on their features) -> frozen ImageNet EfficientNet-Lite0 pooled features of real and
generated images -> a standardised linear softmax head trained with the balancer's loss (so `weights`,
`focal` and `logit_adjusted` act) -> probabilities of the held-out patients. Inputs: the pooled image
features plus the nodule's size (log equivalent diameter of its mask, the strongest single descriptor):
real rows measure their own mask, cGAN and diffusion rows the mask generated with them, and rows of other
generators (pixel SMOTE) that have none get their class's median training size. Without the rest of the descriptors
these numbers sit below the engine's recipes.

The same splits (stratified by the 5-class label, grouped by patient) serve both tasks, so one generator per
fold (cgan, diffusion), trained on that fold's training images with their 5-class labels, serves both: the binary task's
malignant top-up is drawn from classes 4 and 5 in their training proportions. Nothing generated or fitted
ever sees a validation patient; `check_no_synthetic_in_validation` runs on every fold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ctnodule.errors import DataError
from ctnodule.studies.balancing import ALL, fold_scores


def feature_path_benchmark(ds, methods: Sequence[str] = ALL, tasks: Sequence[str] = ("binary", "multiclass"),
                           folds: int = 5, seed: int = 0, generator_params: dict[str, dict] | None = None,
                           log: Callable[[str], None] = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-fold scores, out-of-fold predictions) for every task x method on dataset `ds` (nodule view).
    `generator_params`: options of the `cgan` / `diffusion` generators by method name (e.g. epochs)."""
    from ctnodule.balance import resolve
    from ctnodule.balance.quality import FeatureExtractor
    from ctnodule.balance.synthesize import GENERATORS
    from ctnodule.data.splits import patient_kfold
    from ctnodule.preprocess import Pipeline, PreprocessConfig
    from ctnodule.vocab import task_labels

    slices, frame = list(ds), ds.frame
    y5 = task_labels(frame, "multiclass")
    fx, cache = FeatureExtractor(), {}
    oof: list[pd.DataFrame] = []
    for k, (tr, va) in enumerate(patient_kfold(frame, "multiclass", folds, seed)):
        pipe = Pipeline.from_config(PreprocessConfig.default("nodule")).fit([slices[i] for i in tr])
        processed = [pipe.transform(s) for s in slices]
        images = np.stack([p.array for p in processed])[:, None].astype(np.float32)
        masks = np.stack([_mask(p) for p in processed])
        spacing = processed[0].spacing
        feats = np.concatenate([_cached(fx, images, cache), log_diameter(masks, spacing)[:, None]], axis=1)
        gens = {}
        for name in (m for m in methods if m in GENERATORS):
            cls = GENERATORS[name][0]
            gens[name] = cls(seed=seed + k, **(generator_params or {}).get(name, {})).fit(images[tr], y5[tr], masks[tr])
            log(f"fold {k}: {name} trained on {len(tr)} training images + masks in {gens[name].fit_seconds_:.0f} s "
                f"({gens[name].fit_cpu_seconds_:.0f} CPU s)")
        for task in tasks:
            y = task_labels(frame, task)
            for method in methods:
                fake_size = None
                if method in gens:
                    X2, y2, synthetic, idx, fake_masks = _topup(gens[method], images[tr], y[tr], y5[tr], task, seed + k)
                    fake_size = log_diameter(fake_masks, spacing)
                else:
                    b = resolve(method)
                    X2, y2, synthetic = b.resample(feats[tr] if method == "smote_embed" else images[tr], y[tr],
                                                   seed=seed + k)
                    idx, loss_b = b.sample_indices_, b
                check_no_synthetic_in_validation(idx, synthetic, tr, va)
                f_train = np.empty((len(y2), feats.shape[1]))
                f_train[~synthetic] = feats[tr][idx[~synthetic]]
                if synthetic.any() and X2.ndim == 2:  # smote_embed: interpolated features incl. size
                    f_train[synthetic] = X2[synthetic]
                elif synthetic.any():
                    f_train[synthetic, :-1] = fx(X2[synthetic])
                    f_train[synthetic, -1] = fake_size if fake_size is not None else _class_median(
                        feats[tr][idx[~synthetic], -1], y2[~synthetic], y2[synthetic])
                criterion = (resolve("none") if method in gens else loss_b).loss(y2, int(y.max()) + 1)
                proba = linear_head(f_train, y2, feats[va], criterion, int(y.max()) + 1, seed)
                part = pd.DataFrame({"sample_id": frame["sample_id"].to_numpy()[va], "task": task, "method": method,
                                     "patient_id": frame["patient_id"].to_numpy()[va], "fold": k, "y_true": y[va]})
                for c in range(proba.shape[1]):
                    part[f"proba_{c}"] = proba[:, c]
                oof.append(part)
            log(f"fold {k} {task}: {len(methods)} methods scored")
    oof_all = pd.concat(oof, ignore_index=True)
    rows = []
    for (task, method), part in oof_all.groupby(["task", "method"], sort=False):
        minority = int(np.argmin(np.bincount(task_labels(frame, task))))
        rows += fold_scores(part.dropna(axis=1, how="all"), task, method, minority=minority)
    return pd.DataFrame(rows), oof_all


def check_no_synthetic_in_validation(sample_indices: np.ndarray, synthetic: np.ndarray, train_idx: np.ndarray,
                                     val_idx: np.ndarray) -> None:
    """Every resampled training row is a training-fold row or a generated one; none is a validation row."""
    real_rows = np.asarray(train_idx)[sample_indices[~synthetic]]
    if np.intersect1d(real_rows, val_idx).size or (sample_indices[synthetic] != -1).any():
        raise DataError("a validation sample reached the resampled training set; this is a bug, please report it")


def linear_head(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, criterion: torch.nn.Module, n_classes: int,
                seed: int, epochs: int = 300, weight_decay: float = 1e-2) -> np.ndarray:
    """Standardised features -> one linear layer, full-batch Adam with the balancer's loss; val probabilities."""
    mu, sd = X.mean(0), X.std(0) + 1e-6
    xt = torch.from_numpy(((X - mu) / sd).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    torch.manual_seed(seed)
    layer = torch.nn.Linear(X.shape[1], n_classes)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad()
        criterion(layer(xt), yt).backward()
        opt.step()
    with torch.no_grad():
        return layer(torch.from_numpy(((X_val - mu) / sd).astype(np.float32))).softmax(1).numpy()


def _topup(gan, images: np.ndarray, y: np.ndarray, y5: np.ndarray, task: str, seed: int):
    """Training images + generated samples topping every task class up to the majority count."""
    counts = np.bincount(y)
    need5 = np.zeros(gan.n_classes_, dtype=np.int64)
    if task == "multiclass":
        need5[: len(counts)] = counts.max() - counts
    else:  # binary: spread each class's deficit over its 5-class members in their training proportions
        for label, members in ((0, [0, 1, 2]), (1, [3, 4])):
            deficit = counts.max() - counts[label]
            share = np.bincount(y5, minlength=5)[members].astype(float)
            alloc = np.floor(deficit * share / share.sum()).astype(int)
            alloc[np.argmax(share)] += deficit - alloc.sum()
            need5[members] = alloc
    fake = gan.sample(need5, seed=seed + 1)
    fake_y = (fake.labels >= 3).astype(np.int64) if task == "binary" else fake.labels
    X2 = np.concatenate([images, fake.images])
    y2 = np.concatenate([y, fake_y])
    synthetic = np.arange(len(y2)) >= len(y)
    return X2, y2, synthetic, np.where(synthetic, -1, np.arange(len(y2))), fake.masks


def log_diameter(masks: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """log equivalent diameter (mm) of each mask (N, H, W), as the `size` descriptor (floored at 0.5 mm)."""
    from ctnodule.data.measure import equivalent_diameter_mm
    from ctnodule.models.descriptors import MIN_SIZE_MM

    return np.log(np.maximum(equivalent_diameter_mm(masks, spacing), MIN_SIZE_MM))


def _mask(s) -> np.ndarray:
    """The slice's nodule mask as uint8, all zero where it has none (size then floors at 0.5 mm)."""
    return np.zeros(s.array.shape[-2:], np.uint8) if s.mask is None else (np.asarray(s.mask) > 0).astype(np.uint8)


def _class_median(values: np.ndarray, labels: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each wanted label, the median of `values` over the rows with that label."""
    med = {c: np.median(values[labels == c]) for c in np.unique(labels)}
    return np.array([med[c] for c in wanted])


def _cached(fx, images: np.ndarray, cache: dict) -> np.ndarray:
    """Features of all images; the default pipeline learns nothing that changes pixels, so folds share them."""
    import hashlib

    key = hashlib.sha256(images.tobytes()).hexdigest()
    if key not in cache:
        cache[key] = fx(images)
    return cache[key]
