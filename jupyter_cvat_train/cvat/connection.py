"""The connection to a CVAT server: where it is, who we are, one SDK client.

Settings, first found wins:

1. the environment: ``CVAT_HOST`` (``https://cvat.example.com``, or ``host:port``), with
   ``CVAT_ACCESS_TOKEN`` (a personal access token; the variable cvat-cli itself reads) or
   ``CVAT_USERNAME`` and ``CVAT_PASSWORD`` (``PASS``, cvat-cli's password variable, also
   works);
2. the CVAT SDK's saved default profile (``cvat-cli profile create`` writes it, to the
   SDK's ``auth.json``; a server and a token), used when ``CVAT_HOST`` is not set.

Secrets never leave this module in text: :class:`CvatSettings`' repr shows the host, the
user and where the settings came from, never a token or password; error messages name
the variables, never their values. Nothing here writes a job.json or a log.

Errors are :class:`CvatError` (a :class:`..jobs.runtime.JobError`, so a job that raises
one fails with its message and no traceback): no host configured, no credentials, wrong
credentials, an unreachable server, a task that does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..jobs.runtime import JobError

#: connect and read timeouts of the connection check, seconds
CHECK_TIMEOUT = (5.0, 30.0)

HOW_TO_CONFIGURE = (
    "set CVAT_HOST (e.g. https://app.cvat.ai) and CVAT_ACCESS_TOKEN (a personal access token from "
    "CVAT's user menu) or CVAT_USERNAME and CVAT_PASSWORD; or save a default profile with "
    "'cvat-cli --server-host HOST profile create --name NAME --set-default' (it prompts for the token)"
)


class CvatError(JobError):
    """A CVAT connection or request failed; the message says what and the fix (it never
    holds a token or a password)."""


@dataclass(frozen=True)
class CvatSettings:
    """Where the CVAT server is and how to log in.

    host: the server URL. token: a personal access token, or None. username, password:
    for a login with a password (when there is no token). source: where they came from
    ("environment" or "cvat-sdk profile NAME"). The secrets are left out of repr().
    """

    host: str
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = "environment"

    def child_environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for a ``cvat-cli`` process: ``CVAT_ACCESS_TOKEN`` or ``PASS``
        (the variables cvat-cli reads), so no secret appears on a command line."""
        env = dict(os.environ if base is None else base)
        env.pop("CVAT_ACCESS_TOKEN", None)
        env.pop("PASS", None)
        if self.token:
            env["CVAT_ACCESS_TOKEN"] = self.token
        elif self.password is not None:
            env["PASS"] = self.password
        return env

    def cli_arguments(self) -> list[str]:
        """The ``cvat-cli`` global options for these settings (host, and the user for a
        password login; the secret goes through :meth:`child_environment`)."""
        args = ["--server-host", self.host]
        if not self.token and self.username:
            args += ["--auth", self.username]
        return args


def settings_from_environment(environ: Mapping[str, str] | None = None, *, use_profile: bool = True) -> CvatSettings:
    """The settings (module docstring): the environment first, else the SDK's default
    profile. Raises CvatError when no host is configured, or a host without credentials."""
    env = os.environ if environ is None else environ
    host = (env.get("CVAT_HOST") or "").strip()
    token = env.get("CVAT_ACCESS_TOKEN") or None
    user = env.get("CVAT_USERNAME") or None
    password = env.get("CVAT_PASSWORD") or env.get("PASS") or None
    if not host and use_profile:
        profile = _default_profile()
        if profile is not None:
            name, entry = profile
            return CvatSettings(entry.server, token=entry.token, source=f"cvat-sdk profile {name}")
    if not host:
        raise CvatError(f"no CVAT host configured: {HOW_TO_CONFIGURE}")
    if token:
        return CvatSettings(host, token=token)
    if user and password:
        return CvatSettings(host, username=user, password=password)
    if user:
        raise CvatError(
            f"CVAT_USERNAME is set but no password: set CVAT_PASSWORD (or use CVAT_ACCESS_TOKEN) for {host}"
        )
    raise CvatError(f"no CVAT credentials for {host}: set CVAT_ACCESS_TOKEN or CVAT_USERNAME and CVAT_PASSWORD")


def _default_profile():
    try:
        from cvat_sdk.core.auth import AuthStore
        from cvat_sdk.core.exceptions import AuthStoreError
    except ImportError:
        return None
    try:
        return AuthStore().get_default_profile()
    except AuthStoreError as e:
        raise CvatError(f"the CVAT SDK's saved profiles cannot be used: {e}") from None


