"""jupyter_cvat_train: train detection / segmentation models on CVAT exports and
auto-annotate new images, from JupyterLab, notebooks and the ``cvat-train`` CLI.

The core (datasets, models, training, annotate, storage, jobs) never imports Jupyter;
``jupyter_cvat_train.server`` is the only part that does.
"""

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-cvat-train"}]


def _jupyter_server_extension_points():
    from .server.app import CvatTrainApp

    return [{"module": "jupyter_cvat_train.server.app", "app": CvatTrainApp}]
