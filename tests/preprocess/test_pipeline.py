import numpy as np
import pytest
import yaml

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import ConfigError, DataError
from ctnodule.preprocess import LUNG_MASK, NotFittedError, Pipeline, PreprocessConfig

from .synth import chest_slice, nodule_crop


def _crops(rng, n=40):
    return [nodule_crop(rng, size=int(rng.choice([40, 44, 52])), spacing=float(rng.uniform(0.55, 0.9)),
                        radius_mm=float(rng.uniform(2, 8)), noise=float(rng.uniform(20, 100)), sid=f"s{i}")
            for i in range(n)]


@pytest.mark.parametrize("recipe", ["default", "seed"])
def test_nodule_pipeline_output_contract(rng, recipe):
    crops = _crops(rng)
    pipe = Pipeline.from_config(getattr(PreprocessConfig, recipe)("nodule")).fit(crops[:30])
    shapes = set()
    for s in crops[30:]:
        out = pipe.transform(s)
        assert out.array.dtype == np.float32 and 0 <= out.array.min() and out.array.max() <= 1
        assert out.mask is not None and out.mask.shape == out.array.shape
        assert "laplacian_variance" in out.meta and isinstance(out.meta["noise_keep"], bool)
        shapes.add(out.array.shape)
    assert len(shapes) == 1
    if recipe == "default":
        assert shapes == {(64, 64)} and out.spacing == pytest.approx((0.7, 0.7), rel=0.03)


def test_full_pipeline_masks_background_and_stays_512(rng):
    slices = [chest_slice(rng, sid=f"f{i}")[0] for i in range(3)]
    pipe = Pipeline.from_config(PreprocessConfig.default("full")).fit(slices[:2])
    out = pipe.transform(slices[2])
    lung = out.meta[LUNG_MASK]
    assert out.array.shape == (512, 512) and lung.shape == (512, 512)
    assert (out.array[lung == 0] == 0).all() and out.array[lung == 1].mean() > 0.05


def test_save_load_rebuilds_identical_pipeline(tmp_path, rng):
    crops = _crops(rng)
    pipe = Pipeline.from_config(PreprocessConfig.seed("nodule")).fit(crops)
    path = pipe.save(tmp_path / "pipeline.yaml")
    doc = yaml.safe_load(path.read_text())
    assert [s["name"] for s in doc["steps"]] == [s.name for s in pipe.steps] and doc["hash"] == pipe.hash
    twin = Pipeline.load(path)
    assert twin.hash == pipe.hash
    for s in crops[:5]:
        np.testing.assert_array_equal(twin.transform(s).array, pipe.transform(s).array)


def test_hash_follows_params_and_fitted_state(rng):
    crops = _crops(rng)
    a = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(crops[:20])
    b = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(crops[:20])
    c = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(crops[20:])
    assert a.hash == b.hash != c.hash
    cfg = PreprocessConfig.default("nodule")
    cfg.steps[1].params["gamma"] = 1.0
    assert Pipeline.from_config(cfg).fit(crops[:20]).hash != a.hash


def test_edited_saved_pipeline_is_refused(tmp_path, rng):
    path = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(_crops(rng)).save(tmp_path / "p.yaml")
    path.write_text(path.read_text().replace("gamma: 1.35", "gamma: 1.5"))
    with pytest.raises(ConfigError, match="edited"):
        Pipeline.load(path)


def test_unfitted_pipeline_says_to_fit(rng):
    with pytest.raises(NotFittedError, match="Pipeline.fit"):
        Pipeline.from_config(PreprocessConfig.default("nodule")).transform(nodule_crop(rng))


def test_missing_window_step_is_caught_not_a_silent_hu_output(rng):
    cfg = PreprocessConfig.default("nodule")
    cfg.steps = [s for s in cfg.steps if s.name in ("size",)]
    with pytest.raises(ConfigError, match="window"):
        Pipeline.from_config(cfg).transform(nodule_crop(rng))


def test_transform_many_in_parallel_equals_serial(rng):
    crops = _crops(rng, 24)
    pipe = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(crops)
    serial = [pipe.transform(s) for s in crops]
    parallel = list(pipe.transform_many(crops, workers=2, chunksize=4))
    assert [p.meta["sample_id"] for p in parallel] == [s.meta["sample_id"] for s in serial]
    for p, s in zip(parallel, serial):
        np.testing.assert_array_equal(p.array, s.array)


def test_keep_mask_and_view_check_on_a_dataset(small_dataset):
    ds = SliceDataset(small_dataset)
    nodules = ds.view("nodule")
    pipe = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(nodules)
    keep = pipe.keep_mask(nodules)
    assert keep.dtype == bool and keep.shape == (len(nodules),) and 0 < keep.sum() < len(nodules)
    report = pipe.filter_report(nodules)
    assert (report.loc[~report["keep"], "laplacian_variance"] > pipe.steps[3].threshold_).all()
    with pytest.raises(DataError, match="view"):
        pipe.keep_mask(ds)
