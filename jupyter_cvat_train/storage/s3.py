"""``s3://bucket/prefix`` storage through boto3 (S3 and S3-compatible servers).

- Credentials: boto3's standard chain (environment, shared config/credentials files,
  container/instance roles). Nothing here reads, logs or returns them.
- ``endpoint_url`` for MinIO, Ceph, GCS interop, moto...: the classic s3transfer
  ``TransferManager`` is used for large objects because boto3's CRT client ignores
  ``endpoint_url``; the connection pool is sized to the concurrency.
- Small objects (< ``multipart_threshold``) go through single ``PutObject`` (with
  ``Content-MD5``, so the server checks integrity) and ``GetObject`` requests, and the
  listing through ``ListObjectsV2``, sent as requests presigned by the boto3 client
  (same credentials, signing, endpoint, proxies and CA bundle) over botocore's
  urllib3 session, with our own XML parsing: botocore's per-call machinery cost about
  1 ms of CPU per object and 0.4 s to parse a 1,000-key listing, which dominated
  small-file and no-op syncs. Large objects are uploaded with s3transfer's multipart
  uploads, which it completes or aborts (``AbortMultipartUpload`` on any failure), and
  downloaded as parallel ranged GETs (``If-Match`` the listed ETag) written in place
  into a preallocated temporary file.
- Retries with backoff on throttling, 5xx and connection errors: botocore's retry
  modes (``standard`` by default, ``adaptive`` adds client-side rate limiting) for
  client calls; the same policy (exponential backoff, full jitter, ``max_attempts``)
  for the presigned requests.
- The source mtime is stored as object metadata ``mtime`` (epoch seconds, as rclone
  does); comparisons use the listing's LastModified, like ``aws s3 sync``, and read the
  stored ``mtime`` (one HEAD, :meth:`S3Storage.stored_mtime`) only for an equal-size
  file whose times disagree (see :mod:`.plan`). Multipart uploads made with
  ``checksum=True`` also store ``sha256``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import random
import re
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import unquote_plus

import botocore.exceptions as bexc
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.httpsession import URLLib3Session, get_cert_path
from botocore.loaders import Loader
from botocore.utils import get_environ_proxies

from .backends import Storage, file_digest
from .errors import SourceChanged, StorageError, TransferError
from .local import Entry, unchanged
from .location import StorageLocation

MiB = 1 << 20

# Error codes that mean "this whole sync cannot work", as opposed to one bad object.
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AuthorizationHeaderMalformed",
}
_FATAL_CODES = _CREDENTIAL_CODES | {
    "NoSuchBucket",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidBucketName",
    "PermanentRedirect",
}


def describe_error(exc: BaseException, where: str) -> tuple[str, bool]:
    """``(message, fatal)`` for an exception from boto3 about location ``where``.

    ``fatal`` is True when no further request can succeed (endpoint unreachable,
    credentials missing or refused, bucket missing or access denied): the sync stops
    with this one message. Messages never hold credentials, nor the remote's own error
    text: an S3 error is summarized as its error code (cut to 64 characters of
    ``[A-Za-z0-9._-]``) and HTTP status.
    """
    if isinstance(
        exc,
        (bexc.EndpointConnectionError, bexc.ConnectTimeoutError, bexc.ConnectionClosedError, bexc.ProxyConnectionError),
    ):
        return (
            f"cannot reach the storage endpoint for {where}: {type(exc).__name__}. "
            "Check --endpoint-url (scheme, host, port) and that the server is running."
        ), True
    if isinstance(exc, (bexc.NoCredentialsError, bexc.PartialCredentialsError)):
        return (
            f"no usable credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "a profile (AWS_PROFILE) or an instance role."
        ), True
    if isinstance(exc, bexc.SSLError):
        return f"TLS error talking to the storage endpoint for {where}: check the endpoint URL and certificates.", True
    if isinstance(exc, bexc.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = error_code(err.get("Code")) or str(status or "?")
        http = f"HTTP {status}" if status else ""
        if code in _CREDENTIAL_CODES:
            return (
                f"the storage refused the credentials for {where} ({code}): check AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY or the profile, and --endpoint-url."
            ), True
        if code in ("NoSuchBucket", "404") and exc.operation_name in ("ListObjectsV2", "HeadBucket"):
            return f"bucket not found for {where}: create it first or check the URI and --endpoint-url.", True
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return f"access denied to {where} ({code}): the credentials lack permission for this bucket/prefix.", True
        if code in _FATAL_CODES:
            return f"{where}: {code}" + (f" ({http})" if http else ""), True
        return f"{code}" + (f" ({http}, {exc.operation_name})" if http else f" ({exc.operation_name})"), False
    if isinstance(exc, bexc.ReadTimeoutError):
        return "read timeout from the storage endpoint", False
    if isinstance(exc, bexc.ResponseParserError):
        return "the endpoint's answer could not be parsed as S3's", False
    return f"{type(exc).__name__}: {str(exc)[:200]}", False


def error_code(code: object) -> str:
    """An S3 error code from a remote answer, reduced to ``[A-Za-z0-9._-]``, at most 64
    characters (the remote chooses it: it is never shown verbatim)."""
    return re.sub(r"[^A-Za-z0-9._-]", "", str(code or ""))[:64]


def _s3_error(exc: BaseException, where: str) -> Exception:
    """StorageError for fatal boto3 errors (the sync stops), TransferError otherwise."""
    message, fatal = describe_error(exc, where)
    return StorageError(message) if fatal else TransferError(message)


class _Progress:
    """An s3transfer subscriber that reports bytes transferred (duck-typed like
    ``s3transfer.subscribers.BaseSubscriber``, so s3transfer is imported only when a
    large upload needs it)."""

    def __init__(self, on_bytes):
        self._on_bytes = on_bytes

    def on_queued(self, future, **kwargs):
        pass

    def on_progress(self, future, bytes_transferred, **kwargs):
        self._on_bytes(bytes_transferred)

    def on_done(self, future, **kwargs):
        pass


_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_RETRY_STATUS = {429, 500, 502, 503, 504}
_RETRY_ERRORS = (
    bexc.EndpointConnectionError,
    bexc.ConnectTimeoutError,
    bexc.ConnectionClosedError,
    bexc.ReadTimeoutError,
)


class _Presigned:
    """Requests presigned by a boto3 client, sent over botocore's urllib3 session
    (which honours proxies from the environment and the CA bundle), with retries:
    exponential backoff with full jitter on connection errors, 429 and 5xx. HTTP errors
    raise botocore's ClientError, transport errors botocore's own exceptions, so
    :func:`describe_error` treats them like client calls."""

    def __init__(self, client, endpoint_url: str | None, *, max_attempts: int, timeout: tuple[float, float], pool: int):
        self.client, self.max_attempts = client, max(1, max_attempts)
        url = endpoint_url or client.meta.endpoint_url
        self.session = URLLib3Session(
            verify=get_cert_path(os.environ.get("AWS_CA_BUNDLE") or True),
            proxies=get_environ_proxies(url),
            timeout=timeout,
            max_pool_connections=pool,
        )

    def send(
        self,
        operation: str,
        params: dict,
        method: str,
        *,
        body: bytes | None = None,
        headers: dict | None = None,
        stream: bool = False,
    ):
        for attempt in range(self.max_attempts):
            last = attempt == self.max_attempts - 1
            url = self.client.generate_presigned_url(operation, Params=params, ExpiresIn=3600)
            request = AWSRequest(method, url, headers=headers, data=body, stream_output=stream).prepare()
            try:
                resp = self.session.send(request)
            except _RETRY_ERRORS:
                if last:
                    raise
            else:
                if resp.status_code < 300:
                    return resp
                if resp.status_code not in _RETRY_STATUS or last:
                    raise self._client_error(resp, self.client.meta.method_to_api_mapping.get(operation, operation))
                _ = resp.content  # drain, so the connection goes back to the pool
            time.sleep(random.uniform(0, min(20.0, 0.5 * 2**attempt)))
        raise AssertionError("unreachable")

    @staticmethod
    def _client_error(resp, operation: str) -> bexc.ClientError:
        code, message = str(resp.status_code), ""
        try:
            root = ET.fromstring(resp.content)
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
        except ET.ParseError:
            pass
        return bexc.ClientError(
            {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": resp.status_code}},
            operation,
        )


class _S3DataLoader(Loader):
    """botocore's data loader, except that :meth:`list_available_services` (which
    botocore calls to check that "s3" exists before loading its model) looks at the s3
    folder only, instead of listing every service folder of every search path: ~900
    ``listdir`` calls, 20-70 ms of each process start measured here. Search paths
    (``AWS_DATA_PATH``, ``~/.aws/models``), versions and compressed models are botocore's."""

    SERVICES = ("s3",)

    def list_available_services(self, type_name):
        found = set()
        for service in self.SERVICES:
            for base in self.search_paths:
                folder = os.path.join(base, service)
                if os.path.isdir(folder) and any(
                    self.file_loader.exists(os.path.join(folder, version, type_name)) for version in os.listdir(folder)
                ):
                    found.add(service)
        return sorted(found)


