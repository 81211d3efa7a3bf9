"""Research bench for issue 9: a nodule-scale image model, alone and fused with the mask descriptors.

Uses the project's own pieces: `SliceDataset` + `load_slices` (2.5D context), a `Pipeline` built from
`PreprocessConfig` steps (HU window, then resample to fixed mm/px around the mask centroid, air-valued
padding), `tabular_features(..., "descriptors")`, the `nodule_resnet` backbone by name, the label modes
of `ctnodule.train.labels` / `ctnodule.models.ordinal`, and the patient-grouped split files of an
existing run (`--splits RUN`), so every recipe is scored on the same folds as that run.

Per recipe it prints, as CV mean ± sd over the folds (pooled out-of-fold in brackets):
- image only: binary AUC (P(score >= 4)), 5-class QWK and accuracy (argmax of the ordinal probabilities);
- fused: the mean of the image model's and a descriptor logistic regression's probabilities (equal
  weights, nothing fitted on the test fold or on out-of-fold predictions);
- Grad-CAM of the image model on its held-out fold: heat share inside the nodule mask grown by 3 mm, and
  the pointing game (maximum inside the mask grown by 3 mm);
- wall and CPU seconds. OOF predictions go to `--out` (one CSV per recipe) for paired comparisons.

    PYTHONPATH=src nice -n 10 python bench/bench_image_model.py --recipes r32 --splits /work/scratch/runs/voi-multiclass

Every recipe tried is one line of `RECIPES`; report how many you tried (best-of-N on the same folds
flatters the winner).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, cohen_kappa_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.splits import load_splits
from ctnodule.models.augment import apply_affine
from ctnodule.models.backbones import create_backbone
from ctnodule.models.descriptors import tabular_features
from ctnodule.models.ordinal import LabelLoss, cumulative_to_proba
from ctnodule.preprocess import Pipeline, PreprocessConfig
from ctnodule.preprocess.config import StepSpec
from ctnodule.preprocess.inputs import load_slices, to_images
from ctnodule.train.labels import target_distributions

BASE = {"size": 32, "mm": 1.0, "net": "nodule_resnet", "epochs": 20, "lr": 3e-3, "wd": 5e-4, "batch": 64, "labels": "maxvote",
            "rot": 180.0, "zoom": 0.1, "noise": 0.015, "zflip": True, "seeds": 1, "tta": 4, "drop": 0.3, "window": (-300.0, 1400.0),
            "mask_ch": False, "roi_pool": False}
RECIPES: dict[str, dict] = {
    "r32": {},
    "r32_e30": {"epochs": 30},
    "r32_wide": {"net": "nodule_resnet_wide"},
    "r40_08": {"size": 40, "mm": 0.8},
    "r48_07": {"size": 48, "mm": 0.7},
    "r32_noaug": {"rot": 0.0, "zoom": 0.0, "noise": 0.0, "zflip": False},
    "r32_soft": {"labels": "soft"},
    "r32_mean": {"labels": "mean"},
    "r32_s3": {"seeds": 3},
    "r32_mask": {"mask_ch": True},
    # the mask is NOT a conv input: it only decides where the head pools (mask grown by one 4-mm cell)
    "r32_roi": {"roi_pool": True},
    "r32_maskroi": {"roi_pool": True, "mask_ch": True},  # both: the mask is convolved AND decides the pooling  # + the nodule mask as a 4th input channel (image + outline, no descriptors)
}


def build_images(slices, size: int, mm: float, window: tuple[float, float]) -> tuple[np.ndarray, list]:
    """Images at `mm` mm/px, (size * 1.5)-px crops (room for rotation/zoom), and their masks."""
    big = round(size * 1.5 / 2) * 2
    cfg = PreprocessConfig(view="nodule", steps=[
        StepSpec(name="window", params={"level": window[0], "width": window[1]}),
        StepSpec(name="size", params={"mode": "resample", "size": [big, big], "spacing_mm": mm, "centre": "mask",
                                      "fill": 0.0}),  # 0 = -1000 HU (air) in this window
    ])
    pipe = Pipeline.from_config(cfg).fit(slices)
    out = list(pipe.transform_many(slices, workers=1))
    return to_images(out), [s.mask for s in out]


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    o = (x.shape[-1] - size) // 2
    return x[..., o:o + size, o:o + size]


class Net(torch.nn.Module):
    def __init__(self, name: str, drop: float, n_out: int = 4, in_chans: int = 3, roi_pool: bool = False,
                 mask_ch: bool = False):
        super().__init__()
        self.roi_pool, self.mask_ch = roi_pool, mask_ch
        self.backbone = create_backbone(name, "none", in_chans=in_chans - int(roi_pool and not mask_ch))
        self.drop = torch.nn.Dropout(drop)
        self.fc = torch.nn.Linear(self.backbone.num_features, n_out)
        self.roi = torch.nn.Identity()  # the masked map: what Grad-CAM reads in the roi_pool model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.roi_pool:
            return self.fc(self.drop(self.backbone(x).mean(dim=(2, 3))))
        f = self.backbone(x if self.mask_ch else x[:, :-1])
        w = torch.nn.functional.adaptive_max_pool2d(x[:, -1:], f.shape[-2:])
        w = torch.nn.functional.max_pool2d(w, 3, 1, 1)  # grow by one cell
        w = torch.where(w.sum(dim=(2, 3), keepdim=True) > 0, w, torch.ones_like(w))  # no mask: pool everything
        return self.fc(self.drop(self.roi(f * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3))))


def augment(x: torch.Tensor, r: dict, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    ang = (torch.rand(n, generator=gen) * 2 - 1) * r["rot"] * np.pi / 180
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * r["zoom"]
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos * flip, -sin, sin * flip, cos
    x = apply_affine(x, theta)
    img, extra = x[:, :3], x[:, 3:]  # extra: a mask channel, if any (not flipped in z, no noise)
    if r["zflip"]:
        z = torch.rand(n, generator=gen) < 0.5
        img = torch.where(z[:, None, None, None], img.flip(1), img)
    if r["noise"]:
        img = img + r["noise"] * torch.randn(img.shape, generator=gen)
    return torch.cat([img, extra], dim=1)


def tta_views(x: torch.Tensor, n: int) -> list[torch.Tensor]:
    return [x, x.flip(-1), x.flip(-2), x.flip(-1, -2)][:n]


def train_predict(r: dict, images: np.ndarray, dist: np.ndarray, tr: np.ndarray, te: np.ndarray, seed: int
                  ) -> tuple[np.ndarray, Net]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = Net(r["net"], r["drop"], in_chans=images.shape[1], roi_pool=r["roi_pool"], mask_ch=r["mask_ch"]).to(memory_format=torch.channels_last)  # oneDNN's faster kernels on CPU
    x_tr, d_tr = torch.from_numpy(images[tr]), torch.from_numpy(dist[tr])
    steps = int(np.ceil(len(tr) / r["batch"]))
    opt = torch.optim.AdamW(net.parameters(), lr=r["lr"], weight_decay=r["wd"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=steps * r["epochs"],
                                                pct_start=0.15)
    loss_fn = LabelLoss(r["labels"])
    for _ in range(r["epochs"]):
        net.train()
        order = torch.randperm(len(tr), generator=gen)
        for s in range(steps):
            b = order[s * r["batch"]:(s + 1) * r["batch"]]
            if len(b) < 2:
                continue
            xb = centre_crop(augment(x_tr[b], r, gen), r["size"]).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(net(xb), d_tr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    x_te = centre_crop(torch.from_numpy(images[te]), r["size"])
    with torch.no_grad():
        logits = torch.stack([net(v) for v in tta_views(x_te, r["tta"])]).mean(0)
    return cumulative_to_proba(logits).numpy(), net


def gradcam(net: Net, x: torch.Tensor, sign: np.ndarray) -> np.ndarray:
    """Grad-CAM on the backbone's last map for `sign` x the malignancy logit (P(score >= 4)), upsampled to x."""
    feats = {}
    h = (net.roi if net.roi_pool else net.backbone.net.stages).register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    x = x.clone().requires_grad_(False)
    out = net(x)
    h.remove()
    a = feats["a"]
    sel = out[:, 2] * torch.from_numpy(sign).float()
    g = torch.autograd.grad(sel.sum(), a)[0]
    cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0].detach().numpy()


