"""Jobs: everything about running work as a job process, in layers (imports point down):

- :mod:`.runtime` (bottom): the job folder contract, :class:`~.runtime.JobState`,
  :class:`~.runtime.JobContext`, :func:`~.runtime.run_job`, the errors; what every job
  process imports;
- :mod:`.registry`: the job kinds (name, spec check, run function, resource, path fields);
  :mod:`.run`: the one entry point of job processes (``python -m jupyter_cvat_train.jobs.run JOB_DIR``);
- :mod:`.backends`: where job processes run (launch, poll, cancel; :mod:`.backends.local`);
- :mod:`.specs` (client spec checks), :mod:`.queue` (limits), :mod:`.provenance` (signed
  queued jobs), :mod:`.store` (sqlite index), :mod:`.scheduler` (the one scheduler lease of
  a runs root), :mod:`.reconcile`, :mod:`.tail` (log tailing);
- :mod:`.manager`: the service that ties them together (:class:`~.manager.JobManager`).

This file imports nothing, so ``import jupyter_cvat_train.jobs.runtime`` stays light. No
Jupyter imports anywhere here.
"""
