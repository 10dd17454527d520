"""Storage locations: a storage URI parsed once into a checked :class:`StorageLocation`.

Every part of the project that opens storage takes the parsed value, never the string:
the spec check (:mod:`jupyter_cvat_train.jobs.specs`) checks it, the sync engine and
the backends open it, the lock is keyed by its canonical form. Spellings that name
the same place parse to the same value (``FILE://``, ``file:/``, ``file://localhost/``,
a trailing slash, percent-encoded characters, a symlink on the way).

Rules of :func:`parse_storage_uri`:

- the scheme is ``s3`` or ``file``, in any letter case;
- no credentials (``user@``), no query or fragment (``?``/``#``: percent-encode them),
  no control characters or NUL (raw or percent-encoded), no leading/trailing spaces,
  at most :data:`MAX_URI_CHARS` characters;
- ``file://``: the host is empty or ``localhost``; the path is percent-decoded exactly
  once (``%252e`` is the three characters ``%2e``, never ``.``), must be absolute and
  must not contain a ``..`` part; the value holds the real path (symlinks resolved);
- ``s3://bucket/prefix``: the prefix is taken literally, as the AWS CLI does (S3 keys
  may hold ``%``); ``.``, ``..`` and empty parts are refused; leading and trailing
  ``/`` are dropped.

Endpoints: :func:`normalize_endpoint_url` and :func:`configured_endpoint_urls` (the
user's own endpoint from the AWS environment/config), used by the server's allow-list.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from ..jobs.runtime.messages import shown
from .errors import LocationError

MAX_URI_CHARS = 4096
EXPECTED = "expected s3://bucket/prefix or file:///absolute/path"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


@dataclass(frozen=True)
class StorageLocation:
    """One parsed, checked storage location.

    scheme: ``"s3"`` or ``"file"``. bucket, prefix: for s3 (prefix '/'-separated,
    without leading/trailing '/', ``""`` for the whole bucket). path: for file, the
    absolute real path of the folder (symlinks resolved when it exists).
    """

    scheme: str
    bucket: str = ""
    prefix: str = ""
    path: Path | None = None

    @property
    def uri(self) -> str:
        """The canonical URI: ``s3://bucket/prefix`` or ``file:///real/path`` (the path
        percent-encoded, so that :func:`parse_storage_uri` gives this value back)."""
        if self.scheme == "file":
            return "file://" + quote(str(self.path), safe="/")
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def __str__(self) -> str:
        return self.uri

    def overlaps(self, folder: str | os.PathLike) -> bool:
        """Whether this is a file location equal to, inside, or containing ``folder``
        (compared as real paths)."""
        if self.scheme != "file":
            return False
        return paths_overlap(self.path, folder)


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether real path ``path`` is ``folder`` or inside it (both resolved)."""
    p, f = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return p == f or f in p.parents