def cam_scores(net: Net, images: np.ndarray, masks: list, te: np.ndarray, r: dict, proba: np.ndarray) -> list:
    x = centre_crop(torch.from_numpy(images[te]), r["size"])
    # explain the predicted side of the malignancy decision: +logit P(y>=4) where it is > 1/2, else -logit
    cams = gradcam(net, x, np.where(proba[:, 3:].sum(1) > 0.5, 1.0, -1.0))
    grow = 3.0 / r["mm"]
    out = []
    for k, i in enumerate(te):
        m = masks[i]
        if m is None or not np.asarray(m).any():
            continue
        m = centre_crop(torch.from_numpy(np.asarray(m, dtype=bool)[None]), r["size"])[0].numpy()
        if not m.any():
            continue
        grown = ndimage.distance_transform_edt(~m) <= grow
        c = cams[k]
        mass = float(c[grown].sum() / c.sum()) if c.sum() > 0 else float("nan")
        rr, cc = np.unravel_index(int(np.argmax(c)), c.shape)
        out.append((int(i), mass, bool(grown[rr, cc]), float(grown.mean())))
    return out


def metrics(y5: np.ndarray, p5: np.ndarray, pbin: np.ndarray) -> dict:
    pred = p5.argmax(1)
    return {"auc": roc_auc_score(y5 >= 3, pbin), "qwk": cohen_kappa_score(y5, pred, weights="quadratic"),
            "acc": accuracy_score(y5, pred)}


