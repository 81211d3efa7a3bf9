"""`ctnodule import synthetic OUT`: the CT phantom (`ctnodule.data.phantom`) as a slice dataset.

Deterministic for a given `seed`: the same patients, nodules and noise every time. Every row has
`source = synthetic`, `synthetic = 1` and patient ids `PHANTOM-0001`..., so it can never be mistaken
for real data. Patients have 1 nodule (70 %), 2 (20 %) or 3 (10 %); the first five nodules cover the
five malignancy scores, so even a tiny phantom has every class.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ctnodule.data.importers.base import IMPORTERS, ImportReport, Skips, finish
from ctnodule.data.importers.views import add_nodule_views
from ctnodule.data.phantom import SCORE_P, PhantomPatient, place_nodules
from ctnodule.data.writer import open_dataset
from ctnodule.errors import ConfigError
from ctnodule.vocab import VIEWS


@IMPORTERS.register("synthetic")
def import_synthetic(
    out: str | Path,
    *,
    patients: int = 40,
    seed: int = 0,
    context: int = 1,
    views: Sequence[str] = VIEWS,
    force: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Generate `patients` phantom patients and write their nodules' `views` with a (2k+1) context."""
    if patients < 1:
        raise ConfigError(f"patients must be >= 1, got {patients}")
    if context < 0:
        raise ConfigError(f"context must be >= 0 (slices each side), got {context}")
    bad = [v for v in views if v not in VIEWS]
    if bad or not views:
        raise ConfigError(f"views {list(views)!r}: choose from {VIEWS}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    counts = rng.choice([1, 2, 3], size=patients, p=[0.7, 0.2, 0.1])
    scores = list(rng.choice(np.arange(1, 6), size=int(counts.sum()), p=SCORE_P))
    scores[:5] = list(rng.permutation(np.arange(1, 6)))[: len(scores[:5])]
    with open_dataset(out, force=force) as writer:
        done = 0
        for p in tqdm(range(patients), desc="phantom", unit="patient", disable=not progress):
            prng = np.random.default_rng([seed, p])
            spacing = round(float(prng.uniform(0.62, 0.8)), 3)
            thickness = float(prng.choice([1.0, 1.25, 2.0, 2.5]))
            patient = PhantomPatient(prng, spacing, [])
            patient.nodules = place_nodules(prng, patient, [int(s) for s in scores[done:done + counts[p]]])
            done += counts[p]
            pid = f"PHANTOM-{p + 1:04d}"
            for n, spec in enumerate(patient.nodules):
                # slice through the nodule's centre on the patient's slice grid, k neighbours each side
                z0 = round(spec.centre[2] / thickness) * thickness
                stack, masks = zip(*(patient.render(z0 + d * thickness, thickness)
                                     for d in range(-context, context + 1)))
                mask = masks[context][n]
                volume = _volume(spec, patient, thickness)
                add_nodule_views(
                    writer, image=stack[context], mask=mask, spacing=(spacing, spacing), patient_id=pid,
                    nodule_id=n + 1, malignancy=spec.malignancy, source="synthetic", context=np.stack(stack),
                    views=views, margin=_jittered_margin(prng, mask), diameter_mm=round(spec.diameter_mm, 2),
                    mask_volume_mm3=volume, slice_thickness=thickness, slice_z=z0, synthetic=1,
                )
        return finish(writer, "synthetic", None, out, Skips(), started, patients=patients, seed=seed,
                      context=context, views=tuple(views))


def _jittered_margin(rng: np.random.Generator, mask: np.ndarray) -> tuple[int, int, int, int]:
    """The standard margin with a few pixels of random play per side, so the nodule is not always
    exactly centred in its crop (real crops are not either)."""
    from ctnodule.data.importers.views import nodule_margin
    from ctnodule.data.measure import mask_geometry

    g = mask_geometry(mask, (1.0, 1.0))
    base = nodule_margin((g["bbox_r0"], g["bbox_c0"], g["bbox_r1"], g["bbox_c1"]))
    return tuple(int(max(4, base + j)) for j in rng.integers(-4, 5, size=4))  # type: ignore[return-value]


def _volume(spec, patient: PhantomPatient, thickness: float) -> float:
    """Mask volume (mm^3) summed over every slice of the patient's grid that crosses the nodule."""
    from ctnodule.data.phantom import MASK_FRACTION, nodule_fraction

    zs = np.arange(np.floor((spec.centre[2] - spec.radius_z) / thickness),
                   np.ceil((spec.centre[2] + spec.radius_z) / thickness) + 1) * thickness
    hits = (nodule_fraction(spec, patient.y, patient.x, float(z), patient.spacing) for z in zs)
    pixels = sum(int((hit[0] >= MASK_FRACTION).sum()) for hit in hits if hit is not None)
    return round(pixels * patient.spacing**2 * thickness, 2)
