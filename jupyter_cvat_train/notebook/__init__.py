"""Notebook integration: the ``%cvat_train`` magics (:mod:`.magics`) and displayable
lists (:mod:`.display`). The only part outside ``server/`` that imports IPython, and
only when the extension is loaded (``%load_ext jupyter_cvat_train``)."""


def load_ipython_extension(shell) -> None:
    """``%load_ext jupyter_cvat_train``: register ``%cvat_train`` / ``%%cvat_train``."""
    from .magics import load

    load(shell)
