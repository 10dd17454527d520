"""HTTP handlers under ``{base_url}cvat-train/api/``.

Every handler derives from :class:`ApiHandler`: authenticated and authorized with
jupyter_server's decorators (``auth_resource = "cvat_train"``), errors as JSON
``{"message", "code", "details"}``.
"""
from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .._version import __version__

AUTH_RESOURCE = "cvat_train"


class ApiHandler(APIHandler):
    """Base for the extension's REST handlers."""

    auth_resource = AUTH_RESOURCE

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json")
        reason = self._reason
        details = None
        exc_info = kwargs.get("exc_info")
        if exc_info:
            e = exc_info[1]
            if isinstance(e, web.HTTPError) and e.log_message:
                reason = e.log_message % e.args if e.args else e.log_message
            details = getattr(e, "details", None)
        self.finish(json.dumps({"message": reason, "code": status_code, "details": details}))


class VersionHandler(ApiHandler):
    """``GET version`` → ``{"version": "x.y.z"}``."""

    @web.authenticated
    @authorized
    def get(self):
        self.finish(json.dumps({"version": __version__}))


def api_routes() -> list[tuple[str, type]]:
    """Routes relative to ``{base_url}cvat-train/api/``."""
    return [(r"version", VersionHandler)]
