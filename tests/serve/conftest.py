"""One small world for the viewer's tests, built once per session: a tiny 5-class run on the phantom, the
phantom dataset with reader ratings added, a phantom CT saved as NIfTI, NRRD and a DICOM series under an
allowed root, and the app over all of it.

The run checks the machinery, not accuracy (random-init resnet18, frozen, MLP head on the descriptors).
The reader ratings are invented for the test (the phantom has no readers): the dataset view must show what
a manifest holds, whatever it holds.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import private_cache

from ctnodule.data.volume import Volume

#: the sub-volume of the phantom CT written to files (small enough to upload in a test)
CROP = (slice(None), slice(96, 416), slice(96, 416))


@pytest.fixture(scope="session")
def serve_run(phantom, tmp_path_factory) -> Path:
    from ctnodule.recipe import load_preset
    from ctnodule.workflow import train_and_report

    out = tmp_path_factory.mktemp("serve-run") / "five-class"
    cfg = load_preset("default", task="multiclass", backbone="resnet18", weights="none", folds=2, epochs=1,
                      tta=False, tabular="descriptors", head="mlp", freeze_backbone=True, segmenter="classical")
    with private_cache(tmp_path_factory.mktemp("serve-cache")), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        train_and_report(phantom, out, cfg, log=lambda m: None)
    return out


@pytest.fixture(scope="session")
def serve_data(phantom, tmp_path_factory) -> Path:
    """The phantom dataset (files linked, not copied) with a `reader_ratings` column: the label twice and a
    third rating off by a deterministic 0..3, so the disagreement filter has rows at several levels."""
    out = tmp_path_factory.mktemp("serve-data") / "phantom-readers"
    out.mkdir()
    for entry in phantom.iterdir():
        if entry.name != "manifest.csv":
            (out / entry.name).symlink_to(entry)
    frame = pd.read_csv(phantom / "manifest.csv", dtype=str, keep_default_na=False)
    m = frame["malignancy"].astype(int).to_numpy()
    spread = np.arange(len(frame)) % 4
    frame["reader_ratings"] = [f"{a};{a};{int(np.clip(a + s if a + s <= 5 else a - s, 1, 5))}"
                               for a, s in zip(m, spread)]
    frame["n_readers"] = "3"
    frame.to_csv(out / "manifest.csv", index=False)
    return out


@pytest.fixture(scope="session")
def ct_volume() -> tuple[Volume, list[dict]]:
    """The viewer's phantom CT (the one `POST /api/scans/phantom` makes) and its nodules."""
    from ctnodule.serve.scans import phantom_scan

    return phantom_scan(seed=0)


@pytest.fixture(scope="session")
def ct_root(ct_volume, tmp_path_factory) -> Path:
    """An allowed root holding the phantom CT (cropped) as NIfTI, NRRD and a DICOM series, and a link
    that points out of the root."""
    import nibabel as nib
    import nrrd

    from ctnodule.data.series import write_series

    volume, _ = ct_volume
    root = tmp_path_factory.mktemp("ct-root")
    hu = volume.hu[CROP]
    origin = volume.to_world((CROP[2].start, CROP[1].start, 0))
    sp = volume.spacing
    affine = np.diag([-sp[0], -sp[1], sp[2], 1.0])  # RAS
    affine[:3, 3] = [-origin[0], -origin[1], origin[2]]
    nib.save(nib.Nifti1Image(np.transpose(hu, (2, 1, 0)), affine), root / "phantom.nii.gz")
    nrrd.write(str(root / "phantom.nrrd"), np.transpose(hu, (2, 1, 0)),
               {"space": "left-posterior-superior", "space directions": np.diag(sp).tolist(),
                "space origin": origin.tolist()}, index_order="F")
    write_series(root / "series", hu, sp, tuple(origin), series_uid="1.2.826.0.1.99")
    (root / "outside").symlink_to(Path("/etc"))
    return root


@pytest.fixture(scope="session")
def serve_app(serve_run, serve_data, ct_root):
    from ctnodule.serve.app import create_app

    return create_app(serve_run, data=serve_data, roots=[ct_root], max_upload_mb=20,
                      allowed_hosts=["127.0.0.1", "localhost"])


@pytest.fixture(scope="session")
def client(serve_app):
    from starlette.testclient import TestClient

    with TestClient(serve_app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def zipped_series(ct_root, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zips") / "series.zip"
    shutil.make_archive(str(path.with_suffix("")), "zip", ct_root, "series")
    return path
