"""SwiftStack (``s8k``): S3 with optional Content-Type inference from file extensions."""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any, ClassVar, cast

from .s3 import S3StorageProvider

if TYPE_CHECKING:
    from obstore import Attributes

__all__ = ["S8KStorageProvider"]


class S8KStorageProvider(S3StorageProvider):
    """SwiftStack through its S3 API. Accepts every :class:`S3StorageProvider` option, plus:

    Args:
        infer_content_type: Set ``Content-Type`` on writes from the file extension (``.wav`` ->
            ``audio/x-wav``) so browsers play media inline. Default False.

    HTTP 429 (which SwiftStack uses for throttling) is a :class:`manystore.errors.RetryableError`
    as on every S3 store, so no special retry mode is needed.
    """

    provider_name: ClassVar[str] = "s8k"

    def __init__(self, *args: Any, infer_content_type: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._infer_content_type = bool(infer_content_type)

    def _attributes(self, path: str, metadata: dict[str, str] | None) -> Attributes | None:
        attributes: dict[str, str] = dict(metadata or {})
        if self._infer_content_type and "Content-Type" not in attributes:
            guessed = mimetypes.guess_type(path)[0]
            if guessed:
                attributes["Content-Type"] = guessed
        return cast("Attributes", attributes) if attributes else None
