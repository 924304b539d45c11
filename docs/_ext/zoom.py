"""An MkDocs hook: every figure on a page links to its image, so a click shows
it at full size (the page's column shows a figure at about 750 px).

A paragraph that holds nothing but one image, ``<p><img ...></p>`` (what
Markdown's ``![alt](figure.png)`` alone on a line becomes), is rewritten as
``<p><a class="zoom" href="figure.png"><img ...></a></p>``. An image that
already sits in a link, or shares its paragraph with text, is left alone.
mkdocs.yml loads this file through its ``hooks`` option.
"""

from __future__ import annotations

import re
from typing import Any

_ALONE = re.compile(r"<p>\s*(<img\b[^>]*\bsrc=\"(?P<src>[^\"]+)\"[^>]*>)\s*</p>")


def link_figures(content: str) -> str:
    """Each image alone in its paragraph, wrapped in a link to itself."""
    return _ALONE.sub(lambda m: f'<p><a class="zoom" href="{m["src"]}">{m[1]}</a></p>', content)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return link_figures(html)
