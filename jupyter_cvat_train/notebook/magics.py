"""``%cvat_train`` and ``%%cvat_train``: the CLI's subcommands in a notebook.

::

    %load_ext jupyter_cvat_train
    %cvat_train models [--json]
    %cvat_train validate PATH [--format F] [--json]
    %cvat_train train DATASET [--model NAME] [--hp H]... [--epochs N] [--checkpoint PATH|JOB] [--resume]
                      [--device D] [--gpus N] [--output DIR]
    %%cvat_train train DATASET [--model NAME]        (the cell body: hyperparameters)
    %cvat_train annotate IMAGES --model-dir DIR|JOB [-o ZIP] [--format F] [--threshold T] [--map A=B]...
    %cvat_train sync up|down WORKSPACE STORAGE_URI [--delete] [--dry-run] ...
    %cvat_train jobs [list] | show JOB | logs JOB [-f] | cancel JOB | tensorboard JOB

The arguments are spelled as ``cvat-train``'s. Each magic returns its object (a Job,
a ValidationReport, a list), so ``job = %cvat_train train ...`` works; ``-q`` shows
nothing (the magic returns None; the object is in ``_cvat_train``, or in the variable
``--var NAME``). Bad input raises UsageError: one line that names the fix. ``$name`` and
``{name}`` are expanded from the user's variables unless the line holds YAML braces
(``--hp "{epochs: 5}"``), which are left as they are.

Settings (``%config CvatTrainMagics.runs_root = "..."``): runs_root, server_url,
server_token.
"""

from __future__ import annotations

import os
import re
import shlex

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Unicode, observe

from .. import api
from .display import JobList, TemplateList, tensorboard_view

RESULT_VAR = "_cvat_train"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _common(fn):
    fn = argument("--var", dest="out_var", metavar="NAME", help="Put the result in this variable; show nothing.")(fn)
    return argument("-q", "--quiet", action="store_true", help="Show nothing; the result goes to _cvat_train.")(fn)


@magic_arguments(name="cvat_train validate")
@argument("path", metavar="PATH", help="The CVAT export (a .zip or a folder).")
@argument("--format", dest="format_", default=None, metavar="F", help="Force the format instead of detecting it.")
@argument("--json", dest="as_json", action="store_true", help="Return the report as a dict.")
@_common
def _validate_args(): ...


@magic_arguments(name="cvat_train models")
@argument("--json", dest="as_json", action="store_true", help="Return the templates as dicts.")
@_common
def _models_args(): ...


@magic_arguments(name="cvat_train train")
@argument("dataset", metavar="DATASET", help="The CVAT export to train on (a .zip or a folder).")
@argument(
    "--model", default=None, metavar="NAME", help="Model template (%%cvat_train models); default: the default one."
)
@argument("--hp", action="append", default=[], metavar="H", help="Hyperparameters: YAML, key=value or a=1,b=2.")
@argument("--epochs", type=int, default=None, metavar="N", help="Epochs.")
@argument("--format", dest="format_", default=None, metavar="F", help="Force the export format.")
@argument("--checkpoint", default=None, metavar="PATH|JOB", help="Fine-tune (or --resume) from a model, .pt or job.")
@argument("--resume", action="store_true", help="Continue the run of --checkpoint.")
@argument("--device", default="auto", metavar="D", help="auto, cpu, cuda or cuda:N.")
@argument("--gpus", type=int, default=None, metavar="N", help="GPUs (> 1: DistributedDataParallel).")
@argument("--output", default=None, metavar="DIR", help="Copy the trained model here when .wait() sees it succeed.")
@_common
def _train_args(): ...


@magic_arguments(name="cvat_train annotate")
@argument("images", metavar="IMAGES", help="A folder, a zip of images or a CVAT export.")
@argument("--model-dir", required=True, metavar="DIR|JOB", help="A trained model folder, or a train job's id.")
@argument("--output", "-o", default=None, metavar="ZIP", help="The annotation zip to write.")
@argument("--format", dest="format_", default="coco", metavar="F", help="coco, cvat or yolo.")
@argument("--threshold", type=float, default=0.5, metavar="T", help="Minimum confidence (0..1).")
@argument("--max-detections", type=int, default=100, metavar="N", help="At most N detections per image.")
@argument("--map", dest="mapping", action="append", default=[], metavar="MODEL=TARGET", help="Map a label.")
@argument("--keep-existing", action="store_true", help="Keep the annotations of a CVAT export given as IMAGES.")
@argument("--preview", type=int, default=0, metavar="N", help="Render N images with their predictions.")
@argument("--overwrite", action="store_true", help="Replace the output if it exists.")
@argument("--device", default="auto", metavar="D", help="auto, cpu, cuda or cuda:N.")
@argument("--engine", default="torch", metavar="E", help="torch or onnx.")
@_common
def _annotate_args(): ...


