"""A tab-completable view of an interface's tree (cottoncandy's browser).

``cci.get_browser()`` returns a :class:`Directory`; each attribute is a child directory
or object, so ``browser.project.sub01_DOT_grp.result<TAB>`` walks the store. Children
are listed lazily, on the first ``dir()``, attribute or item access, one level at a time.

Attribute names are the children's names made into identifiers, as cottoncandy does:

* a name starting with a digit gets ``NUM_`` in front (``01_run`` → ``NUM_01_run``);
* the extension's dot becomes ``_DOT_`` (``data.grp`` → ``data_DOT_grp``); unlike
  cottoncandy, every other dot too (``a.tar.gz`` → ``a_DOT_tar_DOT_gz``);
* dashes become ``_`` (``my-run`` → ``my_run``), and so does any other character
  that cannot be in an identifier.

Item access takes the real name (``browser["my-run"]``), and also works when two names
map to the same attribute. A name with one of :data:`GROUP_EXTENSIONS` is a
:class:`Group` (cottoncandy's HDF5-like group: ``keys()``, ``load()``); every leaf
(an object) offers ``load()`` (an array, by its metadata), ``read()``, ``download(path)``
and ``info()``; calling a leaf returns its :class:`~manystore.types.ObjectMetadata`.
"""

from __future__ import annotations

import keyword
import posixpath
import re
from typing import TYPE_CHECKING, Any

from ._paths import clean_name, dir_prefix

if TYPE_CHECKING:
    from ..types import ObjectMetadata
    from .fs import FileSystemInterface

__all__ = ["GROUP_EXTENSIONS", "Directory", "Group", "attribute_name"]

#: Extensions that make a directory a :class:`Group` (cottoncandy's HDF-like names).
GROUP_EXTENSIONS = (".hdf", ".h5", ".hf5", ".hdf5", ".h5py", ".grp", ".arr", ".dar")
_NOT_IDENT = re.compile(r"[^0-9A-Za-z_]")


def attribute_name(name: str) -> str:
    """The attribute under which a child called ``name`` appears (see the module doc)."""
    stem, ext = posixpath.splitext(name)
    out = stem.replace(".", "_DOT_") + ("_DOT_" + ext[1:] if ext else "")
    out = _NOT_IDENT.sub("_", out.replace("-", "_"))
    if out[:1].isdigit():
        out = "NUM_" + out
    if keyword.iskeyword(out):
        out += "_"
    return out


