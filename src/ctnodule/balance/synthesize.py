"""`synthesize(data, out, per_class)`: a generated slice dataset with masks, and its quality report.

Steps: the nodule view of DATA -> the default preprocessing pipeline fitted on it (64 x 64 at 0.7 mm/px,
[0, 1] floats, nodule mask carried along) -> the generator (`cgan`, the conditional GAN, or `diffusion`,
the conditional diffusion model) trained on those images + masks with their malignancy class (1-5) ->
`per_class` images (each with its generated mask) drawn for every class -> a slice dataset (float32 [0, 1]
NRRD, like `ctnodule preprocess` output, plus `masks/`) with `source` = the generator's name, `synthetic=1`
and one `SYNTH-...` patient per image, plus `pipeline.yaml` (the preprocessing the images correspond to),
`<generator>.pt` and `report.html`.

The report measures quality the same way every time (`quality.compare`): KID/FID on ImageNet Lite0 features
of a draw with the real class counts against the real-vs-real reference at the same n, pooled over classes
with a 95% interval over 20 random patient halves; precision/recall of the sample manifold; a nearest-real-
neighbour gallery (no copies); per-class size and in-mask intensity real vs synthetic; per-class KID as a
figure only.

Never mix a synthesize output made from ALL of DATA into cross-validation on DATA: its generator saw the
validation patients. In CV use `--imbalance diffusion` (or `cgan`), which trains the generator inside each
training fold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ctnodule.balance.cgan import ConditionalGAN
from ctnodule.balance.diffusion import ConditionalDiffusion
from ctnodule.balance.generator import Samples
from ctnodule.errors import ConfigError, DataError

#: generator name -> (class, how the report names it)
GENERATORS = {"cgan": (ConditionalGAN, "conditional GAN"),
              "diffusion": (ConditionalDiffusion, "conditional diffusion model")}


def synthesize(data: str | Path, out: str | Path, per_class: int, view: str = "nodule", epochs: int | None = None,
               seed: int = 0, width: int | None = None, num_threads: int | None = 1, force: bool = False,
               generator: str = "diffusion", log: Callable[[str], None] = print) -> dict:
    """Train `generator` on `data` and write `per_class` synthetic samples per class to `out`; returns a
    summary. `epochs`, `width` None keep the generator's defaults."""
    from ctnodule.data.dataset import SliceDataset
    from ctnodule.data.writer import open_dataset
    from ctnodule.preprocess import Pipeline, PreprocessConfig
    from ctnodule.vocab import CLASS_NAMES

    if view != "nodule":
        raise ConfigError(f"synthesize: --view {view!r} is not supported; the generators draw 64 x 64 nodule "
                          "crops (--view nodule). Full 512 x 512 slices are far beyond a CPU generator.")
    if generator not in GENERATORS:
        raise ConfigError(f"synthesize: unknown generator {generator!r}; choose one of {sorted(GENERATORS)}")
    if per_class < 1:
        raise ConfigError(f"synthesize: --per-class must be >= 1, got {per_class}")
    ds = SliceDataset(data).view("nodule")
    if len(ds) == 0:
        raise DataError("the dataset has no nodule-view samples", ds.root)
    if "synthetic" in ds.frame and ds.frame["synthetic"].fillna(0).astype(float).any():
        log("note: DATA contains synthetic samples; the generator will learn from them too")
    slices = list(ds)
    log(f"preprocessing {len(slices)} nodule slices (default pipeline, fitted on DATA)")
    pipeline = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(slices)
    processed = [pipeline.transform(s) for s in slices]
    real = np.stack([p.array for p in processed]).astype(np.float32)
    masks = np.stack([p.mask if p.mask is not None else np.zeros(p.array.shape, np.uint8) for p in processed])
    spacing = processed[0].spacing
    y = ds.labels("multiclass")
    cls, label = GENERATORS[generator]
    options = {k: v for k, v in {"epochs": epochs, "width": width}.items() if v is not None}
    gan = cls(seed=seed, num_threads=num_threads, **options)
    log(f"training the {label}: {len(real)} images {real.shape[1]}x{real.shape[2]} + masks, {gan.epochs} epochs")
    gan.fit(real, y, masks, progress=True)
    log(f"{label} trained in {gan.fit_seconds_:.0f} s ({gan.fit_cpu_seconds_:.0f} CPU s)")
    fake = gan.sample(per_class, seed=seed + 1)
    t0 = time.perf_counter()
    with open_dataset(out, force=force) as writer:
        for i, (img, mask, c) in enumerate(zip(fake.images[:, 0], fake.masks, fake.labels)):
            name = f"SYNTH-{seed}-{int(c) + 1}-{i:05d}"
            writer.add(img.astype(np.float32), spacing, sample_id=name, patient_id=name, nodule_id=0,
                       view="nodule", malignancy=int(c) + 1, source=generator, synthetic=1, mask=mask)
        pipeline.save(writer.folder / "pipeline.yaml")
        gan.save(writer.folder / f"{generator}.pt")
        quality_draw = gan.sample(np.bincount(y, minlength=gan.n_classes_), seed=seed + 2)
        summary = _report(writer.folder, real[:, None], masks, y, quality_draw, spacing, ds.groups, gan,
                          CLASS_NAMES["multiclass"], seed, str(ds.root), label)
    summary.update(n_written=len(fake.labels), out=str(out), write_seconds=round(time.perf_counter() - t0, 1))
    return summary


