"""The ``jupyter_cvat_train`` ExtensionApp: configuration traits and routes.

Configure with ``--CvatTrainApp.runs_root=...`` etc. or in a jupyter_server_config file.
"""

from __future__ import annotations

import inspect
import os

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Float, Int, List, Unicode, default

from .handlers import api_routes


class CvatTrainApp(ExtensionApp):
    """Serves the REST API under ``{base_url}cvat-train/api/`` and runs the job watcher."""

    name = "jupyter_cvat_train"
    load_other_extensions = True

    runs_root = Unicode(
        "", config=True, help="Folder of job folders and the job store; default <root_dir>/cvat-train-runs."
    )
    max_accelerator_jobs = Int(
        0,
        config=True,
        help="Training/annotation jobs at once; 0 = one per GPU, or 1 without a GPU; "
        "more than the GPUs makes jobs share the least busy GPUs.",
    )
    max_io_jobs = Int(2, config=True, help="Sync/validation jobs at once.")
    cancel_grace_seconds = Float(10.0, config=True, help="Seconds between SIGTERM and SIGKILL on cancel.")
    job_niceness = Int(
        5,
        config=True,
        help="Nice value added to job processes, so training leaves the server "
        "responsive (0 = same priority as the server).",
    )
    poll_interval = Float(0.2, config=True, help="Seconds between polls of running jobs.")
    tensorboard_enabled = Bool(True, config=True, help="Allow starting TensorBoard for jobs.")
    allowed_endpoint_urls = List(
        Unicode(),
        config=True,
        help="S3-compatible endpoints (http(s)://host[:port]) a client's sync job may name "
        "as endpoint_url; the server signs requests to them with its credentials. "
        "The user's own endpoint (AWS_ENDPOINT_URL[_S3], or endpoint_url in the AWS "
        "config) is always allowed; any other is refused (403).",
    )
    validation_workers = Int(
        2,
        config=True,
        help="Dataset validations at once, in threads of their own (not the ones log and stream requests use).",
    )
    validation_queue = Int(
        4, config=True, help="Dataset validations that may wait for a thread; more are answered 503 with Retry-After."
    )
    job_backend = Unicode(
        "local",
        config=True,
        help="Where jobs run unless their spec says (\"backend\" in POST jobs): 'local' (processes on "
        "this machine) or 'ray' (the Ray cluster at ray_address).",
    )
    ray_address = Unicode(
        config=True,
        help="The Ray dashboard's URL (http(s)://head:8265) of the cluster jobs may run on with the ray "
        "backend; default $CVAT_TRAIN_RAY_ADDRESS; empty: no cluster. The runs root must be on a "
        "filesystem every node of the cluster mounts at the same path.",
    )
    ray_token = Unicode(
        config=True,
        help="Ray's auth token (RAY_AUTH_MODE=token clusters), sent as 'Authorization: Bearer'; "
        "default $CVAT_TRAIN_RAY_TOKEN. Never logged.",
    )
    ray_python = Unicode(
        config=True,
        help="The interpreter on the cluster's nodes that has jupyter_cvat_train installed; default "
        "$CVAT_TRAIN_RAY_PYTHON, else 'python' on the nodes' PATH.",
    )
    ray_stop_wait_seconds = Int(
        30,
        config=True,
        help="Seconds Ray gives a cancelled job between SIGTERM and SIGKILL (its last checkpoint).",
    )

    @default("ray_address")
    def _ray_address_default(self):
        return os.environ.get("CVAT_TRAIN_RAY_ADDRESS", "")

    @default("ray_token")
    def _ray_token_default(self):
        return os.environ.get("CVAT_TRAIN_RAY_TOKEN", "")

    @default("ray_python")
    def _ray_python_default(self):
        return os.environ.get("CVAT_TRAIN_RAY_PYTHON", "") or "python"

    def _job_backends(self) -> tuple[object | None, list]:
        """(default backend or None for the local one, other backends) from the traits;
        a bad setting is logged with its fix and leaves the ray backend out."""
        from ..jobs.backends.ray import RayBackend

        backends = []
        if self.ray_address:
            try:
                backends.append(
                    RayBackend(
                        self.ray_address,
                        token=self.ray_token or None,
                        python=self.ray_python,
                        stop_wait=max(self.ray_stop_wait_seconds, int(self.cancel_grace_seconds)),
                    )
                )
            except ValueError as e:
                self.log.error("cvat-train: CvatTrainApp.ray_address: %s; jobs run locally", e)
        if self.job_backend not in ("local", "ray"):
            self.log.error(
                "cvat-train: CvatTrainApp.job_backend %r is not a backend (valid: local, ray); jobs run locally",
                self.job_backend[:50],
            )
        elif self.job_backend == "ray":
            if backends:  # the local backend stays: for jobs that ask for it and those started before
                from ..jobs.backends.local import LocalBackend

                return backends[0], [LocalBackend(niceness=self.job_niceness)]
            self.log.error(
                "cvat-train: CvatTrainApp.job_backend is 'ray' but no cluster is set: set "
                "CvatTrainApp.ray_address (or CVAT_TRAIN_RAY_ADDRESS) to the dashboard's URL; jobs run locally"
            )
        return None, backends

    def initialize_settings(self):
        from ..jobs.manager import JobManager
        from ..jobs.queue import Limits
        from ..models import configure_search_path
        from .service import JobService

        root_dir = self.serverapp.root_dir
        configure_search_path(root_dir=root_dir)  # user templates: <root_dir>/cvat-train-templates and more
        runs_root = os.path.expanduser(self.runs_root) if self.runs_root else os.path.join(root_dir, "cvat-train-runs")
        default_backend, other_backends = self._job_backends()
        spec_options = {
            "runs_root": os.path.realpath(runs_root),  # check_spec's, for POST jobs and each start
            "allowed_endpoint_urls": list(self.allowed_endpoint_urls),
            "backends": sorted({"local", *(b.name for b in [default_backend, *other_backends] if b is not None)}),
        }
        manager = JobManager(
            runs_root,
            root_dir=root_dir,
            limits=Limits(self.max_accelerator_jobs, self.max_io_jobs),
            cancel_grace=self.cancel_grace_seconds,
            niceness=self.job_niceness,
            spec_options=spec_options,
            log=self.log,
            owner=f"jupyter server (pid {os.getpid()})",
            backend=default_backend,
            backends=other_backends,
        )
        self.service = JobService(
            root_dir,
            manager,
            poll_interval=self.poll_interval,
            tensorboard_enabled=self.tensorboard_enabled,
            log=self.log,
            validation_workers=self.validation_workers,
            validation_queue=self.validation_queue,
        )
        self.service.start()
        self.settings.update({"cvat_train": self.service, "cvat_train_spec_options": spec_options})
        self._export_to_kernels(
            {
                "CVAT_TRAIN_RUNS_ROOT": os.path.realpath(runs_root),
                "CVAT_TRAIN_ROOT_DIR": os.path.realpath(root_dir),
                "CVAT_TRAIN_SERVER_URL": self.serverapp.connection_url,
            }
        )

    def _export_to_kernels(self, variables: dict[str, str]) -> None:
        """Give the kernels this server starts ``variables`` (the runs root, root_dir and
        this server's URL, never its token), so the Python API in a notebook queues its
        jobs in this runs root and the panel shows them (jupyter_cvat_train.api.config).

        Only the kernels' launch environment gets them, not os.environ: the server may
        run inside another program (pytest-jupyter runs it in the test process), where a
        changed os.environ would move the runs root of everything that runs after it.
        Every kernel start goes through the kernel manager's start_kernel (sessions pass
        ``env=``; POST api/kernels passes none, and the provisioner then copies
        os.environ); this instance's start_kernel is wrapped to add the variables to that
        env, and put back in :meth:`stop_extension`. A restart reuses the launch env."""
        km = getattr(self.serverapp, "kernel_manager", None)
        start = getattr(km, "start_kernel", None)
        if start is None:
            return

        async def start_kernel(*args, **kwargs):
            env = kwargs.get("env")
            kwargs["env"] = {**(env if isinstance(env, dict) else os.environ), **variables}
            started = start(*args, **kwargs)
            return await started if inspect.isawaitable(started) else started

        km.start_kernel = start_kernel
        self._kernel_manager_patched = km

    def initialize_handlers(self):
        base = url_path_join("/cvat-train", "api")
        for pattern, handler in api_routes():
            self.handlers.append((url_path_join(base, pattern), handler))

    async def stop_extension(self):
        km = getattr(self, "_kernel_manager_patched", None)
        if km is not None:
            del km.start_kernel  # the instance attribute: the class's start_kernel again
            self._kernel_manager_patched = None
        await self.service.stop()
