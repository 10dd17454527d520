"""Finding the Jupyter server that runs this extension, and calling its REST API from a
kernel or a script (for :meth:`Job.tensorboard`).

The kernel is not the browser: it has no XSRF cookie, so it calls the API with an
``Authorization: token ...`` header (jupyter_server skips the XSRF check for token
authenticated requests). The token is never put into a message or a return value.

Order: :func:`configure` (``%config CvatTrainMagics.server_url`` / ``server_token``);
then ``$CVAT_TRAIN_SERVER_URL`` (set by the server for the kernels it starts) with
``$CVAT_TRAIN_SERVER_TOKEN`` or the token of the running server with that URL; then the
running server (``jupyter_server.serverapp.list_running_servers``) whose root_dir is
the API's root folder. Otherwise RuntimeError naming what to set.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from . import config

SERVER_URL_ENV = "CVAT_TRAIN_SERVER_URL"
SERVER_TOKEN_ENV = "CVAT_TRAIN_SERVER_TOKEN"
TIMEOUT = 30.0

_configured: dict[str, str] = {"url": "", "token": ""}


@dataclass(frozen=True)
class Server:
    """A server to call: ``url`` (with its base_url, ending in /) and its token (not shown)."""

    url: str
    token: str = field(default="", repr=False)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


def configure(url: str = "", token: str = "") -> None:
    """Use this server URL (and token) for the API calls of this process ("" = find it)."""
    _configured["url"], _configured["token"] = url, token


def _running_servers() -> list[dict]:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:  # pragma: no cover - jupyter_server is a dependency
        return []
    try:
        return list(list_running_servers())
    except Exception:  # noqa: BLE001 - an unreadable runtime folder means no server found
        return []


def _norm(url: str) -> str:
    return url.rstrip("/") + "/"


def find_server() -> Server:
    """The server to call (see the module's docstring); RuntimeError when none is found."""
    if _configured["url"]:
        return Server(_norm(_configured["url"]), _configured["token"] or _token_for(_configured["url"]))
    url = os.environ.get(SERVER_URL_ENV, "")
    if url:
        return Server(_norm(url), os.environ.get(SERVER_TOKEN_ENV, "") or _token_for(url))
    root = os.path.realpath(config.root_dir())
    for info in _running_servers():
        if os.path.realpath(str(info.get("root_dir", ""))) == root and info.get("url"):
            return Server(_norm(info["url"]), str(info.get("token") or ""))
    raise RuntimeError(
        f"no Jupyter server with jupyter_cvat_train found for {root}: run this in a notebook of JupyterLab, "
        f"or set {SERVER_URL_ENV} (and {SERVER_TOKEN_ENV}) or %config CvatTrainMagics.server_url"
    )


def _token_for(url: str) -> str:
    for info in _running_servers():
        if _norm(str(info.get("url", ""))) == _norm(url):
            return str(info.get("token") or "")
    return ""


def server_request(server: Server, method: str, path: str, body: dict | None = None) -> dict:
    """``method`` ``path`` (relative to the server's URL) with the token; the JSON reply.
    Raises RuntimeError with the server's message (never the token) on an error."""
    data = json.dumps(body or {}).encode() if method != "GET" else None
    req = urllib.request.Request(urljoin(server.url, path), data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if server.token:
        req.add_header("Authorization", f"token {server.token}")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read() or b"{}").get("message") or e.reason
        except ValueError:
            message = e.reason
        hint = " (set CVAT_TRAIN_SERVER_TOKEN or %config CvatTrainMagics.server_token)" if e.code in (401, 403) else ""
        raise RuntimeError(f"the Jupyter server at {server.url} answered {e.code}: {message}{hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise RuntimeError(f"cannot reach the Jupyter server at {server.url}: {reason}") from None
