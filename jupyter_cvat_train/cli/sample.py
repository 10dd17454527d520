"""``cvat-train sample-dataset OUT``: write a sample CVAT export of simple shapes."""

from __future__ import annotations

import click

from ..datasets.sample import SAMPLE_FORMATS


@click.command(name="sample-dataset")
@click.argument("out", type=click.Path(path_type=str))
@click.option(
    "--format",
    "format_",
    type=click.Choice(SAMPLE_FORMATS),
    default="coco",
    show_default=True,
    help="CVAT export format to write.",
)
@click.option("--images", type=click.IntRange(1), default=200, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same export).")
@click.option("--size", default="320x240", show_default=True, help="Image size WIDTHxHEIGHT in pixels.")
def sample_dataset(out: str, format_: str, images: int, seed: int, size: str) -> None:
    """Write a sample CVAT export to OUT (a folder, or a .zip file): JPEG images of
    circles, squares and triangles on textured backgrounds, with boxes and polygons."""
    from ..datasets.sample import generate_sample

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{size!r} is not WIDTHxHEIGHT, e.g. 320x240", param_hint="--size") from None
    try:
        path = generate_sample(out, format=format_, images=images, seed=seed, width=width, height=height)
    except (FileExistsError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {images} images as a {format_} CVAT export to {path}")
