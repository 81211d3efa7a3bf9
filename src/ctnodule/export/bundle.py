"""`export_bundle(run, out)`: a trained run folder -> a portable bundle that runs without torch.

The bundle's layout and its runtime are in `ctnodule.predict.bundle`. What is exported:

- the frozen backbone as ONNX (opset `OPSET`, which onnxruntime's CPU provider runs in full), with the
  run's test-time flip views inside the graph and a dynamic batch axis;
- the scikit-learn head as plain numbers (`head.json`; no pickles): descriptor scaler, image scaler + PCA,
  scaler, logistic-regression coefficients/intercepts/classes;
- the fitted `pipeline.yaml`, the model card, and `metadata.json` (inputs, outputs, class names, training
  data, metrics with CIs, versions, sha256 of every file).

Before the folder is renamed into place, the export checks itself: the ONNX network against the torch
backbone on random images, and `head.json` against the scikit-learn head on random rows.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

import ctnodule
from ctnodule.atomic import atomic_dir, write_text
from ctnodule.errors import RunError
from ctnodule.models.augment import flip_views
from ctnodule.predict.bundle import (
    BUNDLE_FORMAT,
    HEAD,
    METADATA,
    NETWORK,
    PIPELINE,
    apply_head,
    file_sha256,
)
from ctnodule.runfolder import read_metrics

OPSET = 17
FEATURE_TOLERANCE = 1e-3  # ONNX vs torch features (float32 kernels differ in summation order)


class PooledViews(nn.Module):
    """[0, 1] images (N, 3, H, W) -> globally pooled backbone features per flip view (N, V, F): the
    exact inputs `train.features.extract_features` gives a scikit-learn head (V = 4 with TTA, else 1)."""

    def __init__(self, backbone: nn.Module, tta: bool):
        super().__init__()
        self.backbone = backbone
        self.tta = tta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = flip_views(x) if self.tta else [x]
        f = self.backbone(torch.cat(views)).mean(dim=(2, 3))
        return f.reshape(len(views), x.shape[0], -1).transpose(0, 1)


def export_bundle(run_dir: str | Path, out: str | Path, force: bool = False) -> Path:
    """Write the bundle of run `run_dir` to `out` (refused if it exists, unless `force`). Returns `out`."""
    from ctnodule.predict.run import load_run

    run_dir = Path(run_dir)
    predictor = load_run(run_dir)
    fm = predictor.fold_model
    cfg = fm.cfg
    if not (cfg.freeze_backbone and cfg.head == "logreg" and fm.sk_head is not None):
        raise RunError(f"{run_dir}: only frozen-backbone logistic-regression runs (the default preset) export to "
                       f"a bundle; this run has head {cfg.head!r} (freeze_backbone={cfg.freeze_backbone})")
    if fm.finder is not None:
        raise RunError(f"{run_dir}: a find-then-classify run (find: {cfg.find}) searches full slices for the nodule "
                       "in Python before its network; a bundle would skip that step, so it does not export")
    n_extra = fm.net.n_extra
    n_image = fm.net.backbone.num_features
    head = head_json(fm.sk_head.model_, n_image, n_extra, cfg.tabular, fm.scaler, len(predictor.class_names))
    with atomic_dir(out, force=force) as tmp:
        if n_image:
            _write_onnx(PooledViews(fm.net.backbone, cfg.tta).eval(), tmp / NETWORK, fm.pipeline)
        write_text(tmp / HEAD, json.dumps(head, indent=1))
        fm.pipeline.save(tmp / PIPELINE)
        _copy_model_card(run_dir, tmp / "model_card")
        _check_head(head, fm.sk_head, n_image, n_extra, len(predictor.class_names))
        files = {p.relative_to(tmp).as_posix(): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        meta = metadata(run_dir, predictor, head, n_image, files)
        write_text(tmp / METADATA, json.dumps(meta, indent=1))
    return Path(out)


def head_json(model, n_image: int, n_extra: int, tabular: str, scaler, n_classes: int) -> dict[str, Any]:
    """The fitted scikit-learn pipeline of a `LogRegHead` as plain lists (see `apply_head` for the maths)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from ctnodule.models.descriptors import feature_names

    steps = [step for _, step in model.steps]
    image_steps: list[dict[str, Any]] = []
    if isinstance(steps[0], ColumnTransformer):
        for _, step in steps.pop(0).named_transformers_["image"].steps:
            image_steps.append(_image_step(step, StandardScaler, PCA))
    if len(steps) != 2 or not isinstance(steps[0], StandardScaler) or not isinstance(steps[1], LogisticRegression):
        raise RunError(f"unexpected head pipeline {[type(s).__name__ for s in steps]}; expected StandardScaler + "
                       "LogisticRegression (re-train with this ctnodule)")
    sc, lr = steps
    state = scaler.state() if scaler is not None else {"median_": [], "mean_": [], "sd_": []}
    return {
        "kind": "logistic_regression",
        "n_classes": n_classes,
        "image": {"n_features": n_image, "steps": image_steps},
        "tabular": {"set": tabular, "names": feature_names(tabular)[:n_extra], "median": state["median_"],
                    "mean": state["mean_"], "sd": state["sd_"]},
        "scaler": {"mean": _list(sc.mean_ if sc.with_mean else np.zeros(sc.n_features_in_)),
                   "scale": _list(sc.scale_ if sc.with_std else np.ones(sc.n_features_in_))},
        "classifier": {"coef": _list(lr.coef_), "intercept": _list(lr.intercept_),
                       "classes": [int(c) for c in lr.classes_]},
    }