class Directory:
    """One node of the tree: a directory (its children are attributes) or an object.

    Args:
        path: The node's name from the interface's root (``""``: the root).
        interface: The interface whose tree this is.
    """

    def __init__(self, path: str, interface: FileSystemInterface) -> None:
        self.interface = interface
        self._path = clean_name(path).rstrip("/")
        self._children: dict[str, str] | None = None

    # cottoncandy's attribute names for the path
    @property
    def _fullpath(self) -> str:
        return self._path

    @property
    def _curdir(self) -> str:
        return posixpath.basename(self._path)

    def _listing(self) -> dict[str, str]:
        if self._children is None:
            children: dict[str, str] = {}
            for meta in self.interface._list(dir_prefix(self._path), delimiter="/"):
                name = posixpath.basename(meta.key.rstrip("/"))
                if name:
                    children.setdefault(attribute_name(name), name)
            self._children = children
        return self._children

    def _ls(self) -> list[str]:
        """The attribute names of the children, sorted."""
        return sorted({attribute_name(n) for n in self._listing().values()})

    def _glob(self) -> list[str]:
        """Names of every object under this node."""
        return sorted(self.interface.glob(dir_prefix(self._path) or "*"))

    def _child(self, name: str) -> Directory:
        path = f"{self._path}/{name}" if self._path else name
        cls = Group if name.endswith(GROUP_EXTENSIONS) or isinstance(self, Group) else Directory
        return cls(path, interface=self.interface)

    def __dir__(self) -> list[str]:
        return self._ls()

    def __len__(self) -> int:
        return len(set(self._listing().values()))

    def __iter__(self) -> Any:
        return iter(sorted(set(self._listing().values())))

    def __getattr__(self, attr: str) -> Directory:
        if attr.startswith("__"):
            raise AttributeError(attr)
        children = self._listing()
        if attr in children:
            return self._child(children[attr])
        if self._found(attr):  # a name not in the first listing (cottoncandy allows this too)
            return self._child(attr)
        raise AttributeError(f"{self._path or '<root>'!r} has no child {attr!r}; children: {self._ls()}")

    def __getitem__(self, name: str) -> Directory:
        children = self._listing()
        if name in children.values():
            return self._child(name)
        if name in children:
            return self._child(children[name])
        if self._found(name):  # stored since this node was listed
            return self._child(name)
        raise KeyError(f"{self._path or '<root>'!r} has no child {name!r}")

    def _found(self, name: str) -> bool:
        path = f"{self._path}/{name}" if self._path else name
        found = self.interface._exists(path) or any(True for _ in self.interface._list(dir_prefix(path)))
        if found:
            self._children = None  # list again next time
        return found

    # ------------------------------------------------------------- leaves
    def _is_object(self) -> bool:
        return bool(self._path) and self.interface._exists(self._path)

    def __call__(self) -> ObjectMetadata:
        """The object's metadata (cottoncandy returned the boto3 object).

        Raises:
            FileNotFoundError: This node is not an object.
        """
        return self.info()

    def info(self) -> ObjectMetadata:
        """The object's metadata, with its user metadata (array dtype, shape...).

        Raises:
            FileNotFoundError: This node is not an object.
        """
        if not self._is_object():
            raise FileNotFoundError(f"{self._path or '<root>'!r} is a directory, not an object")
        meta = self.interface.client.info(self.interface._key(self._path))
        meta.metadata = self.interface._metadata(self._path)
        return meta

    def read(self) -> bytes:
        """The object's bytes."""
        return self.interface._get(self._path)

    def download(self, file_name: str) -> None:
        """Download the object to a local file (or, for a directory, the branch to a local directory)."""
        if self._is_object():
            self.interface.download_to_file(self._path, file_name)
        else:
            self.interface.download_directory(self._path, file_name)

    def load(self, key: str | None = None) -> Any:
        """The array stored at this object (or at child ``key``), by its metadata.

        Raw arrays (``shape``/``dtype`` metadata), ``.npy`` objects, dask arrays and sparse
        matrices (directories with ``metadata.json``) and ``.json`` objects are recognised.

        Raises:
            KeyError: ``key`` is not a child.
            ValueError: The node holds nothing loadable.
        """
        if key is not None:
            return self[key].load()
        return _load(self.interface, self._path)

    def keys(self) -> list[str]:
        """The children's attribute names, sorted."""
        return self._ls()

    def __repr__(self) -> str:
        root = f"{self.interface.client.url_prefix}{self.interface.prefix}"
        if self._is_object():
            size = self.interface._size(self._path) / 2**20
            return f"<manystore-file <{root}> {self._path} [{size:0.1f}MB]>"
        return f"<manystore-path <{root}> {self._path or '/'}>"


class Group(Directory):
    """A directory with an HDF-like name (``.grp``, ``.h5``...) or a :meth:`cloud2dataset` root.

    ``keys()`` lists it, ``load(key)`` downloads one array, ``group[key]`` is the child.
    """

    def __dir__(self) -> list[str]:
        return ["keys", "load", *self._ls()]

    def load(self, key: str | None = None) -> Any:
        """The array at child ``key`` (or at this node when it is itself an object).

        Raises:
            KeyError: ``key`` is not a child.
            ValueError: No ``key`` and this node is a directory.
        """
        if (
            key is None
            and not self._is_object()
            and not self.interface._exists(f"{self._path}/metadata.json")
        ):
            raise ValueError(f"group {self._path!r}: pass a key to load; keys: {self.keys()}")
        return super().load(key)

    def __repr__(self) -> str:
        root = f"{self.interface.client.url_prefix}{self.interface.prefix}"
        if self._is_object():
            meta = self.interface._metadata(self._path)
            shape = meta.get("shape", "?")
            size = self.interface._size(self._path) / 2**20
            return f"<manystore-dataset <{root}> {self._path} [{size:0.2f}MB:shape=({shape})]>"
        return f"<manystore-group <{root}> ({self._curdir}: {len(self)} keys)>"


def _load(interface: Any, path: str) -> Any:
    """Download what ``path`` holds, by what its metadata says it is."""
    if interface._exists(path):
        meta = {k.lower(): v for k, v in interface._metadata(path).items()}
        if "shape" in meta and "dtype" in meta:
            return interface.download_raw_array(path)
        if path.endswith(".npy"):
            return interface.download_npy_array(path)
        if path.endswith(".json"):
            return interface.download_json(path)
        raise ValueError(f"object {path!r} is not an array (no shape/dtype metadata); use read()")
    if interface._exists(f"{path}/metadata.json"):
        info = interface.download_json(f"{path}/metadata.json")
        if isinstance(info, dict) and "dask" in info:
            return interface.download_dask_array(path)
        if isinstance(info, dict) and "attrs" in info:
            return interface.download_sparse_array(path)
    raise ValueError(f"{path!r} is a directory of {len(interface.lsdir(path))} children; load a child")