@magic_arguments(name="cvat_train sync")
@argument("direction", metavar="up|down", help="up: workspace to storage; down: storage to workspace.")
@argument("workspace", metavar="WORKSPACE", help="The workspace folder.")
@argument("storage_uri", metavar="STORAGE_URI", help="s3://bucket/prefix or file:///path.")
@argument("--delete", action="store_true", help="Delete destination files that the source lacks.")
@argument("--dry-run", action="store_true", help="Plan only; change nothing.")
@argument("--include", action="append", default=[], metavar="GLOB", help="Sync keys matching GLOB.")
@argument("--exclude", action="append", default=[], metavar="GLOB", help="Skip keys matching GLOB.")
@argument("--checksum", action="store_true", help="Compare content hashes.")
@argument("--endpoint-url", default=None, metavar="URL", help="S3-compatible endpoint.")
@argument("--concurrency", type=int, default=16, metavar="N", help="Parallel transfers.")
@_common
def _sync_args(): ...


@magic_arguments(name="cvat_train jobs")
@argument("--json", dest="as_json", action="store_true", help="Return the jobs as dicts.")
@_common
def _jobs_args(): ...


@magic_arguments(name="cvat_train show")
@argument("job", metavar="JOB", help="A job id, or a unique part of it.")
@_common
def _show_args(): ...


@magic_arguments(name="cvat_train logs")
@argument("job", metavar="JOB", help="A job id, or a unique part of it.")
@argument("-f", "--follow", action="store_true", help="Keep printing until the job ends.")
@_common
def _logs_args(): ...


@magic_arguments(name="cvat_train cancel")
@argument("job", metavar="JOB", help="A job id, or a unique part of it.")
@argument("--no-wait", action="store_true", help="Return at once instead of waiting for it to stop.")
@_common
def _cancel_args(): ...


@magic_arguments(name="cvat_train tensorboard")
@argument("job", metavar="JOB", help="A job id, or a unique part of it.")
@_common
def _tensorboard_args(): ...


PARSERS = {
    "validate": _validate_args,
    "models": _models_args,
    "train": _train_args,
    "annotate": _annotate_args,
    "sync": _sync_args,
    "jobs": _jobs_args,
    "show": _show_args,
    "logs": _logs_args,
    "cancel": _cancel_args,
    "tensorboard": _tensorboard_args,
}
JOBS_ALIASES = {"list": "jobs", "show": "show", "logs": "logs", "cancel": "cancel"}  # cvat-train jobs <verb>


def _expand(line: str, namespace: dict) -> str:
    """``$name`` / ``{expr}`` expanded from ``namespace`` as IPython does for magics;
    the line unchanged when that fails (a ``$`` that names nothing)."""
    from IPython.utils.text import DollarFormatter

    try:
        return DollarFormatter().vformat(line, args=[], kwargs=namespace)
    except Exception:  # noqa: BLE001 - IPython's own rule: expansion never breaks a magic
        return line


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _job(value: str) -> api.Job:
    try:
        return api.Job.get(value)
    except api.JobNotFound as e:
        raise UsageError(str(e)) from None


def _job_or_path(value: str | None) -> str | api.Job | None:
    """A path that exists, else a job id (for --checkpoint / --model-dir)."""
    if value is None or os.path.exists(os.path.expanduser(value)):
        return value
    try:
        return api.Job.get(value)
    except api.JobNotFound:
        raise UsageError(f"{value[:100]} is neither an existing path nor a job id (see %cvat_train jobs)") from None


