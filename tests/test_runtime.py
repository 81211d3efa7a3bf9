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


@pytest.mark.parametrize("command", ["predict", "evaluate", "explain", "run"])
def test_commands_check_the_device_first(command, tmp_path, capsys):
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    args = {"predict": [str(tmp_path), "--out", str(tmp_path / "p.csv")],
            "evaluate": [str(tmp_path), "--out", str(tmp_path / "e")],
            "explain": [str(tmp_path), "--out", str(tmp_path / "x")],
            "run": ["--out", str(tmp_path / "r")]}[command]
    with pytest.raises(SystemExit) as exc:  # the run (or data) folder does not exist either: the device is first
        main([command, str(tmp_path / "no-run"), *args, "--device", f"cuda:{n}"])
    assert exc.value.code == 3  # a CTNoduleError (cli.py: exit codes)
    err = capsys.readouterr().err
    assert "--device" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_bundle_checks_the_device_first_even_without_a_network(tmp_path, capsys):
    """A descriptors-only bundle runs no network, but `--device cuda` where onnxruntime has no CUDA is
    still refused (it would not run where asked), before the bundle folder is even looked at."""
    import onnxruntime as ort

    from ctnodule.predict.bundle import load_bundle

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ConfigError, match="--device cuda: this onnxruntime has no CUDA provider"):
        load_bundle(tmp_path / "no-bundle", device="cuda")
    with pytest.raises(ConfigError, match="expected cpu, cuda or cuda:N"):
        load_bundle(tmp_path / "no-bundle", device="gpu")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metadata.json").write_text("{}")  # looks like a bundle: `predict` takes the bundle path
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(tmp_path / "b"), str(tmp_path / "x.nrrd"), "--out", str(tmp_path / "p.csv"),
              "--device", "cuda"])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "no CUDA provider" in err and len(err.strip().splitlines()) == 1