def _sdk_missing() -> CvatError:
    return CvatError("the CVAT SDK is not installed: pip install 'jupyter_cvat_train[cvat]' (cvat-sdk and cvat-cli)")


def describe_failure(e: BaseException, settings: CvatSettings, what: str = "the request") -> CvatError:
    """A CvatError for an exception the SDK raised while talking to ``settings.host``:
    unreachable, wrong credentials, forbidden, not found, or the server's own message."""
    import urllib3
    from cvat_sdk.api_client import exceptions as api_exc

    host = settings.host
    if isinstance(e, CvatError):
        return e
    if isinstance(e, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        reason = getattr(e, "reason", None) or e
        return CvatError(
            f"the CVAT server at {host} cannot be reached ({type(reason).__name__}: {reason}) during {what}: "
            f"check CVAT_HOST and that the server is up"
        )
    if isinstance(e, api_exc.ApiException):
        status = getattr(e, "status", None)
        if status == 401 or (status == 400 and settings.password is not None and "login" in what):
            return CvatError(
                f"CVAT at {host} refused the credentials from {settings.source} (HTTP {status}): check "
                + ("CVAT_ACCESS_TOKEN" if settings.token else "CVAT_USERNAME / CVAT_PASSWORD")
            )
        if status == 403:
            return CvatError(f"CVAT at {host} does not allow {what} for this user (HTTP 403)")
        if status == 404:
            return CvatError(f"CVAT at {host}: {what}: not found (HTTP 404)")
        body = (getattr(e, "body", None) or b"")[:300]
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        return CvatError(f"CVAT at {host} answered HTTP {status} to {what}: {body or getattr(e, 'reason', '')}")
    return CvatError(f"{what} on CVAT at {host} failed: {type(e).__name__}: {e}")


def connect(settings: CvatSettings | None = None, *, check: bool = True):
    """A logged-in ``cvat_sdk.Client`` for ``settings`` (default: from the environment).

    With ``check``, asks the server who we are (one request, timeouts
    :data:`CHECK_TIMEOUT`), so a wrong host or wrong credentials fail here with a clear
    CvatError rather than in the middle of a transfer. The caller closes the client
    (``with connect() as client:``)."""
    if settings is None:
        settings = settings_from_environment()
    try:
        from cvat_sdk.core.client import AccessTokenCredentials, Client, Config, PasswordCredentials
    except ImportError:
        raise _sdk_missing() from None
    try:
        client = Client(settings.host, config=Config(), check_server_version=False)
    except Exception as e:  # noqa: BLE001 - an invalid URL scheme
        raise CvatError(f"CVAT_HOST {settings.host!r} is not a server URL: {e}") from None
    try:
        if settings.token:
            client.login(AccessTokenCredentials(settings.token))
        else:
            client.login(PasswordCredentials(settings.username or "", settings.password or ""))
        if check:
            client.api_client.users_api.retrieve_self(_request_timeout=CHECK_TIMEOUT)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear message
        client.close()
        raise describe_failure(e, settings, "the login") from None
    return client


def check_connection(settings: CvatSettings | None = None) -> dict:
    """Test the connection: {"host", "user", "source", "server_version"}; raises CvatError."""
    settings = settings or settings_from_environment()
    with connect(settings, check=False) as client:
        try:
            user, _ = client.api_client.users_api.retrieve_self(_request_timeout=CHECK_TIMEOUT)
            about, _ = client.api_client.server_api.retrieve_about(_request_timeout=CHECK_TIMEOUT)
        except Exception as e:  # noqa: BLE001
            raise describe_failure(e, settings, "the login") from None
        return {
            "host": settings.host,
            "user": getattr(user, "username", None),
            "source": settings.source,
            "server_version": getattr(about, "version", None),
        }


def connection_status(environ: Mapping[str, str] | None = None) -> dict:
    """The "Test connection" answer, never raising: {"ok", "host", "user", "source",
    "server_version", "message"} (ok false with the CvatError's message for no host, no or
    wrong credentials, an unreachable server, no SDK). Blocking: a few requests with
    :data:`CHECK_TIMEOUT` timeouts."""
    out = {"ok": False, "host": None, "user": None, "source": None, "server_version": None, "message": ""}
    try:
        settings = settings_from_environment(environ)
        out.update(host=settings.host, source=settings.source)
        info = check_connection(settings)
    except CvatError as e:
        out["message"] = str(e)
        return out
    out.update(info, ok=True, message=f"connected to {info['host']} as {info['user']}")
    return out
