"""A storage location's connection check: who the server is, and what it can do there.

``check_connection(location, endpoint_url=...)`` answers, for ``s3://`` locations:

- *credentials*: which identity the standard AWS credential chain (environment, shared
  credentials/config files, profile, container or instance role) gives this process:
  where the credentials come from, the profile, the region and the access key id's last
  four characters (never the secret, never the whole key id);
- *endpoint*: whether the endpoint answers;
- *bucket*: whether the bucket exists;
- *list*: whether the credentials may list the prefix (``ListObjectsV2``, one key);
- *write*: whether they may write there (a tiny probe object
  ``<prefix>/.cvat-train-probe-<random>`` is put, then deleted; skipped with
  ``write=False``).

For ``file://`` locations: the folder exists, can be listed, and a probe file can be
created and removed in it; the identity is the server process's user.

Each step is ``{"name", "status": "ok" | "failed" | "skipped" | "warning", "message",
"fix"}``; the first failure skips the steps that depend on it. Every request has short
timeouts and one attempt, so a wrong endpoint answers in seconds. Messages never hold
credentials nor the remote's own error text (S3 error codes only, as in
:func:`.s3.describe_error`).
"""

from __future__ import annotations

import getpass
import os
import secrets
import time
from dataclasses import asdict, dataclass

from .location import StorageLocation, parse_storage_uri

PROBE_PREFIX = ".cvat-train-probe-"
"""Name of the probe object/file written by the write check (followed by random hex)."""

#: Where botocore found the credentials (``Credentials.method``), in words.
CREDENTIAL_SOURCES = {
    "env": "environment variables (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    "shared-credentials-file": "the shared credentials file (~/.aws/credentials)",
    "config-file": "the AWS config file (~/.aws/config)",
    "custom-process": "a credential_process of the AWS config",
    "assume-role": "an assumed role (role_arn of the profile)",
    "assume-role-with-web-identity": "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "sso": "AWS SSO (IAM Identity Center) login",
    "container-role": "the container's role (ECS/EKS)",
    "iam-role": "the instance role (EC2 instance metadata)",
    "explicit": "credentials given to the client",
}

_NO_CREDENTIALS_FIX = (
    "Give the Jupyter server credentials through the standard AWS chain: AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY in its environment, a profile (AWS_PROFILE with ~/.aws/credentials) or "
    "an instance role; then restart JupyterLab. Credentials are never typed into the browser."
)


@dataclass
class Step:
    """One check. status: ok | failed | skipped | warning; fix: what to do ('' when ok)."""

    name: str
    status: str
    message: str
    fix: str = ""


def credential_identity(session=None) -> dict:
    """What the standard AWS credential chain gives this process, without the secret:
    ``{"found": bool, "source", "method", "profile", "region", "access_key_hint"}``.
    ``access_key_hint`` is ``"…" + the last 4 characters`` of the key id. May take a
    second or two when it falls through to the instance metadata service (no
    credentials elsewhere): call it off the event loop."""
    from .s3 import _botocore_session

    session = session or _botocore_session()
    profile = session.get_config_variable("profile") or os.environ.get("AWS_PROFILE") or "default"
    region = session.get_config_variable("region") or "us-east-1"
    try:
        creds = session.get_credentials()
    except Exception as e:  # noqa: BLE001 - a broken profile is a finding, not a crash
        return {
            "found": False,
            "source": f"the AWS configuration could not be read ({type(e).__name__})",
            "method": None,
            "profile": profile,
            "region": region,
            "access_key_hint": None,
        }
    if creds is None:
        return {
            "found": False,
            "source": None,
            "method": None,
            "profile": profile,
            "region": region,
            "access_key_hint": None,
        }
    method = getattr(creds, "method", None) or "unknown"
    try:
        key = creds.get_frozen_credentials().access_key or ""
    except Exception:  # noqa: BLE001 - a refresh that fails (expired SSO token...)
        key = ""
    return {
        "found": True,
        "source": CREDENTIAL_SOURCES.get(method, method),
        "method": method,
        "profile": profile,
        "region": region,
        "access_key_hint": ("…" + key[-4:]) if len(key) >= 8 else None,
    }


