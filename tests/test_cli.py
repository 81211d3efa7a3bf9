"""The CLI's contract: user errors are one line on stderr with exit code 2, no traceback; help works."""

from __future__ import annotations

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


def test_the_cli_starts_without_torch_or_pandas():
    """`ctnodule --help` must stay fast (bench/bench_startup.py times it): listing commands loads no heavy library."""
    import subprocess
    import sys

    code = ("import sys, ctnodule.cli; print(sorted(m for m in ('torch', 'pandas', 'scipy', 'sklearn', 'cv2', "
            "'matplotlib', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