def _image_step(step, standard_scaler, pca) -> dict[str, Any]:
    if isinstance(step, standard_scaler):
        return {"op": "standardize", "mean": _list(step.mean_), "scale": _list(step.scale_)}
    if isinstance(step, pca):
        return {"op": "pca", "mean": _list(step.mean_), "components": _list(step.components_),
                "whiten": bool(step.whiten), "explained_variance": _list(step.explained_variance_)}
    raise RunError(f"unexpected image step {type(step).__name__} in the head; cannot export it")


def metadata(run_dir: Path, predictor, head: dict[str, Any], n_image: int, files: dict[str, str]) -> dict:
    """`metadata.json`: a MONAI-bundle-like description of what the bundle takes, gives and was trained on."""
    import onnx
    import onnxruntime

    cfg = predictor.fold_model.cfg
    config = predictor.config
    metrics = read_metrics(run_dir)
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    size = next((s.get_params().get("size") for s in predictor.pipeline.steps if s.name == "size"), None)
    views = 4 if cfg.tta else 1
    # a descriptors-only model reads the centre slice alone (`Bundle.reads`)
    slice_shape = ["3 (slice and its 2 neighbours)", "H", "W"] if config.get("used_context") and n_image else ["H", "W"]
    return {
        "bundle_format": BUNDLE_FORMAT,
        "name": run_dir.name,
        "version": ctnodule.__version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "description": f"Lung-nodule malignancy ({cfg.task}) from a CT nodule slice, its nodule mask and spacing.",
        "model": {"task": cfg.task, "view": cfg.view, "channels": cfg.channels, "preset": cfg.preset,
                  "backbone": cfg.backbone if n_image else None, "weights": config.get("weights_source"),
                  "head": cfg.head, "head_params": cfg.head_params, "tta_views": views, "network": bool(n_image),
                  "used_context": bool(config.get("used_context"))},
        "inputs": {
            "slice": {"shape": slice_shape, "dtype": "int16 (or any real type)", "units": "HU",
                      "spacing": "pixel spacing (row_mm, col_mm), required: crops are resampled to mm",
                      "mask": {"shape": ["H", "W"], "dtype": "uint8", "meaning": "nodule mask (> 0) of the centre "
                               "slice; gives the descriptors (size, shape, density, rim)"}},
            "network.image": {"file": NETWORK if n_image else None, "name": "image",
                              "shape": ["batch", 3, *(size or ["H", "W"])], "dtype": "float32", "range": [0, 1],
                              "produced_by": PIPELINE},
        },
        "outputs": {
            "probabilities": {"shape": ["batch", len(predictor.class_names)], "dtype": "float64",
                              "class_names": predictor.class_names},
            "network.features": {"name": "features", "shape": ["batch", views, n_image], "dtype": "float32",
                                 "meaning": "globally average-pooled backbone features per flip view; the head "
                                            "rounds them to float16 and averages the views"},
        },
        "preprocessing": {"file": PIPELINE, "hash": predictor.pipeline.hash},
        "descriptors": {"set": head["tabular"]["set"], "names": head["tabular"]["names"],
                        "code": "ctnodule.models.descriptors"},
        "training_data": _training_data(run_dir, config, predictor.class_names),
        "metrics": {"estimate": f"pooled out-of-fold predictions of patient-grouped {cfg.folds}-fold CV; "
                                "95 % patient-bootstrap CIs",
                    "values": scalars, "ci95": metrics.get("ci", {})},
        "runtime": {"onnx_opset": OPSET, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                    "exported_with": {"ctnodule": ctnodule.__version__, "torch": torch.__version__}},
        "files": files,
    }


