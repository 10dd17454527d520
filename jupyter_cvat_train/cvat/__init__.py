"""CVAT itself: a trained model as a CVAT auto-annotation function, and the connection
to a CVAT server (pull a task's export, push annotations, auto-annotate a task).

- :mod:`.function`: the AA function (``--function-module jupyter_cvat_train.cvat.function
  -p model_dir=str:PATH`` for ``cvat-cli``), over the annotate engine;
- :mod:`.connection`: host and credentials from the environment or the CVAT SDK's saved
  profile, one SDK client, clear messages for a missing host, wrong credentials, an
  unreachable server;
- :mod:`.transfer`: pull (export into the workspace, then validation), push (an annotate
  job's zip into a task, labels checked before the upload), auto-annotate a task.

Needs the ``cvat`` extra (cvat-sdk, cvat-cli). Importing this package imports neither
the SDK nor torch.
"""
