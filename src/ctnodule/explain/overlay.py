"""Heat-map overlays: the slice in lung window, the map in a colormap over it, the nodule contour on top.

Pure array functions (OpenCV), so a few hundred per-sample PNGs take seconds, not a matplotlib figure
each. Every panel is in the frame the network saw; small nodule crops are enlarged (nearest neighbour,
so no detail is invented) to `min_side` pixels for viewing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ctnodule.atomic import atomic_path
from ctnodule.errors import ConfigError

#: (level, width) in HU: the lung window the seed and radiologists read lung nodules in.
LUNG_WINDOW = (-600.0, 1500.0)
CONTOUR_RGB = (0, 255, 0)
BBOX_RGB = (255, 255, 0)


def to_display(image: np.ndarray) -> np.ndarray:
    """(H, W) grey image in [0, 1] for display: HU gets the lung window, [0, 1] data is kept as is."""
    from ctnodule.preprocess.window import window_array

    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3:  # a 2.5D stack: show the slice the decision is made on
        a = a[a.shape[0] // 2]
    if a.size and (a.min() < 0.0 or a.max() > 1.0):
        return window_array(a, *LUNG_WINDOW)
    return np.clip(a, 0.0, 1.0)


def colorize(cam: np.ndarray, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """(H, W) map in [0, 1] -> (H, W, 3) uint8 RGB."""
    u8 = np.round(np.clip(cam, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, colormap), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The map blended over the grey slice: (H, W, 3) uint8 RGB; `alpha` is the map's weight."""
    grey = to_display(image)
    if grey.shape != cam.shape:
        raise ConfigError(f"slice {grey.shape} and heat map {cam.shape} must have one shape")
    rgb = np.repeat((grey * 255)[..., None], 3, axis=2)
    out = (1 - alpha) * rgb + alpha * colorize(cam).astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def grey_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.round(to_display(image) * 255).astype(np.uint8)[..., None], 3, axis=2)


def enlarge(rgb: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor so the shorter side reaches `min_side`."""
    factor = max(1, int(np.ceil(min_side / max(1, min(rgb.shape[:2])))))
    return rgb if factor == 1 else np.kron(rgb, np.ones((factor, factor, 1), dtype=rgb.dtype))


def draw_region(rgb: np.ndarray, region: np.ndarray | None, source: str = "mask") -> np.ndarray:
    """Draw the nodule's outline (green for a mask, yellow for a bbox) on an enlarged RGB panel."""
    if region is None or not region.any():
        return rgb
    out = rgb.copy()
    big = cv2.resize(region.astype(np.uint8), (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    thick = max(1, out.shape[0] // 256)
    cv2.drawContours(out, contours, -1, CONTOUR_RGB if source == "mask" else BBOX_RGB, thick)
    return out


def sample_panels(image: np.ndarray, cam: np.ndarray, region: np.ndarray | None, source: str = "mask",
                  net_input: np.ndarray | None = None, min_side: int = 256, caption: str = "") -> np.ndarray:
    """One sample side by side: [slice in lung window | what the network saw (when it differs) | overlay],
    each with the nodule outline, under a one-line `caption`; (H', W', 3) uint8 RGB."""
    panels = [grey_rgb(image)]
    if net_input is not None and not np.allclose(to_display(net_input), to_display(image), atol=1e-3):
        panels.append(grey_rgb(net_input))
    panels.append(overlay(image, cam))
    panels = [draw_region(enlarge(p, min_side), region, source) for p in panels]
    gap = np.full((panels[0].shape[0], 4, 3), 255, dtype=np.uint8)
    row = [panels[0]]
    for p in panels[1:]:
        row += [gap, p]
    out = np.concatenate(row, axis=1)
    if caption:
        strip = np.full((22, out.shape[1], 3), 255, dtype=np.uint8)
        cv2.putText(strip, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        out = np.concatenate([strip, out], axis=0)
    return out


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, atomically."""
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
    return Path(path)
