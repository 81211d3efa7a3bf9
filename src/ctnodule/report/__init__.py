"""HTML reports: self-contained pages of headings, tables and PNG figures."""

from ctnodule.report.html import HtmlReport

__all__ = ["HtmlReport"]
