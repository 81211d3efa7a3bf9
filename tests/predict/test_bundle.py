"""The bundle runtime imports no torch, and its numpy head equals scikit-learn's logistic regression."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ctnodule.predict.bundle import apply_head


def test_predicting_with_a_bundle_never_imports_torch(phantom_bundle, phantom, tmp_path):
    code = (  # the whole CLI path: `ctnodule predict BUNDLE DATA`
        "import sys\n"
        "from ctnodule.cli import main\n"
        f"main(['predict', {str(phantom_bundle)!r}, {str(phantom)!r}, '--out', {str(tmp_path / 'p.csv')!r}])\n"
        "print('torch' in sys.modules)\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "p.csv").is_file()


@pytest.mark.parametrize("n_classes", [2, 5])
def test_numpy_head_equals_scikit_learn(n_classes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(n_classes)
    X = rng.normal(size=(120, 6))
    y = np.arange(120) % n_classes
    y[:5] = 0  # class 0 more frequent; every class present
    sc = StandardScaler().fit(X)
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(X), y)
    head = {"n_classes": n_classes, "image": {"n_features": 0, "steps": []},
            "tabular": {"names": [f"d{i}" for i in range(6)], "median": [0.0] * 6, "mean": [0.0] * 6, "sd": [1.0] * 6},
            "scaler": {"mean": sc.mean_.tolist(), "scale": sc.scale_.tolist()},
            "classifier": {"coef": lr.coef_.tolist(), "intercept": lr.intercept_.tolist(),
                           "classes": lr.classes_.tolist()}}
    np.testing.assert_allclose(apply_head(head, None, X), lr.predict_proba(sc.transform(X)), atol=1e-12)
