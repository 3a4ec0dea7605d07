"""LaTeX text shared by the figures' captions, the tables and the findings page (no plotting imports)."""

from __future__ import annotations


def tex_escape(s: str) -> str:
    """Escape the characters of names (workloads, variants, slugs) that LaTeX treats specially."""
    return str(s).replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%") \
        .replace("&", "\\&").replace("#", "\\#")
