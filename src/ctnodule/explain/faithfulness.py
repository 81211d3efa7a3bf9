"""Is a heat map faithful to the model? Occlusion sensitivity (captum) and the deletion test.

- `occlusion_map`: slide a `window` x `window` grey patch (the image's own mean value) over the network
  input with `stride` (default 8 x 8 px, stride 8: 5.6 mm patches on the default 0.7 mm/px crops), and record how much the explained class's probability drops (captum's `Occlusion`,
  which averages the drop over every window covering a pixel). It asks the model directly, so it is the
  reference a gradient map is compared with; its cost is one forward pass per window position.
- `deletion_curve`: remove pixels (set them to the image mean, all channels) in a given order, in steps of
  `FRACTIONS` of the image, and record the explained class's probability after each step. Removing the
  hottest pixels first should make the probability fall faster than removing pixels at random.
- `deletion_summary`: per method, the mean over nodules of the area between the random-order curve and the
  method's curve (mean over the fractions of p_random - p_method, in probability units; > 0: the map's hot
  pixels matter more to the model than random ones), with a 95 % bootstrap CI over nodules. A method whose
  CI reaches 0 is "no better than random" and the explain page says so.

Only the image changes: the nodule descriptors a model also reads stay as measured, so a model that decides
mostly from them (the default preset) barely moves whatever pixels are removed — that is the honest
answer to "does this map show why?" for such a model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: shares of the image's pixels removed at each step of a deletion curve
FRACTIONS = np.linspace(0.0, 1.0, 11)
#: random orders averaged into the random curve of each image
N_RANDOM = 3

Forward = Callable[[np.ndarray], np.ndarray]  # (N, C, H, W) float32 images -> (N,) explained probability


#: memory for one batch of occluded copies (float32)
OCCLUSION_BATCH_BYTES = 256 * 1024**2


def occlusion_map(forward: Forward, image: np.ndarray, window: int | None = None,
                  stride: int | None = None) -> np.ndarray:
    """(H, W) occlusion sensitivity of one (C, H, W) image, clipped at 0 and scaled to [0, 1]. Window positions
    go through `forward` in as few batches as fit `OCCLUSION_BATCH_BYTES` (a run's forward pass has a large
    fixed cost per call; a 512 x 512 slice has 4096 positions, which in one batch would need 12 GB)."""
    import torch
    from captum.attr import Occlusion

    # default patch: 8 px (5.6 mm on the 0.7 mm/px nodule crops), or 1/16 of the image side when larger, so a
    # 512 x 512 full slice needs 256 positions, not 4096
    window = window or max(8, max(image.shape[-2:]) // 16)
    stride = stride or window
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    occ = Occlusion(lambda t: torch.from_numpy(np.asarray(forward(t.numpy()), dtype=np.float32)))
    channels, h, w = x.shape[1:]
    positions = ((h - window) // stride + 1) * ((w - window) // stride + 1)
    attr = occ.attribute(x, sliding_window_shapes=(channels, window, window), strides=(channels, stride, stride),
                         baselines=float(image.mean()),
                         perturbations_per_eval=max(1, min(positions, OCCLUSION_BATCH_BYTES // x.numel() // 4)))
    heat = np.clip(attr[0].sum(0).numpy(), 0.0, None)
    top = heat.max()
    return (heat / top if top > 0 else heat).astype(np.float32)


def pixel_order(heat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices hottest first; ties (coarse maps are full of them) in a seeded random order."""
    flat = np.asarray(heat, dtype=np.float64).ravel()
    return np.lexsort((rng.random(flat.size), -flat))


def deletion_images(image: np.ndarray, order: np.ndarray, fractions: np.ndarray = FRACTIONS) -> np.ndarray:
    """(F, C, H, W): `image` with the first `fraction` of `order`'s pixels set to the image mean."""
    c, h, w = image.shape
    fill = float(image.mean())
    out = np.repeat(image[None].astype(np.float32), len(fractions), axis=0)
    for k, f in enumerate(fractions):
        gone = order[: round(f * h * w)]
        out[k].reshape(c, h * w)[:, gone] = fill
    return out


def deletion_curves(forward: Forward, image: np.ndarray, maps: dict[str, np.ndarray], seed: int = 0,
                    fractions: np.ndarray = FRACTIONS, n_random: int = N_RANDOM) -> dict[str, np.ndarray]:
    """{method: (F,) probability after each deletion step, "random": the mean of `n_random` random orders},
    from one forward call over all the modified images."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[-2:]
    orders = {name: pixel_order(m, rng) for name, m in maps.items()}
    randoms = [rng.permutation(h * w) for _ in range(n_random)]
    batch = np.concatenate([deletion_images(image, o, fractions) for o in [*orders.values(), *randoms]])
    probs = np.asarray(forward(batch), dtype=np.float64).reshape(-1, len(fractions))
    curves = dict(zip(orders, probs[: len(orders)]))
    curves["random"] = probs[len(orders):].mean(0)
    return curves


def deletion_summary(curves: list[dict[str, np.ndarray]], n_boot: int = 1000, seed: int = 0) -> dict:
    """Per method: area between the random and the method's curve (mean over nodules, 95 % bootstrap CI over
    nodules), the share of nodules where it is > 0, the mean curves, and the verdict in words."""
    if not curves:
        return {}
    rng = np.random.default_rng(seed)
    out: dict = {"fractions": FRACTIONS.tolist(), "random_curve": np.mean([c["random"] for c in curves], 0).tolist()}
    for name in [k for k in curves[0] if k != "random"]:
        area = np.array([np.mean(c["random"] - c[name]) for c in curves])
        boot = area[rng.integers(0, len(area), (n_boot, len(area)))].mean(1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        better = bool(lo > 0)
        out[name] = {
            "area_between_random": float(area.mean()), "ci": [float(lo), float(hi)],
            "share_better_than_random": float((area > 0).mean()), "n": len(area),
            "curve": np.mean([c[name] for c in curves], 0).tolist(),
            "verdict": "removing its hottest pixels lowers the prediction more than removing random pixels"
                       if better else "no better than random: its hottest pixels matter no more to the model "
                                      "than random ones",
        }
    return out
