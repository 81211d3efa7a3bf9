"""`synthesize(data, out, per_class)`: a cGAN-generated slice dataset, with its quality report.

Steps: the nodule view of DATA -> the default preprocessing pipeline fitted on it (64 x 64 at 0.7 mm/px,
[0, 1] floats) -> the conditional GAN trained on those images with their malignancy class (1-5) ->
`per_class` images drawn for every class -> a slice dataset (float32 [0, 1] NRRD, like
`ctnodule preprocess` output) with `source=cgan`, `synthetic=1` and one `SYNTH-...` patient per image,
plus `pipeline.yaml` (the preprocessing the images correspond to), `cgan.pt` and `report.html` (sample
grids per class, real vs synthetic side by side, KID/FID against a real-vs-real reference).

Never mix a synthesize output made from ALL of DATA into cross-validation on DATA: its generator saw the
validation patients. In CV use `--imbalance cgan`, which trains the GAN inside each training fold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ctnodule.balance.cgan import ConditionalGAN
from ctnodule.errors import ConfigError, DataError


def synthesize(data: str | Path, out: str | Path, per_class: int, view: str = "nodule", epochs: int = 30,
               seed: int = 0, width: int = 16, num_threads: int | None = 1, force: bool = False,
               log: Callable[[str], None] = print) -> dict:
    """Train the cGAN on `data` and write `per_class` synthetic samples per class to `out`; returns a summary."""
    from ctnodule.data.dataset import SliceDataset
    from ctnodule.data.writer import open_dataset
    from ctnodule.preprocess import Pipeline, PreprocessConfig
    from ctnodule.vocab import CLASS_NAMES

    if view != "nodule":
        raise ConfigError(f"synthesize: --view {view!r} is not supported; the cGAN draws 64 x 64 nodule crops "
                          "(--view nodule). Full 512 x 512 slices are far beyond a CPU GAN.")
    if per_class < 1:
        raise ConfigError(f"synthesize: --per-class must be >= 1, got {per_class}")
    ds = SliceDataset(data).view("nodule")
    if len(ds) == 0:
        raise DataError("the dataset has no nodule-view samples", ds.root)
    if "synthetic" in ds.frame and ds.frame["synthetic"].fillna(0).astype(float).any():
        log("note: DATA contains synthetic samples; the GAN will learn from them too")
    slices = list(ds)
    log(f"preprocessing {len(slices)} nodule slices (default pipeline, fitted on DATA)")
    pipeline = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(slices)
    processed = [pipeline.transform(s) for s in slices]
    real = np.stack([p.array for p in processed]).astype(np.float32)
    spacing = processed[0].spacing
    y = ds.labels("multiclass")
    log(f"training the cGAN: {len(real)} images {real.shape[1]}x{real.shape[2]}, {epochs} epochs")
    gan = ConditionalGAN(epochs=epochs, width=width, seed=seed, num_threads=num_threads).fit(real, y, progress=True)
    log(f"cGAN trained in {gan.fit_seconds_:.0f} s")
    fake, fake_y = gan.sample(per_class, seed=seed + 1)
    t0 = time.perf_counter()
    with open_dataset(out, force=force) as writer:
        for i, (img, c) in enumerate(zip(fake[:, 0], fake_y)):
            name = f"SYNTH-{seed}-{int(c) + 1}-{i:05d}"
            writer.add(img.astype(np.float32), spacing, sample_id=name, patient_id=name, nodule_id=0,
                       view="nodule", malignancy=int(c) + 1, source="cgan", synthetic=1)
        pipeline.save(writer.folder / "pipeline.yaml")
        gan.save(writer.folder / "cgan.pt")
        summary = _report(writer.folder, real, y, fake, fake_y, ds.groups, gan, CLASS_NAMES["multiclass"], seed,
                          str(ds.root))
    summary.update(n_written=len(fake_y), out=str(out), write_seconds=round(time.perf_counter() - t0, 1))
    return summary


def _report(folder: Path, real: np.ndarray, y: np.ndarray, fake: np.ndarray, fake_y: np.ndarray,
            groups: np.ndarray, gan: ConditionalGAN, class_names: list[str], seed: int, source: str) -> dict:
    """report.html: grids + KID/FID (synthetic vs real, and real half vs real half as the reference)."""
    import pandas as pd

    from ctnodule.balance.figures import class_grid, real_vs_synthetic
    from ctnodule.balance.quality import FeatureExtractor, fid, kid
    from ctnodule.pages import HtmlReport

    fx = FeatureExtractor()
    f_real, f_fake = fx(real), fx(fake)
    half = _patient_half(groups, seed)
    kid_ref = kid(f_real[half], f_real[~half], seed=seed)
    kid_syn = kid(f_real[half], f_fake, seed=seed)  # against the same real half, for a like-for-like read
    fid_ref, fid_syn = fid(f_real[half], f_real[~half]), fid(f_real[half], f_fake)
    rows = [{"comparison": "real half A vs real half B (reference)", "KID": kid_ref[0], "KID sd": kid_ref[1],
             "FID": fid_ref}, {"comparison": "real half A vs synthetic", "KID": kid_syn[0], "KID sd": kid_syn[1],
                              "FID": fid_syn}]
    per_class = []
    for c, name in enumerate(class_names):
        r, f = f_real[y == c], f_fake[fake_y == c]
        if len(r) >= 2 and len(f) >= 2:
            k = kid(r, f, subset_size=min(100, len(r), len(f)), seed=seed)
            per_class.append({"class": name, "n real": len(r), "n synthetic": len(f), "KID": k[0], "KID sd": k[1]})
    page = HtmlReport("Synthetic nodules (conditional GAN)", f"trained on {source}")
    page.paragraph(f"{len(real)} real nodule crops, {gan.epochs} epochs, trained in {gan.fit_seconds_:.0f} s "
                   f"(width {gan.width}, {gan.num_threads or 'default'} torch thread(s)). Synthetic images: "
                   f"{len(fake_y)} ({len(fake_y) // len(class_names)} per class).")
    page.heading("Quality: KID and FID on backbone features")
    page.paragraph(f"Features: {fx.weights_status}, global-average pooled. KID is unbiased (~0 for one "
                   "distribution); FID is biased upwards at these sample sizes, so read both against the "
                   "real-vs-real reference (two patient-disjoint halves of the real data).")
    page.table(pd.DataFrame(rows), float_format="{:.4f}")
    page.table(pd.DataFrame(per_class), caption="KID per class (all real images of the class vs its synthetic ones)",
               float_format="{:.4f}")
    page.heading("Real vs synthetic")
    page.figure(real_vs_synthetic(real, y, fake, fake_y, class_names, seed=seed), "real_vs_synthetic",
                "Left: random real crops; right: random cGAN samples, per malignancy class")
    page.heading("Synthetic samples per class")
    page.figure(class_grid(fake, fake_y, class_names, per_class=10), "synthetic_grid")
    hist = pd.DataFrame(gan.history_)
    page.table(hist.iloc[:: max(1, len(hist) // 10)].reset_index(names="epoch"), caption="GAN losses (hinge)")
    page.save(folder / "report.html")
    return {"kid": kid_syn[0], "kid_sd": kid_syn[1], "kid_reference": kid_ref[0], "fid": fid_syn,
            "fid_reference": fid_ref, "fit_seconds": round(gan.fit_seconds_, 1), "features": fx.weights_status}


def _patient_half(groups: np.ndarray, seed: int) -> np.ndarray:
    """A boolean mask selecting a random half of the patients (so the two halves share no patient)."""
    patients = np.unique(groups)
    chosen = np.random.default_rng(seed).permutation(patients)[: len(patients) // 2]
    return np.isin(groups, chosen)
