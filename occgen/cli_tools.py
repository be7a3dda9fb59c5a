"""The smaller ``occgen`` sub-commands: ``to-bin`` (a folder dataset as a verification ``.bin``),
``preview`` (a contact sheet of a built dataset) and ``assets`` (the occluder library), and the
error and warning helpers every sub-command shares."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import cv2

from alob_common.atomic import write_bytes_atomic
from alob_common.errors import UserError
from alob_common.vocabulary import Renamed, VocabCommand, version_option
from occgen.assets_gen import write_library
from occgen.library import OccgenError, default_library_path, load_library
from occgen.preview import preview as run_preview
from occgen.sheet import library_sheet

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@contextmanager
def one_line_errors(prefix: str = "") -> Iterator[None]:
    """Report a problem with the user's input or settings (any UserError: occgen's, a pair
    list's, a changed-settings refusal) as a one-line error with exit code 1, no traceback."""
    try:
        yield
    except UserError as err:
        raise click.ClickException(f"{prefix}{err}") from None


def warn(problems: list[str]) -> None:
    """Each problem as a ``warning:`` line on stderr."""
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)


@click.command("to-bin", cls=VocabCommand, context_settings=CONTEXT, positionals=("--data", "--out-file"))
@version_option
@click.option("--data", required=True, type=click.Path(file_okay=False),
              help="Input: a folder dataset with pairs.csv (occgen build --source lfw or --source bin).")
@click.option("--out-file", "out", required=True, type=click.Path(dir_okay=False),
              help="The .bin file to write.")
def to_bin(data, out) -> None:
    """Write the pairs.csv of --data as an insightface verification .bin: for each pair, the path1
    and path2 files as stored (e.g. clean image 1, occluded image 2) and its same flag.

    \b
    Example (an occluded LFW for insightface's or arcface_torch's verification code):
      occgen to-bin --data lfw-occ-r0.52 --out-file lfw-occ-r0.52.bin
    """
    from alob_common.pairs import pairs_csv_table
    from alob_common.verification_bin import write_pairs_bin

    with one_line_errors():
        if not (Path(data) / "pairs.csv").is_file():
            raise OccgenError(f"{data}: no pairs.csv (build it with occgen build --source lfw --pairs or --source bin)")
        try:
            table = pairs_csv_table(data)
        except (OSError, ValueError) as err:
            raise OccgenError(f"cannot read {data}/pairs.csv: {err}") from None
        if table.empty:
            raise OccgenError(f"{data}/pairs.csv holds no pair")
        try:
            contiguous = write_pairs_bin(out, table)
        except OSError as err:
            raise OccgenError(f"cannot write {out}: {err.strerror or err}") from None
    if not contiguous:
        click.echo("warning: pairs.csv's folds are not 10 contiguous folds of its pairs; insightface will cut "
                   "the .bin into those, so its fold figures differ", err=True)
    click.echo(f"wrote {len(table)} pairs ({2 * len(table)} images) to {out}")


@click.command(cls=VocabCommand, context_settings=CONTEXT, positionals=("--data",),
               renamed=[Renamed("--out", "--out-file"), Renamed("--scale", "--zoom")])
@version_option
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Input: a dataset built by occgen build (folder form or shards).")
@click.option("--out-file", "out", type=click.Path(dir_okay=False), help="PNG to write [default: DATA/preview.png].")
@click.option("--count", type=click.IntRange(1, 1000), default=48, show_default=True, help="Samples shown.")
@click.option("--cols", type=click.IntRange(1, 100), default=12, show_default=True,
              help="Samples per row of the sheet.")
@click.option("--zoom", "scale", type=click.IntRange(1, 8), default=2, show_default=True,
              help="Pixel magnification of the sheet (2: each crop pixel drawn as 2×2).")
@click.option("--kind", type=click.Choice(["occluder", "mask", "clean", "all"]), default=None,
              help="Which samples [default: mask for a masked dataset, else occluder].")
@click.option("--by-type", is_flag=True, help="Folder form: one row of COLS samples per mask type (occluder category).")
@click.option("--category", help="Folder form: only this mask type (or occluder category), e.g. N95.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which samples are drawn.")
def preview(data, out, count, cols, scale, kind, by_type, category, seed) -> None:
    """Write a contact sheet of a built dataset (folder form or shards) with red mask outlines.

    \b
    Example (one row per mask type):
      occgen preview --data lfw-masked --by-type --cols 8 --out-file masks-by-type.png
    """
    try:
        kind = kind or _default_preview_kind(data)
        path = run_preview(data, out, count, cols, seed, scale, kind, by_type, category)
    except (UserError, OSError, KeyError, ValueError) as err:
        raise click.ClickException(f"cannot preview {data}: {err}") from None
    click.echo(f"wrote {path}")


def _default_preview_kind(dataset: str) -> str:
    """``mask`` for a masked dataset (its dataset.json says kind mask), else ``occluder``."""
    meta = Path(dataset) / "dataset.json"
    settings = json.loads(meta.read_text() or "{}").get("settings", {}) if meta.exists() else {}
    return "mask" if settings.get("kind") == "mask" else "occluder"


@click.command(context_settings=CONTEXT)
@version_option
@click.option("--occluders", type=click.Path(file_okay=False), help="Library to list [default: the bundled one].")
@click.option("--regenerate", is_flag=True, help="Redraw the bundled library with the deterministic generator.")
@click.option("--out", type=click.Path(file_okay=False),
              help="With --regenerate: the output folder [default: the bundled library's folder, assets/occluders].")
@click.option("--sheet", type=click.Path(dir_okay=False), help="Also write a contact sheet PNG of the library.")
def assets(occluders, regenerate, out, sheet) -> None:
    """List the occluder library (category, file, size, placement hint), or --regenerate it."""
    with one_line_errors():
        if regenerate:
            occluders = str(_regenerate_library(out))
        library = load_library(occluders) if occluders else load_library(default_library_path())
    warn(library.problems)
    table = library.table()
    for category, group in table.groupby("category", sort=True):
        sizes = ", ".join(f"{w}x{h}" for w, h in zip(group["width"], group["height"], strict=True))
        click.echo(f"{category:<12} {len(group):>3}  hint {group['hint'].iloc[0]:<8}  sizes (WxH) {sizes}")
    click.echo(f"{len(table)} occluders in {table['category'].nunique()} categories: {library.root}")
    if sheet:
        _, buf = cv2.imencode(".png", library_sheet(library.occluders)[:, :, ::-1])
        write_bytes_atomic(sheet, buf.tobytes())
        click.echo(f"wrote {sheet}")


def _regenerate_library(out: str | None) -> Path:
    """Redraw the library into ``out`` (default: the checkout's assets/occluders); returns where."""
    checkout = Path(__file__).resolve().parents[1] / "assets" / "occluders"
    if not out and not (checkout / "index.csv").exists():
        raise OccgenError("not running from a source checkout: give --out DIR for the regenerated library")
    target = Path(out) if out else checkout
    index = write_library(target)
    click.echo(f"drew {len(index)} occluders in {index['category'].nunique()} categories into {target}")
    return target
