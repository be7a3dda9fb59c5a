"""t-SNE pictures of embeddings: a few identities, many images each, one panel per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alob_common.atomic import write_figure_atomic

from alob_common.images import is_image_name


def pick_identities(folder: str | Path, identities: int, per_identity: int,
                    rng: np.random.Generator) -> dict[str, list[str]]:
    """``identities`` identity folders with at least ``per_identity`` images, drawn with ``rng``;
    from each the first ``per_identity`` images in name order."""
    folder = Path(folder)
    eligible = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        images = sorted(str(f) for f in sub.iterdir() if is_image_name(f.name))
        if len(images) >= per_identity:
            eligible[sub.name] = images[:per_identity]
    if len(eligible) < identities:
        raise ValueError(f"only {len(eligible)} identities under {folder} have {per_identity}+ images")
    names = sorted(eligible)
    chosen = sorted(rng.choice(len(names), size=identities, replace=False))
    return {names[i]: eligible[names[i]] for i in chosen}


def tsne_2d(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (scikit-learn) of L2-normalised vectors, cosine metric."""
    from sklearn.manifold import TSNE

    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    perplexity = min(30.0, (len(vectors) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed).fit_transform(vectors)


def plot_panels(path: str | Path, panels: dict[str, np.ndarray], labels: list[str]) -> None:
    """One scatter panel per model, points coloured by identity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(set(labels))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), dpi=110, squeeze=False)
    for ax, (title, points) in zip(axes[0], panels.items()):
        for k, name in enumerate(names):
            mask = np.array([lab == name for lab in labels])
            ax.scatter(points[mask, 0], points[mask, 1], s=14, color=plt.cm.tab10(k % 10), label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    write_figure_atomic(fig, path)
    plt.close(fig)
