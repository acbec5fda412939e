"""Nested dicts of arrays as directories of raw arrays (cottoncandy's HDF-like groups).

``dict2cloud("run.grp", {"a": arr, "sub": {"b": arr2}})`` stores ``run.grp/a`` and
``run.grp/sub/b`` as raw array objects (:meth:`upload_raw_array`: dtype/shape metadata),
exactly as cottoncandy does; ``cloud2dict`` reads a branch back into a dict (all of it
or only ``keys=``) and ``cloud2dataset`` gives a lazy :class:`~manystore.arrays.browser.Group`.
"""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ._paths import clean_name, pathjoin

if TYPE_CHECKING:
    from .browser import Group

__all__ = ["GroupMixin"]


class GroupMixin:
    """``dict2cloud``, ``cloud2dict`` and ``cloud2dataset`` of :class:`~manystore.arrays.array.ArrayInterface`."""

    if TYPE_CHECKING:
        threads: int

        def upload_raw_array(self, object_name: str, array: Any, *args: Any, **kwargs: Any) -> Any: ...
        def download_raw_array(self, object_name: str, *args: Any, **kwargs: Any) -> Any: ...
        def lsdir(self, path: str = "/", limit: int = 10**3) -> list[str]: ...
        def _exists(self, name: str) -> bool: ...
        def _metadata(self, name: str) -> dict[str, str]: ...

    def dict2cloud(
        self,
        object_name: str,
        array_dict: dict[str, Any],
        acl: str = "authenticated-read",
        verbose: bool = True,
        threads: int | None = None,
        **metadata: Any,
    ) -> None:
        """Upload a dict of arrays of any depth; each array becomes ``object_name/<key>/...``.

        Args:
            object_name: The group's directory.
            array_dict: Keys are names (``/`` allowed); values are arrays, nested dicts, or
                anything :func:`numpy.asarray` turns into an array.
            acl: The objects' ACL (see :meth:`upload_raw_array`).
            verbose: Print ``uploaded arrays in "<object_name>"`` at the end.
            threads: Arrays uploaded in parallel (``None``: the interface's default).
            **metadata: User metadata stored on every array.

        Raises:
            TypeError: A key is not a string.
            ValueError: ``threads`` is not a positive integer.
        """
        import numpy as np

        name = clean_name(object_name).rstrip("/")
        leaves: list[tuple[str, Any]] = []
        _flatten(name, array_dict, leaves)
        workers = _workers(threads, self.threads)

        def upload(item: tuple[str, Any]) -> None:
            path, value = item
            array = value if isinstance(value, np.ndarray) else np.asarray(value)
            self.upload_raw_array(path, array, acl=acl, threads=1, **metadata)

        with ThreadPoolExecutor(max_workers=min(workers, max(len(leaves), 1))) as pool:
            list(pool.map(upload, leaves))
        if verbose:
            print(f'uploaded arrays in "{name}"')

    def cloud2dict(
        self,
        object_root: str,
        verbose: bool = True,
        keys: str | list[str] | None = None,
        threads: int | None = None,
        **metadata: Any,
    ) -> dict[str, Any]:
        """Download a branch of arrays into a dict (the complement of :meth:`dict2cloud`).

        Args:
            object_root: The branch.
            verbose: Print ``Downloaded arrays in "<object_root>"`` at the end.
            keys: Only these children (a name or a list of names; nested branches are
                downloaded whole).
            threads: Arrays downloaded in parallel (``None``: the interface's default).
            **metadata: Not used by cottoncandy either; any given raises ``TypeError``.

        Returns:
            Nested dicts of arrays. An object without array metadata maps to ``None`` (with
            a warning), as in cottoncandy.

        Raises:
            FileNotFoundError: Nothing under ``object_root``.
            KeyError: A name of ``keys`` is not under ``object_root``.
            TypeError: Extra keyword arguments were given.
        """
        if metadata:
            raise TypeError(f"cloud2dict() got unexpected keyword argument(s) {sorted(metadata)}")
        root = clean_name(object_root).rstrip("/")
        workers = _workers(threads, self.threads)
        if isinstance(keys, str):
            keys = [keys]
        tree = self._group_tree(root, keys)
        leaves: list[str] = []
        _leaves(root, tree, leaves)
        with ThreadPoolExecutor(max_workers=min(workers, max(len(leaves), 1))) as pool:
            arrays = dict(zip(leaves, pool.map(self._group_leaf, leaves), strict=True))
        result = _fill(root, tree, arrays)
        if verbose:
            print(f'Downloaded arrays in "{root}"')
        return result

    def _group_tree(self, root: str, keys: list[str] | None) -> dict[str, Any]:
        """``{child: None (an object) or a sub-tree}`` of ``root`` (only ``keys`` when given)."""
        if keys is None:
            children = [posixpath.basename(c) for c in self.lsdir(root, limit=10**9)]
            if not children:
                raise FileNotFoundError(f"nothing found under {root!r}")
        else:
            children = [clean_name(k).strip("/") for k in keys]
        tree: dict[str, Any] = {}
        for child in children:
            path = pathjoin(root, child)
            if self._exists(path):
                tree[child] = None
            elif self.lsdir(path, limit=1):
                tree[child] = self._group_tree(path, None)
            else:
                raise KeyError(f"{child!r} is not under {root!r}")
        return tree

    def _group_leaf(self, path: str) -> Any:
        try:
            return self.download_raw_array(path)
        except ValueError:
            meta = self._metadata(path)
            if "dtype" in meta and "shape" in meta:
                raise
        # no array metadata: cottoncandy maps such an object to None too
        import warnings

        warnings.warn(f"could not download {path!r}: no dtype/shape in its metadata", stacklevel=3)
        return None

    def cloud2dataset(self, object_root: str, **metadata: Any) -> Group:
        """A lazy group over a branch: ``keys()``, ``load(key)``, ``group[key]`` and attributes.

        Nothing is downloaded until ``load`` (see :class:`~manystore.arrays.browser.Group`).

        Raises:
            TypeError: Extra keyword arguments were given (cottoncandy ignored them).
        """
        if metadata:
            raise TypeError(f"cloud2dataset() got unexpected keyword argument(s) {sorted(metadata)}")
        from .browser import Group

        return Group(clean_name(object_root), interface=self)  # type: ignore[arg-type]


def _flatten(prefix: str, tree: dict[str, Any], out: list[tuple[str, Any]]) -> None:
    for key, value in tree.items():
        if not isinstance(key, str):
            raise TypeError(f"dict2cloud: key {key!r} under {prefix!r} is {type(key).__name__}; expected str")
        path = pathjoin(prefix, key)
        if isinstance(value, dict):
            _flatten(path, value, out)
        else:
            out.append((path, value))


def _leaves(prefix: str, tree: dict[str, Any], out: list[str]) -> None:
    for key, sub in tree.items():
        path = pathjoin(prefix, key)
        if sub is None:
            out.append(path)
        else:
            _leaves(path, sub, out)


def _fill(prefix: str, tree: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, sub in tree.items():
        path = pathjoin(prefix, key)
        result[key] = arrays[path] if sub is None else _fill(path, sub, arrays)
    return result


def _workers(threads: int | None, default: int) -> int:
    workers = default if threads is None else threads
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"threads={threads!r}: expected a positive integer")
    return workers