def paths_overlap(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether one of two folders contains the other (or they are the same)."""
    return is_within(a, b) or is_within(b, a)


def parse_storage_uri(uri: object) -> StorageLocation:
    """Parse ``uri`` (see the module rules) into a :class:`StorageLocation`.

    Raises :class:`LocationError` (status 400, or 403 for a ``..`` part) with a message
    that names the problem and the fix; the URI is quoted shortened, and credentials
    are never repeated.
    """
    if isinstance(uri, StorageLocation):
        return uri
    if not isinstance(uri, str) or not uri:
        raise LocationError(f"storage: {EXPECTED}")
    if len(uri) > MAX_URI_CHARS:
        raise LocationError(f"storage: the URI is too long ({len(uri)} characters, at most {MAX_URI_CHARS})")
    if _CONTROL.search(uri):
        raise LocationError("storage: the URI holds a control character or NUL")
    if uri != uri.strip():
        raise LocationError(f"storage: the URI starts or ends with spaces ({shown(uri)}); remove them")
    scheme, colon, _ = uri.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("s3", "file"):
        raise LocationError(f"storage: unsupported URI {shown(uri)}: {EXPECTED}")
    if "?" in uri or "#" in uri:
        raise LocationError(
            f"storage: {shown(uri)} has a query or fragment ('?' or '#'); "
            "percent-encode such characters in names (%3F, %23)"
        )
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise LocationError(
            "storage: the URI must not contain credentials (user@ / user:secret@): "
            "use environment variables, a profile or an instance role"
        )
    if scheme == "file":
        return _parse_file(uri, parts.netloc, parts.path)
    return _parse_s3(uri, parts.netloc, parts.path)


def _parse_file(uri: str, host: str, raw_path: str) -> StorageLocation:
    if host.lower() not in ("", "localhost"):
        raise LocationError(
            f"storage: a file URI names a folder of this machine: file:///absolute/path "
            f"(three slashes), not host {shown(host, 60)}"
        )
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise LocationError(f"storage: {shown(uri)} holds percent-encoded bytes that are not UTF-8") from None
    if _CONTROL.search(path):
        raise LocationError("storage: the path holds a control character or NUL (percent-encoded)")
    if not path.startswith("/"):
        raise LocationError(f"storage: a file URI needs an absolute path: file:///absolute/path, not {shown(uri)}")
    if ".." in path.split("/"):
        raise LocationError(
            f"storage: '..' is not allowed in storage paths ({shown(uri)}); give the folder itself", 403
        )
    return StorageLocation("file", path=Path(os.path.realpath(path)))


def _parse_s3(uri: str, bucket: str, raw_prefix: str) -> StorageLocation:
    if not _BUCKET.fullmatch(bucket):
        raise LocationError(
            f"storage: {shown(uri)} needs a bucket name (letters, digits, '.', '-', '_'): s3://bucket/prefix"
        )
    prefix = raw_prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise LocationError(f"storage: the prefix of {shown(uri)} has an empty, '.' or '..' part", 403)
    return StorageLocation("s3", bucket=bucket, prefix=prefix)


def normalize_endpoint_url(url: object) -> str:
    """``url`` as ``scheme://host[:port][/path]`` with the scheme and host in lower case,
    no trailing '/', no default port. Raises LocationError (400) unless it is an
    http(s) URL without credentials, query or fragment."""
    if not isinstance(url, str) or not url.strip():
        raise LocationError("endpoint_url: expected an http(s) URL such as https://minio.example.com:9000")
    if len(url) > 2048 or _CONTROL.search(url):
        raise LocationError("endpoint_url: too long or holds control characters")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
        or "?" in url
        or "#" in url
    ):
        raise LocationError(
            f"endpoint_url: {shown(url)} is not a plain http(s) URL "
            "(scheme://host[:port][/path], no user, query or fragment)"
        )
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host += f":{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


def configured_endpoint_urls() -> list[str]:
    """The S3 endpoints the user configured for this process (normalized):
    ``AWS_ENDPOINT_URL_S3`` and ``AWS_ENDPOINT_URL`` from the environment, and
    ``endpoint_url`` (global or in the ``s3`` section) of the active AWS config profile.
    Malformed values are left out."""
    found = [os.environ.get("AWS_ENDPOINT_URL_S3"), os.environ.get("AWS_ENDPOINT_URL")]
    try:
        import botocore.session

        config = botocore.session.Session().get_scoped_config()
        s3 = config.get("s3")
        found += [config.get("endpoint_url"), s3.get("endpoint_url") if isinstance(s3, dict) else None]
    except Exception:  # noqa: BLE001 - a broken AWS config file allows nothing more
        pass
    out = []
    for url in found:
        try:
            out.append(normalize_endpoint_url(url))
        except LocationError:
            continue
    return out


def allowed_endpoint(endpoint_url: object, allowed: list[str] | tuple[str, ...] = ()) -> str | None:
    """The normalized ``endpoint_url`` (None for null/empty) when the server may sign
    requests to it: it is in ``allowed`` or the user's configured endpoint
    (:func:`configured_endpoint_urls`). Raises LocationError: 400 malformed, 403 not
    allowed (naming the setting that allows it). The one copy of the rule: the sync
    job's spec check (``jobs.specs.check_sync``) and the connection check of the
    server (``server.storage.connection_check``) both call it."""
    if endpoint_url in (None, ""):
        return None
    endpoint = normalize_endpoint_url(endpoint_url)
    ok = set(configured_endpoint_urls())
    for url in allowed:
        try:
            ok.add(normalize_endpoint_url(url))
        except LocationError:
            continue
    if endpoint not in ok:
        raise LocationError(
            f"endpoint_url: {endpoint[:200]} is not an endpoint this server may send requests to; "
            "the server's administrator can allow it with "
            "c.CvatTrainApp.allowed_endpoint_urls = [...] (or as the user's AWS_ENDPOINT_URL)",
            403,
        )
    return endpoint
