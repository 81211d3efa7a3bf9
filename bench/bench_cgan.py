"""cGAN speed and quality on the real nodule view: training CPU time, KID/FID/precision/recall vs real.

Imports the LIDC VOIs into a temporary slice dataset, preprocesses them with the default nodule pipeline
(64 x 64 at 0.7 mm/px, masks carried along), trains the conditional GAN on images + masks for EPOCHS epochs
and prints wall and CPU seconds, then `quality.compare`: KID/FID/precision/recall of synthetic vs real
beside the real-vs-real reference at the same n (20 random patient halves, median and 95% interval), on
ImageNet EfficientNet-Lite0 features. Targets (issue 16): KID <= 0.05, FID <= 3x the reference, one
training <= 15 min on 2 cores (CPU seconds are the number to read on a shared machine).

Run: python bench/bench_cgan.py [path/to/lidc-voi] [EPOCHS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ctnodule.balance.cgan import ConditionalGAN
from ctnodule.balance.quality import FeatureExtractor, compare
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.importers import import_data
from ctnodule.preprocess import Pipeline, PreprocessConfig

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/lidc-voi"
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 150


def main() -> None:
    if not ROOT.is_dir():
        print(f"skip: {ROOT} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        import_data("voi", Path(tmp) / "voi", context=0)
        ds = SliceDataset(Path(tmp) / "voi").view("nodule")
        slices = list(ds)
        pipe = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(slices)
        processed = [pipe.transform(s) for s in slices]
        real = np.stack([p.array for p in processed]).astype(np.float32)
        masks = np.stack([p.mask for p in processed])
        y, groups = ds.labels("multiclass"), ds.groups
    gan = ConditionalGAN(epochs=EPOCHS)
    print(f"{len(real)} real nodule crops {real.shape[1]}x{real.shape[2]} + masks; cGAN {gan.get_params()}")
    gan.fit(real, y, masks)
    print(f"cGAN: {EPOCHS} epochs in {gan.fit_seconds_:.0f} s wall, {gan.fit_cpu_seconds_:.0f} CPU s "
          f"({gan.fit_cpu_seconds_ / EPOCHS:.1f} CPU s/epoch)")
    t0 = time.perf_counter()
    fake = gan.sample(np.bincount(y), seed=1)
    print(f"sampling {len(fake.labels)} images + masks: {time.perf_counter() - t0:.2f} s")
    fx = FeatureExtractor()
    print(f"features: {fx.weights_status}")
    print(compare(fx(real), y, groups, fx(fake.images), fake.labels).to_string(index=False))


if __name__ == "__main__":
    main()
