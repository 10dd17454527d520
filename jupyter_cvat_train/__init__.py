"""jupyter_cvat_train: train detection / segmentation models on CVAT exports and
auto-annotate new images, from JupyterLab, notebooks and the ``cvat-train`` CLI.

The core (datasets, models, training, annotate, storage, jobs) never imports Jupyter;
``jupyter_cvat_train.server`` is the only part that does.
"""

from ._version import __version__

# The Python API (:mod:`.api`), imported on first use so that importing the package (the
# server, the CLI, job processes) stays light. ``jobs`` and ``models`` are the names of
# core subpackages here: the API's functions of those names are ``list_jobs`` and
# ``list_models`` at this level (``jupyter_cvat_train.api.jobs`` / ``.models`` too).
_API_NAMES = (
    "Job",
    "JobFailed",
    "JobNotFound",
    "ValidationReport",
    "annotate",
    "list_jobs",
    "list_models",
    "sample_dataset",
    "submit",
    "sync",
    "train",
    "validate",
)
__all__ = ["__version__", *_API_NAMES]


def __getattr__(name: str):
    if name in _API_NAMES:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(shell) -> None:
    """``%load_ext jupyter_cvat_train``: the ``%cvat_train`` magics (:mod:`.notebook.magics`)."""
    from .notebook import load_ipython_extension as load

    load(shell)


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-cvat-train"}]


def _jupyter_server_extension_points():
    from .server.app import CvatTrainApp

    return [{"module": "jupyter_cvat_train.server.app", "app": CvatTrainApp}]
