"""QA plots as PNG files: response lengths, a 2-D PCA of the TF-IDF vectors (as in the paper's
figure), the teacher's share of each sample, and the fine-tuned student's pass@1 per method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from tessy.quality.report import evaluated  # noqa: E402
from tessy.quality.similarity import Tfidf  # noqa: E402
from tessy.quality.traces import ok_traces, require_columns  # noqa: E402

MIN_TRACES = 3  # the PCA plot needs at least three responses


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_lengths(frame: pl.DataFrame, path: Path) -> Path:
    """Histogram of n_tokens per method, on shared bins."""
    ok = ok_traces(frame)
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.histogram_bin_edges(ok["n_tokens"].to_numpy(), bins=30)
    for method, group in sorted(ok.group_by("method"), key=lambda g: g[0][0]):
        ax.hist(group["n_tokens"].to_numpy(), bins=bins, histtype="step", linewidth=1.5, label=method[0])
    ax.set(xlabel="tokens per response (student tokenizer)", ylabel="responses", title="Response length")
    ax.legend()
    return _save(fig, path)


def plot_pca(tfidf: Tfidf, path: Path) -> Path:
    """The TF-IDF vectors projected on their first two principal components, one colour per method."""
    if tfidf.matrix.shape[0] < 3:
        raise ValueError(f"PCA of the TF-IDF vectors needs at least 3 responses, got {tfidf.matrix.shape[0]}")
    # arpack keeps the matrix sparse (and centres it implicitly): the vocabulary can be 150k wide.
    points = PCA(n_components=2, svd_solver="arpack", random_state=0).fit_transform(tfidf.matrix)
    methods = np.array(tfidf.methods)
    fig, ax = plt.subplots(figsize=(6, 5))
    for method in sorted(set(tfidf.methods)):
        xy = points[methods == method]
        ax.scatter(xy[:, 0], xy[:, 1], s=12, alpha=0.7, label=method)
    ax.set(xlabel="PC 1", ylabel="PC 2", title="TF-IDF of responses (student tokenizer), PCA")
    ax.legend()
    return _save(fig, path)


def plot_teacher_share(frame: pl.DataFrame, path: Path) -> Path:
    """Each method's samples sorted by the teacher's share of their tokens."""
    ok = ok_traces(frame).filter(pl.col("n_tokens") > 0)
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, group in sorted(ok.group_by("method"), key=lambda g: g[0][0]):
        share = np.sort((group["n_tokens_teacher"] / group["n_tokens"]).clip(0, 1).to_numpy())
        ax.plot(np.linspace(0, 1, len(share)), share, drawstyle="steps-post", label=method[0])
    ax.set(
        xlabel="samples (fraction, sorted)",
        ylabel="teacher share of tokens",
        ylim=(-0.02, 1.02),
        title="Teacher share",
    )
    ax.legend()
    return _save(fig, path)


def write_plots(
    frame: pl.DataFrame, tfidf: Tfidf | None, out_dir: str | Path, evaluation: dict[str, Any] | None = None
) -> list[Path]:
    """The QA plots into `out_dir`: those of the traces when `frame` holds at least MIN_TRACES ok ones
    (the PCA plot also needs their TF-IDF vectors), the evaluation plot when an evaluate run's summary
    is given. A night with nothing new still plots the newest evaluation."""
    require_columns(frame, ["method", "status", "n_tokens", "n_tokens_teacher"], "QA plots")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if ok_traces(frame).height >= MIN_TRACES:
        paths.append(plot_lengths(frame, out / "lengths.png"))
        paths.append(plot_teacher_share(frame, out / "teacher_share.png"))
        if tfidf is not None:
            paths.append(plot_pca(tfidf, out / "similarity_pca.png"))
    if evaluation:
        paths.append(plot_evaluation(evaluation, out / "evaluation.png"))
    return paths


def plot_evaluation(evaluation: dict[str, Any], path: Path) -> Path:
    """Held-out pass@1 of the base student and of the student fine-tuned on each method's traces,
    with 95% interval whiskers (the evaluate stage's summary)."""
    ci = evaluation.get("ci95", {})
    methods = evaluated(evaluation)
    values = [evaluation[m] for m in methods]
    errors = [e if isinstance(e := ci.get(m), float) and np.isfinite(e) else 0.0 for m in methods]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(methods, values, yerr=errors, capsize=6, color=["grey", *["tab:blue"] * (len(methods) - 1)])
    ax.set(
        ylabel="held-out pass@1", ylim=(0, 1), title=f"Fine-tuned student ({evaluation.get('seeds')} seed(s))"
    )
    return _save(fig, path)
