"""``alob-eval diagnose``: ALOB's mechanism figures for a trained run, measured on pair sets.

Training logs these figures on its batches (docs/USAGE.md, "Reading the diagnostics"); here they
are measured on the images of any pair set, separately for the two sides of the pairs (in the
occluded and masked sets occgen writes, the first image of a pair is the clean one and the second
the occluded one), and every pair set is scored three ways: with the embedding the model reports
(e), with the Identifier's feature before the projection (f) and with the Trimmer's feature alone
(fᵐ). If the Trimmer has learnt what the reversed gradient asks, fᵐ verifies faces near chance
(50 %) and e does at least as well as f.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Sequence

import click
import numpy as np
import torch

from alob_common.atomic import write_json_atomic, write_text_atomic
from alob_common.errors import UserError
from alob_common.vocabulary import version_option
from alob_eval.cam_command import model_device_option
from alob_train.runtime import setup_device

FEATURES = ("e", "f", "fm")


class _AllFeatures(torch.nn.Module):
    """A model whose ``embed`` returns [e, f, fᵐ] side by side, so the evaluation's embedder
    (same preprocessing, batching and decoding) computes all three in one pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.model.features(x), dim=1)


def load_alob_run(checkpoint: str, which: str = "best") -> tuple[torch.nn.Module, dict, str]:
    """The trained model, its settings and the checkpoint name used; a baseline (no Trimmer) or
    an unreadable checkpoint is a :class:`UserError`."""
    from alob_train.checkpoint import load_trained

    model, cfg, which = load_trained(checkpoint, which)
    if model.trimmer is None:
        raise UserError(f"{checkpoint} is a {cfg['variant']} run: it has no Trimmer, so there is nothing to diagnose")
    return model, cfg, which


