"""Evaluation reports: ``results.json``, ``results.md`` (the paper's table layout) and ``roc.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alob_common.atomic import write_figure_atomic, write_json_atomic, write_text_atomic
from alob_common.verification import CONVENTIONS, FOLDS_AS_GIVEN


def markdown_table(results: dict[str, dict], fars: tuple[float, ...]) -> str:
    """Benchmark × accuracy ± std and TAR@FAR, as in the paper's tables (percent)."""
    head = "| benchmark | pairs | accuracy (%) | " + " | ".join(f"TAR@FAR={far:g} (%)" for far in fars) + " |"
    rule = "|---|---|---|" + "---|" * len(fars)
    lines = [head, rule]
    for name, r in results.items():
        tars = []
        for far in fars:
            t = r["tar_at_far"][f"{far:g}"]
            spread = f" ± {100 * t['std']:.2f}" if t["std"] else ""
            tars.append(f"{100 * t['tar']:.2f}{spread}")
        lines.append(
            f"| {name} | {r['pairs']} | {100 * r['accuracy']:.2f} ± {100 * r['accuracy_std']:.2f} | " + " | ".join(tars) + " |"
        )
    return "\n".join(lines)


def write_eval_report(out: str | Path, results: dict[str, dict], curves: dict[str, tuple[np.ndarray, np.ndarray]],
                      meta: dict, fars: tuple[float, ...]) -> Path:
    """Write the three report files into ``out``; ``curves`` maps a benchmark to (scores, same)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    convention = next(iter(results.values()))["tar_convention"] if results else "roc"
    notes = [
        f"- Accuracy: {CONVENTIONS['accuracy']}.",
        f"- TAR@FAR: {CONVENTIONS[convention]}.",
    ]
    if meta.get("backend"):
        notes.append(f"- Embeddings computed by: {meta['backend']}.")
    for name, r in results.items():
        if r.get("fold_rule", FOLDS_AS_GIVEN) != FOLDS_AS_GIVEN:
            notes.append(f"- {name}: accuracy folds: {r['fold_rule']}.")
        if r.get("skipped_pairs"):
            notes.append(f"- {name}: {r['skipped_pairs']} pairs skipped, naming {r['missing_images']} missing images.")
        for far in fars:
            allowed = r["tar_at_far"][f"{far:g}"]["false_accepts_allowed"]
            if allowed < 10:
                notes.append(f"- {name}: FAR={far:g} of {r['impostor']} impostor pairs allows {allowed} false accepts; "
                             "the TAR there is a noisy estimate.")
    body = "\n".join([f"# Verification results: {meta.get('model', '')}", "", markdown_table(results, fars), "",
                      "Conventions:", *notes, ""])
    write_text_atomic(out / "results.md", body)
    write_json_atomic(out / "results.json", {"meta": meta, "conventions": CONVENTIONS, "results": results})
    _plot_roc(out / "roc.png", curves, meta.get("model", ""))
    return out


def _plot_roc(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, (scores, same) in curves.items():
        fpr, tpr, _ = roc_curve(same, scores)
        ax.plot(np.maximum(fpr, 1e-5), tpr, label=name)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title or "ROC")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    write_figure_atomic(fig, path)
    plt.close(fig)
