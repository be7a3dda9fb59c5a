"""The report of ``alob-eval suite``: one table of set × scenario × model (``suite.csv``,
``suite.md``), a grouped-bar picture (``suite.png``), everything in ``suite.json``, and, with two
or more models, each model's paired difference from the one compared to (``differences.csv``
and a table in ``suite.md``).

A paired difference is taken on the same pairs: accuracy per fold of model B minus model A's,
their mean with a two-sided 95 % t interval over the folds, and the TAR@FAR difference (one
number per set and scenario, no interval).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from alob_common.atomic import write_csv_atomic, write_figure_atomic, write_json_atomic, write_text_atomic
from alob_common.verification import CONVENTIONS


def _far_key(far: float) -> str:
    return f"tar@far={far:g}"


def suite_table(results: dict[tuple[str, str], dict], sets: list[str], scenarios: list[str], models: list[str],
                fars: tuple[float, ...]) -> pd.DataFrame:
    """One row per set × scenario × model: pairs, accuracy and its std over folds, TAR at each
    FAR (fractions), pairs skipped for missing images. ``results[(set, model)]`` is a result file."""
    rows = []
    for set_name in sets:
        for scenario in scenarios:
            for model in models:
                r = results[(set_name, model)]["scenarios"][scenario]
                row = {"set": set_name, "scenario": scenario, "model": model, "pairs": r["pairs"],
                       "impostor": r["impostor"], "accuracy": r["accuracy"], "accuracy_std": r["accuracy_std"]}
                row.update({_far_key(far): r["tar_at_far"][f"{far:g}"]["tar"] for far in fars})
                row["skipped_pairs"] = r.get("skipped_pairs", 0)
                rows.append(row)
    return pd.DataFrame(rows)


def _interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """Mean and two-sided 95 % t interval of the mean (None bounds below two values)."""
    from scipy import stats

    x = np.asarray(values, float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def paired_differences(results: dict[tuple[str, str], dict], sets: list[str], scenarios: list[str],
                       models: list[str], versus: str, fars: tuple[float, ...]) -> pd.DataFrame:
    """Per set × scenario and per model other than ``versus``: model − versus, accuracy over the
    folds (mean, 95 % interval, folds) and TAR at each FAR."""
    rows = []
    for model in (m for m in models if m != versus):
        for set_name in sets:
            for scenario in scenarios:
                a = results[(set_name, versus)]["scenarios"][scenario]
                b = results[(set_name, model)]["scenarios"][scenario]
                per_fold = [y - x for x, y in zip(a["fold_accuracies"], b["fold_accuracies"])]
                mean, low, high = _interval(per_fold)
                row = {"set": set_name, "scenario": scenario, "model": model, "versus": versus,
                       "accuracy_difference": mean, "ci95_low": low, "ci95_high": high, "folds": len(per_fold)}
                row.update({_far_key(far): b["tar_at_far"][f"{far:g}"]["tar"] - a["tar_at_far"][f"{far:g}"]["tar"]
                            for far in fars})
                rows.append(row)
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame, diffs: pd.DataFrame, models: list[str], fars: tuple[float, ...]) -> list[str]:
    """The suite table (rows set × scenario, columns per model) and the differences table."""
    far = fars[0]
    head = "| set | scenario | pairs | " + " | ".join(f"{m} accuracy (%) | {m} TAR@FAR={far:g} (%)" for m in models) + " |"
    lines = [head, "|---|---|---|" + "---|---|" * len(models)]
    for (set_name, scenario), group in table.groupby(["set", "scenario"], sort=False):
        cells = []
        for model in models:
            r = group[group.model == model].iloc[0]
            cells.append(f"{100 * r.accuracy:.2f} ± {100 * r.accuracy_std:.2f} | {100 * r[_far_key(far)]:.2f}")
        lines.append(f"| {set_name} | {scenario} | {int(group.pairs.iloc[0])} | " + " | ".join(cells) + " |")
    if diffs.empty:
        return lines
    lines += ["", f"Paired differences (model − {diffs.versus.iloc[0]}, percentage points; accuracy: mean over "
              "folds with a 95 % t interval; TAR: one figure):", "",
              f"| set | scenario | model | Δ accuracy | 95 % interval | Δ TAR@FAR={far:g} |", "|---|---|---|---|---|---|"]
    for r in diffs.to_dict("records"):
        low, high = r["ci95_low"], r["ci95_high"]
        ci = "—" if low is None or pd.isna(low) else f"[{100 * low:+.2f}, {100 * high:+.2f}]"
        lines.append(f"| {r['set']} | {r['scenario']} | {r['model']} | {100 * r['accuracy_difference']:+.2f} | {ci} | "
                     f"{100 * r[_far_key(far)]:+.2f} |")
    return lines


def plot_suite(path: Path, table: pd.DataFrame, models: list[str], title: str) -> None:
    """Grouped bars: one group per set × scenario, one bar per model (accuracy, std over folds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(zip(table.set, table.scenario)))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(models)) ** 0.5 + 2), 4.2), dpi=120)
    x = np.arange(len(groups))
    for k, model in enumerate(models):
        rows = table[table.model == model].set_index(["set", "scenario"]).loc[groups]
        ax.bar(x + (k - (len(models) - 1) / 2) * width, 100 * rows.accuracy.to_numpy(), width,
               yerr=100 * rows.accuracy_std.to_numpy(), capsize=2, label=model)
    ax.set_xticks(x, [f"{s}\n{sc}" for s, sc in groups], fontsize=7)
    low = float(100 * (table.accuracy - table.accuracy_std).min())
    ax.set_ylim(max(0.0, min(50.0, math.floor(low / 5) * 5)), 100)
    ax.set_ylabel("verification accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    write_figure_atomic(fig, path)
    plt.close(fig)


def write_suite_report(out: Path, table: pd.DataFrame, diffs: pd.DataFrame, meta: dict,
                       models: list[str], fars: tuple[float, ...]) -> None:
    """``suite.csv``, ``differences.csv`` (two models or more), ``suite.md``, ``suite.json``, ``suite.png``."""
    write_csv_atomic(out / "suite.csv", table)
    if not diffs.empty:
        write_csv_atomic(out / "differences.csv", diffs)
    convention = meta["options"]["tar_convention"]
    notes = [f"- Accuracy: {CONVENTIONS['accuracy']}.", f"- TAR@FAR: {CONVENTIONS[convention]}."]
    notes += [f"- {name}: {m['description']}, embeddings by {m['backend']}." for name, m in meta["models"].items()]
    notes += [f"- {name}: {text}" for name, text in meta["scenarios"].items()]
    for far in fars:
        for impostor in sorted(set(table.impostor)):
            if (allowed := int(np.floor(far * impostor))) < 10:
                notes.append(f"- FAR={far:g} of {impostor} impostor pairs allows {allowed} false accepts: the TAR there "
                             "is a noisy estimate.")
    body = ["# Occlusion suite", "", *_markdown(table, diffs, models, fars), "", "Conventions and sources:", *notes, ""]
    write_text_atomic(out / "suite.md", "\n".join(body))
    write_json_atomic(out / "suite.json", {"meta": meta, "conventions": CONVENTIONS,
                                           "rows": table.to_dict("records"), "differences": diffs.to_dict("records")})
    plot_suite(out / "suite.png", table, models, "verification accuracy: clean, occluded, masked")