def descriptor_lr(desc: np.ndarray, y5: np.ndarray, tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The descriptors-only partner: 5-class LR (C=1) and binary LR (C=1) on standardised descriptors."""
    fill = np.nanmedian(desc[tr], axis=0)
    d = np.where(np.isnan(desc), fill, desc)
    m5 = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(d[tr], y5[tr])
    m2 = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(d[tr], y5[tr] >= 3)
    return m5.predict_proba(d[te]), m2.predict_proba(d[te])[:, 1]


def summarise(rows: list[dict]) -> str:
    keys = ("auc", "qwk", "acc")
    return "  ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}±{np.std([r[k] for r in rows]):.3f}" for k in keys)


def run_recipe(name: str, r: dict, data: dict, splits: list, out_dir: Path, cam: bool) -> dict:
    t0, c0 = time.time(), time.process_time()
    images, masks = build_images(data["slices"], r["size"], r["mm"], r["window"])
    if r["mask_ch"] or r["roi_pool"]:
        m = np.stack([np.zeros(images.shape[2:], np.float32) if k is None else np.asarray(k, np.float32)
                      for k in masks])
        images = np.concatenate([images, m[:, None]], axis=1)
    dist = target_distributions(data["frame"], r["labels"])
    y5 = data["y5"]
    n = len(y5)
    p_img, p_desc5, p_desc2 = np.zeros((n, 5)), np.zeros((n, 5)), np.zeros(n)
    fold_img, fold_fused, fold_desc, cams = [], [], [], []
    for f, (tr, te) in enumerate(splits):
        probs = []
        for s in range(r["seeds"]):
            p, net = train_predict(r, images, dist, tr, te, seed=1000 * s + f)
            probs.append(p)
        p = np.mean(probs, axis=0)
        p_img[te] = p
        p_desc5[te], p_desc2[te] = descriptor_lr(data["desc"], y5, tr, te)
        if cam:
            fold_cams = cam_scores(net, images, masks, te, r, p)
            cams += fold_cams
            arr = np.array(fold_cams, dtype=float)
            print(f"  [{name}] fold {f}: heat in mask+3mm {np.nanmean(arr[:, 1]):.3f} (flat {arr[:, 3].mean():.3f}), "
                  f"pointing game 3mm {arr[:, 2].mean():.3f}", flush=True)
        fold_img.append(metrics(y5[te], p, p[:, 3:].sum(1)))
        fold_desc.append(metrics(y5[te], p_desc5[te], p_desc2[te]))
        fused5 = (p + p_desc5[te]) / 2
        fold_fused.append(metrics(y5[te], fused5, (p[:, 3:].sum(1) + p_desc2[te]) / 2))
        print(f"  [{name}] fold {f}: image {fold_img[-1]}  fused {fold_fused[-1]}  "
              f"({time.time() - t0:.0f} s)", flush=True)
    wall, cpu = time.time() - t0, time.process_time() - c0
    fused5 = (p_img + p_desc5) / 2
    fused2 = (p_img[:, 3:].sum(1) + p_desc2) / 2
    frame = data["frame"]
    oof = pd.DataFrame({"sample_id": frame["sample_id"], "patient_id": frame["patient_id"], "y5": y5,
                        **{f"img_{k}": p_img[:, k] for k in range(5)}, **{f"fused_{k}": fused5[:, k] for k in range(5)},
                        "fused_bin": fused2, "desc_bin": p_desc2, **{f"desc_{k}": p_desc5[:, k] for k in range(5)}})
    out_dir.mkdir(parents=True, exist_ok=True)
    oof.to_csv(out_dir / f"oof_{name}.csv", index=False)
    res = {"recipe": name, "params": {k: v for k, v in r.items()}, "wall_s": wall, "cpu_s": cpu,
           "image": {k: [m[k] for m in fold_img] for k in ("auc", "qwk", "acc")},
           "fused": {k: [m[k] for m in fold_fused] for k in ("auc", "qwk", "acc")},
           "descriptors": {k: [m[k] for m in fold_desc] for k in ("auc", "qwk", "acc")},
           "pooled_image": metrics(y5, p_img, p_img[:, 3:].sum(1)), "pooled_fused": metrics(y5, fused5, fused2)}
    if cams:
        arr = np.array(cams, dtype=float)
        mal = y5[arr[:, 0].astype(int)] >= 3
        res["cam"] = {"mean_cam_in_mask_3mm": float(np.nanmean(arr[:, 1])), "pointing_game_3mm": float(arr[:, 2].mean()),
                      "flat_level_3mm": float(arr[:, 3].mean()), "n": len(arr),
                      "malignant_cam_in_mask_3mm": float(np.nanmean(arr[mal, 1])),
                      "malignant_pointing_3mm": float(arr[mal, 2].mean())}
    print(f"{name}: IMAGE {summarise(fold_img)} | FUSED {summarise(fold_fused)} | DESC {summarise(fold_desc)} "
          f"| cam {res.get('cam')} | wall {wall:.0f} s, CPU {cpu:.0f} s", flush=True)
    with open(out_dir / "results.jsonl", "a") as fh:
        fh.write(json.dumps(res) + "\n")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/work/scratch/data/voi")
    ap.add_argument("--splits", default="/work/scratch/runs/voi-multiclass", help="a run folder with splits/")
    ap.add_argument("--recipes", default="r32", help="comma-separated names of RECIPES")
    ap.add_argument("--set", default="", help="override params, e.g. epochs=10,lr=0.002")
    ap.add_argument("--out", default="/work/scratch/cnn/bench")
    ap.add_argument("--no-cam", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = SliceDataset(args.data).view("nodule")
    frame = ds.frame.reset_index(drop=True)
    slices = load_slices(ds, "context")
    data = {"frame": frame, "slices": slices, "y5": frame["malignancy"].astype(int).to_numpy() - 1,
            "desc": tabular_features(slices, "descriptors")}
    splits = load_splits(args.splits, frame)
    overrides = {}
    for kv in filter(None, args.set.split(",")):
        k, v = kv.split("=")
        overrides[k] = type(BASE[k])(v) if not isinstance(BASE[k], bool) else v.lower() in ("1", "true")
    print(f"{len(frame)} samples, {frame['patient_id'].nunique()} patients, {len(splits)} folds from {args.splits}; "
          f"threads {args.threads}, pid {os.getpid()}", flush=True)
    for name in args.recipes.split(","):
        r = {**BASE, **RECIPES[name], **overrides}
        tag = name + ("" if not overrides else "+" + args.set.replace("=", "").replace(",", "+"))
        run_recipe(tag, r, data, splits, Path(args.out), cam=not args.no_cam)
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
