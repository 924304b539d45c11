"""A Griffe extension: the reStructuredText bits of jaxrnn's docstrings, as Markdown.

jaxrnn's docstrings are Google style, as Optax's are, with a few Sphinx
constructs in them that mkdocstrings (which renders docstrings as Markdown)
would otherwise print literally. This extension rewrites, in every docstring
of the ``jaxrnn`` package once it is loaded:

- roles (``:func:`rnn```, ``:class:`~jaxrnn.cells.LSTM```, ``:mod:``, ...)
  into cross-references, resolved in the docstring's own scope. They are
  *optional* autorefs: a target the site does not document (an Optax or JAX
  object, a private helper) renders as plain code instead of failing the build;
- ``.. math::`` (inline or as a block) into display math, one block per
  paragraph (pre-rendered to MathML when the site is built: ``mathml.py``);
- ``.. code-block:: lang`` and paragraphs ending in ``::`` into fenced code,
  and doctest blocks (``>>>`` lines and their output, the ``Example:``
  sections) into ``pycon`` code blocks: left as they are, Markdown reads their
  prompts as three nested quotes and runs the lines together;
- simple tables (``=====  =====`` borders) into Markdown tables;
- a class re-bound at module level to a wrapped version of itself
  (``Adding = _register(Adding)``) stays documented as the class;
- ``#:`` comments above an attribute with no docstring (Sphinx's
  convention), and the trailing comment of a class field with none (how
  NamedTuple fields carry their shape and dtype here,
  ``h: Array  # (*batch, hidden)``), into that attribute's docstring.

It also makes signatures show what a user can type:

- a private base class (``Bases: _ElmanPointwise``) is shown as its own public
  bases, recursively (``class.extra["jaxrnn"]["public_bases"]``, which the
  site's ``class.html.jinja`` override renders; the bases themselves stay, so
  inherited members resolve as before);
- a parameter or field annotated ``Any`` whose name has one meaning across
  the package (``params``, ``state``, ``dtype``, ``precision``, ...; the table
  ``PUBLIC_TYPES``) is shown with the public type that name stands for
  (``Params``, ``State``, ``jax.typing.DTypeLike``, ...), ``| None`` added
  where its default is ``None``. Annotations other than a bare ``Any`` are
  left alone.

The source stays readable by ``help()`` and Sphinx alike. mkdocs.yml loads this
file through the mkdocstrings handler's ``extensions`` option.
"""

from __future__ import annotations

