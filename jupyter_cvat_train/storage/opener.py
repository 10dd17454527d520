"""The :class:`~.backends.Storage` for a location: ``file://`` here, S3 imported only when
used (so a local sync never imports botocore)."""

from __future__ import annotations

from .backends import FileStorage, Storage
from .location import StorageLocation, parse_storage_uri


def open_storage(location: StorageLocation | str, *, endpoint_url: str | None = None, **s3_options) -> Storage:
    """The :class:`Storage` for ``location`` (a parsed :class:`.location.StorageLocation`,
    or a URI string that is parsed with :func:`.location.parse_storage_uri`).
    ``endpoint_url`` and ``s3_options`` (see :class:`.s3.S3Storage`) apply to s3 only.
    Raises StorageError (a LocationError) for a URI that is malformed, has another
    scheme, or embeds credentials."""
    location = parse_storage_uri(location)
    if location.scheme == "file":
        return FileStorage(location)
    from .s3 import S3Storage

    return S3Storage(location, endpoint_url=endpoint_url, **s3_options)
