"""The training loop: learns, restores the best weights, checkpoints every epoch, resumes, refuses junk."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ctnodule.errors import RunError
from ctnodule.recipe import load_preset
from ctnodule.train.engine import Batches, fit, predict_logits


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2 * 4 * 4, 2)

    def forward(self, x, extra=None):
        return self.fc(x.flatten(1))


def _data(n: int, seed: int) -> Batches:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 2, 4, 4, generator=g) * 0.2 + y[:, None, None, None].float() * 0.8
    return Batches(x, y, None, views=False)


def _cfg(**kw):
    base = {"epochs": 6, "lr": 0.05, "batch_size": 16, "patience": 20, "tta": False, "augment": {"mode": "none"}}
    base.update(kw)
    return load_preset("default", **base)


def test_fit_learns_a_separable_problem_and_writes_history(tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    hist = fit(model, _data(64, 0), _data(32, 1), _cfg(), nn.CrossEntropyLoss(), tmp_path / "c.pt", fold=0,
               log=lambda m: None)
    assert [h["epoch"] for h in hist] == list(range(1, 7))
    assert set(hist[0]) == {"epoch", "fold", "train_loss", "val_loss", "train_acc", "val_acc", "lr"}
    assert hist[-1]["val_acc"] == 1.0 and hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert (tmp_path / "c.pt").is_file()
    val = _data(32, 1)
    best = min(h["val_loss"] for h in hist)
    restored = float(nn.functional.nll_loss(predict_logits(model, val, _cfg(), "cpu"), val.y))
    assert restored == pytest.approx(best, rel=1e-4)  # best weights restored, not the last


def test_resume_continues_from_the_last_epoch(tmp_path):
    ck = tmp_path / "c.pt"
    torch.manual_seed(0)
    first = fit(Tiny(), _data(64, 0), _data(32, 1), _cfg(epochs=3), nn.CrossEntropyLoss(), ck, 0, log=lambda m: None)
    torch.manual_seed(1)
    msgs = []
    both = fit(Tiny(), _data(64, 0), _data(32, 1), _cfg(epochs=5), nn.CrossEntropyLoss(), ck, 0, resume=True,
               log=msgs.append)
    assert "resuming after epoch 3" in msgs[0]
    assert [h["epoch"] for h in both] == [1, 2, 3, 4, 5] and both[:3] == first


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    ck = tmp_path / "c.pt"
    ck.write_bytes(b"\x00garbage")
    with pytest.raises(RunError, match="cannot resume"):
        fit(Tiny(), _data(8, 0), _data(8, 1), _cfg(epochs=1), nn.CrossEntropyLoss(), ck, 0, resume=True)


def test_early_stopping_stops_after_patience(tmp_path):
    torch.manual_seed(0)
    y = torch.randint(0, 2, (32,))
    noise = Batches(torch.rand(32, 2, 4, 4), y, None, views=False)  # labels unrelated to inputs
    hist = fit(Tiny(), noise, Batches(torch.rand(32, 2, 4, 4), y, None, views=False),
               _cfg(epochs=40, patience=3, lr=0.2), nn.CrossEntropyLoss(), tmp_path / "c.pt", 0, log=lambda m: None)
    assert len(hist) < 40