def check_connection(
    location: StorageLocation | str,
    *,
    endpoint_url: str | None = None,
    write: bool = True,
    timeout: float = 5.0,
) -> dict:
    """Check ``location`` (a parsed StorageLocation or a URI, parsed here) as described in
    the module docstring. ``endpoint_url``: S3-compatible endpoint (not checked against
    an allow-list here: the server does that first, :func:`.location.allowed_endpoint`).
    ``timeout``: seconds for connecting and for each answer (one attempt per request).

    Returns ``{"storage": canonical URI, "scheme", "endpoint_url", "identity": {...},
    "steps": [Step as dict...], "ok": bool, "seconds": float}``. Raises LocationError
    only for a malformed URI; every other problem is a failed step with its fix."""
    t0 = time.monotonic()
    location = parse_storage_uri(location)
    if location.scheme == "file":
        identity, steps = _check_folder(location, write)
    else:
        identity, steps = _check_s3(location, endpoint_url, write, timeout)
    return {
        "storage": location.uri,
        "scheme": location.scheme,
        "endpoint_url": endpoint_url if location.scheme == "s3" else None,
        "identity": identity,
        "steps": [asdict(s) for s in steps],
        "ok": all(s.status in ("ok", "warning") for s in steps),
        "seconds": round(time.monotonic() - t0, 3),
    }


def _skip(steps: list[Step], names: list[str], why: str) -> None:
    steps += [Step(n, "skipped", why) for n in names]


# -- file:// ------------------------------------------------------------------------------


def _check_folder(location: StorageLocation, write: bool) -> tuple[dict, list[Step]]:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "?"
    identity = {"found": True, "source": "the Jupyter server's user", "user": user}
    path = str(location.path)
    steps: list[Step] = []
    if not os.path.isdir(path):
        what = "is not a folder" if os.path.exists(path) else "does not exist"
        steps.append(Step("folder", "failed", f"{path} {what}", "Create the folder first, or check the path."))
        _skip(steps, ["list", "write"], "the folder is missing")
        return identity, steps
    steps.append(Step("folder", "ok", f"{path} is a folder"))
    try:
        with os.scandir(path) as it:
            n = sum(1 for _ in zip(range(1000), it))
        steps.append(Step("list", "ok", f"can list it ({n if n < 1000 else '1000+'} entries)"))
    except OSError as e:
        steps.append(
            Step("list", "failed", f"cannot list {path}: {e.strerror}", f"Give the server's user ({user}) read access.")
        )
        _skip(steps, ["write"], "the folder cannot be listed")
        return identity, steps
    if not write:
        _skip(steps, ["write"], "not asked")
        return identity, steps
    probe = os.path.join(path, PROBE_PREFIX + secrets.token_hex(6))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.close(fd)
        os.unlink(probe)
        steps.append(Step("write", "ok", "can create and remove a file there"))
    except OSError as e:
        steps.append(
            Step(
                "write",
                "failed",
                f"cannot write in {path}: {e.strerror}",
                f"Give the server's user ({user}) write access, or sync only to the workspace.",
            )
        )
    return identity, steps


# -- s3:// --------------------------------------------------------------------------------