def split_features(model: torch.nn.Module, vectors: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """[e, f, fᵐ] rows cut back into three {path: vector} tables (f and fᵐ are equally wide; e is
    as wide as the head that scores it: twice as wide for concat)."""
    width = len(next(iter(vectors.values())))
    dim_e = model.classifier.weight.shape[1]
    dim_f = (width - dim_e) // 2
    cuts = {"e": slice(0, dim_e), "f": slice(dim_e, dim_e + dim_f), "fm": slice(dim_e + dim_f, width)}
    return {name: {path: v[cut] for path, v in vectors.items()} for name, cut in cuts.items()}


def side_figures(model: torch.nn.Module, variant: str, tables: dict[str, dict[str, np.ndarray]],
                 paths: Sequence[str]) -> dict[str, float]:
    """The feature figures over one side's images (each image once)."""
    from alob_train.diagnostics import feature_diagnostics, nearest_class_cosine

    paths = list(dict.fromkeys(paths))
    e, f, fm = (torch.from_numpy(np.stack([tables[name][p] for p in paths])) for name in FEATURES)
    return {
        "images": len(paths),
        **feature_diagnostics(f, fm, subtract=variant == "alob-f"),
        "fm_nearest_class_cos": nearest_class_cosine(fm, model.trimmer_head.weight.detach()),
        "e_nearest_class_cos": nearest_class_cosine(e, model.classifier.weight.detach()),
    }


def diagnose(model: torch.nn.Module, cfg: dict, benchmarks: list, batch_size: int = 64,
             progress: bool = True, device: torch.device | str = "cpu") -> dict[str, dict]:
    """Per benchmark: the feature figures of each side and the pair accuracy with e, f and fᵐ."""
    from alob_eval.benchmarks import embed_images, evaluate_benchmarks
    from alob_train.embed import fuse_conv_bn, model_embedder

    fast = _AllFeatures(fuse_conv_bn(model)).to(device, memory_format=torch.channels_last)
    embed = model_embedder(fast, tuple(cfg["input_size"]), device, channels_last=True)
    paths = list(dict.fromkeys(p for b in benchmarks for p in [*b.pairs.path1, *b.pairs.path2]))
    images = {path: data for b in benchmarks for path, data in b.images.items()}
    tables = split_features(model, embed_images(embed, paths, images, batch_size, progress=progress))
    results = {}
    for bench in benchmarks:
        scored = {name: evaluate_benchmarks([bench], tables[name], (1e-2,), "roc")[0][bench.name] for name in FEATURES}
        results[bench.name] = {
            "pairs": len(bench.pairs),
            "first": side_figures(model, cfg["variant"], tables, bench.pairs.path1),
            "second": side_figures(model, cfg["variant"], tables, bench.pairs.path2),
            "accuracy": {name: {"mean": scored[name]["accuracy"], "std": scored[name]["accuracy_std"]}
                         for name in FEATURES},
        }
    return results


def diagnostics_markdown(results: dict[str, dict], model: str) -> str:
    """The two tables of ``diagnostics.md``."""
    lines = [f"# Mechanism diagnostics: {model}", "",
             "Feature figures per side of the pairs (first image, second image: the occluded or masked one "
             "in occgen's sets).", "",
             "| benchmark | side | images | removed fraction | fᵐ norm | fᵐ variance | fᵐ nearest-class cos "
             "| e nearest-class cos |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for side in ("first", "second"):
            s = r[side]
            lines.append(f"| {name} | {side} | {s['images']} | {s['removed_fraction']:.3f} | {s['fm_norm']:.3f} "
                         f"| {s['fm_var']:.5f} | {s['fm_nearest_class_cos']:.3f} | {s['e_nearest_class_cos']:.3f} |")
    lines += ["", "Pair verification (10-fold accuracy %, mean ± std) with the reported embedding e, the "
              "Identifier's feature f before the projection, and the Trimmer's feature fᵐ alone "
              "(near 50 % when fᵐ carries no identity).", "",
              "| benchmark | pairs | e | f | fᵐ |", "|---|---|---|---|---|"]
    for name, r in results.items():
        acc = r["accuracy"]
        cells = " | ".join(f"{100 * acc[k]['mean']:.2f} ± {100 * acc[k]['std']:.2f}" for k in FEATURES)
        lines.append(f"| {name} | {r['pairs']} | {cells} |")
    return "\n".join(lines) + "\n"


@click.command("diagnose")
@version_option
@click.option("--checkpoint", type=click.Path(exists=True), required=True,
              help="An ALOB run folder made by alob-train (any variant with a Trimmer), or its .pt file.")
@click.option("--which", default="best", show_default=True,
              help="Checkpoint of the run to load: best (falls back to last), last or epoch_NNN.")
@click.option("--bench", "benches", multiple=True, required=True, metavar="NAME=DIR[@pairs.txt]|NAME=FILE.bin",
              help="A pair set, as for alob-eval; repeat the option for several.")
@click.option("--batch-size", type=click.IntRange(1, None), default=64, show_default=True,
              help="Images embedded per forward pass; lower it if memory runs short.")
@model_device_option
@click.option("--out", type=click.Path(file_okay=False), default="report-diagnostics", show_default=True,
              help="Output folder for diagnostics.md and diagnostics.json.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def diagnose_command(checkpoint: str, which: str, benches: tuple[str, ...], batch_size: int, device: str, out: str,
                     quiet: bool) -> None:
    """Show whether ALOB's mechanism works on pair sets: how much of the Identifier's feature the
    projection removes, whether the Trimmer's feature collapsed or still points at identities,
    and pair accuracy with the embedding e, with f before the projection and with fᵐ alone.

      alob-eval diagnose --checkpoint runs/alob --bench lfw-occ-3.0=lfw-occ-3.0/
    """
    from alob_eval.benchmarks import BenchmarkSpecError, parse_bench_spec, without_missing_images

    start = time.perf_counter()
    try:
        benchmarks = [without_missing_images(parse_bench_spec(spec))[0] for spec in benches]
        model, cfg, which = load_alob_run(checkpoint, which)
        results = diagnose(model, cfg, benchmarks, batch_size, progress=not quiet,
                           device=setup_device(device, 0, None))
    except BenchmarkSpecError as err:
        raise click.BadParameter(str(err), param_hint="--bench") from None
    except UserError as err:
        raise click.ClickException(str(err)) from None
    name = f"{cfg['variant']}-{cfg['backbone']} ({Path(checkpoint).name}, {which})"
    text = diagnostics_markdown(results, name)
    try:
        write_json_atomic(Path(out) / "diagnostics.json", {"model": name, "command": sys.argv, "benchmarks": results})
        write_text_atomic(Path(out) / "diagnostics.md", text)
    except OSError as err:
        raise click.ClickException(f"cannot write to {out}: {err.strerror or err}") from None
    click.echo(text)
    click.echo(f"report: {Path(out) / 'diagnostics.md'} ({time.perf_counter() - start:.1f} s)")
