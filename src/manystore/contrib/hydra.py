"""MSC's ``multistorageclient.contrib.hydra``: Hydra configs read from ``msc://`` URLs.

Two Hydra plugins:

* :class:`MSCConfigSource` — a config source for the ``msc`` scheme: Hydra reads
  configs, groups and listings under an ``msc://profile/dir`` search-path entry through
  manystore (any configured profile: S3, GCS, Azure, a local directory, ...);
* :class:`MSCSearchPathPlugin` — repairs ``msc://`` search-path entries that Hydra's path
  handling turned into ``/cwd/msc:/profile/dir`` (``@hydra.main(config_path="msc://...")``,
  ``hydra.initialize(config_path="msc://...")``) and adds a catch-all ``msc://`` source.

Hydra finds both through the ``hydra_plugins.manystore_hydra_plugin`` package shipped in
manystore's wheel, so installing manystore and hydra-core is enough::

    with hydra.initialize(config_path="msc://team/configs", version_base=None):
        cfg = hydra.compose(config_name="train", overrides=["optim=adam"])

Importing this module imports hydra-core (``pip install hydra-core``).
"""

from __future__ import annotations

import io
import logging

try:
    from hydra.core.config_search_path import ConfigSearchPath, SearchPathElement
    from hydra.core.object_type import ObjectType
    from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
    from hydra.plugins.search_path_plugin import SearchPathPlugin
    from omegaconf import OmegaConf
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"manystore.contrib.hydra needs hydra-core, which cannot be imported ({_err}): pip install hydra-core"
    ) from _err

from ..shortcuts import read, resolve_storage_client
from ..types import MSC_PROTOCOL, MSC_PROTOCOL_NAME

__all__ = ["MSCConfigSource", "MSCSearchPathPlugin"]

logger = logging.getLogger(__name__)


def _join(base: str, relative: str) -> str:
    """``relative`` (a config path) under the URL ``base``, with exactly one ``/`` between."""
    relative = relative.lstrip("/")
    if not relative:
        return base
    if base.endswith("://"):
        return base + relative
    return base.rstrip("/") + "/" + relative


