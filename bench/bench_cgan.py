"""cGAN speed and quality on the real nodule view: training time per epoch (2 CPU cores), KID/FID.

Imports the LIDC VOIs into a temporary slice dataset, preprocesses them with the default nodule pipeline
(64 x 64 at 0.7 mm/px), trains the conditional GAN for EPOCHS epochs and prints seconds per epoch, the
total, and KID/FID of synthetic vs real against a real-vs-real (patient-disjoint halves) reference, on
ImageNet EfficientNet-Lite0 features.

Run: python bench/bench_cgan.py [path/to/lidc-voi] [EPOCHS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ctnodule.balance.cgan import ConditionalGAN
from ctnodule.balance.quality import FeatureExtractor, fid, kid
from ctnodule.balance.synthesize import _patient_half
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.importers import import_data
from ctnodule.preprocess import Pipeline, PreprocessConfig

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/lidc-voi"
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 10


def main() -> None:
    if not ROOT.is_dir():
        print(f"skip: {ROOT} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        import_data("voi", Path(tmp) / "voi", context=0)
        ds = SliceDataset(Path(tmp) / "voi").view("nodule")
        slices = list(ds)
        pipe = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(slices)
        real = np.stack([pipe.transform(s).array for s in slices]).astype(np.float32)
        y, groups = ds.labels("multiclass"), ds.groups
    print(f"{len(real)} real nodule crops {real.shape[1]}x{real.shape[2]}; cGAN width 16, batch 64, 1 torch thread")
    gan = ConditionalGAN(epochs=EPOCHS, width=16, num_threads=1).fit(real, y)
    print(f"cGAN: {EPOCHS} epochs in {gan.fit_seconds_:.0f} s ({gan.fit_seconds_ / EPOCHS:.1f} s/epoch)")
    t0 = time.perf_counter()
    fake, _ = gan.sample(len(real) // 5, seed=1)
    print(f"sampling {len(fake)} images: {time.perf_counter() - t0:.2f} s")
    fx = FeatureExtractor()
    f_real, f_fake = fx(real), fx(fake)
    half = _patient_half(groups, 0)
    k_ref, k_syn = kid(f_real[half], f_real[~half]), kid(f_real[half], f_fake)
    print(f"features: {fx.weights_status}")
    print(f"KID real-vs-real {k_ref[0]:.4f} ± {k_ref[1]:.4f}; synthetic-vs-real {k_syn[0]:.4f} ± {k_syn[1]:.4f}")
    print(f"FID real-vs-real {fid(f_real[half], f_real[~half]):.1f}; synthetic-vs-real {fid(f_real[half], f_fake):.1f}")


if __name__ == "__main__":
    main()