def _training_data(run_dir: Path, config: dict, names: list[str]) -> dict[str, Any]:
    oof = run_dir / "oof_predictions.csv"
    counts = {}
    if oof.is_file():
        y = pd.read_csv(oof, usecols=["y_true"])["y_true"].value_counts().sort_index()
        counts = {names[int(k)]: int(v) for k, v in y.items()}
    return {"data": config.get("data"), "n_samples": config.get("n_samples"), "n_patients": config.get("n_patients"),
            "class_counts": counts}


def _write_onnx(net: PooledViews, path: Path, pipeline) -> None:
    """Export `net` with a dynamic batch axis and check it against torch on random images."""
    import onnx
    import onnxruntime as ort

    size = next((s.get_params().get("size") for s in pipeline.steps if s.name == "size"), None)
    if size is None:
        raise RunError("the run's pipeline has no fixed-size step; the network input shape is undefined")
    x = torch.rand(3, 3, *size, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, (x,), str(path), opset_version=OPSET, input_names=["image"],
                          output_names=["features"], dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
                          dynamo=False)
        expected = net(x).numpy()
    onnx.checker.check_model(str(path))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    err = float(np.abs(got - expected).max())
    if err > FEATURE_TOLERANCE:
        raise RunError(f"ONNX export differs from the torch network by {err:.2g} (> {FEATURE_TOLERANCE}); not written")


def _check_head(head: dict, sk_head, n_image: int, n_extra: int, n_classes: int) -> None:
    """`apply_head` on head.json must give the scikit-learn head's probabilities on random rows."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(16, n_image)).astype(np.float32)
    raw = rng.normal(size=(16, n_extra))
    ex = (raw - np.asarray(head["tabular"]["mean"])) / np.asarray(head["tabular"]["sd"])
    expected = sk_head.predict_proba(np.hstack([feats, ex.astype(np.float32)]), n_classes)
    got = apply_head(head, feats if n_image else None, raw)
    err = float(np.abs(got - expected).max())
    if err > 1e-5:
        raise RunError(f"head.json differs from the scikit-learn head by {err:.2g}; not written")


def _copy_model_card(run_dir: Path, dest: Path) -> None:
    if (run_dir / "report.html").is_file():
        dest.mkdir()
        shutil.copy2(run_dir / "report.html", dest / "report.html")
        if (run_dir / "figures").is_dir():
            shutil.copytree(run_dir / "figures", dest / "figures")


def _list(a) -> list:
    return np.asarray(a, dtype=np.float64).tolist()
