"""The experiment's report, ``WORK/report/report.md`` and ``report.json``: every scenario ×
variant from the per-variant ``alob-eval`` results, the training cost, the CAM and t-SNE
pictures and the stage times."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from alob_common.atomic import write_json_atomic, write_text_atomic
from alob_experiment.comparison import DIAGNOSTICS, end_diagnostics
from alob_experiment.config import SCENARIOS, Settings
from alob_experiment.lfw import Split
from alob_experiment.stages import Stage


def _percent(value: float | None) -> str:
    """A fraction as a percentage; "—" for none (a run with no training step has no accuracy)."""
    return "—" if value is None else f"{100 * value:.2f}"


def _paired_difference(a: dict, b: dict) -> tuple[float, float] | None:
    """Mean and std over folds of b's fold accuracy minus a's (same folds, same pairs)."""
    fa, fb = a.get("fold_accuracies"), b.get("fold_accuracies")
    if not fa or not fb or len(fa) != len(fb):
        return None
    diffs = [y - x for x, y in zip(fa, fb)]
    mean = sum(diffs) / len(diffs)
    return mean, (sum((d - mean) ** 2 for d in diffs) / len(diffs)) ** 0.5


def _protocol(settings: Settings, split: Split) -> list[str]:
    """The paragraphs saying what was trained and tested, and how it was scored."""
    test_pairs = len(split.test_lines)
    train_images = sum(split.images[p] for p in split.train_people)
    return [
        (f"Train on every image of {len(split.train_people):,} people of LFW View-2 folds "
         f"{', '.join(map(str, split.train_folds))} ({train_images:,} images; "
         f"clean:occluded samples 1:2, occluded samples {_percent(1 - settings.mask_fraction)} % occluders / "
         f"{_percent(settings.mask_fraction)} % masks); test on {test_pairs:,} pairs of folds "
         f"{', '.join(map(str, split.test_folds))} ({split.pairs_per_fold} matched + {split.pairs_per_fold} "
         f"mismatched per fold; {len(split.test_people):,} people, none of them in training). "
         f"Backbone {settings.backbone}, seed {settings.seed}, same data and budget for every variant."),
        "",
        ("Verification: cosine similarity; accuracy = mean ± std over the test folds, the threshold chosen on "
         "the other test folds; TAR@FAR from one ROC over all pairs (sklearn `roc_curve`). "
         f"With {test_pairs // 2} impostor pairs, FAR = 1e-3 allows {test_pairs // 2 // 1000} false accept(s): "
         "read TAR@1e-3 as a rough figure and TAR@1e-2 as the steadier one."),
    ]


def _results_table(results: dict[str, dict], variants: list[str]) -> list[str]:
    """Scenario × variant: accuracy, TAR@1e-3 and @1e-2, and each variant's per-fold gain."""
    gains = [f"{v} − {variants[0]} (per fold)" for v in variants[1:]]
    head = ["scenario", "benchmark", *(f"{v} {col}" for v in variants
                                       for col in ("accuracy (%)", "TAR@1e-3", "TAR@1e-2")), *gains]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for bench, (scenario, _) in SCENARIOS.items():
        cells = [scenario, bench]
        for v in variants:
            r = results[v][bench]
            cells += [f"{_percent(r['accuracy'])} ± {_percent(r['accuracy_std'])}",
                      _percent(r["tar_at_far"]["0.001"]["tar"]), _percent(r["tar_at_far"]["0.01"]["tar"])]
        for v in variants[1:]:
            diff = _paired_difference(results[variants[0]][bench], results[v][bench])
            cells.append("n/a" if diff is None else f"{100 * diff[0]:+.2f} ± {100 * diff[1]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _training_table(runs: dict[str, dict], stages: list[Stage]) -> list[str]:
    """Per variant: epochs, steps, samples, wall time and final training accuracy."""
    seconds = {s.name.removeprefix("train-"): s.seconds for s in stages if s.name.startswith("train-")}
    lines = ["| variant | epochs | steps | samples per epoch | wall time (s) | samples/s | final training accuracy (%) |",
             "|---|---|---|---|---|---|---|"]
    for v, run in runs.items():
        summary, data = run["summary"], run["data"]
        lines.append(f"| {v} | {summary['epochs_completed']} | {summary['steps']} | {data['samples']} | "
                     f"{seconds.get(v, summary['seconds']):.0f} | {summary['samples_per_s']:.1f} | "
                     f"{_percent(summary['final_acc'])} |")
    return lines


def _diagnostics_table(work: Path, variants: list[str]) -> list[str]:
    """The last logged training row's mechanism figures per variant (README, "Reading the
    diagnostics")."""
    head = ["variant", *DIAGNOSTICS, "best_val_acc", "steps"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in variants:
        figures = end_diagnostics(work / "runs" / v)
        lines.append(f"| {v} | " + " | ".join(f"{figures[k]:.3g}" if k in figures else "–" for k in head[1:]) + " |")
    return lines


def _pictures(work: Path, out: Path) -> list[str]:
    """The CAM and t-SNE sections, their pictures copied beside the report (when they were made)."""
    lines = []
    cam_md = work / "reports" / "cam" / "cam.md"
    if cam_md.is_file():
        body = [line for line in cam_md.read_text().splitlines() if not line.startswith("# ")]
        lines += ["", "## Trimmer attention vs the true occlusion mask (LFW-OCC-3.0 test images)", "", *body]
        grid = work / "reports" / "cam" / "cam_grid.png"
        if grid.is_file():
            shutil.copyfile(grid, out / "cam_grid.png")
            lines += ["", "![CAM grid](cam_grid.png)"]
    tsne = work / "reports" / "tsne.png"
    if tsne.is_file():
        shutil.copyfile(tsne, out / "tsne.png")
        lines += ["", "## t-SNE of test identities", "", "![t-SNE](tsne.png)"]
    return lines


def write_experiment_report(settings: Settings, split: Split, stages: list[Stage]) -> Path:
    """``WORK/report/report.md`` and ``report.json``: every scenario × variant, training cost,
    stage times and the pictures (copied beside the report); returns the ``report.md`` path."""
    work = Path(settings.work)
    out = work / "report"
    out.mkdir(parents=True, exist_ok=True)
    variants = list(settings.variants)
    results, runs = {}, {}
    for variant in variants:
        results[variant] = json.loads((work / "reports" / variant / "results.json").read_text())["results"]
        runs[variant] = json.loads((work / "runs" / variant / "run.json").read_text())
        shutil.copyfile(work / "reports" / variant / "roc.png", out / f"roc-{variant}.png")
    lines = [f"# LFW fold experiment ({settings.size})", "", *_protocol(settings, split), "",
             *_results_table(results, variants), "", "Training (this machine):", "", *_training_table(runs, stages),
             "", "Mechanism at the end of training (last logged step):", "", *_diagnostics_table(work, variants),
             *_pictures(work, out), "", "## ROC", "", *(f"![ROC {v}](roc-{v}.png)" for v in variants),
             "", "## Stages", "", "| stage | status | seconds |", "|---|---|---|",
             *(f"| {s.name} | {s.status} | {s.seconds:.0f} |" for s in stages),
             "", "Commands: `WORK/stages/*.json`; logs: `WORK/logs/`; per-variant reports: `WORK/reports/`.", ""]
    write_text_atomic(out / "report.md", "\n".join(lines))
    summary = {"settings": asdict(settings), "split": {k: v for k, v in asdict(split).items() if k != "images"},
               "results": results, "training": {v: runs[v]["summary"] for v in variants},
               "stages": [asdict(s) for s in stages]}
    write_json_atomic(out / "report.json", summary)
    return out / "report.md"
