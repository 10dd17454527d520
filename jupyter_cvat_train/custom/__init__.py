"""Custom training templates: the user's own training code run as a train job.

The template format and its checks are :mod:`jupyter_cvat_train.models.custom` (the
catalog reads it); this package runs one:

- :mod:`.dataset`: the validated export, converted to the template's dump format with
  Datumaro's exporters when it is in another one, laid out under ``data/datasets/``;
- :mod:`.code`: the code cloned with ``git`` at the revision (the commit recorded) or a
  folder copied;
- :mod:`.environment`: the interpreter: the template's ``python``, a venv cached by the
  hash of its requirements file, or this one;
- :mod:`.run`: the job (``train_custom``): the command as a child process in its own
  process group, SIGTERM forwarded on cancel, its exit code the job's state, the
  outputs checked and ``classes.csv`` written when the code did not write one.
"""
