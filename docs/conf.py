"""Sphinx configuration for manystore's reference (``make docs``).

Built with warnings as errors (``-W -n``): a broken cross-reference fails the build, and
so does a public name without a docstring (see ``_require_docstring`` below).
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src")))

project = "manystore"
author = "the manystore authors"
copyright = "2026, the manystore authors"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
myst_heading_anchors = 3

autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    # Document each object where it is defined, not again where it is re-exported.
    "ignore-module-all": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

nitpicky = True
# An unqualified name matching several documented objects (e.g. ``type``) links to one of
# them; a target that matches nothing is still an error (those are "ref.class" etc.).
suppress_warnings = ["ref.python"]
# Types from outside the package (no intersphinx: the build runs offline) and type-variable
# or alias names that autodoc cannot link. Everything under ``manystore.`` must resolve.
nitpick_ignore_regex = [
    (r"py:.*", r"(?!manystore\.).*"),
    (r"py:.*", r"manystore\.(.*\.)?_.*"),  # private modules and classes named in annotations
    (r"py:class", r"manystore\.[a-z_.]+\.[A-Z]"),  # type variables (T, K...)
]


def _require_docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Warn (an error under ``-W``) when a public object has no docstring."""
    short = name.rsplit(".", 1)[-1]
    if short.startswith("_") or what in ("module", "attribute", "data", "property"):
        return
    if not any(line.strip() for line in lines):
        from sphinx.util import logging

        logging.getLogger("manystore.docs").warning(f"{name}: public {what} without a docstring")


def _resolve_facade(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve ``manystore.a.X`` (a lazy or re-exported name) to where ``X`` is defined and documented.

    Objects are followed to their ``__module__``/``__qualname__`` (so an inherited method
    resolves to the class defining it); data, which has neither, resolves to the one
    documented object of that name, if there is exactly one.
    """
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("manystore."):
        return None
    import importlib

    domain = env.get_domain("py")
    parts = target.split(".")
    obj: Any = None
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            obj = None
        break
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if module and qualname and f"{module}.{qualname}" != target:
        canonical = f"{module}.{qualname}"
    else:
        found = [name for name in domain.objects if name.endswith("." + parts[-1])]
        if len(found) != 1 or found[0] == target:
            return None
        canonical = found[0]
    node["reftarget"] = canonical
    return domain.resolve_xref(
        env, node.get("refdoc"), app.builder, node["reftype"], canonical, node, contnode
    )


_current_module: list[str] = [""]


def _track_module(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if what == "module":
        _current_module[0] = name


def _skip_foreign(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Skip classes and functions imported into a module (``Iterator``, a helper of another module...):
    each is documented once, where it is defined."""
    module = getattr(obj, "__module__", None)
    foreign = isinstance(module, str) and module != _current_module[0]
    if what == "module" and foreign and (not str(module).startswith("manystore") or callable(obj)):
        return True
    if "<locals>" in getattr(obj, "__qualname__", ""):  # generated (e.g. a manager's proxy methods)
        return True
    return None


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _track_module)
    app.connect("autodoc-process-docstring", _require_docstring)
    app.connect("autodoc-skip-member", _skip_foreign)
    app.connect("missing-reference", _resolve_facade)
