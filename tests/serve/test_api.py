"""Every endpoint of `ctnodule serve` (starlette's TestClient), good and bad inputs: the page, scans by
path / upload / phantom, slices, the click-to-prediction, the out-of-fold cases, the run, and the errors
(path traversal, oversize and broken uploads, unknown ids, internal errors without traceback)."""

from __future__ import annotations

import io
import re
import zipfile

import cv2
import numpy as np
import pytest

from ctnodule.serve import scans
from ctnodule.serve.app import STATIC

from .conftest import CROP

EXTERNAL = re.compile(r"(?:https?:)?//(?!127\.0\.0\.1|localhost)[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def test_the_page_and_its_files_reference_nothing_outside_this_server(client):
    page = client.get("/")
    assert page.status_code == 200 and "ctnodule viewer" in page.text
    texts = [page.text]
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', page.text):
        if ref.startswith("data:"):
            continue
        r = client.get("/" + ref)
        assert r.status_code == 200, ref
        texts.append(r.text)
    assert {p.name for p in STATIC.iterdir()} == {"index.html", "app.js", "style.css"}
    for text in texts:
        assert not EXTERNAL.search(text), EXTERNAL.search(text)[0]


def test_info_run_summary_and_model_card(client, serve_run):
    info = client.get("/api/info").json()
    run = info["run"]
    assert run["name"] == serve_run.name and run["recipe"]["task"] == "multiclass"
    assert run["class_names"] == ["1", "2", "3", "4", "5"]
    assert {m["name"] for m in run["metrics"]} >= {"qwk", "accuracy", "ece"}
    assert run["banner"] and "SYNTHETIC" in run["banner"]
    assert info["dataset"] is True and len(info["roots"]) == 1
    card = client.get("/run/report.html")
    assert card.status_code == 200 and "<html" in card.text.lower()
    figure = next(f for f in re.findall(r'src="figures/([^"]+)"', card.text))
    assert client.get(f"/run/figures/{figure}").headers["content-type"] == "image/png"
    assert client.get("/run/figures/../config.yaml").status_code == 404


def test_phantom_scan_and_its_slices(client, serve_app, ct_volume):
    r = client.post("/api/scans/phantom", json={"seed": 0})
    assert r.status_code == 201
    info = r.json()
    volume, nodules = ct_volume
    assert info["shape"] == list(volume.shape_ijk) and info["synthetic"] is True
    assert [c["k"] for c in info["candidates"]] == [c["k"] for c in nodules]
    assert len(info["z_mm"]) == volume.hu.shape[0] and info["flip_x"] is False
    k = round(nodules[0]["k"])
    raw = client.get(f"/api/scans/{info['id']}/slices/{k}")
    assert raw.headers["content-type"] == "application/octet-stream"
    assert np.array_equal(np.frombuffer(raw.content, "<i2").reshape(volume.hu.shape[1:]), volume.hu[k])
    assert client.get(f"/api/scans/{info['id']}").json()["id"] == info["id"]
    assert client.get(f"/api/scans/{info['id']}/slices/{volume.hu.shape[0]}").status_code == 404
    assert client.get("/api/scans/nope/slices/0").json() == {
        "error": "no such scan (scans are kept in memory; open it again)"}
    assert client.post("/api/scans/phantom", json={"seed": -1}).status_code == 400


@pytest.fixture
def phantom_id(serve_app, ct_volume) -> str:
    """The phantom CT put straight into the app's scan store (the endpoint is tested above; the store keeps
    the last 3 scans only)."""
    volume, nodules = ct_volume
    return serve_app.state.scans.add("phantom", volume, synthetic=True, candidates=nodules).id


def test_click_segments_predicts_and_explains_like_predict_on_a_ct(client, phantom_id, ct_volume, serve_run,
                                                                   ct_root):
    from ctnodule.predict.run import load_run
    from ctnodule.predict.volume import predict_volume

    _, nodules = ct_volume
    c = nodules[2]
    r = client.post(f"/api/scans/{phantom_id}/nodule", json={"i": c["i"], "j": c["j"], "k": c["k"]})
    assert r.status_code == 200, r.text
    res = r.json()
    p = np.array([x["p"] for x in res["classes"]])
    assert [x["name"] for x in res["classes"]] == ["1", "2", "3", "4", "5"]
    assert p.sum() == pytest.approx(1, abs=1e-5) and res["predicted"] == str(int(p.argmax()) + 1)
    assert res["p_malignant"] == pytest.approx(p[3:].sum()) and res["expected_rating"] == pytest.approx(p @ np.arange(1, 6))
    assert "out-of-fold" in res["calibration_note"]
    assert res["diameter_mm"] == pytest.approx(c["drawn_diameter_mm"], rel=0.2)
    assert res["segmenter"] == "classical"  # the served run has no learned segmenter
    # the outline runs round the click on the decision slice
    k = res["slice_index"]
    poly = np.array(res["outline"][str(k)][0], np.float32)
    assert abs(k - c["k"]) <= 3
    assert cv2.pointPolygonTest(poly, (c["i"] + 0.5, c["j"] + 0.5), False) >= 0
    heat = res["heatmap"]
    assert heat is not None and heat["k"] == k, res["heatmap_note"]
    png = cv2.imdecode(np.frombuffer(_data_url(heat["png"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.shape == (heat["height"], heat["width"], 4) and png[..., 3].max() > 0
    assert heat["i0"] <= c["i"] < heat["i0"] + heat["width"] and heat["j0"] <= c["j"] < heat["j0"] + heat["height"]
    # the same nodule through `ctnodule predict FILE --at-voxel` (the phantom CT saved as NIfTI) agrees
    predictor = load_run(serve_run)
    at = f"{c['i'] - CROP[2].start},{c['j'] - CROP[1].start},{c['k']}"
    rows, _ = predict_volume(predictor, ct_root / "phantom.nii.gz", at_voxels=[at])
    assert np.allclose(rows.filter(like="proba_").to_numpy()[0], p, atol=1e-4)


@pytest.mark.parametrize("body, status, message", [
    ({"i": 20, "j": 20, "k": 5}, 400, "in air"),
    ({"i": 5000, "j": 20, "k": 5}, 400, "outside the scan"),
    ({"i": "x", "j": 20, "k": 5}, 400, "give the voxel"),
    ({"j": 20, "k": 5}, 400, "give the voxel"),
    ([1, 2, 3], 400, "JSON object"),
])
def test_bad_clicks_are_clear_json_errors(client, phantom_id, body, status, message):
    r = client.post(f"/api/scans/{phantom_id}/nodule", json=body)
    assert r.status_code == status and message in r.json()["error"], r.text


def test_not_json_is_refused(client, phantom_id):
    r = client.post(f"/api/scans/{phantom_id}/nodule", content=b"i=1", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and r.json() == {"error": "the request body must be a JSON object"}


@pytest.mark.parametrize("name", ["phantom.nii.gz", "phantom.nrrd", "series"])
def test_open_by_path_under_the_root(client, ct_root, ct_volume, name):
    r = client.post("/api/scans/open", json={"path": str(ct_root / name)})
    assert r.status_code == 201, r.text
    volume, _ = ct_volume
    info = r.json()
    assert info["shape"] == [320, 320, volume.hu.shape[0]]
    k = volume.hu.shape[0] // 2
    got = np.frombuffer(client.get(f"/api/scans/{info['id']}/slices/{k}").content, "<i2").reshape(320, 320)
    if info["flip_x"]:  # NIfTI stores RAS: the array's columns run the other way
        got = got[:, ::-1]
    if info["flip_y"]:
        got = got[::-1]
    assert np.array_equal(got, volume.hu[CROP][k])
    # relative to the root works too
    assert client.post("/api/scans/open", json={"path": name}).status_code == 201


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/passwd", "outside/passwd", "outside",
                                  "series/../../"])
def test_paths_outside_the_roots_are_refused(client, ct_root, path):
    r = client.post("/api/scans/open", json={"path": path})
    assert r.status_code == 403 and "outside the allowed roots" in r.json()["error"]
    assert client.get("/api/browse", params={"path": path}).status_code == 403


def test_no_root_means_no_path_at_all(tmp_path):
    with pytest.raises(scans.Forbidden, match="--root"):
        scans.inside_roots(str(tmp_path), [])


def test_browse_lists_volumes_and_series(client, ct_root):
    top = client.get("/api/browse").json()
    assert [e["path"] for e in top["entries"]] == [str(ct_root.resolve())]
    listing = client.get("/api/browse", params={"path": str(ct_root)}).json()
    names = {e["name"]: e for e in listing["entries"]}
    assert {"phantom.nii.gz", "phantom.nrrd", "series"} <= set(names) and names["series"]["dicom"] is True
    assert client.get("/api/browse", params={"path": str(ct_root / "phantom.nrrd")}).status_code == 400


@pytest.mark.parametrize("name", ["phantom.nii.gz", "phantom.nrrd"])
def test_upload_a_volume(client, ct_root, name):
    r = client.post("/api/scans/upload", params={"name": name}, content=(ct_root / name).read_bytes())
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name and r.json()["shape"][:2] == [320, 320]


def test_upload_a_zipped_dicom_series(client, zipped_series, ct_volume):
    r = client.post("/api/scans/upload", params={"name": "series.zip"}, content=zipped_series.read_bytes())
    assert r.status_code == 201, r.text
    assert r.json()["series_uid"] == "1.2.826.0.1.99" and r.json()["shape"] == [320, 320, ct_volume[0].hu.shape[0]]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("name, body, status, message", [
    ("scan.exe", b"MZ", 400, "upload a NIfTI"),
    ("", b"x", 400, "upload a NIfTI"),
    ("scan.nii.gz", b"not a nifti at all", 400, "not a readable NIfTI"),
    ("scan.nrrd", b"NRRD0004\ngarbage", 400, "not a readable NRRD"),
    ("scan.zip", b"PK broken", 400, "not a readable zip"),
    ("scan.zip", _zip({"../../evil.dcm": b"x"}), 400, "outside the archive"),
    ("scan.zip", _zip({"/abs/evil.dcm": b"x"}), 400, "outside the archive"),
    ("scan.zip", _zip({"a/1.dcm": b"x", "b/1.dcm": b"x"}), 400, "2 folders"),
    ("scan.zip", _zip({"a/1.dcm": b"not dicom"}), 400, "unreadable DICOM"),
    ("scan.nii", b"", 400, "empty upload"),
])
def test_bad_uploads_are_clear_json_errors_naming_the_upload_only(client, name, body, status, message):
    r = client.post("/api/scans/upload", params={"name": name}, content=body)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert "ctnodule-upload" not in r.text and "/tmp" not in r.text and "Traceback" not in r.text


def test_uploads_over_the_limit_are_refused(client):
    r = client.post("/api/scans/upload", params={"name": "big.nii"}, content=b"\0" * (21 * 2**20))
    assert r.status_code == 413 and "20 MB limit" in r.json()["error"]

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(21):
            yield b"\0" * 2**20

    r = client.post("/api/scans/upload", params={"name": "big.nii"}, content=chunks())
    assert r.status_code == 413


def test_a_zip_bomb_is_refused_before_unpacking(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("s/1.dcm", b"\0" * (3 * 2**20))
    with pytest.raises(scans.DataError, match="unpacks to 3 MB"):
        scans.unzip_series(path, tmp_path / "out", 2**20)
    assert not (tmp_path / "out").exists()


def test_cases_table_with_readers(client, serve_run, serve_data):
    import pandas as pd

    table = client.get("/api/cases").json()
    oof = pd.read_csv(serve_run / "oof_predictions.csv")
    assert len(table["rows"]) == len(oof) and table["has_readers"] is True and table["missing"] == 0
    manifest = pd.read_csv(serve_data / "manifest.csv").set_index("sample_id")
    for row in table["rows"][:10]:
        assert row["readers"] == [int(x) for x in manifest.loc[row["sample_id"], "reader_ratings"].split(";")]
        assert row["disagreement"] == max(row["readers"]) - min(row["readers"])
        assert row["correct"] == (row["y_true"] == row["y_pred"])
    assert len({r["disagreement"] for r in table["rows"]}) >= 3


def test_case_detail_and_images(client):
    rows = client.get("/api/cases").json()["rows"]
    sid = rows[0]["sample_id"]
    d = client.get(f"/api/cases/{sid}").json()
    assert d["sample_id"] == sid and len(d["classes"]) == 5 and d["slices"] == ["slice-0", "slice-1", "slice-2"]
    assert d["has_mask"] is True and d["readers"] == rows[0]["readers"]
    kinds = ["thumb", *d["slices"], "mask"] + (["heat"] if d["has_heatmap"] else [])
    for kind in kinds:
        r = client.get(f"/api/cases/{sid}/{kind}.png")
        assert r.headers["content-type"] == "image/png", kind
        img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 8, kind
    assert client.get("/api/cases/NOPE").status_code == 404
    assert client.get(f"/api/cases/{sid}/secret.png").status_code == 404
    assert client.get("/api/cases/NOPE/thumb.png").json()["error"].startswith("not found")


def test_an_internal_error_is_json_without_a_traceback(client, serve_app, monkeypatch):
    def broken():
        raise RuntimeError("secret detail /home/someone/patient-42")

    monkeypatch.setattr(serve_app.state.cases, "table", broken)
    r = client.get("/api/cases")
    assert r.status_code == 500 and r.json() == {
        "error": "internal error while serving this request; the server's log has the details"}


def test_other_host_headers_are_refused(client):
    assert client.get("/api/info", headers={"host": "attacker.example"}).status_code == 400


def test_the_model_is_loaded_once_per_process(client, monkeypatch, phantom_id, ct_volume):
    import ctnodule.predict.run as run_module

    calls = []
    monkeypatch.setattr(run_module, "load_run", lambda *a, **k: calls.append(a))
    c = ct_volume[1][1]
    for _ in range(2):
        assert client.post(f"/api/scans/{phantom_id}/nodule", json={"i": c["i"], "j": c["j"], "k": c["k"]}).status_code == 200
    sid = client.get("/api/cases").json()["rows"][1]["sample_id"]
    assert client.get(f"/api/cases/{sid}").status_code == 200
    assert calls == []


def test_serve_binds_loopback_by_default_and_warns_otherwise(serve_run, monkeypatch, capsys):
    import uvicorn

    from ctnodule.cli import main

    seen = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.append(kw))
    main(["serve", str(serve_run)])
    assert seen[-1]["host"] == "127.0.0.1" and seen[-1]["port"] == 8000
    assert "warning" not in capsys.readouterr().err
    main(["serve", str(serve_run), "--host", "0.0.0.0", "--port", "8123"])
    assert seen[-1]["host"] == "0.0.0.0"
    assert "warning: listening on 0.0.0.0" in capsys.readouterr().err


def _data_url(url: str) -> bytes:
    import base64

    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    return base64.b64decode(data)