def _report(folder: Path, real: np.ndarray, masks: np.ndarray, y: np.ndarray, fake: Samples,
            spacing: tuple[float, float], groups: np.ndarray, gan: ConditionalGAN | ConditionalDiffusion,
            class_names: list[str], seed: int, source: str, label: str) -> dict:
    """report.html: KID/FID with intervals vs the same-n real reference, precision/recall, nearest-real
    gallery, per-class size/intensity, grids; returns the headline numbers."""
    import pandas as pd

    from ctnodule.balance.figures import (
        class_grid,
        kid_by_class,
        nearest_real_gallery,
        real_vs_synthetic,
        size_by_class,
    )
    from ctnodule.balance.quality import FeatureExtractor, compare, kid, mask_statistics, nearest
    from ctnodule.pages import HtmlReport

    fx = FeatureExtractor()
    f_real, f_fake = fx(real), fx(fake.images)
    table = compare(f_real, y, groups, f_fake, fake.labels, seed=seed)
    cell = table.set_index(["comparison", "metric"])["median"]
    per_class = []
    for c, name in enumerate(class_names):
        r, f = f_real[y == c], f_fake[fake.labels == c]
        if len(r) >= 2 and len(f) >= 2:
            k = kid(r, f, subset_size=min(100, len(r), len(f)), seed=seed)
            per_class.append({"class": name, "n real": len(r), "n synthetic": len(f), "KID": k[0], "KID sd": k[1]})
    idx, dist = nearest(f_fake, f_real, n=3)
    # memorisation check: how close is a synthetic sample to its nearest real one, against how close a real
    # sample is to its nearest OTHER real one (leave-one-out)
    _, real_nn = nearest(f_real, f_real, n=2)
    page = HtmlReport(f"Synthetic nodules ({label})", f"trained on {source}")
    grid = (f"{gan.model_size_} x {gan.model_size_} px (the view's field of view; samples resampled to "
            f"{gan.image_size_} px)" if gan.model_size_ < gan.image_size_ else f"{gan.model_size_} x {gan.model_size_} px")
    page.paragraph(f"{len(real)} real nodule crops + masks, {gan.epochs} epochs at {grid}, "
                   f"trained in {gan.fit_seconds_:.0f} s wall / {gan.fit_cpu_seconds_:.0f} CPU s ({label}, width "
                   f"{gan.width}, {gan.num_threads or 'default'} torch thread(s)). Evaluated on a draw with the "
                   f"real class counts ({len(fake.labels)} samples).")
    page.heading("Quality: KID, FID, precision/recall on backbone features")
    page.paragraph(f"Features: {fx.weights_status}, global-average pooled. Each row: median and 95% interval "
                   "over 20 random patient halves A/B; the reference compares A with B, the synthetic row compares "
                   "the same A with synthetic samples of B's size and class mix. KID is unbiased (~0 for one "
                   "distribution); FID is biased upwards at these sizes, so read both against the reference.")
    page.table(table, float_format="{:.4f}")
    page.paragraph(f"Nearest real neighbour (feature distance): synthetic samples median {np.median(dist[:, 0]):.2f}; "
                   f"real samples to another real one median {np.median(real_nn[:, 1]):.2f}. A generator that "
                   "copied training nodules would sit far below the real-to-real distance.")
    page.heading("Real vs synthetic")
    page.figure(real_vs_synthetic(real, y, fake.images, fake.labels, class_names, seed=seed, generator=label),
                "real_vs_synthetic",
                f"Left: random real crops; right: random {label} samples, per malignancy class")
    page.figure(nearest_real_gallery((fake.images, fake.masks), fake.labels, real, idx, dist, class_names),
                "nearest_real", "Each synthetic sample (generated mask outlined) and its 3 nearest real crops")
    page.heading("Size and intensity per class")
    stats = pd.concat([mask_statistics(real, masks, y, spacing, class_names, "real"),
                       mask_statistics(fake.images, fake.masks, fake.labels, spacing, class_names, "synthetic")])
    page.table(stats.sort_values(["class", "set"], kind="stable"))
    area = np.pi / 4
    page.figure(size_by_class(np.sqrt((masks > 0).sum((1, 2)) * spacing[0] * spacing[1] / area), y,
                              np.sqrt(fake.masks.sum((1, 2)) * spacing[0] * spacing[1] / area), fake.labels,
                              class_names), "size_by_class", "Equivalent mask diameter per class")
    page.figure(kid_by_class(pd.DataFrame(per_class)), "kid_by_class")
    page.heading("Synthetic samples per class")
    page.figure(class_grid(fake.images, fake.labels, class_names, per_class=10), "synthetic_grid")
    hist = pd.DataFrame(gan.history_)
    page.table(hist.iloc[:: max(1, len(hist) // 10)].reset_index(names="row"), caption="training losses")
    page.save(folder / "report.html")
    ref, syn = "real A vs real B (reference)", "real A vs synthetic"
    return {"kid": cell[(syn, "KID")], "kid_reference": cell[(ref, "KID")], "fid": cell[(syn, "FID")],
            "fid_reference": cell[(ref, "FID")], "precision": cell[(syn, "precision")],
            "recall": cell[(syn, "recall")], "quality": table.to_dict("records"),
            "fit_seconds": round(gan.fit_seconds_, 1), "fit_cpu_seconds": round(gan.fit_cpu_seconds_, 1),
            "features": fx.weights_status}
