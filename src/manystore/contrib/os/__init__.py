"""MSC's ``multistorageclient.contrib.os``: re-exports :mod:`manystore.os`."""

from __future__ import annotations

from ...os import __all__ as __all__
from ...os import exists, isdir, isfile, makedirs, path

_ = (exists, isdir, isfile, makedirs, path)
