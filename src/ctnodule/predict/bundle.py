"""Run an exported bundle (`ctnodule export`) with onnxruntime and numpy: no torch, no training code.

A bundle folder (format `BUNDLE_FORMAT`; every file listed with its sha256 in `metadata.json`)::

    BUNDLE/metadata.json      what goes in and comes out (HU slices + spacing + nodule mask -> class
                              probabilities), class names, training data, metrics with CIs, checksums
    BUNDLE/network.onnx       the frozen backbone: images (N, 3, H, W) float32 in [0, 1] -> pooled features
                              (N, V, F), one row per test-time flip view (absent for a descriptors-only model)
    BUNDLE/head.json          the fitted head as plain numbers (see `apply_head`): descriptor scaler, image
                              scaler + PCA, scaler, logistic-regression coefficients, intercepts and classes
    BUNDLE/pipeline.yaml      the fitted preprocessing recipe, exactly as the run applies it
    BUNDLE/model_card/        the run's model card (report.html + figures)

`load_bundle` refuses a bundle whose files are missing or altered (checksums) or whose format is newer
than this code. `Bundle.predict_proba` equals the run's `Predictor.predict_proba` within 1e-4
(tests/predict/test_bundle.py): same preprocessing, same descriptors, same flip views, and the per-view
features rounded to float16 as the training code caches them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError, RunError

BUNDLE_FORMAT = 1
METADATA = "metadata.json"
NETWORK = "network.onnx"
HEAD = "head.json"
PIPELINE = "pipeline.yaml"
#: samples per batch in `prepare_many`/`predict_dataset`: reading a batch and then computing it took ~15 %
#: less CPU than reading and computing sample by sample (descriptors-only bundle, 798 LIDC VOIs), and a
#: batch of 16 is well above the ~2 ms of work from which a worker process pays (`parallel_map`)
BATCH = 16


def is_bundle(path: str | Path) -> bool:
    """True for a folder that holds a bundle's `metadata.json` (a run folder holds config.yaml instead)."""
    return (Path(path) / METADATA).is_file()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(root: Path, checksums: dict[str, str]) -> None:
    """Every listed file present with its recorded sha256, and nothing listed outside the folder."""
    for name, digest in sorted(checksums.items()):
        path = root / name
        if ".." in Path(name).parts or not path.is_file():
            raise RunError(f"{root}: bundle file {name!r} is missing; re-export the bundle (`ctnodule export`)")
        if file_sha256(path) != digest:
            raise RunError(f"{path}: checksum differs from metadata.json (the file was altered or is "
                           "truncated); re-export the bundle (`ctnodule export`)")