def _botocore_session() -> botocore.session.Session:
    """A botocore session (boto3's credential chain and config) whose data loader is
    :class:`_S3DataLoader`, built from ``data_path`` as botocore's ``create_loader`` does."""
    session = botocore.session.Session()
    data_path = session.get_config_variable("data_path")
    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else None
    session.register_component("data_loader", _S3DataLoader(extra_search_paths=paths))
    return session


class S3Storage(Storage):
    """``s3://bucket/prefix`` through one thread-safe boto3 client.

    Args:
        location: the parsed location (:class:`.location.StorageLocation`, scheme s3);
            keys are relative to its prefix.
        endpoint_url: S3-compatible endpoint, or None for AWS.
        concurrency: parallel requests the caller will make; sizes the connection pool
            and the transfer manager.
        multipart_threshold, multipart_chunksize: bytes; objects at or above the
            threshold are uploaded in parts of ``multipart_chunksize`` (8 MiB, boto3's
            default) and downloaded as parallel ranged GETs of ``download_chunksize``
            (64 MiB: fewer requests; s5cmd uses 50 MiB).
        retry_mode: botocore retry mode, ``standard`` or ``adaptive``.
        max_attempts: attempts per request, including the first.
        checksum: store a ``sha256`` metadata on multipart uploads.
        region_name: AWS region (default: from the environment/config, else us-east-1).
    """

    mtime_tolerance = 1.0  # LastModified has one-second resolution
    records_mtime = True  # LastModified is the upload time; metadata "mtime" the source's

    def __init__(
        self,
        location: StorageLocation,
        *,
        endpoint_url: str | None = None,
        concurrency: int = 16,
        multipart_threshold: int = 16 * MiB,
        multipart_chunksize: int = 8 * MiB,
        download_chunksize: int = 64 * MiB,
        retry_mode: str = "standard",
        max_attempts: int = 5,
        checksum: bool = False,
        region_name: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ):
        self.location = location
        self.uri = location.uri
        self.bucket = location.bucket
        self.prefix = location.prefix + "/" if location.prefix else ""
        self.endpoint_url = endpoint_url or None
        self.multipart_threshold = multipart_threshold
        self.checksum = checksum
        self._where = self.uri + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        config = Config(
            max_pool_connections=2 * concurrency + 4,
            signature_version="s3v4",
            retries={"mode": retry_mode, "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Content-MD5 (small objects) and s3transfer cover integrity; skipping the
            # extra CRC trailer keeps requests plain for S3-compatible servers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # botocore's session is the one boto3 wraps (same credential chain); using it
        # directly skips importing boto3 and s3transfer (~20 ms of every CLI start).
        session = _botocore_session()
        region = region_name or session.get_config_variable("region") or "us-east-1"
        try:
            self.client = session.create_client("s3", endpoint_url=self.endpoint_url, region_name=region, config=config)
        except ValueError as e:  # malformed endpoint URL
            raise StorageError(f"invalid endpoint URL {self.endpoint_url!r}: {e}") from None
        self.multipart_chunksize = multipart_chunksize
        self.concurrency = concurrency
        self.download_chunksize = download_chunksize
        self._manager = None  # s3transfer.manager.TransferManager, made on first large upload
        self._pool: ThreadPoolExecutor | None = None
        self._manager_lock = threading.Lock()
        self._raw = _Presigned(
            self.client,
            self.endpoint_url,
            max_attempts=max_attempts,
            timeout=(connect_timeout, read_timeout),
            pool=2 * concurrency + 4,
        )

    def _key(self, key: str) -> str:
        return self.prefix + key

    @property
    def manager(self):
        """The s3transfer ``TransferManager`` for multipart uploads (made on first use)."""
        with self._manager_lock:
            if self._manager is None:
                from s3transfer.manager import TransferConfig, TransferManager

                config = TransferConfig(
                    multipart_threshold=self.multipart_threshold,
                    multipart_chunksize=self.multipart_chunksize,
                    max_request_concurrency=self.concurrency,
                    io_chunksize=MiB,
                )
                self._manager = TransferManager(self.client, config)
            return self._manager

    def list(self, on_skip=None, unreadable=None):
        n = len(self.prefix)
        params = {"Bucket": self.bucket, "Prefix": self.prefix, "EncodingType": "url", "MaxKeys": 1000}
        try:
            while True:
                root = ET.fromstring(self._raw.send("list_objects_v2", params, "GET").content)
                for obj in root.iter(f"{_S3_NS}Contents"):
                    key = unquote_plus(obj.findtext(f"{_S3_NS}Key"))[n:]
                    size = int(obj.findtext(f"{_S3_NS}Size"))
                    if key.endswith("/") and size == 0:
                        continue  # a "folder" marker made by consoles; holds no file
                    modified = datetime.fromisoformat(obj.findtext(f"{_S3_NS}LastModified").replace("Z", "+00:00"))
                    yield Entry(
                        key=key,
                        size=size,
                        mtime=modified.timestamp(),
                        etag=(obj.findtext(f"{_S3_NS}ETag") or "").strip('"') or None,
                    )
                token = root.findtext(f"{_S3_NS}NextContinuationToken")
                if root.findtext(f"{_S3_NS}IsTruncated") != "true" or not token:
                    return
                params["ContinuationToken"] = token
        except (bexc.BotoCoreError, bexc.ClientError) as e:
            message, fatal = describe_error(e, self._where)
            if not fatal:  # ask again through the client: some servers answer presigned requests less clearly
                try:
                    self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
                except (bexc.BotoCoreError, bexc.ClientError) as e2:
                    message = describe_error(e2, self._where)[0]
                except Exception:  # noqa: BLE001 - botocore itself can choke on a hostile answer
                    pass
            raise StorageError(f"cannot list {self._where}: {message}" if not fatal else message) from None
        except ET.ParseError:
            raise StorageError(
                f"the endpoint for {self._where} did not answer like S3 (no listing XML): check --endpoint-url"
            ) from None

    def get(self, obj, dest, on_bytes):
        try:
            if obj.size < self.multipart_threshold:
                with open(dest, "wb") as f:
                    self._get_range(obj, f.fileno(), 0, obj.size, on_bytes, whole=True)
            else:
                self._get_parts(obj, dest, on_bytes)
        except (bexc.BotoCoreError, bexc.ClientError) as e:
            raise _s3_error(e, self._where) from None

    def _get_range(self, obj, fd: int, start: int, end: int, on_bytes, *, whole: bool = False) -> None:
        """GET bytes ``[start, end)`` of ``obj`` (the whole object when ``whole``) and
        ``os.pwrite`` them at the same offsets of ``fd``. Ranged requests carry
        ``If-Match: <listed ETag>``, so parts of a since-replaced object are never mixed
        (the server answers 412, the file fails). Raises OSError on a short read."""
        params = {"Bucket": self.bucket, "Key": self._key(obj.key)}
        headers = {}
        if not whole:
            params["Range"] = headers["Range"] = f"bytes={start}-{end - 1}"
            if obj.etag:
                params["IfMatch"] = headers["If-Match"] = f'"{obj.etag}"'
        resp = self._raw.send("get_object", params, "GET", headers=headers or None, stream=True)
        expected = int(resp.headers.get("content-length", -1))
        if not whole and expected != end - start:
            resp.raw.release_conn()
            raise OSError(f"the server sent {expected} bytes for a range of {end - start}")
        offset = start
        try:
            while chunk := resp.raw.read(MiB):
                os.pwrite(fd, chunk, offset)
                offset += len(chunk)
                on_bytes(len(chunk))
        finally:
            resp.raw.release_conn()
        if offset - start != expected:
            raise OSError(f"short read: got {offset - start} of {expected} bytes")

    def _get_parts(self, obj, dest, on_bytes) -> None:
        """Download a large object as parallel ranged GETs of ``download_chunksize``
        bytes into ``dest``, preallocated to the object's size (each part written in
        place with ``pwrite``: no reassembly, no extra copy)."""
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, obj.size)
            step = self.download_chunksize
            futures = [
                self._parts_pool.submit(self._get_range, obj, fd, a, min(a + step, obj.size), on_bytes)
                for a in range(0, obj.size, step)
            ]
            errors = []
            for f in futures:  # wait for all: none may still write to fd once it is closed
                try:
                    f.result()
                except BaseException as e:  # noqa: BLE001 - re-raised below
                    errors.append(e)
                    for other in futures:  # the file fails anyway: do not start its other ranges
                        other.cancel()
            if errors:
                raise errors[0]
        finally:
            os.close(fd)

    @property
    def _parts_pool(self) -> ThreadPoolExecutor:
        with self._manager_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-part")
            return self._pool

    def put(self, src, key, on_bytes):
        meta = {"mtime": f"{src.mtime:.6f}"}
        try:
            if src.size < self.multipart_threshold:
                with open(src.path, "rb") as f:
                    data = f.read()
                if len(data) != src.size or not unchanged(src):
                    raise SourceChanged("changed while it was being read")
                md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
                self._raw.send(
                    "put_object",
                    {"Bucket": self.bucket, "Key": self._key(key), "ContentMD5": md5, "Metadata": meta},
                    "PUT",
                    body=data,
                    headers={"Content-MD5": md5, **{f"x-amz-meta-{k}": v for k, v in meta.items()}},
                )
                on_bytes(len(data))
            else:
                if self.checksum:
                    meta["sha256"] = file_digest(src.path, "sha256")
                self.manager.upload(
                    src.path,
                    self.bucket,
                    self._key(key),
                    extra_args={"Metadata": meta},
                    subscribers=[_Progress(on_bytes)],
                ).result()
                if not unchanged(src):  # the parts may mix two versions: never keep that object
                    self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
                    raise SourceChanged("changed while it was being uploaded (the stored copy was removed)")
        except (bexc.BotoCoreError, bexc.ClientError) as e:
            raise _s3_error(e, self._where) from None

    def delete(self, keys):
        failed = {}
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True}
                )
            except (bexc.BotoCoreError, bexc.ClientError) as e:
                message, fatal = describe_error(e, self._where)
                if fatal:
                    raise StorageError(message) from None
                failed.update({k: message for k in batch})
                continue
            n = len(self.prefix)
            for err in resp.get("Errors", ()):
                failed[err["Key"][n:]] = error_code(err.get("Code")) or "refused by the storage"
        return failed

    def same_content(self, obj, local):
        etag = obj.etag or ""
        if etag and "-" not in etag and len(etag) == 32:
            return file_digest(local.path, "md5") == etag
        # Multipart object: prefer a stored SHA-256, else recompute the multipart ETag
        # (MD5 of the parts' MD5s, "-N") with the part size that gives N parts.
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(obj.key))
        except (bexc.BotoCoreError, bexc.ClientError) as e:
            raise _s3_error(e, self._where) from None
        sha = head.get("Metadata", {}).get("sha256")
        if sha:
            return file_digest(local.path, "sha256") == sha
        if "-" in etag:
            return matches_multipart_etag(local.path, etag, local.size, (self.multipart_chunksize,))
        return False

    def stored_mtime(self, obj):
        """The object's metadata ``mtime`` (epoch seconds; ours and rclone's), read with
        one presigned HEAD; None when absent, not a finite number, or the HEAD failed
        for this object only (missing, access denied to reads: the plan then updates it,
        as without the metadata). Raises StorageError when no request can succeed
        (endpoint unreachable, credentials refused)."""
        try:
            resp = self._raw.send("head_object", {"Bucket": self.bucket, "Key": self._key(obj.key)}, "HEAD")
        except (bexc.BotoCoreError, bexc.ClientError) as e:
            message, fatal = describe_error(e, self._where)
            denied = isinstance(e, bexc.ClientError) and error_code(e.response.get("Error", {}).get("Code")) in (
                "AccessDenied",
                "403",
                "AllAccessDisabled",
            )
            if fatal and not denied:
                raise StorageError(message) from None
            return None
        try:
            value = float(resp.headers.get("x-amz-meta-mtime", ""))
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def abort_incomplete_uploads(self, keys: set[str]) -> int:
        """Abort incomplete multipart uploads of ``keys`` (relative keys), which a sync
        about to overwrite them had left behind when interrupted. Returns how many."""
        if not keys:
            return 0
        aborted = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for up in page.get("Uploads", ()):
                    if up["Key"][len(self.prefix) :] in keys:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                        aborted += 1
        except (bexc.BotoCoreError, bexc.ClientError) as e:
            raise _s3_error(e, self._where) from None
        return aborted

    def close(self):
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def matches_multipart_etag(path: str, etag: str, size: int, part_sizes: tuple[int, ...] = ()) -> bool:
    """Whether local file ``path`` (``size`` bytes) uploaded in parts gives ``etag``
    (``<hex MD5 of the parts' binary MD5s>-<number of parts>``, S3's multipart ETag).

    The part size is not stored by S3: the candidates are ``part_sizes`` (ours first),
    then the usual defaults of s3transfer / awscli / rclone / s5cmd (8, 16, 5, 32, 50,
    64, 100 MiB), then the smallest whole MiB giving that number of parts; only those
    that give the right part count are hashed.
    """
    try:
        parts = int(etag.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return False
    smallest = max(5, math.ceil(size / parts / MiB)) * MiB
    seen = set()
    for part in (*part_sizes, 8 * MiB, 16 * MiB, 5 * MiB, 32 * MiB, 50 * MiB, 64 * MiB, 100 * MiB, smallest):
        if part in seen or part <= 0 or math.ceil(size / part) != parts:
            continue
        seen.add(part)
        digests = b""
        with open(path, "rb") as f:
            while chunk := f.read(part):
                digests += hashlib.md5(chunk).digest()
        if f"{hashlib.md5(digests).hexdigest()}-{parts}" == etag:
            return True
    return False
