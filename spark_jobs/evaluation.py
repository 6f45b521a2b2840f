"""Probability-based metrics and the PNG plots logged with each training run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    confusion: np.ndarray  # [[tn, fp], [fn, tp]]


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float, prefix: str) -> Evaluation:
    """ROC AUC and PR AUC (average precision) from scores; precision/recall/F1 at ``threshold``."""
    from sklearn.metrics import (
        average_precision_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    labels = labels.astype(int)
    predicted = (scores >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    metrics = {
        f"{prefix}_roc_auc": float(roc_auc_score(labels, scores)) if both_classes else float("nan"),
        f"{prefix}_pr_auc": float(average_precision_score(labels, scores)) if both_classes else float("nan"),
        f"{prefix}_precision": float(precision_score(labels, predicted, zero_division=0)),
        f"{prefix}_recall": float(recall_score(labels, predicted, zero_division=0)),
        f"{prefix}_f1": float(f1_score(labels, predicted, zero_division=0)),
        f"{prefix}_rows": float(len(labels)),
        f"{prefix}_positives": float(labels.sum()),
    }
    confusion = confusion_matrix(labels, predicted, labels=[0, 1])
    tn, fp, fn, tp = (float(v) for v in confusion.ravel())
    metrics.update({f"{prefix}_tn": tn, f"{prefix}_fp": fp, f"{prefix}_fn": fn, f"{prefix}_tp": tp})
    return Evaluation(metrics=metrics, confusion=confusion)


def write_plots(
    labels: np.ndarray,
    scores: np.ndarray,
    evaluation: Evaluation,
    importances: dict[str, float],
    threshold: float,
    out_dir: Path,
) -> list[Path]:
    """ROC curve, PR curve, confusion matrix and feature importances as PNG files in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    def save(fig, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)

    m = evaluation.metrics
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"ROC AUC = {m['test_roc_auc']:.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve (test)")
    ax.legend(loc="lower right")
    save(fig, "roc_curve.png")

    precision, recall, _ = precision_recall_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.step(recall, precision, where="post", label=f"PR AUC (AP) = {m['test_pr_auc']:.4f}")
    ax.axhline(labels.mean(), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve (test)")
    ax.legend(loc="upper right")
    save(fig, "pr_curve.png")

    fig, ax = plt.subplots(figsize=(4.5, 4))
    cm = evaluation.confusion
    ax.imshow(cm, cmap="Blues")
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, f"{value:,}", ha="center", va="center", color="black")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["legit", "fraud"],
        yticklabels=["legit", "fraud"],
        xlabel="Predicted",
        ylabel="Actual",
        title=f"Confusion matrix (threshold {threshold:g})",
    )
    save(fig, "confusion_matrix.png")

    ordered = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(ordered) + 1.5))
    ax.barh([k for k, _ in ordered], [v for _, v in ordered])
    ax.set(xlabel="Importance", title="Decision tree feature importances")
    save(fig, "feature_importances.png")
    return paths
