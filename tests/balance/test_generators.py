"""The two generators (`balance.cgan`, `balance.diffusion`) behind one interface (`balance.generator`), each held
to the same tests: shapes and state after fit, 2.5D stacks, determinism and save/load, class conditioning on
the phantom, and clear errors."""

import numpy as np
import pytest

from ctnodule.balance.cgan import ConditionalGAN
from ctnodule.balance.diffusion import ConditionalDiffusion
from ctnodule.errors import ConfigError, RunError

#: per generator: the class, a tiny network for fast tests, the settings of the phantom conditioning test, a
#: train_size it refuses, the word its checkpoint errors use, the save/load tolerance and how many history rows
#: two epochs leave (None: the diffusion model logs by steps)
SPECS = {
    "cgan": {"cls": ConditionalGAN, "tiny": {"batch_size": 16, "width": 8, "z_dim": 16},
             "phantom": {"epochs": 60, "batch_size": 16, "width": 8, "z_dim": 16, "train_size": 16},
             "bad_train_size": {"train_size": 12}, "word": "cGAN", "atol": 1e-6, "history": 2},
    "diffusion": {"cls": ConditionalDiffusion, "tiny": {"batch_size": 16, "width": 8, "mults": (1, 2), "sample_steps": 4},
                  "phantom": {"epochs": 30, "batch_size": 16, "width": 8, "mults": (1, 2), "train_size": 16,
                              "sample_steps": 10},
                  "bad_train_size": {"train_size": 12, "mults": (1, 2, 2, 2)}, "word": "diffusion", "atol": 1e-5,
                  "history": None},
}


def _blobs(n=48, size=16, seed=0):
    """Honestly generated grey images: a bright disc whose radius depends on the class, on a dark field."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    rr, cc = np.mgrid[:size, :size] - (size - 1) / 2
    radius = (2 + 2 * y)[:, None, None]
    masks = (np.hypot(rr, cc)[None] < radius).astype(np.uint8)
    x = masks * 0.8 + rng.random((n, size, size)) * 0.1
    return x.astype(np.float32), y, masks


@pytest.fixture(scope="module", params=sorted(SPECS))
def fitted(request):
    spec = SPECS[request.param]
    x, y, masks = _blobs()
    return spec, spec["cls"](epochs=2, seed=0, **spec["tiny"]).fit(x, y, masks)


def test_fit_records_state_and_sample_has_right_shapes(fitted):
    spec, model = fitted
    assert model.n_classes_ == 3 and model.image_size_ == 16 and model.model_size_ == 16 and model.has_mask_
    assert model.history_ and all(np.isfinite(list(h.values())).all() for h in model.history_)
    if spec["history"] is not None:
        assert len(model.history_) == spec["history"]
    s = model.sample(5, seed=1)
    assert s.images.shape == (15, 1, 16, 16) and s.images.dtype == np.float32
    assert s.masks.shape == (15, 16, 16) and s.masks.dtype == np.uint8 and set(np.unique(s.masks)) <= {0, 1}
    assert s.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert s.images.min() >= 0.0 and s.images.max() <= 1.0
    s2 = model.sample({2: 3}, seed=1)
    assert s2.images.shape[0] == 3 and (s2.labels == 2).all()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_multichannel_stacks_are_generated_jointly_and_masks_are_optional(name):
    spec = SPECS[name]
    x, y, _ = _blobs(size=32)
    stack = np.stack([x, x[::-1], x], axis=1)  # three different channels, like a 2.5D context stack
    model = spec["cls"](epochs=1, train_size=16, **spec["tiny"]).fit(stack, y)
    s = model.sample(2)
    assert s.images.shape == (6, 3, 32, 32) and s.masks is None  # drawn at 16 px, resampled to the input's 32


def test_training_and_sampling_are_deterministic_with_a_seed(fitted, tmp_path):
    spec, model = fitted
    x, y, masks = _blobs()
    again = spec["cls"](epochs=2, seed=0, **spec["tiny"]).fit(x, y, masks)
    a = model.sample(4, seed=7)
    np.testing.assert_array_equal(again.sample(4, seed=7).images, a.images)
    np.testing.assert_array_equal(model.sample(4, seed=7).masks, a.masks)
    assert not np.array_equal(a.images, model.sample(4, seed=8).images)
    other = spec["cls"](epochs=2, seed=1, **spec["tiny"]).fit(x, y, masks)
    assert not np.array_equal(other.sample(4, seed=7).images, a.images)
    loaded = spec["cls"].load(model.save(tmp_path / "generator.pt"))
    np.testing.assert_allclose(loaded.sample(4, seed=7).images, a.images, atol=spec["atol"])
    assert loaded.get_params() == model.get_params() and loaded.has_mask_


@pytest.mark.parametrize("name", sorted(SPECS))
def test_generated_samples_carry_their_class_on_the_phantom(name, phantom):
    """A classifier trained on REAL phantom crops (benign 1-3 vs malignant 4-5) tells the generated samples'
    classes apart: the class conditioning works (a tiny network, a few CPU seconds)."""
    import torch
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from ctnodule.data.dataset import SliceDataset
    from ctnodule.preprocess import Pipeline, PreprocessConfig

    ds = SliceDataset(phantom).view("nodule")
    slices = list(ds)
    pipe = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(slices)
    processed = [pipe.transform(s) for s in slices]
    x = np.stack([p.array for p in processed]).astype(np.float32)
    masks = np.stack([p.mask for p in processed])
    y = ds.labels("multiclass")

    def pooled(images):  # 8 x 8 average-pooled pixels: enough to see a nodule's size and brightness
        return F.avg_pool2d(torch.from_numpy(images.reshape(-1, 1, 64, 64)), 8).flatten(1).numpy()

    clf = LogisticRegression(max_iter=2000).fit(pooled(x), y >= 3)
    model = SPECS[name]["cls"](seed=0, **SPECS[name]["phantom"]).fit(x, y, masks)
    s = model.sample(20, seed=1)
    auc = roc_auc_score(s.labels >= 3, clf.predict_proba(pooled(s.images))[:, 1])
    assert auc > 0.8, f"generated malignant vs benign samples are not told apart (AUC {auc:.2f}; chance 0.5)"
    area = s.masks.sum(axis=(1, 2))
    assert area[s.labels == 4].mean() > area[s.labels <= 2].mean()  # generated masks grow with the score


@pytest.mark.parametrize("name", sorted(SPECS))
def test_bad_inputs_are_clear_errors(name, tmp_path):
    spec = SPECS[name]
    cls = spec["cls"]
    x, y, masks = _blobs()
    with pytest.raises(ConfigError, match="power-of-two"):
        cls(epochs=1).fit(x[:, :, :12], y)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        cls(epochs=1).fit(x * 300 - 1000, y)
    with pytest.raises(ConfigError, match="masks must have shape"):
        cls(epochs=1).fit(x, y, masks[:, :8])
    with pytest.raises(ConfigError, match="train_size"):
        cls(epochs=1, **spec["bad_train_size"]).fit(x, y)
    with pytest.raises(ConfigError, match="not fitted"):
        cls().sample(2)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match=f"{spec['word']} checkpoint"):
        cls.load(tmp_path / "bad.pt")
