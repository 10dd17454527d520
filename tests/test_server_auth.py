"""Every route of the extension refuses requests without a token, and every handler
carries jupyter_server's auth decorators (the server is started with
allow_unauthenticated_access=False; a handler without auth fails this test)."""

from __future__ import annotations

import json
import warnings

import pytest
from jupyter_server.serverapp import ServerWebApplication
from jupyter_server.utils import JupyterServerAuthWarning
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jupyter_cvat_train.server.handlers import AUTH_RESOURCE, api_routes

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}, "allow_unauthenticated_access": False},
        }
    )


@pytest.fixture
def jp_serverapp(jp_server_config, jp_argv, jp_configurable_serverapp):
    """The server, failing on any JupyterServerAuthWarning (an endpoint without auth)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", JupyterServerAuthWarning)
        return jp_configurable_serverapp(config=jp_server_config, argv=jp_argv)


def test_every_handler_method_is_authenticated():
    for pattern, handler in api_routes():
        assert handler.auth_resource == AUTH_RESOURCE, handler
        missing = ServerWebApplication._check_handler_auth(None, pattern, handler)
        assert missing == [], missing


ROUTES = [
    ("GET", "version"),
    ("GET", "templates"),
    ("POST", "datasets/validate"),
    ("GET", "jobs"),
    ("POST", "jobs"),
    ("GET", "jobs/x"),
    ("DELETE", "jobs/x"),
    ("GET", "jobs/x/log"),
    ("POST", "jobs/x/tensorboard"),
]


@pytest.mark.parametrize("method,path", ROUTES)
async def test_route_refuses_requests_without_a_token(jp_fetch, method, path):
    kwargs = {"body": json.dumps({"kind": "validate", "dataset": "x", "path": "x"})} if method == "POST" else {}
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch(
            "cvat-train",
            "api",
            path,
            method=method,
            headers={"Authorization": ""},
            allow_nonstandard_methods=True,
            **kwargs,
        )
    assert e.value.code == 403
    # and with the token the route exists (so the 403 above was the auth, not a miss)
    try:
        await jp_fetch("cvat-train", "api", path, method=method, allow_nonstandard_methods=True, **kwargs)
    except HTTPClientError as ok:
        assert ok.code in (400, 403, 404), ok  # 403 here: the path "x" is fine, a job x is not
        if ok.code == 403:
            assert "outside" in json.loads(ok.response.body)["message"]


async def test_stream_refuses_a_websocket_without_a_token(jp_ws_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_ws_fetch("cvat-train", "api", "jobs", "x", "stream", headers={"Authorization": ""})
    assert e.value.code == 403
    with pytest.raises(HTTPClientError) as e:
        await jp_ws_fetch("cvat-train", "api", "jobs", "x", "stream")
    assert e.value.code == 404  # authenticated: the job just does not exist
