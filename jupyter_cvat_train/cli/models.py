"""``cvat-train models [--json]``: list the model templates (the catalog).

The catalog holds the built-in templates and those of ``./cvat-train-templates``,
``<jupyter config dir>/cvat-train-templates`` and ``CVAT_TRAIN_TEMPLATE_PATH``
(see :mod:`jupyter_cvat_train.models.catalog`).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import click


@click.command(name="models")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the templates with their parameter schemas and hyperparameter keys as JSON.",
)
def models(as_json: bool) -> None:
    """List the model templates: name, task, defaults and when to choose each.

    Your own templates go into ./cvat-train-templates, <jupyter config dir>/cvat-train-templates
    or a folder of CVAT_TRAIN_TEMPLATE_PATH."""
    from ..models import DEFAULT_TEMPLATE, configure_search_path, load_catalog

    catalog = load_catalog(configure_search_path(root_dir=Path.cwd()))  # logs each file skipped
    templates = sorted(catalog.templates.values(), key=lambda t: (t.name != DEFAULT_TEMPLATE, t.name))
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in templates], indent=1, default=str))
        return
    for t in templates:
        d = t.defaults
        star = "  (default)" if t.name == DEFAULT_TEMPLATE else ""
        click.echo(
            f"{t.name}{star}\n  {t.display_name} - {t.framework} {t.task}; batch_size {d.get('batch_size')}, "
            f"learning_rate {d.get('learning_rate')}, image_size {d.get('image_size')}, "
            f"epochs {d.get('epochs') or 'auto (num_steps ' + str(d.get('num_steps')) + ')'}"
        )
        click.echo(textwrap.fill(t.description, width=100, initial_indent="  ", subsequent_indent="  "))
        if not t.builtin:
            click.echo(f"  from {t.path}")
        unavailable = t.to_dict()["unavailable"]
        if unavailable:
            click.echo(
                textwrap.fill(
                    f"unavailable here: {unavailable}", width=100, initial_indent="  ", subsequent_indent="  "
                )
            )
        click.echo("")
    for problem in catalog.skipped:
        click.echo(f"broken (skipped): {problem}", err=True)