class Bundle:
    """An exported model ready to apply: `predict_proba(slices)`, `.class_names`, `.task`, `.view`, ...

    The same surface as `Predictor` where prediction is concerned (`view`, `channels`, `task`,
    `class_names`, `load_slices`, `predict_proba`), so `predict_files` takes either.
    """

    def __init__(self, root: Path, metadata: dict[str, Any], head: dict[str, Any], pipeline, session,
                 threads: int):
        self.root = root
        self.metadata = metadata
        self.head = head
        self.pipeline = pipeline
        self.session = session
        self.threads = threads
        model = metadata["model"]
        self.task: str = model["task"]
        self.view: str = model["view"]
        self.channels: str = model["channels"]
        self.class_names: list[str] = list(metadata["outputs"]["probabilities"]["class_names"])
        self.load_seconds = 0.0

    @property
    def reads(self) -> str:
        """How samples are read: as the run was trained (`channels`) for a network; as the slice alone
        ("grey") without one. The descriptors use only the centre slice of a 2.5D stack, which is the
        slice itself, so a descriptors-only model skips reading the stacks (a third of its read time)."""
        return self.channels if self.session is not None else "grey"

    # -- the stages, each usable alone (bench/bench_infer.py times them) -----------------------------
    def prepare(self, slices: Sequence[Slice]) -> tuple[np.ndarray | None, np.ndarray]:
        """A batch of slices -> ((k, 3, H, W) preprocessed float32 images or None without a network,
        (k, D) raw descriptors)."""
        from ctnodule.models.descriptors import tabular_features
        from ctnodule.preprocess.inputs import to_images

        images = None
        if self.session is not None:
            images = to_images([self.pipeline.transform(s) for s in slices])
        return images, tabular_features(slices, self.head["tabular"]["set"])

    def prepare_many(self, slices: Sequence[Slice], workers: int | None = None) -> tuple[np.ndarray | None,
                                                                                          np.ndarray]:
        """`prepare` of `slices` in batches of `BATCH`, on `workers` processes (default: decided by
        measuring, see `parallel_map`)."""
        from ctnodule.preprocess.parallel import parallel_map

        batches = [slices[i:i + BATCH] for i in range(0, len(slices), BATCH)]
        return _concat(list(parallel_map(self.prepare, batches, workers=workers, chunksize=1)),
                       len(self.head["tabular"]["names"]))

    def features(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, F) image features: the network's per-view pooled features, rounded to float16 (what the
        training code cached and fitted the head on) and averaged over the views. Batches of 64 (x 4
        views) ran faster per CPU-second than 256 on 2 cores (bench/bench_infer.py)."""
        outs = []
        for start in range(0, len(images), batch_size):
            x = np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32)
            outs.append(self.session.run(None, {"image": x})[0])
        f = np.concatenate(outs) if outs else np.zeros((0, 1, self.head["image"]["n_features"]), np.float32)
        return f.astype(np.float16).astype(np.float32).mean(axis=1)

    def predict_proba(self, slices: Sequence[Slice], workers: int | None = None) -> np.ndarray:
        """(N, C) class probabilities of `slices` (HU, with spacing and nodule mask), in the order given."""
        if (self.session is not None and self.metadata["model"].get("used_context")
                and any(s.array.ndim == 2 for s in slices)):
            import warnings

            warnings.warn("this model was trained on 3 neighbouring slices (2.5D); single slices are fed "
                          "as 3 copies, which it has not seen: expect weaker predictions", UserWarning,
                          stacklevel=2)
        images, tab = self.prepare_many(slices, workers)
        feats = None if images is None else self.features(images)
        return apply_head(self.head, feats, tab)

    def predict_dataset(self, dataset, workers: int | None = None) -> np.ndarray:
        """(N, C) probabilities of a `SliceDataset`'s samples of this view; each worker reads its samples
        itself, so reading is spread over the cores too, and checks what it read (finite HU), so the
        dataset may be opened with `validate=False` instead of reading every file twice."""
        from ctnodule.preprocess.parallel import parallel_map

        ds = dataset.view(self.view)
        if len(ds) == 0:
            from ctnodule.errors import DataError

            raise DataError(f"no {self.view!r}-view samples here; this model needs that view", ds.root)
        read = functools.partial(_read_prepare, self, ds)
        batches = [range(i, min(i + BATCH, len(ds))) for i in range(0, len(ds), BATCH)]
        # the first batch here, before any worker forks: it builds the dataset's row index (manifest rows
        # as dicts) once, instead of once per worker
        parts = [read(batches[0])]
        parts += parallel_map(read, batches[1:], workers=workers, chunksize=1)
        images, tab = _concat(parts, len(self.head["tabular"]["names"]))
        return apply_head(self.head, None if images is None else self.features(images), tab)

    def load_slices(self, dataset) -> list[Slice]:
        """A `SliceDataset`'s samples of this model's view, as it reads them (`reads`: 2.5D stacks where the
        network was trained on them)."""
        from ctnodule.preprocess.inputs import load_slices

        return load_slices(dataset.view(self.view), self.reads)


def apply_head(head: dict[str, Any], features: np.ndarray | None, raw_tabular: np.ndarray) -> np.ndarray:
    """The fitted head of `head.json` on image features (N, F) (None without a network) and raw
    descriptors (N, D) -> (N, C) probabilities. Plain numpy, float64:

    1. descriptors: missing values -> training median, then (x - mean) / sd       (`tabular`)
    2. image features: (x - mean) / scale, then PCA: (x - mean) @ components.T     (`image.steps`)
    3. [image | descriptors] -> (x - mean) / scale                                 (`scaler`)
    4. logistic regression: z = x @ coef.T + intercept; binary (one row of coef): p = sigmoid(z) for
       classes[1]; else softmax(z) over `classes`                                   (`classifier`)
    """
    import warnings

    from scipy.special import expit, softmax

    t = head["tabular"]
    x = np.asarray(raw_tabular, dtype=np.float64).reshape(len(raw_tabular), -1)
    missing = ~np.isfinite(x)
    if t["names"] and missing[:, 0].any():
        warnings.warn(f"{int(missing[:, 0].sum())} sample(s) have no nodule size (no mask/diameter): using "
                      "the training median for them", UserWarning, stacklevel=2)
    x = (np.where(missing, np.asarray(t["median"]), x) - np.asarray(t["mean"])) / np.asarray(t["sd"])
    parts = []
    if features is not None:
        f = np.asarray(features, dtype=np.float64)
        for step in head["image"]["steps"]:
            if step["op"] == "standardize":
                f = (f - np.asarray(step["mean"])) / np.asarray(step["scale"])
            elif step["op"] == "pca":
                f = (f - np.asarray(step["mean"])) @ np.asarray(step["components"]).T
                if step["whiten"]:
                    f = f / np.sqrt(np.asarray(step["explained_variance"]))
            else:
                raise RunError(f"head.json: unknown image step {step['op']!r}; re-export with this ctnodule")
        parts.append(f)
    parts.append(x)
    X = np.hstack(parts)
    sc = head["scaler"]
    X = (X - np.asarray(sc["mean"])) / np.asarray(sc["scale"])
    clf = head["classifier"]
    z = X @ np.asarray(clf["coef"]).T + np.asarray(clf["intercept"])
    if z.shape[1] == 1:
        proba = np.stack([expit(-z[:, 0]), expit(z[:, 0])], axis=1)
    else:
        proba = softmax(z, axis=1)
    out = np.zeros((len(X), head["n_classes"]))
    out[:, np.asarray(clf["classes"], dtype=int)] = proba
    return out


def load_bundle(path: str | Path, device: str = "cpu", threads: int | None = None) -> Bundle:
    """Open a bundle folder: format check, checksums, the ONNX session and the head.

    `device`: cpu | cuda | cuda:N (onnxruntime's execution provider); `threads`: onnxruntime intra-op
    threads (default: the usable cores).
    """
    from ctnodule.preprocess import Pipeline
    from ctnodule.preprocess.parallel import usable_cores

    t0 = time.perf_counter()
    providers = _providers(device)  # before any work, also for a bundle without a network
    root = Path(path)
    if not root.is_dir():
        raise RunError(f"{root}: bundle folder not found")
    if not is_bundle(root):
        raise RunError(f"{root}: no {METADATA}; not a ctnodule bundle (make one with `ctnodule export RUN --out DIR`)")
    try:
        metadata = json.loads((root / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{root / METADATA}: unreadable ({exc}); re-export the bundle") from exc
    version = metadata.get("bundle_format")
    if not isinstance(version, int) or version > BUNDLE_FORMAT:
        raise RunError(f"{root}: bundle format {version!r} is newer than this ctnodule reads ({BUNDLE_FORMAT}); "
                       "upgrade ctnodule or export the bundle with this version")
    verify_files(root, metadata.get("files") or {})
    head = json.loads((root / HEAD).read_text(encoding="utf-8"))
    pipeline = Pipeline.load(root / PIPELINE)
    threads = threads or usable_cores()
    session = _session(root / NETWORK, threads, providers) if metadata["model"].get("network") else None
    bundle = Bundle(root, metadata, head, pipeline, session, threads)
    bundle.load_seconds = time.perf_counter() - t0
    return bundle


def _providers(device: str) -> list:
    """onnxruntime's execution providers for `device`: "cpu", or "cuda"/"cuda:N" where onnxruntime has
    CUDA (else a `ConfigError` naming the fix)."""
    import re

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ConfigError(f"--device {device}: this onnxruntime has no CUDA provider (install "
                          "onnxruntime-gpu on a machine with a GPU), use --device cpu")
    index = int(device.split(":")[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


def _session(path: Path, threads: int, providers: list):
    """An onnxruntime session of the network at `path` on `providers` (`_providers`)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle threads sleep instead of spinning: on a small or shared CPU spinning burns the cores that the
    # preprocessing workers and other processes need
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for a bad model file
        raise RunError(f"{path}: onnxruntime cannot load the network ({type(exc).__name__}: {exc})") from exc


def _read_prepare(bundle: Bundle, dataset, rows: range) -> tuple[np.ndarray | None, np.ndarray]:
    """`bundle.prepare` of the dataset's samples `rows`, read here and checked (finite HU)."""
    from ctnodule.errors import DataError
    from ctnodule.preprocess.inputs import load_slice

    slices = [load_slice(dataset, i, bundle.reads) for i in rows]
    for i, s in zip(rows, slices):
        if s.array.dtype.kind == "f" and not np.isfinite(s.array).all():
            raise DataError(f"sample {s.meta.get('sample_id', i)!r}: pixels contain NaN or infinite values",
                            dataset.root)
    return bundle.prepare(slices)


def _concat(parts: list[tuple[np.ndarray | None, np.ndarray]], n_tabular: int) -> tuple[np.ndarray | None,
                                                                                        np.ndarray]:
    """The batches' (images, descriptors) joined in order."""
    if not parts:
        return None, np.zeros((0, n_tabular))
    tab = np.concatenate([p[1] for p in parts])
    return (None if parts[0][0] is None else np.concatenate([p[0] for p in parts])), tab
