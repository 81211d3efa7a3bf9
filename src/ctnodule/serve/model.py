"""The served run: opened once per process, read by every request.

The network is not thread-safe while Grad-CAM hooks are attached, and a second copy would double the
memory, so there is one `Predictor` and one lock around everything that runs it. Requests reach it from
worker threads (`starlette.concurrency.run_in_threadpool`), never from the event loop.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ctnodule.evaluate.calibration import N_BINS, confidence_outcome, reliability
from ctnodule.evaluate.summary import oof_arrays
from ctnodule.pages import synthetic_banner
from ctnodule.runfolder import RunPaths, read_config, read_metrics, read_oof


class ServedRun:
    """A run folder's predictor (loaded once), config, metrics and out-of-fold predictions."""

    def __init__(self, run_dir: str | Path, device: str = "cpu"):
        from ctnodule.predict.run import load_run

        self.paths = RunPaths(Path(run_dir))
        self.config = read_config(self.paths.root)
        self.metrics = read_metrics(self.paths.root)
        self.oof = read_oof(self.paths.root)
        self.predictor = load_run(self.paths.root)
        self.predictor.device = device
        self.lock = threading.Lock()
        self.class_names: list[str] = list(self.predictor.class_names)
        self.task: str = self.predictor.task
        # the out-of-fold labels and probabilities, checked once (evaluate.summary.oof_arrays)
        self.oof_true, self.oof_proba = oof_arrays(self.oof, self.task)
        self._bins = reliability(self.oof_true, self.oof_proba, N_BINS)

    def warm_up(self) -> None:
        """Predict and explain one small generated nodule, so the first click does not pay for torch's and
        Grad-CAM's one-time set-up (about 1-2 s on a CPU)."""
        from ctnodule.predict.volume import judged_sample

        k, j, i = np.mgrid[-2:3, -32:32, -32:32]
        ball = (k * 1.25) ** 2 + (j * 0.7) ** 2 + (i * 0.7) ** 2 <= 16.0
        hu = np.where(ball, 40, -850).astype(np.int16)
        s = judged_sample(self.predictor, hu, (1.25, 0.7, 0.7), ball, "warm-up")
        with self.lock:
            self.predictor.predict_proba([s])
            if self.has_image_network:
                from ctnodule.explain.core import explain_slices

                explain_slices(self.predictor, [s], "gradcam")

    @property
    def has_image_network(self) -> bool:
        """Grad-CAM needs convolutional features: the `fast` preset (descriptors only) has none."""
        return str(self.predictor.fold_model.cfg.backbone) != "none"

    @property
    def banner(self) -> str | None:
        return synthetic_banner(self.config.get("data_synthetic"))

    def calibration_note(self, proba: np.ndarray) -> str:
        """What this run's out-of-fold predictions say about a probability like `proba`: the observed
        frequency in its equal-mass reliability bin, and the run's ECE/Brier (evaluate.calibration)."""
        conf, _ = confidence_outcome(np.zeros(1, int), proba[None])
        conf = float(conf[0])
        b = self._bins
        used = np.flatnonzero(b["used"])
        which = used[np.argmin([0.0 if b["lo"][u] <= conf <= b["hi"][u] else
                                min(abs(conf - b["lo"][u]), abs(conf - b["hi"][u])) for u in used])]
        what = "were malignant" if self.task == "binary" else "had the predicted class right"
        shown = "P(malignant)" if self.task == "binary" else "top-class probability"
        note = (f"Of this run's {len(self.oof)} out-of-fold predictions, the {int(b['count'][which])} with "
                f"{shown} {b['lo'][which]:.3f}–{b['hi'][which]:.3f} {what} "
                f"{100 * b['observed'][which]:.0f} % of the time (mean predicted {100 * b['confidence'][which]:.0f} %).")
        ece, brier = self.metrics.get("ece"), self.metrics.get("brier")
        if ece is not None and brier is not None:
            note += f" Run ECE {ece:.3f} (10 equal-mass bins), Brier {brier:.3f}"
            note += f"; calibration: {self.config.get('calibration') or 'none'}."
        return note

    def summary(self) -> dict[str, Any]:
        """What the run view shows: the recipe, the headline metrics with CIs, the baselines."""
        keys = ("preset", "task", "view", "backbone", "head", "tabular", "channels", "preprocess", "imbalance",
                "calibration", "n_samples", "n_patients", "n_splits", "seed", "data", "weights_source",
                "ctnodule_version")
        m = self.metrics
        headline = [k for k in ("roc_auc", "qwk", "accuracy", "balanced_accuracy", "within_one", "f1_macro", "ece",
                                "brier", "log_loss") if m.get(k) is not None]
        return {
            "name": self.paths.root.name,
            "recipe": {k: self.config.get(k) for k in keys if self.config.get(k) is not None},
            "class_names": self.class_names,
            "metrics": [{"name": k, "value": m[k], "ci": (m.get("ci") or {}).get(k)} for k in headline],
            "baselines": {name: {k: v for k, v in b.items() if k in headline}
                          for name, b in (m.get("baselines") or {}).items()},
            "per_class": m.get("per_class") or {},
            "has_model_card": self.paths.report.is_file(),
            "has_heatmaps": self.has_image_network,
            "banner": self.banner,
        }
