"""``cvat-train``: the command-line shell over the core.

Each subcommand lives in its own module of this package and is imported only when it
is run, so ``cvat-train validate`` never pays for importing torch.
"""

from __future__ import annotations

import importlib

import click

from .._version import __version__

# name -> (module in this package, attribute, one-line help shown by --help)
COMMANDS = {
    "validate": ("validate", "validate", "Validate a CVAT export (zip or folder) and report every problem."),
    "sample-dataset": ("sample", "sample_dataset", "Generate a sample CVAT export of simple shapes."),
    "models": ("models", "models", "List the model templates (the catalog)."),
    "train": ("train", "train", "Train a model on a CVAT export (a job, run in the foreground)."),
    "annotate": ("annotate", "annotate", "Auto-annotate images with a trained model; write a CVAT-importable zip."),
    "sync": ("sync", "sync", "Sync a workspace folder with object storage (s3:// or file://)."),
    "jobs": ("jobs", "jobs", "List, show, follow and cancel jobs."),
    "cvat": ("cvat", "cvat", "A CVAT server: serve a model to its Automatic annotation, auto-annotate, pull, push."),
    "template": ("template", "template", "Check a template file and print the form it gives (template check FILE)."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _help = COMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cvat-train")
def main():
    """Train detection / segmentation models on CVAT exports and auto-annotate new images."""
    from pathlib import Path

    from ..models import configure_search_path

    configure_search_path(root_dir=Path.cwd())  # user templates in ./cvat-train-templates, as the server's root


if __name__ == "__main__":
    main()
