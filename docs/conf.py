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
    """Resolve ``manystore.X`` (a lazy top-level name) to where ``X`` is defined and documented."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("manystore."):
        return None
    import importlib

    head, *rest = target.split(".")[1:]
    try:
        obj = getattr(importlib.import_module("manystore"), head)
    except (AttributeError, ImportError):
        return None
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname:
        return None
    canonical = ".".join([module, qualname, *rest])
    if canonical == target:
        return None
    node["reftarget"] = canonical
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node.get("refdoc"), app.builder, node["reftype"], canonical, node, contnode)


def _skip_foreign(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Skip classes and functions imported from outside the package (``Iterator``, ``ThreadPoolExecutor``...)."""
    module = getattr(obj, "__module__", None)
    if what == "module" and isinstance(module, str) and not module.startswith("manystore"):
        return True
    return None


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _require_docstring)
    app.connect("autodoc-skip-member", _skip_foreign)
    app.connect("missing-reference", _resolve_facade)
