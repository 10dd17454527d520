"""The ``jupyter_cvat_train`` ExtensionApp: configuration traits and routes."""
from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join

from .handlers import api_routes


class CvatTrainApp(ExtensionApp):
    """Serves the REST API under ``{base_url}cvat-train/api/``."""

    name = "jupyter_cvat_train"
    load_other_extensions = True

    def initialize_handlers(self):
        base = url_path_join("/cvat-train", "api")
        for pattern, handler in api_routes():
            self.handlers.append((url_path_join(base, pattern), handler))
