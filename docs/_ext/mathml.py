"""An MkDocs hook: the site's math, rendered to MathML when the site is built.

pymdownx.arithmatex (generic mode) marks the math of the pages and of the
docstrings (``\\( ... \\)`` inline, ``$$ ... $$`` and ``.. math::`` as display
math) as ``<span class="arithmatex">\\(...\\)</span>`` and
``<div class="arithmatex">\\[...\\]</div>``. This hook converts each one to
MathML with latex2mathml, which browsers render natively: equations need no
script and no network (a MathJax from a CDN left offline and firewalled
readers with raw LaTeX). LaTeX that latex2mathml cannot convert is a warning,
so ``mkdocs build --strict`` fails on it. mkdocs.yml loads this file through
its ``hooks`` option.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from latex2mathml.converter import convert

log = logging.getLogger(f"mkdocs.hooks.{__name__}")

_MATH = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*(?P<open>\\\(|\\\[)(?P<tex>.*?)'
    r"(?:\\\)|\\\])\s*</(?P=tag)>",
    re.DOTALL,
)


def to_mathml(tex: str, display: bool) -> str:
    """``tex`` as a ``<math>`` element, its source kept in ``alttext``."""
    mathml = convert(tex.strip(), display="block" if display else "inline")
    alt = html.escape(" ".join(tex.split()), quote=True)
    return mathml.replace("<math ", f'<math alttext="{alt}" ', 1)


def render(content: str, where: str = "") -> str:
    """Every arithmatex element of the HTML ``content``, as MathML."""

    def replace(match: re.Match[str]) -> str:
        tex = html.unescape(match["tex"])
        try:
            mathml = to_mathml(tex, display=match["open"] == "\\[")
        except Exception as error:  # noqa: BLE001  latex2mathml raises its own errors and plain ones
            log.warning(f"{where}: cannot render the math {tex.strip()!r}: {error}")
            return match[0]
        return f'<{match["tag"]} class="arithmatex">{mathml}</{match["tag"]}>'

    return _MATH.sub(replace, content)


def on_page_content(content: str, *, page: Any, **kwargs: Any) -> str:
    return render(content, page.file.src_uri)
