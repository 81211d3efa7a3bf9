import numpy as np
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import ConfigError


@pytest.fixture(scope="module")
def synth(phantom, tmp_path_factory):
    from ctnodule.cli import main

    out = tmp_path_factory.mktemp("synth") / "ds"
    main(["synthesize", str(phantom), "--per-class", "3", "--out", str(out), "--epochs", "1"])
    return out


def test_synthesize_writes_a_marked_synthetic_dataset(synth):
    ds = SliceDataset(synth)
    frame = ds.frame
    assert len(ds) == 15 and sorted(frame["malignancy"].value_counts().to_dict().items()) == [(c, 3) for c in range(1, 6)]
    assert (frame["source"] == "diffusion").all() and (frame["synthetic"] == 1).all()
    assert frame["patient_id"].str.startswith("SYNTH-").all() and frame["patient_id"].is_unique
    s = ds[0]
    assert s.array.shape == (64, 64) and s.array.dtype == np.float32
    assert s.mask is not None and s.mask.shape == (64, 64)  # every synthetic sample carries its own mask
    assert 0.0 <= s.array.min() and s.array.max() <= 1.0
    assert s.spacing == pytest.approx((0.7, 0.7), rel=0.02)  # 0.7 mm/px up to whole-pixel rounding
    for name in ("report.html", "pipeline.yaml", "diffusion.pt", "figures/real_vs_synthetic.png",
                 "figures/synthetic_grid.png", "figures/nearest_real.png", "figures/size_by_class.png",
                 "figures/kid_by_class.png"):
        assert (synth / name).is_file(), name
    html = (synth / "report.html").read_text()
    for text in ("KID", "FID", "precision", "recall", "real A vs real B (reference)", "diameter mm"):
        assert text in html, text


def test_synthesize_refuses_the_full_view(phantom, tmp_path):
    from ctnodule.balance.synthesize import synthesize

    with pytest.raises(ConfigError, match="--view nodule"):
        synthesize(phantom, tmp_path / "x", 2, view="full")
    with pytest.raises(ConfigError, match="unknown generator 'vae'.*diffusion"):
        synthesize(phantom, tmp_path / "x", 2, generator="vae")


def test_real_vs_synthetic_names_the_generator():
    """The grid's synthetic half is titled by the generator that drew it (it said 'cGAN' for the diffusion model)."""
    import matplotlib

    matplotlib.use("Agg")
    from ctnodule.balance.figures import real_vs_synthetic

    rng = np.random.default_rng(0)
    images, labels = rng.random((10, 64, 64)).astype(np.float32), np.repeat([0, 1], 5)
    fig = real_vs_synthetic(images, labels, images, labels, ["benign", "malignant"], per_class=2,
                            generator="conditional diffusion model")
    titles = {ax.get_title(loc="left") for ax in fig.axes} - {""}
    assert titles == {"real", "synthetic (conditional diffusion model)"}
