"""``cvat-train template check FILE``: check a template file and print the form it gives.

Reads FILE as the catalog would (built-in or custom template), prints each problem with
its file and line (exit status 1), or the template's name, kind, the form fields from its
parameters (name, type, default, label) and, for a custom template, the command (and its
annotate command, if any) it would run with the defaults (placeholders for the paths). ``--json`` prints the
template as ``GET templates`` shows it.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click


@click.group(name="template")
def template() -> None:
    """Check template files."""


@template.command(name="check")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the template as GET templates shows it.")
def check(file: Path, as_json: bool) -> None:
    """Check the template FILE (YAML) and print the form it would show."""
    from ..models.catalog import TemplateError, check_template_file, preview_commands

    try:
        t = check_template_file(file)
    except TemplateError as e:
        click.echo(f"{e}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(t.to_dict(), indent=1, default=str))
        return
    kind = "custom (the user's code)" if t.custom is not None else f"family {t.family}"
    click.echo(f"{t.name}: ok - {t.display_name}, {t.task}, {kind}")
    click.echo("form:")
    for p in t.parameters:
        label = p.get("displayName") or p.get("name")
        click.echo(f"  {p.get('name')} ({p.get('type', 'input.text')}): {label}; default {str(p.get('value', ''))!r}")
    if not t.parameters:
        click.echo("  (no parameters)")
    if t.custom is not None:
        c = t.custom
        where = f"git {c.code_git} at {c.code_revision or 'HEAD'}" if c.code_git else f"folder {c.code_path}"
        click.echo(f"code: {where}")
        click.echo(f"dump format: {c.dump_format}")
        commands = preview_commands(t)
        shell = " (through /bin/sh, values quoted)" if commands["shell"] else ""
        click.echo("command: " + shlex.join(commands["command"]) + shell)
        if commands["annotate"]:
            click.echo("annotate: " + shlex.join(commands["annotate"]))
        if c.output_model:
            click.echo(f"outputs: model {c.output_model}, classes {c.output_classes}")
