"""Honestly generated CT-like slices for the preprocess tests: HU values, noise and spacing like real CT."""

from __future__ import annotations

import numpy as np

from ctnodule.data.slice import Slice


def nodule_crop(rng: np.random.Generator, size: int = 44, spacing: float = 0.7, radius_mm: float = 4.0,
                centre: tuple[float, float] | None = None, noise: float = 40.0, sid: str = "n0") -> Slice:
    """Lung parenchyma (-850 HU) with a solid nodule (+30 HU) of `radius_mm`, Gaussian noise, a mask."""
    rr, cc = np.mgrid[:size, :size].astype(float)
    cr, cc0 = centre if centre is not None else (size / 2, size / 2)
    inside = ((rr - cr) ** 2 + (cc - cc0) ** 2) * spacing**2 <= radius_mm**2
    hu = np.where(inside, 30.0, -850.0) + rng.normal(0, noise, (size, size))
    return Slice(np.round(hu).astype(np.int16), (spacing, spacing), {"sample_id": sid}, inside.astype(np.uint8))


def chest_slice(rng: np.random.Generator, size: int = 512, spacing: float = 0.7, juxta: bool = True,
                sid: str = "f0") -> tuple[Slice, tuple[int, int], np.ndarray]:
    """A synthetic axial chest slice: air outside, an elliptic body (40 HU), a table, two lungs
    (-850 HU) with vessels, and (`juxta`) a 12 mm solid nodule sitting on the left lung's outer wall.
    Returns the slice, the nodule centre (row, col) and the true lung mask (nodule included)."""
    rr, cc = np.mgrid[:size, :size].astype(float)
    c = size / 2
    hu = np.full((size, size), -1000.0)
    body = ((rr - c) / (0.36 * size)) ** 2 + ((cc - c) / (0.45 * size)) ** 2 <= 1
    hu[body] = 40.0
    hu[int(0.88 * size):int(0.9 * size), int(0.1 * size):int(0.9 * size)] = 300.0  # table
    lungs = np.zeros((size, size), bool)
    for side in (-1, 1):
        lungs |= ((rr - c) / (0.27 * size)) ** 2 + ((cc - c - side * 0.2 * size) / (0.14 * size)) ** 2 <= 1
    hu[lungs] = -850.0
    for _ in range(25):  # vessels
        r0, c0 = rng.uniform(0.3, 0.7) * size, rng.uniform(0.15, 0.85) * size
        vessel = (rr - r0) ** 2 + (cc - c0) ** 2 <= rng.uniform(1.5, 4) ** 2
        hu[vessel & lungs] = 20.0
    radius = 6.0 / spacing
    # attached to the outer wall of the left-image lung, a third of it inside the chest wall
    centre = (int(c), round(c - 0.34 * size + radius / 3))
    nodule = (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= radius**2
    if juxta:
        hu[nodule & body] = 30.0
    hu += rng.normal(0, 15, hu.shape)
    truth = lungs | (nodule & body & juxta)
    return Slice(np.round(hu).astype(np.int16), (spacing, spacing), {"sample_id": sid}), centre, truth
