"""The report of a multi-run experiment (several seeds, both halves): for every configuration
against the baseline and every scenario, the paired difference of accuracy and TAR over the runs,
with a 95 % interval, written to ``WORK/report/comparison.md`` and ``comparison.json``.

Each run (one half × one seed) trains every configuration on the same data with the same seed, so
differences are paired within a run. The interval over runs (n = halves × seeds) is the honest
one; the interval over run × test fold (n = runs × 5) treats folds as independent although they
share a model, and is shown for reference only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alob_common.atomic import write_json_atomic, write_text_atomic
from alob_experiment.config import SCENARIOS, Settings

DIAGNOSTICS = ("acc", "acc_trimmer", "trimmer_cos_wy", "removed_fraction", "fm_norm", "fm_var")


def interval(values: list[float]) -> dict[str, float | int | None]:
    """Mean and the two-sided 95 % t interval of the mean (None when n < 2)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None}
    mean = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "low": None, "high": None}
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half}


def verdict(ci: dict) -> str:
    """"wins" / "loses" when the interval excludes 0, else "tie"."""
    if ci["low"] is None:
        return "n/a"
    return "wins" if ci["low"] > 0 else "loses" if ci["high"] < 0 else "tie"


def _results(run: Settings, config: str) -> dict:
    return json.loads((Path(run.work) / "reports" / config / "results.json").read_text())["results"]


def end_diagnostics(run_dir: Path) -> dict[str, float]:
    """The last logged training row's mechanism figures and, when validated, the best val accuracy
    (a run saved with no training step, as the zero-shot row, has none)."""
    if not (run_dir / "metrics.csv").is_file():
        return {"steps": 0}
    metrics = pd.read_csv(run_dir / "metrics.csv")
    train = metrics[metrics.phase == "train"]
    figures = {k: float(train[k].iloc[-1]) for k in DIAGNOSTICS if k in train.columns and len(train)}
    if "val_acc" in metrics.columns and metrics.val_acc.notna().any():
        figures["best_val_acc"] = float(metrics.val_acc.max())
    figures["steps"] = int(metrics.step.max())
    return figures


def paired_differences(runs: list[Settings], config: str, baseline: str = "baseline") -> dict[str, dict]:
    """Per scenario: config − baseline, accuracy over runs and over run × fold, TAR@1e-2 and
    TAR@1e-3 over runs."""
    out = {}
    for bench in SCENARIOS:
        per_run, per_fold, tar2, tar3 = [], [], [], []
        for run in runs:
            a, b = _results(run, baseline)[bench], _results(run, config)[bench]
            per_run.append(b["accuracy"] - a["accuracy"])
            per_fold += [y - x for x, y in zip(a["fold_accuracies"], b["fold_accuracies"])]
            tar2.append(b["tar_at_far"]["0.01"]["tar"] - a["tar_at_far"]["0.01"]["tar"])
            tar3.append(b["tar_at_far"]["0.001"]["tar"] - a["tar_at_far"]["0.001"]["tar"])
        out[bench] = {"accuracy": interval(per_run), "accuracy_fold_level": interval(per_fold),
                      "tar@1e-2": interval(tar2), "tar@1e-3": interval(tar3)}
    return out


def _pct(ci: dict) -> str:
    if ci["mean"] is None:
        return "n/a"
    if ci["low"] is None:
        return f"{100 * ci['mean']:+.2f}"
    return f"{100 * ci['mean']:+.2f} [{100 * ci['low']:+.2f}, {100 * ci['high']:+.2f}]"


def _table(differences: dict[str, dict[str, dict]]) -> list[str]:
    lines = ["| configuration − baseline | scenario | accuracy, over runs | verdict | accuracy, over run × fold | "
             "TAR@1e-2 | TAR@1e-3 |", "|---|---|---|---|---|---|---|"]
    for config, per_bench in differences.items():
        for bench, d in per_bench.items():
            lines.append(f"| {config} | {SCENARIOS[bench][0]} ({bench}) | {_pct(d['accuracy'])} | "
                         f"{verdict(d['accuracy'])} | {_pct(d['accuracy_fold_level'])} | {_pct(d['tar@1e-2'])} | "
                         f"{_pct(d['tar@1e-3'])} |")
    return lines


def _accuracy_table(runs: list[Settings], configs: list[str]) -> list[str]:
    """Mean accuracy (%) of every configuration per scenario over the runs, with the end-of-run
    diagnostics averaged over the runs."""
    head = ["configuration", *SCENARIOS, *DIAGNOSTICS, "best_val_acc", "steps"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for config in configs:
        accuracy = [np.mean([_results(r, config)[b]["accuracy"] for r in runs]) for b in SCENARIOS]
        diags = [end_diagnostics(Path(r.work) / "runs" / config) for r in runs]
        cells = [f"{100 * a:.2f}" for a in accuracy]
        for key in (*DIAGNOSTICS, "best_val_acc", "steps"):
            values = [d[key] for d in diags if key in d]
            cells.append(f"{np.mean(values):.3g}" if values else "–")
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return lines


def write_comparison_report(settings: Settings, runs: list[Settings]) -> Path:
    """``WORK/report/comparison.md`` and ``comparison.json``; returns the ``.md`` path."""
    configs = list(settings.variants)
    others = [c for c in configs if c != "baseline"]
    differences = {c: paired_differences(runs, c) for c in others} if "baseline" in configs else {}
    out = Path(settings.work) / "report"
    names = ", ".join(f"folds {r.train_folds[0]}-{r.train_folds[-1]} seed {r.seed}" for r in runs)
    lines = [f"# Paired comparison over {len(runs)} runs ({settings.size}, backbone {settings.backbone})", "",
             f"Runs: {names}. Each run trains every configuration on the same data with the same seed; a "
             "difference is configuration − baseline within a run. Intervals: 95 % t interval of the mean over "
             "runs (n = runs); the run × fold interval treats test folds as independent although they share a "
             "model, so it is too narrow. TAR@1e-3 rests on a handful of impostor pairs per run: read it as "
             "rough.", "", "## Mean accuracy (%) and end-of-training diagnostics", "",
             *_accuracy_table(runs, configs), "", "## Paired differences (percentage points)", "",
             *_table(differences), ""]
    write_text_atomic(out / "comparison.md", "\n".join(lines))
    relative = [Path(r.work).relative_to(settings.work).as_posix() for r in runs]  # the folder stays movable
    write_json_atomic(out / "comparison.json", {"runs": relative, "configurations": configs,
                                                 "differences": differences})
    return out / "comparison.md"
