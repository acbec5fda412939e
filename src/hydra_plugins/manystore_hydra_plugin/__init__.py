"""Registers manystore's Hydra plugins (``msc://`` config paths) with Hydra.

Hydra imports every module of the ``hydra_plugins`` namespace package (only while it
runs, so hydra-core is installed) and registers the plugin classes it finds there; this
one exposes :class:`manystore.contrib.hydra.MSCConfigSource` and
:class:`manystore.contrib.hydra.MSCSearchPathPlugin`. The package is named apart from
multi-storage-client's ``hydra_msc_plugin`` so both can be installed; the classes share
its names, and Hydra keeps the first one it registers for the ``msc`` scheme.
"""

from __future__ import annotations

from manystore.contrib.hydra import MSCConfigSource, MSCSearchPathPlugin

__all__ = ["MSCConfigSource", "MSCSearchPathPlugin"]