@magics_class
class CvatTrainMagics(Magics):
    """The ``%cvat_train`` line magic and ``%%cvat_train`` cell magic (see the module)."""

    runs_root = Unicode(
        "", help="The runs root of the jobs (default: $CVAT_TRAIN_RUNS_ROOT, else ./cvat-train-runs)."
    ).tag(config=True)
    server_url = Unicode("", help="The Jupyter server to call for TensorBoard (default: found).").tag(config=True)
    server_token = Unicode("", help="Its token (default: found with the server).").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._apply_runs_root()
        self._apply_server()

    @observe("runs_root")
    def _runs_root_changed(self, change):
        self._apply_runs_root()

    @observe("server_url", "server_token")
    def _server_changed(self, change):
        self._apply_server()

    def _apply_runs_root(self):
        api.set_runs_root(self.runs_root or None)

    def _apply_server(self):
        from ..api.server import configure

        configure(self.server_url, self.server_token)

    # -- entry point --------------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    def cvat_train(self, line: str, cell: str | None = None):
        """Train models on CVAT exports, auto-annotate, sync and watch jobs: ``%cvat_train
        validate|models|train|annotate|sync|jobs|logs|cancel|tensorboard ...`` (``-h`` after
        a subcommand for its arguments)."""
        if "{" not in line and self.shell is not None:
            line = _expand(line, self.shell.user_ns)
        sub, _, rest = line.strip().partition(" ")
        if sub == "jobs":
            verb, _, tail = rest.strip().partition(" ")
            if verb in JOBS_ALIASES:
                sub, rest = JOBS_ALIASES[verb], tail
        if sub in ("", "-h", "--help", "help"):
            print(self.cvat_train.__doc__)
            print("subcommands: " + ", ".join(PARSERS))
            return None
        if sub not in PARSERS:
            raise UsageError(
                f"unknown subcommand {sub[:40]!r}: use one of {', '.join(PARSERS)} (e.g. %cvat_train validate export.zip)"
            )
        parser = PARSERS[sub]
        if any(a in ("-h", "--help") for a in rest.split()):
            print(parser.parser.format_help())
            return None
        if cell is not None and sub != "train":
            raise UsageError(f"%%cvat_train {sub} takes no cell body: only %%cvat_train train (the hyperparameters)")
        prog = parser.parser.prog
        try:
            # shell-style words as cvat-train gets them (IPython's own splitting keeps the quotes)
            args = parser.parser.parse_args(shlex.split(rest))
        except UsageError as e:
            usage = _one_line(parser.parser.format_usage()).removeprefix("usage:").strip().removeprefix("::").strip()
            raise UsageError(f"%{prog}: {_one_line(e)} (usage: {usage})") from None
        except ValueError as e:  # unbalanced quotes
            raise UsageError(f"%{prog}: {_one_line(e)}; check the quotes") from None
        if args.out_var is not None and not _NAME_RE.match(args.out_var):
            raise UsageError(f"--var {args.out_var[:40]!r}: give a Python variable name")
        try:
            result = getattr(self, f"_{sub}")(args, cell)
        except UsageError:
            raise
        except (ValueError, FileNotFoundError, FileExistsError, LookupError, RuntimeError) as e:
            raise UsageError(f"%{prog}: {_one_line(e)}") from None
        if self.shell is not None:
            self.shell.user_ns[RESULT_VAR] = result
            if args.out_var:
                self.shell.user_ns[args.out_var] = result
        return None if (args.quiet or args.out_var) else result

    # -- subcommands --------------------------------------------------------------------
    def _validate(self, args, cell):
        if not os.path.exists(os.path.expanduser(args.path)):
            raise UsageError(f"{args.path[:100]} does not exist: give a CVAT export (a .zip or a folder)")
        report = api.validate(args.path, args.format_)
        return report.to_dict() if args.as_json else report

    def _models(self, args, cell):
        templates = api.models()
        return [t.to_dict() for t in templates] if args.as_json else TemplateList(templates)

    def _train(self, args, cell):
        hp = list(args.hp)
        if cell is not None and cell.strip():
            hp.append(cell)
        try:
            from ..models import DEFAULT_TEMPLATE, get_template, parse_hyperparameters

            template = get_template(args.model or DEFAULT_TEMPLATE)
            parse_hyperparameters(hp, template)  # the message lists the valid keys
        except LookupError as e:  # the message lists the templates
            raise UsageError(f"--model: {_one_line(e.args[0] if e.args else e)}") from None
        except ValueError as e:
            raise UsageError(f"hyperparameters: {_one_line(e)}") from None
        return api.train(
            args.dataset,
            model=args.model,
            output=args.output,
            hyperparameters=hp,
            checkpoint=_job_or_path(args.checkpoint),
            resume=args.resume,
            device=args.device,
            gpus=args.gpus,
            epochs=args.epochs,
            format=args.format_,
        )

    def _annotate(self, args, cell):
        return api.annotate(
            args.images,
            _job_or_path(args.model_dir),
            args.output,
            format=args.format_,
            threshold=args.threshold,
            mapping=list(args.mapping),
            preview=args.preview,
            overwrite=args.overwrite,
            keep_existing=args.keep_existing,
            max_detections=args.max_detections,
            device=args.device,
            engine=args.engine,
        )

    def _sync(self, args, cell):
        return api.sync(
            args.direction,
            args.workspace,
            args.storage_uri,
            delete=args.delete,
            dry_run=args.dry_run,
            include=args.include,
            exclude=args.exclude,
            checksum=args.checksum,
            endpoint_url=args.endpoint_url,
            concurrency=args.concurrency,
        )

    def _jobs(self, args, cell):
        found = api.jobs()
        if args.as_json:
            return [j._fresh() for j in found]
        return JobList(found)

    def _show(self, args, cell):
        return _job(args.job)

    def _logs(self, args, cell):
        job = _job(args.job)
        if not args.follow:
            text = job.logs()
            if not args.quiet:
                print(text, end="")
            return text if args.out_var else None
        try:
            for chunk in job.logs(follow=True):
                if not args.quiet:
                    print(chunk, end="", flush=True)
        except KeyboardInterrupt:
            pass
        print(f"[job {job.id} {job.state}{': ' + job.message if job.message else ''}]")
        return None

    def _cancel(self, args, cell):
        return _job(args.job).cancel(wait=not args.no_wait)

    def _tensorboard(self, args, cell):
        return tensorboard_view(_job(args.job).tensorboard())


def load(shell) -> None:
    """Register the magics on ``shell`` (also as a configurable, for %config)."""
    magics = CvatTrainMagics(shell=shell)
    shell.register_magics(magics)
    if magics not in shell.configurables:
        shell.configurables.append(magics)
