"""The docs site: everything public is documented, and the site builds strictly.

`mkdocs build --strict` fails on a broken link or anchor, a page missing from
the nav, a `:::` block naming nothing, and a docstring Griffe cannot parse
(a parameter the signature lacks, say), so building it here keeps the site
from rotting. The docs tools come with the `test` extra.
"""

from __future__ import annotations

import contextlib
import html
import html.parser
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import jax
import pytest

import jaxrnn

ROOT = Path(__file__).resolve().parent.parent
API_DOCS = ROOT / "docs" / "api"
MISSING_TOOLS = (
    "the docs tools are part of the test extra: python -m pip install -e '.[test]'"
)


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed; {MISSING_TOOLS}")


# --------------------------------------------------------------------------
# what is public


def public_modules() -> dict[str, ModuleType]:
    """``jaxrnn`` and every submodule whose name has no leading underscore."""
    modules = {"jaxrnn": jaxrnn}
    for info in pkgutil.walk_packages(jaxrnn.__path__, "jaxrnn."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            modules[info.name] = importlib.import_module(info.name)
    return modules


def public_names() -> list[tuple[str, str]]:
    """``(module, name)`` for every name in a public module's ``__all__``."""
    return [
        (module_name, name)
        for module_name, module in public_modules().items()
        for name in getattr(module, "__all__", ())
    ]


# --------------------------------------------------------------------------
# what the API pages document


def documented() -> dict[str, object]:
    """Each ``::: identifier`` block of docs/api/ -> its ``members`` option.

    ``None`` means "all public members" (the default), ``False`` none, a list
    those names.
    """
    blocks: dict[str, object] = {}
    for page in sorted(API_DOCS.glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for k, line in enumerate(lines):
            match = re.match(r"^::: *([\w.]+)\s*$", line)
            if not match:
                continue
            members: object = None
            for option in lines[k + 1 :]:
                if option.strip() and not option.startswith(" "):
                    break
                found = re.match(r"^\s+members:\s*(.*)$", option)
                if found:
                    value = found[1].strip()
                    if value in ("false", "False", "no"):
                        members = False
                    elif value.startswith("["):
                        members = [m.strip(" '\"") for m in value.strip("[]").split(",")]
                    else:
                        members = None
            blocks[match[1]] = members
    return blocks


def covered(path: str, blocks: dict[str, object]) -> bool:
    """Whether the object at dotted ``path`` is rendered by some block."""
    if path in blocks:
        return True
    parent, _, name = path.rpartition(".")
    if parent in blocks:
        members = blocks[parent]
        return members is None or (isinstance(members, list) and name in members)
    return False


def canonical_path(obj: object) -> str | None:
    """Where ``obj`` is defined: ``module.qualname``, or a module's own name."""
    if inspect.ismodule(obj):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if module and qualname:
        return f"{module}.{qualname}"
    return None


@pytest.fixture(scope="module")
def griffe_package():
    """jaxrnn as mkdocstrings reads it: Griffe, with the site's extension."""
    _require("griffe")
    import griffe

    extensions = griffe.load_extensions(f"{ROOT / 'docs' / '_ext' / 'griffe_rst.py'}:RestToMarkdown")
    return griffe.load(
        "jaxrnn", search_paths=[str(ROOT)], resolve_aliases=True, extensions=extensions
    )


def test_every_public_module_declares_its_api():
    missing = [name for name, module in public_modules().items() if not hasattr(module, "__all__")]
    assert not missing, f"public modules without __all__: {missing}"


def test_every_public_module_has_an_api_page():
    blocks = documented()
    missing = [name for name in public_modules() if name not in blocks]
    assert not missing, (
        f"public modules with no '::: module' block in docs/api/: {missing}; "
        "add a page (and put it in mkdocs.yml's nav)"
    )


def test_every_public_name_is_rendered_by_a_block():
    blocks = documented()
    missing = []
    for module_name, name in public_names():
        obj = getattr(importlib.import_module(module_name), name)
        paths = [f"{module_name}.{name}", canonical_path(obj)]
        if not any(path and covered(path, blocks) for path in paths):
            missing.append(f"{module_name}.{name}")
    assert not missing, f"public names that no '::: ' block in docs/api/ renders: {missing}"


def test_every_public_name_has_a_docstring(griffe_package):
    undocumented = []
    for module_name, name in public_names():
        # Look each object up where it is defined (``jaxrnn.rnn`` is
        # ``jaxrnn._rnn.rnn``).
        path = canonical_path(getattr(importlib.import_module(module_name), name))
        if path is None or not (path == "jaxrnn" or path.startswith("jaxrnn.")):
            path = f"{module_name}.{name}"
        obj = griffe_package if path == "jaxrnn" else griffe_package[path[len("jaxrnn.") :]]
        if obj.is_alias:
            obj = obj.final_target
        if obj.docstring is None or not obj.docstring.value.strip():
            undocumented.append(f"{module_name}.{name}")
    assert not undocumented, f"public names without a docstring: {undocumented}"


def test_no_public_name_shadows_a_module():
    # ``import jaxrnn.x`` must give the module x; a function of the same name
    # would hide it (optax's pattern: implementation modules are private).
    clashes = []
    for module_name, module in public_modules().items():
        if not hasattr(module, "__path__"):
            continue
        for info in pkgutil.iter_modules(module.__path__):
            attr = getattr(module, info.name, None)
            if attr is not None and not inspect.ismodule(attr):
                clashes.append(f"{module_name}.{info.name}")
    assert not clashes, f"public names that shadow a module of the same name: {clashes}"


def test_the_coverage_check_would_notice_a_gap():
    blocks = {"jaxrnn.cells": None, "jaxrnn": False, "jaxrnn.rnn": None, "jaxrnn.tasks": ["Adding"]}
    assert covered("jaxrnn.cells.LSTM", blocks)
    assert not covered("jaxrnn.LSTM", blocks)
    assert covered("jaxrnn.rnn", blocks)
    assert not covered("jaxrnn.stacked_rnn", blocks)
    assert covered("jaxrnn.tasks.Adding", blocks)
    assert not covered("jaxrnn.tasks.CopyMemory", blocks)
    assert not covered("jaxrnn.training.TrainState", blocks)
    assert canonical_path(jaxrnn.LSTM) == "jaxrnn.cells.LSTM"


# --------------------------------------------------------------------------
# the Griffe extension that turns the docstrings' reStructuredText into Markdown


@pytest.fixture(scope="module")
def rst():
    _require("griffe")
    spec = importlib.util.spec_from_file_location(
        "griffe_rst", ROOT / "docs" / "_ext" / "griffe_rst.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rst_blocks_become_markdown(rst):
    text = "\n".join(
        [
            "Three parts::",
            "",
            "    a = 1",
            "    b = 2",
            "",
            "Example:",
            "  .. code-block:: python",
            "",
            "      x = 1",
            "",
            ".. math::  h = \\tanh(a)",
            "",
            "=====  =====",
            "cell   gates",
            "=====  =====",
            "LSTM   i, f,",
            "       g, o",
            "GRU    r, z, n",
            "=====  =====",
            "",
            "Example:",
            "  >>> print('a::')",
            "  a::",
            "",
            ".. math::",
            "    r = 1",
            "",
            "    z = 2",
        ]
    )
    out = rst._blocks(text).splitlines()
    assert out[:6] == ["Three parts:", "", "```text", "a = 1", "b = 2", "```"]
    assert out[7:11] == ["Example:", "  ```python", "  x = 1", "  ```"]
    assert out[12:15] == ["$$", "h = \\tanh(a)", "$$"]
    assert out[16:20] == [
        "| cell | gates |",
        "|---|---|",
        "| LSTM | i, f, g, o |",
        "| GRU | r, z, n |",
    ]
    # A doctest is code (its "::" no literal block): as it was, Markdown read
    # the prompts as nested quotes and ran the lines into one paragraph.
    assert out[21:26] == ["Example:", "  ```pycon", "  >>> print('a::')", "  a::", "  ```"]
    # Each paragraph of a math block is its own equation: a blank line would
    # end a $$ block in the middle.
    assert out[27:] == ["$$", "r = 1", "$$", "", "$$", "z = 2", "$$"]


def test_rst_roles_become_optional_cross_references(rst, griffe_package):
    scope = griffe_package["_rnn.bidirectional_rnn"]  # names resolve in its module
    out = rst._roles(
        "See :func:`rnn`, :class:`~jaxrnn.cells.LSTM`, :func:`jaxrnn.rnn` and ``:func:`x```.",
        scope,
    )
    # Where the name is defined, and where the public surface puts it: the site
    # registers both for the same rendered function.
    assert '<autoref identifier="jaxrnn.rnn" optional><code>jaxrnn.rnn</code>' in out
    assert '<autoref identifier="jaxrnn._rnn.rnn" optional><code>rnn</code></autoref>' in out
    assert (
        '<autoref identifier="jaxrnn.cells.LSTM" optional><code>LSTM</code></autoref>' in out
    )
    assert "``:func:`x```" in out


def test_rebound_classes_and_field_comments(rst, tmp_path):
    import griffe

    (tmp_path / "pkgx").mkdir()
    (tmp_path / "pkgx" / "__init__.py").write_text(
        "\n".join(
            [
                "import dataclasses",
                "from typing import NamedTuple",
                "class Adding:",
                '    """A task."""',
                "    def sample(self):",
                '        """Samples."""',
                "Adding = dataclasses.dataclass(Adding)",
                "class State(NamedTuple):",
                '    """A state."""',
                "    count: int  # () int32: steps so far",
                "#: the tasks by name",
                "TASKS = {'adding': Adding}",
            ]
        )
    )
    package = griffe.load(
        "pkgx", search_paths=[str(tmp_path)], extensions=griffe.load_extensions(
            rst.RestToMarkdown(packages=("pkgx",))
        )
    )
    assert package["Adding"].is_class and "sample" in package["Adding"].members
    assert package["State.count"].docstring.value == "() int32: steps so far"
    assert package["TASKS"].docstring.value == "the tasks by name"


def test_signatures_name_public_types_and_bases(griffe_package):
    simple_rnn = griffe_package["cells.SimpleRNN"]
    assert [str(b) for b in simple_rnn.bases] == ["_ElmanPointwise", "Cell"]  # as written
    assert [str(b) for b in simple_rnn.extra["jaxrnn"]["public_bases"]] == ["Cell"]  # as shown
    assert "pointwise" in simple_rnn.all_members  # still inherited from the private base
    check_step = griffe_package["cells.Cell.check_step"].parameters
    assert [str(check_step[name].annotation) for name in ("params", "state", "x")] == [
        "Params",
        "State",
        "Any",  # no public name for it: left as written
    ]
    init = griffe_package["cells.Cell.init"].parameters
    assert str(init["dtype"].annotation) == "jax.typing.DTypeLike | None"  # its default is None
    assert str(griffe_package["cells.LSTM.w_ih_init"].value) == "initializers.default_w_ih"


def test_math_becomes_mathml(mathml):
    out = mathml.render(
        '<p>a <span class="arithmatex">\\(x_t &lt; \\rho^{T-t}\\)</span> b</p>'
        '<div class="arithmatex">\\[\nh_t = \\tanh(a_t)\n\\]</div>'
    )
    assert out.count("<math ") == 2 and "\\(" not in out and "\\[" not in out
    assert 'display="inline"' in out and 'display="block"' in out
    assert 'alttext="x_t &lt; \\rho^{T-t}"' in out  # the source, for copying and screen readers
    assert "&#x003C1;" in out  # rho


@pytest.fixture(scope="module")
def mathml():
    _require("latex2mathml")
    spec = importlib.util.spec_from_file_location("mathml_hook", ROOT / "docs" / "_ext" / "mathml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figures_link_to_themselves():
    spec = importlib.util.spec_from_file_location("zoom_hook", ROOT / "docs" / "_ext" / "zoom.py")
    zoom = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoom)
    alone = '<p><img alt="a plot" src="figures/a.png" /></p>'
    linked_alone = '<p><a class="zoom" href="figures/a.png"><img alt="a plot" src="figures/a.png" /></a></p>'
    assert zoom.link_figures(alone) == linked_alone
    linked = '<p><a href="b.png"><img alt="b" src="b.png" /></a></p>'
    inline = '<p>see <img alt="c" src="c.png" /> here</p>'
    assert zoom.link_figures(linked) == linked and zoom.link_figures(inline) == inline


# --------------------------------------------------------------------------
# the code on the pages jaxrnn's docs own runs


def python_blocks(page: Path) -> str:
    return "\n".join(re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S))


@pytest.mark.slow  # ~10 s of compilation; the quick start below covers the same API
@pytest.mark.parametrize("page", ["index.md", "api/interop.md"])
def test_page_code_runs(page):
    code = python_blocks(ROOT / "docs" / page)
    assert code.strip(), f"docs/{page} has no python code block"
    exec(compile(code, f"docs/{page}", "exec"), {})


def test_quickstart_code_runs(capsys):
    code = python_blocks(ROOT / "docs" / "quickstart.md")
    assert "for i in range(1000):" in code
    code = code.replace("for i in range(1000):", "for i in range(199, 200):")  # one step, printed
    namespace: dict = {}
    # As a user runs it: standard dtype promotion (optax.adam's bias
    # correction, a float to an int32 power, is not strict-promotion clean).
    with jax.numpy_dtype_promotion("standard"):
        exec(compile(code, "docs/quickstart.md", "exec"), namespace)
    assert "step 200: loss" in capsys.readouterr().out
    assert int(namespace["state"].step) == 1


# --------------------------------------------------------------------------
# the build, and what a reader sees in it


class Site(NamedTuple):
    """One ``mkdocs build --strict`` of the site."""

    root: Path  # the built site
    returncode: int
    log: str


def _build_site(root: Path) -> Site:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(root)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return Site(root, result.returncode, result.stdout + result.stderr)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (a no-op where there is no ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: each worker builds its own site
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    """The site, built once for every test that reads it (a build takes seconds).

    Under pytest-xdist each worker has its own module fixtures, so the workers
    share one build: the first builds into the parent of their temporary
    directories, under a lock, and the others read its record.
    """
    _require("mkdocs")
    _require("material")
    _require("mkdocstrings_handlers.python")
    _require("latex2mathml")
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    record = base / "docs-site.json"
    with _locked(base / "docs-site.lock"):
        if not record.exists():
            record.write_text(json.dumps(_build_site(base / "docs-site")._asdict(), default=str))
        built = json.loads(record.read_text())
    return Site(Path(built["root"]), built["returncode"], built["log"])


def built_pages(site: Site, under: str = "") -> dict[str, str]:
    """``{page: html}`` of the built site's pages (those under ``under``)."""
    if site.returncode != 0:
        pytest.fail("the site did not build: see test_site_builds_strictly")
    pages = {  # the home page is ""
        path.parent.relative_to(site.root).as_posix().strip("."): path.read_text(encoding="utf-8")
        for path in sorted((site.root / under).rglob("index.html"))
    }
    assert pages, f"no pages under {site.root / under}"
    return pages


class _Reading(html.parser.HTMLParser):
    """What a page shows outside code blocks, and where its examples are."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.prose: list[str] = []  # text outside <pre> and <code>
        self.examples: list[bool] = []  # per docstring example: has a code block
        self.math = 0  # <math> elements
        self._code = 0
        self._example = 0  # depth inside <details class="example">
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "img", "hr", "input", "meta", "link", "source", "col", "wbr"):
            return
        classes = (dict(attrs).get("class") or "").split()
        self._stack.append(tag)
        if tag in ("pre", "code"):
            self._code += 1
            if tag == "pre" and self._example and not self.examples[-1]:
                self.examples[-1] = True
        elif tag == "details" and ("example" in classes or self._example):
            if not self._example:
                self.examples.append(False)
            self._example += 1
        elif tag == "math":
            self.math += 1

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._stack:
            return
        while self._stack:
            open_tag = self._stack.pop()
            if open_tag in ("pre", "code"):
                self._code -= 1
            elif open_tag == "details" and self._example:
                self._example -= 1
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._code and data.strip():
            self.prose.append(data)


def read_page(text: str) -> _Reading:
    reading = _Reading()
    reading.feed(text)
    reading.close()
    return reading


def test_site_builds_strictly(site):
    assert site.returncode == 0, f"mkdocs build --strict failed:\n{site.log[-6000:]}"
    assert (site.root / "index.html").is_file()
    assert (site.root / "api" / "rnn" / "index.html").is_file()


def test_docstring_examples_render_as_code(site):
    # A doctest outside a code block is what Markdown makes of ">>>": three
    # nested quotes, the lines run together into one paragraph.
    examples = 0
    for page, text in built_pages(site, "api").items():
        reading = read_page(text)
        prompts = [line for line in "".join(reading.prose).splitlines() if ">>>" in line]
        assert not prompts, f"{page}: doctest lines outside a code block: {prompts[:3]}"
        assert all(reading.examples), f"{page}: an Example section without a code block"
        examples += len(reading.examples)
    assert examples >= 10, f"only {examples} Example sections on the API pages"


def test_the_examples_check_would_notice_a_quoted_doctest():
    quoted = read_page(
        '<details class="example"><summary>Example</summary><blockquote><blockquote>'
        "<blockquote><p>&gt;&gt;&gt; import jax\n&gt;&gt;&gt; 1 + 1</p></blockquote>"
        "</blockquote></blockquote></details>"
    )
    assert quoted.examples == [False] and ">>> import jax" in "".join(quoted.prose)
    code = read_page(
        '<details class="example"><summary>Example</summary><div class="highlight"><pre>'
        '<code><span class="gp">&gt;&gt;&gt; </span>1 + 1</code></pre></div></details>'
    )
    assert code.examples == [True] and ">>>" not in "".join(code.prose)


#: The longest code line a page shows whole: at 1400 px, with both sidebars,
#: the content column holds about 84 characters of code; a longer line
#: scrolls, and its trailing comment is out of sight.
CODE_COLUMNS = 80


def test_code_lines_fit_the_page(site):
    long_lines = []
    for page, text in built_pages(site).items():
        for block in re.findall(r"<pre[^>]*>(.*?)</pre>", text, re.DOTALL):
            code = html.unescape(re.sub(r"<[^>]+>", "", block))
            long_lines += [f"{page or 'home'}: {line}" for line in code.splitlines() if len(line) > CODE_COLUMNS]
    assert not long_lines, f"code lines over {CODE_COLUMNS} characters:\n" + "\n".join(long_lines)


def test_figures_open_at_full_size(site):
    # Figures are drawn larger than the page shows them: each one is a link to its image.
    pages = built_pages(site)
    figures = 0
    for page, text in pages.items():
        for match in re.finditer(r"<img\b[^>]*\bsrc=\"([^\"]+\.png)\"", text):
            before = text[: match.start()]
            link = before[before.rfind("<a "):]
            assert before.rfind("<a ") > before.rfind("</a>") and f'href="{match[1]}"' in link, (
                f"{page or 'home'}: {match[1]} is not a link to itself")
            figures += 1
    assert figures >= 8, f"only {figures} figures on the site"


def test_math_is_rendered_when_the_site_is_built(site):
    # MathML in the pages, and no LaTeX left for a script from a CDN to typeset.
    pages = built_pages(site)
    for page, text in pages.items():
        assert "mathjax" not in text.lower(), f"{page} still loads MathJax"
        reading = read_page(text)
        prose = "".join(reading.prose)
        raw = re.findall(r"\\[([]|\$\$", prose)
        assert not raw, f"{page}: unrendered math ({raw[:3]}) in {prose[prose.find(raw[0]) - 80:][:200]!r}"
    for page in ("api/cells", "gradients"):
        assert read_page(pages[page]).math >= 5, f"{page} has no rendered equations"


def test_signatures_show_public_names(site):
    # What a user can type: no private defaults (`= _GLOROT`) or bases
    # (`Bases: _ElmanPointwise`), and no bare `Any` where the package has a
    # public name for the type (docs/_ext/griffe_rst.py's PUBLIC_TYPES).
    for page, text in built_pages(site, "api").items():
        blocks = re.findall(
            r'<div class="doc-signature highlight">(.*?)</div>|<p class="doc doc-class-bases">(.*?)</p>',
            text,
            re.DOTALL,
        )
        for signature, bases in blocks:
            shown = " ".join(html.unescape(re.sub(r"<[^>]+>", "", signature or bases)).split())
            if bases:
                assert not re.search(r"(?<![\w])_\w", shown), f"{page}: a private base in {shown!r}"
            assert not re.search(r"=\s*_\w", shown), f"{page}: a private default in {shown!r}"
            bare = re.findall(r"\b(params|state|dtype|precision|residuals|cell): Any\b", shown)
            assert not bare, f"{page}: {bare} annotated Any in {shown!r}"
