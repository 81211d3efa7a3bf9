"""A deterministic synthetic chest-CT phantom with lung nodules whose look depends on malignancy 1..5.

It is ctnodule's demo and unit-test data, never a stand-in for real results: every sample made from it
is labelled `synthetic`. What it models, in Hounsfield units on a 512x512 axial grid (~0.7 mm/px):
air (-1000), subcutaneous fat (~-100), muscle/mediastinum (~40), lungs (~-850 with soft texture),
vessels (~40, 3D tubes branching from the hila, so neighbouring slices agree), ribs and spine (cortex
~700, marrow ~250), then partial-volume blur and spatially correlated noise (10-25 HU).

Nodules are 3D and follow the LIDC picture of malignancy: size grows with the score (median diameter
5 mm at 1 to 16.5 mm at 5, like LIDC), the margin goes from round and smooth (1-2) over lobulated (3-4) to
spiculated (4-5), benign nodules are sometimes calcified (very dense), some 3s are ground glass and
some 4-5s part-solid. A nodule is described by `NoduleSpec`; `PhantomPatient.render(z)` draws a slice.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

SIZE = 512
#: median diameter (mm) per malignancy score, close to the LIDC VOI export's (5.7, 5.8, 6.1, 10, 16.6 mm);
#: log-normal spread around it
MEDIAN_DIAMETER = {1: 5.0, 2: 6.0, 3: 7.0, 4: 10.5, 5: 16.5}
#: how often each score is drawn (after the first five nodules, which cover every score once)
SCORE_P = np.array([0.18, 0.26, 0.26, 0.15, 0.15])
#: a pixel belongs to the nodule mask from this partial-volume fraction on (0.3 keeps ground glass in)
MASK_FRACTION = 0.3


@dataclasses.dataclass(frozen=True)
class NoduleSpec:
    """One nodule in patient coordinates (mm; row = anterior->posterior, col = right->left, z)."""

    malignancy: int
    centre: tuple[float, float, float]
    radius: float  # in-plane radius of the core, mm
    radius_z: float
    density: float  # HU of the solid part
    lobes: tuple[tuple[float, float], ...]  # (amplitude, phase) of harmonics 2.. of the margin
    spicules: tuple[tuple[float, float], ...]  # (angle, length mm) of each spicule
    halo: float  # ground-glass halo radius factor (0 = none)

    @property
    def diameter_mm(self) -> float:
        return 2.0 * self.radius


class PhantomPatient:
    """The anatomy of one synthetic patient; `render(z)` gives the HU slice and per-nodule masks."""

    def __init__(self, rng: np.random.Generator, spacing: float, nodules: list[NoduleSpec]):
        self.spacing = spacing
        self.nodules = nodules
        half = SIZE * spacing / 2
        self.body = (rng.uniform(0.52, 0.62) * half, rng.uniform(0.82, 0.9) * half)  # semi-axes (row, col)
        self.fat = rng.uniform(8.0, 20.0)
        self.noise = rng.uniform(10.0, 25.0)
        self.texture = rng.standard_normal((2, 24, 24)).astype(np.float32)
        self.vessels = _vessels(rng, self.body)
        self.rib_phase = rng.uniform(0, 2 * math.pi, size=22)
        self.noise_seed = int(rng.integers(2**31))
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
        self.y = (yy - SIZE / 2) * spacing  # mm from the image centre
        self.x = (xx - SIZE / 2) * spacing

    def lung_masks(self, z: float) -> np.ndarray:
        """Boolean lungs at height `z` (they narrow towards apex and base)."""
        s = 0.82 + 0.18 * math.sin(math.pi * min(max(z, 0.0), 200.0) / 200.0)
        ar, ac = self.body
        lungs = np.zeros((SIZE, SIZE), bool)
        for side in (-1, 1):
            cy, cx = -0.05 * ar, side * 0.47 * ac
            lungs |= ((self.y - cy) / (0.72 * ar * s)) ** 2 + ((self.x - cx) / (0.34 * ac * s)) ** 2 < 1
        return lungs

    def render(self, z: float, thickness: float) -> tuple[np.ndarray, list[np.ndarray]]:
        """HU slice (int16) at height `z` and each nodule's boolean mask on it (empty if not crossed)."""
        y, x = self.y, self.x
        ar, ac = self.body
        img = np.full((SIZE, SIZE), -1000.0, np.float32)
        body = (y / ar) ** 2 + (x / ac) ** 2 < 1
        img[body] = -100.0
        img[(y / (ar - self.fat)) ** 2 + (x / (ac - self.fat)) ** 2 < 1] = 40.0
        lungs = self.lung_masks(z)
        phase = z / 25.0
        tex = math.cos(phase) * self.texture[0] + math.sin(phase) * self.texture[1]
        tex = cv2.resize(tex, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        img[lungs] = -850.0 + 25.0 * tex[lungs]
        vessels = self._vessel_fraction(z) * lungs
        img += vessels * (40.0 - img) * lungs
        self._bones(img, z)
        masks = []
        for spec in self.nodules:
            mask = np.zeros((SIZE, SIZE), bool)
            hit = nodule_fraction(spec, y, x, z, self.spacing)
            if hit is not None:
                frac, win = hit
                img[win] += frac * (spec.density - img[win])
                mask[win] = frac >= MASK_FRACTION
            masks.append(mask)
        img = cv2.GaussianBlur(img, (0, 0), 0.6)  # partial volume / reconstruction kernel
        rng = np.random.default_rng([self.noise_seed, round(z * 100)])
        noise = cv2.GaussianBlur(rng.standard_normal((SIZE, SIZE)).astype(np.float32), (0, 0), 0.8)
        img += noise * (self.noise / 0.35)  # the blur shrinks white-noise std by ~0.35
        return np.clip(np.round(img), -1024, 3071).astype(np.int16), masks

    def _vessel_fraction(self, z: float) -> np.ndarray:
        canvas = np.zeros((SIZE, SIZE), np.uint8)
        for points, radii in self.vessels:
            dz = np.abs(points[:, 2] - z)
            hit = dz < radii
            for (py, px, _), r, d in zip(points[hit], radii[hit], dz[hit]):
                rr = math.sqrt(r * r - d * d) / self.spacing
                centre = (round(px / self.spacing + SIZE / 2) * 4, round(py / self.spacing + SIZE / 2) * 4)
                cv2.circle(canvas, centre, max(1, int(rr * 4)), 255, -1, cv2.LINE_AA, shift=2)
        return canvas.astype(np.float32) / 255.0

    def _window(self, cy: float, cx: float, reach: float) -> tuple[slice, slice]:
        """Pixel window around a point given in mm (drawing only there keeps a slice ~10 ms)."""
        r, c = cy / self.spacing + SIZE / 2, cx / self.spacing + SIZE / 2
        h = reach / self.spacing + 2
        return (slice(max(0, int(r - h)), min(SIZE, int(r + h) + 1)),
                slice(max(0, int(c - h)), min(SIZE, int(c + h) + 1)))

    def _bones(self, img: np.ndarray, z: float) -> None:
        ar, ac = self.body
        # vertebral body: cortex + marrow + canal
        cy = 0.62 * ar
        win = self._window(cy + 6, 0.0, 32)
        y, x, sub = self.y[win], self.x[win], img[win]
        r = ((y - cy) ** 2 + x**2) ** 0.5
        sub[r < 17] = 700.0
        sub[r < 14.5] = 250.0
        sub[((y - cy - 24) ** 2 + x**2) ** 0.5 < 6] = 20.0
        # ribs: ovals just inside the muscle wall, present at z where the rib crosses the slice
        for i, phi in enumerate(self.rib_phase):
            if math.sin(2 * math.pi * z / 28.0 + phi) < 0.1:
                continue
            side = -1 if i % 2 else 1
            t = math.radians(25 + (i // 2) * 12.5)  # from posterior towards anterior
            ry = (ar - self.fat - 6) * math.cos(t)
            rx = side * (ac - self.fat - 6) * math.sin(t)
            win = self._window(ry, rx, 8)
            d = ((self.y[win] - ry) / 4.5) ** 2 + ((self.x[win] - rx) / 7.0) ** 2
            sub = img[win]
            sub[d < 1] = 700.0
            sub[d < 0.45] = 250.0


def nodule_fraction(
    spec: NoduleSpec, y: np.ndarray, x: np.ndarray, z: float, spacing: float
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """Partial-volume fraction (0..1) of the nodule at height `z` within a window of the slice, and
    that window; None where the slice misses the nodule."""
    dz = (z - spec.centre[2]) / spec.radius_z
    if abs(dz) >= 1:
        return None
    scale = math.sqrt(1 - dz * dz)
    reach = (spec.radius * max(1.0, spec.halo) + max((ln for _, ln in spec.spicules), default=0)) * 1.6 + 3
    cy, cx = spec.centre[0] / spacing + SIZE / 2, spec.centre[1] / spacing + SIZE / 2
    r0, r1 = max(0, int(cy - reach / spacing)), min(SIZE, int(cy + reach / spacing) + 2)
    c0, c1 = max(0, int(cx - reach / spacing)), min(SIZE, int(cx + reach / spacing) + 2)
    dy, dx = y[r0:r1, c0:c1] - spec.centre[0], x[r0:r1, c0:c1] - spec.centre[1]
    rho, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    radius = np.full(rho.shape, spec.radius, np.float32)
    for k, (amp, ph) in enumerate(spec.lobes, start=2):
        radius += spec.radius * amp * np.cos(k * theta + ph)
    for ang, length in spec.spicules:  # a spike ~1 mm wide at its base, tapering to a point
        width = 0.9 / max(spec.radius, 1.0)
        radius += length * np.exp(-0.5 * (np.angle(np.exp(1j * (theta - ang))) / width) ** 2)
    local = np.clip((radius * scale - rho) / 0.6 + 0.5, 0, 1)
    if spec.halo > 0:  # ground glass around a solid core: density -550 HU at ~45 % of the way to core
        halo = np.clip((spec.radius * spec.halo * scale - rho) / 0.6 + 0.5, 0, 1)
        local = np.maximum(local, 0.45 * halo)
    return local.astype(np.float32), (slice(r0, r1), slice(c0, c1))


def draw_nodule(rng: np.random.Generator, malignancy: int, centre: tuple[float, float, float]) -> NoduleSpec:
    """A random nodule whose size, margin and density follow its malignancy score."""
    m = malignancy
    diameter = float(np.clip(MEDIAN_DIAMETER[m] * math.exp(rng.normal(0, 0.22)), 3.0, 34.0))
    radius = diameter / 2
    lobe_amp = {1: 0.02, 2: 0.04, 3: 0.08, 4: 0.13, 5: 0.16}[m]
    lobes = tuple((float(rng.uniform(0.3, 1.0) * lobe_amp), float(rng.uniform(0, 2 * math.pi))) for _ in range(4))
    n_spic = {1: 0, 2: 0, 3: int(rng.random() < 0.2), 4: int(rng.integers(0, 4)), 5: int(rng.integers(4, 10))}[m]
    spicules = tuple((float(rng.uniform(-math.pi, math.pi)), float(radius * rng.uniform(0.3, 0.8)))
                     for _ in range(n_spic))
    if m == 1 and rng.random() < 0.5:
        density = rng.uniform(250, 700)  # calcified: a benign pattern
    elif m == 3 and rng.random() < 0.2:
        density = rng.uniform(-550, -300)  # pure ground glass
    else:
        density = rng.normal({1: 0, 2: 10, 3: 15, 4: 30, 5: 35}[m], 25)
    halo = float(rng.uniform(1.3, 1.6)) if m >= 4 and rng.random() < 0.3 else 0.0
    return NoduleSpec(m, centre, radius, radius * float(rng.uniform(0.8, 1.1)), float(density), lobes, spicules, halo)


def place_nodules(rng: np.random.Generator, patient: PhantomPatient, scores: list[int]) -> list[NoduleSpec]:
    """Nodules inside the lungs, well apart in z, fully surrounded by parenchyma at their centre."""
    specs: list[NoduleSpec] = []
    used: list[float] = []
    for m in scores:
        z = float(rng.uniform(45, 155))
        while any(abs(z - u) < 30 for u in used):
            z = float(rng.uniform(45, 155))
        used.append(z)
        probe = draw_nodule(rng, m, (0.0, 0.0, z))
        lungs = patient.lung_masks(z).astype(np.uint8)
        dist = cv2.distanceTransform(lungs, cv2.DIST_L2, 5) * patient.spacing
        need = probe.radius * max(1.0, probe.halo) + 3
        rows, cols = np.nonzero(dist > min(need, dist.max() * 0.8))
        i = int(rng.integers(rows.size))
        cy, cx = (rows[i] - SIZE / 2) * patient.spacing, (cols[i] - SIZE / 2) * patient.spacing
        specs.append(dataclasses.replace(probe, centre=(float(cy), float(cx), z)))
    return specs


def _vessels(rng: np.random.Generator, body: tuple[float, float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """3D vessel segments (points every 0.5 mm, radii tapering outwards) from each hilum."""
    ar, ac = body
    out = []
    for side in (-1, 1):
        for _ in range(26):
            start = np.array([rng.uniform(-0.25, 0.15) * ar, side * 0.22 * ac, rng.uniform(30, 170)])
            direction = np.array([rng.normal(0, 0.6), side * rng.uniform(0.3, 1.0), rng.normal(0, 0.8)])
            direction /= np.linalg.norm(direction)
            length = rng.uniform(50, 110)
            t = np.arange(0, length, 0.5)[:, None]
            bend = np.sin(t / length * math.pi) * rng.normal(0, 6, size=3)
            points = start + t * direction + bend
            radii = np.linspace(rng.uniform(2.0, 4.0), 0.6, len(t))
            out.append((points, radii))
    return out


def render_volume(patient: PhantomPatient, z0: float, n_slices: int, thickness: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A (k, 512, 512) HU volume of slices z0, z0 + thickness, ... and a label volume (0 = background,
    n = the n-th nodule's mask). In world mm (LPS, origin at voxel (-256, -256) x spacing of slice 0) a
    nodule centred at (row_mm, col_mm, z) lies at (x, y, z) = (col_mm, row_mm, z)."""
    hu = np.empty((n_slices, SIZE, SIZE), np.int16)
    labels = np.zeros((n_slices, SIZE, SIZE), np.uint8)
    for k in range(n_slices):
        hu[k], masks = patient.render(z0 + k * thickness, thickness)
        for n, mask in enumerate(masks, start=1):
            labels[k][mask] = n
    return hu, labels
