"""`benchmark(data, out, backbones)`: the seed's tables 3/4 done properly.

Every backbone x every view the dataset has x both tasks is trained with the same preset and the same
patient-grouped k-fold splits; each cell of the table is the CV mean ± sd over folds. Each configuration
is a normal run folder under `out/runs/`, so any cell can be opened, evaluated or explained, and a
re-run with the same options reuses finished runs (`resume`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ctnodule.atomic import write_text
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.manifest import synthetic_info
from ctnodule.errors import DataError
from ctnodule.pages import synthetic_banner
from ctnodule.recipe import load_preset
from ctnodule.runfolder import RunPaths, read_metrics
from ctnodule.vocab import TASKS

DEFAULT_BACKBONES = ("efficientnet_lite0", "resnet18", "mobilenetv2_100", "efficientnet_b0")


def benchmark(data: str | Path, out: str | Path, backbones: Sequence[str] = DEFAULT_BACKBONES,
              preset: str = "default", folds: int = 5, tasks: Sequence[str] = TASKS,
              views: Sequence[str] | None = None, force: bool = False,
              log: Callable[[str], None] = print, **overrides) -> tuple[Path, list[dict]]:
    """Train every configuration, write `out/benchmark.md` and `out/benchmark.html`; returns (out, results)."""
    from ctnodule.studies.pages import benchmark_table
    from ctnodule.workflow import train_and_report

    ds = SliceDataset(data)
    present = [v for v in ("nodule", "full") if (ds.frame["view"] == v).any()]
    views = [v for v in (views or present) if v in present]
    if not views:
        raise DataError("the dataset holds none of the requested views", ds.root)
    out = Path(out)
    results = []
    for view in views:
        for task in tasks:
            for backbone in backbones:
                cfg = load_preset(preset, view=view, task=task, backbone=backbone, folds=folds, **overrides)
                run = out / "runs" / f"{view}-{task}-{backbone}"
                done = RunPaths(run).metrics.is_file() and not force
                if not done:
                    log(f"== {view} / {task} / {backbone}")
                    train_and_report(ds, run, cfg, resume=run.exists() and not force, force=force, log=log)
                metrics = read_metrics(run)
                results.append({"backbone": backbone, "view": view, "task": task, "head": cfg.head,
                                "preset": preset, "folds": metrics["folds"],
                                "train_time_s": metrics.get("train_seconds")})
    markdown, page = benchmark_table(results)
    page.banner = synthetic_banner(synthetic_info(ds.frame))
    write_text(out / "benchmark.md", markdown)
    page.save(out / "benchmark.html")
    return out, results
