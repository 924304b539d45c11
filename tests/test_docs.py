"""The docs site: everything public is documented, and the site builds strictly.

`mkdocs build --strict` fails on a broken link or anchor, a page missing from
the nav, a `:::` block naming nothing, and a docstring Griffe cannot parse
(a parameter the signature lacks, say), so building it here keeps the site
from rotting. The docs tools come with the `test` extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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
            ">>> print('a::')",
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
    assert out[-1] == ">>> print('a::')"


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
# the build


def test_site_builds_strictly(tmp_path):
    _require("mkdocs")
    _require("material")
    _require("mkdocstrings_handlers.python")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "rnn" / "index.html").is_file()
