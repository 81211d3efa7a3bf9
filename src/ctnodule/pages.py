"""`HtmlReport`: the one way ctnodule writes an HTML page (explore, preprocess, train, explain, benchmark).

A report is a list of blocks (heading, paragraph, table, figure) rendered through one jinja2 template.
Figures are saved as PNG under `figures/` beside the page and linked relatively, so a report folder can be
zipped and opened anywhere. The page is written atomically.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ctnodule.atomic import atomic_path, write_text

_TEMPLATE = jinja2.Environment(
    loader=jinja2.PackageLoader("ctnodule", "templates"), autoescape=jinja2.select_autoescape()
).get_template("page.html")


class HtmlReport:
    """Build a page block by block, then `save(path)`."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.blocks: list[dict[str, Any]] = []
        self._figures: list[tuple[str, Any]] = []

    def heading(self, text: str, level: int = 2) -> HtmlReport:
        self.blocks.append({"kind": "heading", "text": text, "level": level})
        return self

    def paragraph(self, text: str) -> HtmlReport:
        self.blocks.append({"kind": "paragraph", "text": text})
        return self

    def html(self, markup: str) -> HtmlReport:
        """Add trusted markup built by ctnodule itself (links, lists); never user-supplied text."""
        self.blocks.append({"kind": "raw", "html": markup})
        return self

    def table(self, frame: pd.DataFrame, caption: str = "", float_format: str = "{:.3f}") -> HtmlReport:
        body = frame.to_html(index=False, border=0, classes="table", escape=True,
                             float_format=lambda v: float_format.format(v))
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
        page = _TEMPLATE.render(title=self.title, subtitle=self.subtitle, blocks=self.blocks, escape=html.escape)
        return write_text(path, page)
