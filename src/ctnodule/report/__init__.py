"""HTML reports: self-contained pages of headings, tables and PNG figures."""

from ctnodule.pages import HtmlReport

__all__ = ["HtmlReport"]