def _classify(exc: BaseException, endpoint: str) -> tuple[str, str, str]:
    """``(step name, message, fix)`` of a botocore exception met by the checks."""
    import botocore.exceptions as bexc

    from .s3 import _CREDENTIAL_CODES, error_code

    where = endpoint or "AWS S3"
    if isinstance(exc, (bexc.NoCredentialsError, bexc.PartialCredentialsError)):
        return "credentials", "no usable credentials were found", _NO_CREDENTIALS_FIX
    if isinstance(
        exc,
        (bexc.EndpointConnectionError, bexc.ConnectTimeoutError, bexc.ConnectionClosedError, bexc.ProxyConnectionError),
    ):
        return (
            "endpoint",
            f"cannot reach {where} ({type(exc).__name__})",
            "Check the endpoint URL (scheme, host and port) and that the storage server is running "
            "and reachable from the Jupyter server.",
        )
    if isinstance(exc, bexc.ReadTimeoutError):
        return "endpoint", f"{where} did not answer in time", "Check the endpoint URL, or try again later."
    if isinstance(exc, bexc.SSLError):
        return "endpoint", f"TLS error talking to {where}", "Check the endpoint URL (http or https) and certificates."
    if isinstance(exc, bexc.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = error_code(err.get("Code")) or str(status or "?")
        if code in _CREDENTIAL_CODES:
            return (
                "credentials",
                f"the storage refused the credentials ({code})",
                "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile of the Jupyter server, "
                "and that the endpoint URL is the one these credentials belong to.",
            )
        if code in ("NoSuchBucket", "404"):
            return "bucket", "the bucket does not exist", "Create the bucket first, or check its name and the endpoint."
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return "access", f"access denied ({code})", ""
        if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed"):
            return (
                "bucket",
                f"the bucket is in another region ({code})",
                "Set AWS_DEFAULT_REGION (or the profile's region) of the Jupyter server to the bucket's region.",
            )
        return "other", f"the storage answered {code}" + (f" (HTTP {status})" if status else ""), ""
    return "other", f"{type(exc).__name__}: {str(exc)[:200]}", ""


def _check_s3(
    location: StorageLocation, endpoint_url: str | None, write: bool, timeout: float
) -> tuple[dict, list[Step]]:
    from botocore.config import Config

    from .s3 import _botocore_session

    session = _botocore_session()
    identity = credential_identity(session)
    steps: list[Step] = []
    later = ["endpoint", "bucket", "list", "write"]
    if not identity["found"]:
        steps.append(Step("credentials", "failed", "no usable credentials were found", _NO_CREDENTIALS_FIX))
        _skip(steps, later, "no credentials")
        return identity, steps
    who = identity["source"] + (f", profile {identity['profile']}" if identity["profile"] != "default" else "")
    steps.append(Step("credentials", "ok", "found (see the identity)"))
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": 1},
        connect_timeout=timeout,
        read_timeout=timeout,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    try:
        client = session.create_client(
            "s3", endpoint_url=endpoint_url or None, region_name=identity["region"], config=config
        )
    except ValueError as e:
        steps.append(Step("endpoint", "failed", f"invalid endpoint URL: {e}", "Give an http(s)://host[:port] URL."))
        _skip(steps, later[1:], "the endpoint URL is invalid")
        return identity, steps
    where = endpoint_url or "AWS S3"
    prefix = location.prefix + "/" if location.prefix else ""
    try:
        client.list_objects_v2(Bucket=location.bucket, Prefix=prefix, MaxKeys=1)
    except Exception as e:  # noqa: BLE001 - each kind of failure is a finding
        step, message, fix = _classify(e, endpoint_url or "")
        if step == "credentials":
            steps[0] = Step("credentials", "failed", f"{message} (credentials {who})", fix)
            _skip(steps, later, "the credentials were refused")
        elif step == "endpoint":
            steps.append(Step("endpoint", "failed", message, fix))
            _skip(steps, later[1:], "the endpoint does not answer")
        elif step == "bucket":
            steps.append(Step("endpoint", "ok", f"{where} answers"))
            steps.append(Step("bucket", "failed", f"{location.bucket}: {message}", fix))
            _skip(steps, later[2:], "no bucket")
        elif step == "access":
            steps.append(Step("endpoint", "ok", f"{where} answers"))
            steps.append(Step("bucket", "ok", f"{location.bucket} exists"))
            steps.append(
                Step(
                    "list",
                    "failed",
                    f"listing s3://{location.bucket}/{prefix}: {message}",
                    "Give these credentials s3:ListBucket on the bucket (for this prefix), or use other credentials.",
                )
            )
            _skip(steps, ["write"], "listing was refused")
        else:
            steps.append(Step("endpoint", "failed", message, fix or "Check the endpoint URL and the storage server."))
            _skip(steps, later[1:], "the endpoint's answer was not usable")
        return identity, steps
    steps.append(Step("endpoint", "ok", f"{where} answers"))
    steps.append(Step("bucket", "ok", f"{location.bucket} exists"))
    steps.append(Step("list", "ok", f"can list s3://{location.bucket}/{prefix}"))
    if not write:
        _skip(steps, ["write"], "not asked")
        return identity, steps
    key = prefix + PROBE_PREFIX + secrets.token_hex(6)
    try:
        client.put_object(Bucket=location.bucket, Key=key, Body=b"cvat-train connection check\n")
    except Exception as e:  # noqa: BLE001
        _step, message, _fix = _classify(e, endpoint_url or "")
        steps.append(
            Step(
                "write",
                "failed",
                f"cannot write under s3://{location.bucket}/{prefix}: {message}",
                "Give these credentials s3:PutObject (and s3:DeleteObject for deletes) on this prefix; "
                "until then only syncs to the workspace can work.",
            )
        )
        return identity, steps
    try:
        client.delete_object(Bucket=location.bucket, Key=key)
        steps.append(Step("write", "ok", "can write and delete (a probe object was put and removed)"))
    except Exception as e:  # noqa: BLE001
        _step, message, _fix = _classify(e, endpoint_url or "")
        steps.append(
            Step(
                "write",
                "warning",
                f"can write, but deleting the probe s3://{location.bucket}/{key} failed: {message}",
                "Remove that object by hand; give these credentials s3:DeleteObject if syncs must delete.",
            )
        )
    return identity, steps
