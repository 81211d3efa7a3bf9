"""The CLI's contract: usage errors exit 2, data/config/run errors are one line on stderr with exit code 3
(no traceback), an interruption (Ctrl-C, SIGTERM) exits 130 after cleaning up; warnings are one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctnodule.cli import main


def test_help_lists_every_stage(capsys):
    main(["--help"])  # returns (exit code 0) instead of raising SystemExit
    out = capsys.readouterr().out
    for command in ("import", "explore", "preprocess", "train", "evaluate", "predict", "benchmark",
                    "synthesize", "balance-benchmark", "explain", "run"):
        assert command in out


def test_user_error_is_one_line_and_exit_code_3(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["explore", str(tmp_path / "nowhere"), "--out", str(tmp_path / "report")])
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and "dataset folder not found" in err
    assert "Traceback" not in err
    assert not (tmp_path / "report").exists()


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--no-such-option"])
    assert info.value.code == 2
    assert "no-such-option" in capsys.readouterr().err


def test_version_and_commands_in_pipeline_order(capsys):
    import click
    import typer

    import ctnodule
    from ctnodule.cli import PIPELINE, app

    main(["--version"])
    assert capsys.readouterr().out.strip() == f"ctnodule {ctnodule.__version__}"
    group = typer.main.get_group(app)
    assert group.list_commands(click.Context(group)) == list(PIPELINE)
    main(["--help"])
    out = capsys.readouterr().out
    positions = [out.index(f"│ {name} ") for name in PIPELINE]
    assert positions == sorted(positions)  # what a person reads: import first, run last


def test_run_writes_under_a_folder_named_after_the_data(monkeypatch, tmp_path):
    import ctnodule.workflow

    called = {}
    monkeypatch.setattr(ctnodule.workflow, "run_all", lambda data, out, **kw: called.setdefault("out", out))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lidc-voi").mkdir()
    main(["run", "lidc-voi"])
    assert called.pop("out") == Path("runs") / "lidc-voi"
    main(["run"])
    assert called.pop("out") == Path("runs") / "phantom"


def test_every_command_that_writes_takes_force_and_every_trainer_takes_device():
    import typer

    from ctnodule.cli import app

    group = typer.main.get_group(app)
    commands = {**group.commands, **{f"import {n}": c for n, c in group.commands["import"].commands.items()}}
    writes = set(commands) - {"import", "serve"}  # serve writes no file
    for name in writes:
        force = [p for p in commands[name].params if "--force" in p.opts]
        assert force and not force[0].secondary_opts, f"{name}: no --force flag"  # a flag, never --no-force
    for name in ("train", "predict", "evaluate", "explain", "benchmark", "balance-benchmark", "run"):
        assert "--device" in {o for p in commands[name].params for o in p.opts}, name


def test_messages_show_plain_numbers(monkeypatch, tmp_path, capsys):
    import numpy as np

    from ctnodule.data import explore
    from ctnodule.errors import DataError

    def failing(*args, **kwargs):
        raise DataError(f"class counts {[np.int64(6), np.float64(0.5)]}")

    monkeypatch.setattr(explore, "explore", failing)
    with pytest.raises(SystemExit):
        main(["explore", str(tmp_path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert "[6, 0.5]" in err and "np." not in err


def test_warnings_are_one_line_each_and_printed_once(monkeypatch, tmp_path, capsys):
    import warnings

    from ctnodule.data import explore

    def warns_twice(*args, **kwargs):
        for _ in range(2):
            warnings.warn("this model saw 3 slices;\n  single slices are repeated", UserWarning, stacklevel=2)
        return tmp_path / "report.html"

    monkeypatch.setattr(explore, "explore", warns_twice)
    with warnings.catch_warnings():
        main(["explore", str(tmp_path), "--out", str(tmp_path / "r")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == ["warning: this model saw 3 slices; single slices are repeated"]


def test_ctrl_c_in_train_says_how_to_resume(monkeypatch, phantom, tmp_path, capsys):
    from ctnodule import workflow

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "train_and_report", interrupted)
    with pytest.raises(SystemExit) as info:
        main(["train", str(phantom), "--out", str(tmp_path / "my run")])
    assert info.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and "my run" in err


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    """A SIGTERM'd import leaves neither its temporary folder nor a half dataset, and exits 130."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "ctnodule", "import", "synthetic", str(out), "--patients", "400"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob(".data.tmp-*/slices/*.nrrd")):  # wait until it is writing samples
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_cli_starts_without_torch_or_pandas():
    """`ctnodule --help` must stay fast (bench/bench_startup.py times it): listing commands loads no heavy library."""
    import subprocess
    import sys

    code = ("import sys, ctnodule.cli; print(sorted(m for m in ('torch', 'pandas', 'scipy', 'sklearn', 'cv2', "
            "'matplotlib', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
