"""`HtmlReport`: the one way ctnodule writes an HTML page (explore, preprocess, train, explain, benchmark).

A report is a list of blocks (heading, paragraph, warning, table, figure) rendered through one jinja2
template. What every page must say is said here once: a `banner` for pages built from synthetic or
composite data, `nav` links back to the page's index (relative, computed when the page is saved, so a
report folder can be zipped, moved or served), "—" for a metric that has no value. Figures are saved as
PNG under `figures/` beside the page and linked relatively. The page is written atomically.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ctnodule.atomic import atomic_path, final_path, in_build, write_text

_TEMPLATE = jinja2.Environment(
    loader=jinja2.PackageLoader("ctnodule", "templates"), autoescape=jinja2.select_autoescape()
).get_template("page.html")

#: how a table shows a value that does not exist (NaN, None); the caption says why
MISSING = "—"


class HtmlReport:
    """Build a page block by block, then `save(path)`.

    `banner`: a sentence shown above everything in a coloured box (synthetic data; see `synthetic_banner`).
    `nav`: (label, page path) links shown at the top, e.g. ("ctnodule run index", out / "report.html");
    the paths are made relative to the saved page.
    """

    def __init__(self, title: str, subtitle: str = "", banner: str | None = None,
                 nav: Iterable[tuple[str, str | Path]] = ()):
        self.title = title
        self.subtitle = subtitle
        self.banner = banner
        self.nav = [(label, Path(target)) for label, target in nav]
        self.blocks: list[dict[str, Any]] = []
        self._figures: list[tuple[str, Any]] = []

    def heading(self, text: str, level: int = 2) -> HtmlReport:
        self.blocks.append({"kind": "heading", "text": text, "level": level})
        return self

    def paragraph(self, text: str) -> HtmlReport:
        self.blocks.append({"kind": "paragraph", "text": text})
        return self

    def warning(self, text: str) -> HtmlReport:
        """A paragraph in a red box: something that changes how every number on the page must be read."""
        self.blocks.append({"kind": "warning", "text": text})
        return self

    def html(self, markup: str) -> HtmlReport:
        """Add trusted markup built by ctnodule itself (links, lists); never user-supplied text."""
        self.blocks.append({"kind": "raw", "html": markup})
        return self

    def table(self, frame: pd.DataFrame, caption: str = "", float_format: str = "{:.3f}",
              links: Mapping[str, str | None] | None = None) -> HtmlReport:
        """A table; NaN/None cells show as "—". `links`: columns whose cells are relative links, each shown
        as the given text (None: the link itself); an empty cell stays empty."""
        links = {html.escape(str(c)): text for c, text in (links or {}).items() if c in frame.columns}
        shown = frame.rename(columns=lambda c: html.escape(str(c)))
        for col, text in links.items():
            shown[col] = [f'<a href="{html.escape(str(v))}">{html.escape(text or str(v))}</a>' if v else ""
                          for v in shown[col]]
        escape = {c: _escaped for c in shown.columns
                  if c not in links and not pd.api.types.is_numeric_dtype(shown[c])}
        body = shown.to_html(index=False, border=0, classes="table", escape=False, na_rep=MISSING,
                             formatters=escape, float_format=lambda v: float_format.format(v))
        self.blocks.append({"kind": "table", "html": body, "caption": caption})
        return self

    def figure(self, fig: Any, name: str, caption: str = "") -> HtmlReport:
        """Add a matplotlib figure (saved on `save`) or an existing PNG path, under a file-safe `name`."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        if not safe.endswith(".png"):
            safe += ".png"
        self._figures.append((safe, fig))
        self.blocks.append({"kind": "figure", "src": f"figures/{safe}", "caption": caption})
        return self

    def save(self, path: str | Path) -> Path:
        """Write the figures under `figures/` next to `path`, then the page; returns the page path."""
        import shutil

        import matplotlib.pyplot as plt

        path = Path(path)
        fig_dir = path.parent / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        for name, fig in self._figures:
            with atomic_path(fig_dir / name) as tmp:
                if isinstance(fig, (str, Path)):
                    shutil.copyfile(fig, tmp)
                else:
                    fig.savefig(tmp, dpi=110, bbox_inches="tight")
                    plt.close(fig)
        nav = [(label, Path(os.path.relpath(target.absolute(), path.parent.absolute())).as_posix())
               for label, target in self.nav]
        page = _TEMPLATE.render(title=self.title, subtitle=self.subtitle, banner=self.banner, nav=nav,
                                blocks=self.blocks)
        return write_text(path, page)


def _escaped(value: Any) -> str:
    return MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else html.escape(str(value))


def shown_path(path: str | Path, page_dir: str | Path) -> str:
    """How a page names a file or folder: relative to the page when it lies inside an output still being
    built (a `ctnodule run` folder's data/, runs/...: the relative path stays true once the folder is
    renamed into place), else as the user gave it. Never the temporary folder's name."""
    if in_build(path) or in_build(page_dir):
        where, here = final_path(Path(path).absolute()), final_path(Path(page_dir).absolute())
        return Path(os.path.relpath(where, here)).as_posix()
    return str(final_path(path))


def synthetic_banner(info: Mapping[str, Any] | None) -> str | None:
    """The banner of a page built from generated data, from `ctnodule.data.manifest.synthetic_info`'s
    summary ({n_synthetic, n_samples, sources}); None for real data."""
    if not info or not info.get("n_synthetic"):
        return None
    sources = ", ".join(info.get("sources") or []) or "generated"
    if info.get("n_composite") and info["n_composite"] >= info["n_synthetic"]:
        share = ("every sample on this page is" if info["n_composite"] >= info.get("n_samples", 0)
                 else f"{info['n_composite']} of {info['n_samples']} samples are")
        return (f"COMPOSITE DATA (lesion insertion): {share} a real nodule of one patient placed into a real "
                "lung slice of another patient (few background patients). Nodules and labels are real, their "
                "surroundings are not the nodule's own: numbers measure full-slice models on inserted nodules, "
                "not on clinical scans.")
    if info["n_synthetic"] >= info.get("n_samples", 0):
        return (f"SYNTHETIC DATA ({sources}): every sample on this page was generated, none comes from a "
                "patient. The numbers show that the pipeline works; they say nothing about clinical accuracy.")
    return (f"COMPOSITE DATA: {info['n_synthetic']} of {info['n_samples']} samples were generated ({sources}), "
            "the rest are real scans. Numbers computed on generated samples are not clinical evidence.")
