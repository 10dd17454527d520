"""Models: the template catalog, the family registry, hyperparameters, builders and model folders.

Names are imported lazily so that the catalog and hyperparameter parsing (used by the
CLI and the server) do not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Template": "catalog",
    "TemplateNotFound": "catalog",
    "list_templates": "catalog",
    "get_template": "catalog",
    "DEFAULT_TEMPLATE": "catalog",
    "TemplateError": "catalog",
    "TemplateUnavailable": "catalog",
    "check_template": "catalog",
    "load_catalog": "catalog",
    "configure_search_path": "catalog",
    "search_path": "catalog",
    "user_template_dirs": "catalog",
    "ModelFamily": "registry",
    "Framework": "registry",
    "register_family": "registry",
    "get_family": "registry",
    "list_families": "registry",
    "register_builder": "registry",
    "get_builder": "registry",
    "register_framework": "registry",
    "get_framework": "registry",
    "HyperparameterError": "hyperparameters",
    "parse_hyperparameters": "hyperparameters",
    "valid_keys": "hyperparameters",
    "key_schema": "hyperparameters",
    "build_model": "builders",
    "load_pretrained_weights": "builders",
    "PretrainedWeightsUnavailable": "builders",
    "pretrained_weights_file": "builders",
    "TrainedModel": "store",
    "WeightsError": "store",
    "save_model_dir": "store",
    "load_trained_model": "store",
    "read_weights": "store",
    "resolve_weights_path": "store",
    "read_classes_csv": "classes",
    "write_classes_csv": "classes",
    "ClassesError": "classes",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