class MSCConfigSource(ConfigSource):
    """A Hydra config source reading ``msc://`` URLs through manystore.

    Hydra creates one for each ``msc://`` entry of its search path (its ``main`` entry
    when the config path is an ``msc://`` URL, and the catch-all ``msc://`` entry that
    :class:`MSCSearchPathPlugin` adds). Config paths Hydra asks for (``train``,
    ``optim/adam``) are taken relative to the entry's URL; a full ``msc://`` URL is used
    as it is. Configs are YAML files with the ``.yaml`` extension, groups are directories.
    """

    def __init__(self, provider: str, path: str) -> None:
        """Create the source.

        Args:
            provider: Who added the search-path entry (Hydra's ``main``, ``msc-universal``, ...).
            path: The entry's URL, ``msc://profile/dir`` (``profile/dir`` is taken as
                that URL), or ``msc://`` for the catch-all source.

        Raises:
            ValueError: ``path`` has a scheme other than ``msc``.
        """
        if "://" not in path:
            path = MSC_PROTOCOL + path.lstrip("/")
        if not path.startswith(MSC_PROTOCOL):
            raise ValueError(f"MSCConfigSource reads {MSC_PROTOCOL} URLs, got {path!r}")
        super().__init__(provider=provider, path=path)
        #: The URL config paths are resolved against.
        self.base_url = path

    @staticmethod
    def scheme() -> str:
        """The search-path scheme this source serves: ``msc``."""
        return MSC_PROTOCOL_NAME

    def _url(self, config_path: str) -> str:
        """The URL of ``config_path`` (relative, ``group: name`` as in a defaults list, or a URL)."""
        if config_path.startswith(MSC_PROTOCOL):
            return config_path
        if ": " in config_path:
            group, name = config_path.split(": ", 1)
            config_path = f"{group}/{name}"
        return _join(self.base_url, config_path)

    def load_config(self, config_path: str) -> ConfigResult:
        """Read and parse the config at ``config_path`` (``.yaml`` appended when missing).

        Raises:
            hydra.plugins.config_source.ConfigLoadError: The object cannot be read or is
                not valid YAML (an :class:`OSError`); the message names the URL.
        """
        url = self._normalize_file_name(self._url(config_path))
        try:
            text = read(url).decode("utf-8")
            header = ConfigSource._get_header_dict(text)
            config = OmegaConf.load(io.StringIO(text))
        except Exception as err:
            raise ConfigLoadError(f"cannot load the Hydra config {url}: {err}") from err
        return ConfigResult(provider=self.provider, path=self.full_path(), config=config, header=header)

    def available(self) -> bool:
        """True if the source's URL names a usable profile (always, for the catch-all ``msc://``)."""
        if self.base_url == MSC_PROTOCOL:
            return True
        try:
            resolve_storage_client(self.base_url)
        except Exception as err:
            logger.debug("Hydra config source %s is not available: %s", self.base_url, err)
            return False
        return True

    def is_group(self, config_path: str) -> bool:
        """True if ``config_path`` is a directory holding at least one object."""
        try:
            client, key = resolve_storage_client(self._url(config_path))
            return not client.is_empty(key)
        except Exception as err:
            logger.debug("%s is not a Hydra config group: %s", config_path, err)
            return False

    def is_config(self, config_path: str) -> bool:
        """True if ``config_path`` (``.yaml`` appended when missing) is an object and not a group."""
        if self.is_group(config_path):
            return False
        try:
            client, key = resolve_storage_client(self._normalize_file_name(self._url(config_path)))
            return client.is_file(key)
        except Exception as err:
            logger.debug("%s is not a Hydra config: %s", config_path, err)
            return False

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        """Names of the configs (without ``.yaml``) and groups directly under ``config_path``, sorted.

        Args:
            config_path: The group to list (``""`` for the source's top level).
            results_filter: :attr:`ObjectType.CONFIG` or :attr:`ObjectType.GROUP` to keep
                only those; None for both.
        """
        files: list[str] = []
        try:
            client, key = resolve_storage_client(self._url(config_path))
            prefix = key.rstrip("/") + "/" if key.strip("/") else ""
            names = set()
            for entry in client.list(prefix, include_directories=True):
                name = entry.key[len(prefix) :].strip("/").split("/", 1)[0]
                if entry.key.startswith(prefix) and name:
                    names.add(name)
        except Exception as err:
            logger.debug("cannot list Hydra configs under %s: %s", config_path, err)
            return []
        for name in sorted(names):
            child = f"{config_path.rstrip('/')}/{name}" if config_path.strip("/") else name
            self._list_add_result(files=files, file_path=child, file_name=name, results_filter=results_filter)
        return sorted(set(files))

    def __repr__(self) -> str:
        return f"MSCConfigSource(provider={self.provider}, path={self.full_path()})"


class MSCSearchPathPlugin(SearchPathPlugin):
    """A Hydra search-path plugin that makes ``msc://`` config paths work.

    Hydra joins a relative ``config_path`` to the caller's directory and normalizes it,
    so ``msc://team/configs`` arrives as ``/caller/dir/msc:/team/configs``; this plugin
    restores the URL. It also appends a catch-all ``msc://`` source (provider
    ``msc-universal``) when the search path has no ``msc://`` entry.
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Repair mangled ``msc://`` entries of ``search_path`` and add the catch-all source."""
        elements = search_path.get_path()
        for index, element in enumerate(elements):
            path = element.path
            if not path or path.startswith(MSC_PROTOCOL):
                continue
            start = path.find(f"{MSC_PROTOCOL_NAME}:/")
            if start == -1 or (start > 0 and path[start - 1] != "/"):
                continue
            rest = path[start + len(MSC_PROTOCOL_NAME) + 1 :].lstrip("/")
            fixed = MSC_PROTOCOL + rest
            elements[index] = SearchPathElement(element.provider, fixed)
            logger.debug("Hydra search path %s read as %s", path, fixed)
        if not any(element.path and element.path.startswith(MSC_PROTOCOL) for element in elements):
            search_path.append("msc-universal", MSC_PROTOCOL)
