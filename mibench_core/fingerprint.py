"""Code fingerprints computed from the code itself: a module's transitive in-package imports.

An artifact's id covers the library code that produces it. Which files that
is, is not kept by hand: :func:`closure` follows every ``import`` and
``from ... import`` statement (at module level and inside functions) that
names a module of ``mibench_core``, transitively, parsing each file once
with :mod:`ast` (stdlib only: the Snakefile parse stays torch-free).
Importing a module also runs its packages' ``__init__`` files, so those are
part of the closure too.

Imports done by name at run time (``importlib``: the registry loading a
method, the stage runners and the attack stage's access builders of
:mod:`mibench_core.stages`) are not followed; the plan adds those modules'
closures explicitly, from the same mappings the jobs use.

:func:`source_hash` hashes a file's syntax tree with docstrings, comments,
formatting and the ``METHODS`` literal left out (line numbers are not part
of :func:`ast.dump`), so editing documentation, a method's description or
its declared bounds reruns nothing; a method's ``defaults`` reach the id
through the merged parameters of its spec.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "mibench_core"
PACKAGE_DIR = Path(__file__).resolve().parent


def _file_of(module: str) -> str | None:
    """``mibench_core.a.b`` -> ``a/b.py`` or ``a/b/__init__.py`` (relative to the package), or None."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    parts = module.split(".")[1:]
    if not parts:
        return "__init__.py"
    base = "/".join(parts)
    if (PACKAGE_DIR / f"{base}.py").is_file():
        return f"{base}.py"
    if (PACKAGE_DIR / base / "__init__.py").is_file():
        return f"{base}/__init__.py"
    return None


def _with_parents(module: str) -> list[str]:
    """A module and the packages whose ``__init__`` importing it runs."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def _parse(rel: str) -> ast.Module:
    path = PACKAGE_DIR / rel
    return ast.parse(path.read_text(), filename=str(path))


@cache
def direct_imports(rel: str) -> frozenset[str]:
    """In-package files that the file ``rel`` imports directly (anywhere in it)."""
    package = ".".join([PACKAGE, *Path(rel).parent.parts])
    names: list[str] = []
    for node in ast.walk(_parse(rel)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")  # level 1: the package holding this file
                base = ".".join(base_parts[: len(base_parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.append(module)
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            names += [f"{module}.{alias.name}" for alias in node.names if _file_of(f"{module}.{alias.name}")]
    out = set()
    for name in names:
        for mod in _with_parents(name):
            f = _file_of(mod)
            if f is not None:
                out.add(f)
    out.discard(rel)
    return frozenset(out)


@cache
def closure(module: str) -> frozenset[str]:
    """Files (relative to ``mibench_core/``) that importing ``module`` (dotted) runs, transitively."""
    start = [f for m in _with_parents(module) if (f := _file_of(m)) is not None]
    if _file_of(module) is None:
        raise ValueError(f"no module {module!r} in {PACKAGE_DIR}")
    seen: set[str] = set()
    stack = list(start)
    while stack:
        rel = stack.pop()
        if rel in seen:
            continue
        seen.add(rel)
        stack.extend(direct_imports(rel) - seen)
    return frozenset(seen)


def _strip(tree: ast.Module) -> ast.Module:
    """Remove docstrings (module, class, function) and the top-level METHODS literal."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                if isinstance(body[0].value.value, str):
                    body = body[1:] or [ast.Pass()]
            if isinstance(node, ast.Module):
                body = [
                    n
                    for n in body
                    if not (isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "METHODS" for t in n.targets))
                ]
            node.body = body
    return tree


@cache
def source_hash(rel: str) -> str:
    """sha256 of a file's code: its syntax tree without docstrings, comments or the METHODS literal."""
    path = PACKAGE_DIR / rel
    tree = _strip(ast.parse(path.read_text(), filename=str(path)))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def of_modules(*modules: str) -> tuple[str, ...]:
    """The sorted union of the closures of several modules (dotted names)."""
    files: set[str] = set()
    for module in modules:
        files |= closure(module)
    return tuple(sorted(files))
