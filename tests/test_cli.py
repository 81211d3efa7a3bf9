"""The CLI's contract: user errors are one line on stderr with exit code 2, no traceback; help works."""

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


def test_user_error_is_one_line_and_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["explore", str(tmp_path / "nowhere"), "--out", str(tmp_path / "report")])
    assert info.value.code == 2
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
    # predict/evaluate get --force with their refusal of an existing output (issue 11, item 2; other branch)
    writes = set(commands) - {"import", "predict", "evaluate"}
    for name in writes:
        force = [p for p in commands[name].params if "--force" in p.opts]
        assert force and not force[0].secondary_opts, f"{name}: no --force flag"  # a flag, never --no-force
    for name in ("train", "evaluate", "benchmark", "balance-benchmark", "run"):
        assert "--device" in {o for p in commands[name].params for o in p.opts}, name


def test_the_cli_starts_without_torch_or_pandas():
    """`ctnodule --help` must stay fast (bench/bench_startup.py times it): listing commands loads no heavy library."""
    import subprocess
    import sys

    code = ("import sys, ctnodule.cli; print(sorted(m for m in ('torch', 'pandas', 'scipy', 'sklearn', 'cv2', "
            "'matplotlib', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
