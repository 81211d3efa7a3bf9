"""The explain stage's two checks beside the heat maps, on a loaded run (`Predictor`):

- `attribution_outputs`: why each nodule got its answer — the run's attributions (`Predictor.attribute`,
  scikit-learn heads), its top reasons in words and a waterfall figure per nodule.
- `faithfulness_curves`: is each heat map faithful — occlusion sensitivity beside Grad-CAM and a deletion
  curve per method against random deletion (`ctnodule.explain.faithfulness`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.explain.faithfulness import deletion_curves, occlusion_map


def attribution_outputs(predictor: Any, slices: Sequence[Slice], ids: Sequence[str], folder: Path,
                        draw: bool = True) -> tuple[Any, list[str], list[str]]:
    """(Attribution, reasons per slice, waterfall PNG paths relative to `folder` or "" when not drawn)."""
    import matplotlib.pyplot as plt

    from ctnodule.explain.attribution_figures import waterfall_figure
    from ctnodule.explain.core import safe_name

    attr, words, _ = predictor.attribute(list(slices))
    pngs = []
    for i, sid in enumerate(ids):
        if not draw:
            pngs.append("")
            continue
        rel = Path("waterfalls") / f"{safe_name(sid)}.png"
        (folder / rel.parent).mkdir(parents=True, exist_ok=True)
        fig = waterfall_figure(attr, i, words[i], title=f"{sid}: why this answer")
        fig.savefig(folder / rel, dpi=90)
        plt.close(fig)
        pngs.append(rel.as_posix())
    return attr, words, pngs


def faithfulness_curves(predictor: Any, slices: Sequence[Slice], cams: Sequence[np.ndarray],
                        targets: Sequence[int], method: str = "gradcam",
                        seed: int = 0) -> tuple[list[dict[str, np.ndarray]], list[np.ndarray]]:
    """Per slice: deletion curves of its CAM (`cams`, network frame, by `method`), of its occlusion map and
    of random deletion for the explained class `targets`, and the occlusion maps themselves."""
    if not slices:  # a chunk past the checked ones
        return [], []
    images = predictor.prepare(list(slices)).numpy()
    curves, occlusions = [], []
    for i, (s, cam, t) in enumerate(zip(slices, cams, targets)):
        forward = predictor.image_forward(s, int(t))
        occ = occlusion_map(forward, images[i])
        curves.append(deletion_curves(forward, images[i], {method: cam, "occlusion": occ}, seed=seed + i))
        occlusions.append(occ)
    return curves, occlusions