import ast
import html
import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>func|class|mod|meth|attr|data|obj|exc|const|type):`(?P<body>[^`]+)`"
)
# A role, or a code span or fence (left alone): one pass over the text.
_TOKEN = re.compile(r"(?P<code>```.*?```|``.+?``)|" + _ROLE.pattern, flags=re.DOTALL)
_TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")
_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. (?P<name>math|code-block|code)::\s*(?P<arg>.*)$")
_BORDER = re.compile(r"^\s*=+( +=+)+\s*$")
_LITERAL = re.compile(r"^(?P<indent>\s*)(?P<text>.*?)::\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """The indented block after ``lines[start - 1]``: (its lines, dedented; the next index)."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    while end > start and not lines[end - 1].strip():  # trailing blank lines are not in it
        end -= 1
    body = lines[start:end]
    depth = min((_indent(line) for line in body if line.strip()), default=0)
    return [line[depth:] for line in body], end


def _table(lines: list[str], start: int) -> tuple[list[str], int] | None:
    """The simple table whose top border is ``lines[start]``, as Markdown."""
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    borders = [k for k in range(start, end) if _BORDER.match(lines[k])]
    if len(borders) < 2:
        return None
    last = borders[-1]
    top = lines[start]
    spans = [m.span() for m in re.finditer(r"=+", top)]
    indent = top[: spans[0][0]]

    gaps = [(spans[c][1], spans[c + 1][0]) for c in range(len(spans) - 1)]
    for line in lines[start:last]:
        if any(line[a:b].strip() for a, b in gaps):  # text across a column gap:
            body = [row[len(indent) :] for row in lines[start : last + 1]]
            return _fence(indent, "```text", body, "```"), last + 1  # show it as is

    def cells(line: str) -> list[str]:
        cut = [a for a, _ in spans] + [max(len(line), spans[-1][1])]
        return [line[cut[c] : cut[c + 1]].strip() for c in range(len(spans))]

    header = [cells(lines[k]) for k in range(start + 1, borders[1])] if len(borders) > 2 else []
    rows: list[list[str]] = []
    for k in range(borders[1] if len(borders) > 2 else start + 1, last):
        if _BORDER.match(lines[k]):
            continue
        row = cells(lines[k])
        if rows and not row[0]:  # a continuation line of the row above
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], row)]
        else:
            rows.append(row)
    if header:
        head = [" ".join(col).strip() for col in zip(*header)]
    else:
        head = [""] * len(spans)
    out = [indent + "| " + " | ".join(head) + " |", indent + "|" + "---|" * len(spans)]
    out += [indent + "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out, last + 1


def _fence(indent: str, opening: str, body: list[str], closing: str) -> list[str]:
    out = [indent + opening]
    out += [indent + line if line.strip() else "" for line in body]
    out.append(indent + closing)
    return out


def _doctest(lines: list[str], start: int) -> tuple[list[str], int]:
    """The doctest block at ``lines[start]`` (to the next blank or less indented
    line, as doctest reads it): (its lines, dedented; the next index)."""
    indent = _indent(lines[start])
    end = start
    while end < len(lines) and lines[end].strip() and _indent(lines[end]) >= indent:
        end += 1
    return [line[indent:] for line in lines[start:end]], end


def _paragraphs(lines: list[str]) -> list[list[str]]:
    """``lines`` split at blank lines, the blank lines dropped."""
    out: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            out[-1].append(line)
        elif out[-1]:
            out.append([])
    return [p for p in out if p]


def _blocks(text: str) -> str:
    """Directives and literal blocks into Markdown blocks."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if in_fence:
            out.append(line)
            i += 1
            continue
        if line.lstrip().startswith(">>>"):
            body, i = _doctest(lines, i)
            out += _fence(line[: _indent(line)], "```pycon", body, "```")
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            indent, name, arg = directive["indent"], directive["name"], directive["arg"].strip()
            body, i = _block(lines, i + 1, len(indent))
            while body and not body[0].strip():
                body.pop(0)
            if name == "math":
                # Paragraphs are separate equations (as in Sphinx); a blank line
                # inside one $$ block would end it.
                for k, equation in enumerate(_paragraphs(([arg] if arg else []) + body)):
                    out += ([""] if k else []) + _fence(indent, "$$", equation, "$$")
            else:
                out += _fence(indent, f"```{arg or 'python'}", body, "```")
            continue
        if _BORDER.match(line):
            table = _table(lines, i)
            if table is not None:
                rows, i = table
                out += rows
                continue
        literal = _LITERAL.match(line)
        if literal and i + 1 < len(lines) and not lines[i + 1].strip():
            indent = literal["indent"]
            body, end = _block(lines, i + 1, len(indent))
            if any(b.strip() for b in body):
                text_part = literal["text"].rstrip()
                if text_part:  # "Text::" is "Text:"; a lone "::" disappears
                    out.append(f"{indent}{text_part}:")
                    out.append("")
                while body and not body[0].strip():
                    body.pop(0)
                out += _fence(indent, "```text", body, "```")
                i = end
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _target_path(obj: griffe.Object, target: str) -> str:
    """The full path of ``target`` as seen from ``obj``'s scope (best effort)."""
    target = target.lstrip(".")
    if target.startswith("jr."):
        target = "jaxrnn." + target[3:]
    head, _, rest = target.partition(".")
    try:
        path = obj.resolve(head)
    except (griffe.NameResolutionError, AttributeError, KeyError):
        return target
    return f"{path}.{rest}" if rest else path


def _roles(text: str, obj: griffe.Object) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["code"]:  # code spans and fences stay as they are
            return match["code"]
        body = match["body"].strip()
        titled = _TITLED.match(body)
        if titled:
            title, target = titled["title"], titled["target"]
        else:
            target = body.lstrip("~")
            title = target.rsplit(".", 1)[-1] if body.startswith("~") else target
        identifier = html.escape(_target_path(obj, target), quote=True)
        return f'<autoref identifier="{identifier}" optional><code>{html.escape(title)}</code></autoref>'

    return _TOKEN.sub(replace, text)


def _field_comment(attr: griffe.Object) -> str | None:
    """The trailing ``# comment`` of a one-line field definition, if any."""
    try:
        lines = attr.lines
    except (OSError, KeyError, ValueError):
        return None
    if len(lines) != 1 or "#" not in lines[0]:
        return None
    code, _, comment = lines[0].partition("#")
    if code.count('"') % 2 or code.count("'") % 2:  # the '#' is inside a string
        return None
    return comment.strip() or None


def _doc_comment(attr: griffe.Object) -> str | None:
    """The ``#:`` comment lines right above an attribute (Sphinx's convention)."""
    if attr.lineno is None or attr.filepath is None or isinstance(attr.filepath, list):
        return None
    try:
        lines = attr.lines_collection[attr.filepath]
    except KeyError:
        return None
    found: list[str] = []
    k = attr.lineno - 2
    while k >= 0 and lines[k].strip().startswith("#:"):
        found.insert(0, lines[k].strip()[2:].strip())
        k -= 1
    return " ".join(found) or None


#: What a bare ``Any`` annotation stands for, by parameter (or field) name,
#: written in the scope of ``jaxrnn.cells`` (where ``Params``, ``State`` and
#: ``Cell`` live and ``jax`` is imported).
PUBLIC_TYPES = {
    "params": "Params",
    "state": "State",
    "cell": "Cell",
    "dtype": "jax.typing.DTypeLike",
    "param_dtype": "jax.typing.DTypeLike",
    "params_dtype": "jax.typing.DTypeLike",
    "precision": "jax.lax.PrecisionLike",  # a Union that has None in it
    "residuals": "str | int",
    "bptt_clip": "float | None",
    "unroll": "int | bool",
}


def _is_any(annotation: Any) -> bool:
    return annotation is not None and str(annotation) in ("Any", "typing.Any")


def _public_type(name: str, default: Any, scope: griffe.Object) -> griffe.Expr | None:
    text = PUBLIC_TYPES.get(name)
    if text is None:
        return None
    # ``default`` is None for "no default", the expression ``"None"`` for None.
    if default is not None and str(default) == "None" and "None" not in text and not text.endswith("PrecisionLike"):
        text += " | None"
    return griffe.get_expression(ast.parse(text, mode="eval").body, parent=scope)


def _public_annotations(obj: griffe.Object, scope: griffe.Object) -> None:
    """``Any`` annotations of ``obj``'s parameters (or of ``obj``, a field) as
    the public types their names stand for (:data:`PUBLIC_TYPES`)."""
    if obj.is_function:
        for param in obj.parameters:
            if _is_any(param.annotation):
                public = _public_type(param.name, param.default, scope)
                if public is not None:
                    param.annotation = public
    elif obj.is_attribute and obj.parent is not None and obj.parent.is_class and _is_any(obj.annotation):
        public = _public_type(obj.name, obj.value, scope)
        if public is not None:
            obj.annotation = public


def _base_name(base: Any) -> str:
    return str(base).rsplit(".", 1)[-1]


def _public_bases(cls: griffe.Class, seen: frozenset[str] = frozenset()) -> list[Any]:
    """``cls``'s bases, each private one replaced by its own public bases."""
    out: list[Any] = []
    for base in cls.bases:
        if not _base_name(base).startswith("_"):
            out.append(base)
            continue
        path = getattr(base, "canonical_path", str(base))
        try:
            target = cls.modules_collection[path]
            if target.is_alias:
                target = target.final_target
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            target = None
        if target is None or not target.is_class or path in seen:
            out.append(base)  # nothing better to show
            continue
        out += _public_bases(target, seen | {path})
    unique: dict[str, Any] = {}
    for base in out:
        unique.setdefault(getattr(base, "canonical_path", str(base)), base)
    return list(unique.values())


def _walk(obj: griffe.Object, seen: set[int]) -> Any:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    for member in list(obj.members.values()):
        if not member.is_alias:
            yield from _walk(member, seen)


class RestToMarkdown(griffe.Extension):
    """Rewrites the Sphinx constructs of a package's docstrings as Markdown."""

    def __init__(
        self, packages: tuple[str, ...] = ("jaxrnn",), types_scope: str = "jaxrnn.cells"
    ) -> None:
        super().__init__()
        self.packages = tuple(packages)
        self.types_scope = types_scope  # the module PUBLIC_TYPES are written in

    def on_attribute_node(self, *, node: Any, agent: Any, **kwargs: Any) -> None:
        # ``Name = wrap(Name, ...)`` at module level re-binds a class to a wrapped
        # version of itself (a post-hoc decorator): the class stays the docs' object.
        self._rebound = None
        parent = agent.current
        if not (
            parent.is_module
            and parent.path.split(".")[0] in self.packages
            and isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and node.value.args
            and isinstance(node.value.args[0], ast.Name)
            and node.value.args[0].id == node.targets[0].id
        ):
            return
        existing = parent.members.get(node.targets[0].id)
        if existing is not None and not existing.is_alias and existing.is_class:
            self._rebound = existing

    def on_attribute_instance(self, *, attr: griffe.Attribute, agent: Any, **kwargs: Any) -> None:
        rebound, self._rebound = getattr(self, "_rebound", None), None
        if rebound is not None and rebound.name == attr.name:
            agent.current.set_member(attr.name, rebound)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name not in self.packages:
            return
        try:
            scope = pkg.modules_collection[self.types_scope]
        except KeyError:
            scope = None
        for obj in _walk(pkg, set()):
            if scope is not None:
                _public_annotations(obj, scope)
            if obj.is_class and any(_base_name(b).startswith("_") for b in obj.bases):
                obj.extra["jaxrnn"]["public_bases"] = _public_bases(obj)
            if obj.docstring is not None:
                obj.docstring.value = _roles(_blocks(obj.docstring.value), obj)
            elif obj.is_attribute:
                comment = _doc_comment(obj)
                if comment is None and obj.parent is not None and obj.parent.is_class:
                    comment = _field_comment(obj)
                if comment:
                    obj.docstring = griffe.Docstring(_roles(comment, obj), parent=obj)
