"""`--device` is checked before any work: a misspelling, or a GPU that is not there, is one clear error."""

from __future__ import annotations

import pytest
import torch

from ctnodule.cli import main
from ctnodule.errors import ConfigError
from ctnodule.runtime import check_device


def test_cpu_passes_and_misspellings_fail():
    assert check_device("cpu") == "cpu"
    for bad in ("gpu", "cuda:x", "CPU", "cuda:"):
        with pytest.raises(ConfigError, match="expected cpu, cuda or cuda:N"):
            check_device(bad)


def test_a_gpu_that_is_not_there_is_refused():
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ConfigError, match=f"--device cuda:{n}: (no CUDA GPU|this machine has)"):
        check_device(f"cuda:{n}")
    assert check_device(f"cuda:{n}", torch_backend=False) == f"cuda:{n}"  # a bundle's session checks it


@pytest.mark.parametrize("command", ["predict", "evaluate", "explain"])
def test_commands_check_the_device_first(command, tmp_path, capsys):
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    args = {"predict": [str(tmp_path), "--out", str(tmp_path / "p.csv")],
            "evaluate": [str(tmp_path), "--out", str(tmp_path / "e")],
            "explain": [str(tmp_path), "--out", str(tmp_path / "x")]}[command]
    with pytest.raises(SystemExit) as exc:  # the run folder does not exist either: the device is checked first
        main([command, str(tmp_path / "no-run"), *args, "--device", f"cuda:{n}"])
    assert exc.value.code == 3  # a CTNoduleError (cli.py: exit codes)
    assert "--device" in capsys.readouterr().err
