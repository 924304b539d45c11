"""Figures of the command line: learning curves, gradient flow, spectra (private).

matplotlib is imported inside the functions (with the Agg backend), so the
package imports without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int) -> list:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def _smooth_max(x: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Block maxima of ``x`` (steps) over windows of ``width``: (step, max)."""
    n = len(x) // width
    if n == 0:
        return np.arange(1, len(x) + 1), x
    blocks = x[: n * width].reshape(n, width)
    with np.errstate(invalid="ignore"):
        m = np.where(np.isfinite(blocks), blocks, np.inf).max(axis=1)
    return (np.arange(n) + 1) * width, m


def _gradflow_axes(ax, runs: Sequence[dict], key: str, title: str, colors: Sequence | None = None) -> None:
    for run, color in zip(runs, colors or _colors(len(runs))):
        norms = np.asarray(run[key], dtype=np.float64)
        distance = np.arange(len(norms))[::-1]  # entry t is T-1-t steps from the loss
        ok = np.isfinite(norms) & (norms > 0)
        ax.semilogy(distance[ok], norms[ok], color=color, label=run["label"], lw=1.8)
    ax.set_xlabel("distance from the loss, T - t (steps)")
    ax.set_ylabel("‖dL/dh_t‖ (batch mean)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")


def _spectrum_axes(
    ax, runs: Sequence[dict], key: str, title: str, colors: Sequence | None = None, legend: bool = True
) -> None:
    for run, color in zip(runs, colors or _colors(len(runs))):
        spec = run[key]
        logsv = np.asarray(spec["log_sv_top"], dtype=np.float64)  # (T,)
        t = np.arange(1, len(logsv) + 1)
        rate = spec["rate"]
        detail = "zero Jacobian: dead units" if rate == -np.inf else f"{rate:+.3f}/step"
        label = f"{run['label']}: {spec['verdict']} ({detail})"
        ax.plot(t, logsv / np.log(10.0), color=color, label=label, lw=1.8)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("t (steps)")
    ax.set_ylabel("log10 σ₁(dh_t/dh_0)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7, loc="lower left")


def _split_clipping(runs: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """The runs about memory and the runs about clipping: the demo trains its
    ReLU runs, with and without clipping, by SGD (Adam would hide the
    explosion), and every other model by Adam. When either group is empty,
    every run is in both."""
    clipping = [r for r in runs if r.get("optimizer") in ("sgd", "momentum")]
    memory = [r for r in runs if r.get("optimizer") not in ("sgd", "momentum")]
    if not memory or not clipping:
        return list(runs), list(runs)
    return memory, clipping


def _cosine_windows(cos: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window means and minima of the per-step cosines (non-finite ones
    skipped): ``(step, mean, min)``."""
    n = max(1, len(cos) // width)
    blocks = cos[: n * width].reshape(n, -1)
    ok = np.isfinite(blocks)
    with np.errstate(invalid="ignore"):
        mean = np.where(ok, blocks, 0.0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
        low = np.where(ok, blocks, np.inf).min(axis=1)
    mean[~ok.any(axis=1)] = np.nan
    low[~ok.any(axis=1)] = np.nan
    return (np.arange(n) + 1) * blocks.shape[1], mean, low


def demo_report(path: Path, runs: Sequence[dict], baseline: float, title: str, summary: str = "") -> None:
    """The demo's ``report.png``: eight panels, drawn to be read at about 750 px wide.

    Each run is a dict with ``label``, ``optimizer``, ``eval_step``, ``test_loss``,
    ``grad_norm`` (per step), ``clip``, ``gradflow_init``/``gradflow_trained``
    (norms per step of the sequence) and ``spectrum_init``/``spectrum_trained``
    (``log_sv_top``, ``rate``, ``verdict``). Few series per panel: the
    learning curves, gradient flow and spectra show the runs about memory
    (those trained by Adam), each in one colour throughout, named once in
    panel (a)'s legend; panels (b), (g) and (h) show the runs about clipping
    (trained by SGD: the ReLU runs): gradient norms, learning curves, and the
    cosine between the clipped and the true gradient (``cosine``, per step;
    optional). ``summary``
    (the results table, as text) is printed under the panels when given; the
    docs show the table as a table instead.
    """
    plt = _plt()
    memory, clipping = _split_clipping(runs)
    color_of = {run["label"]: color for run, color in zip(runs, _colors(len(runs)))}
    lines = summary.count("\n") + 1 if summary else 0
    extra = 0.13 * lines + (0.3 if summary else 0.0)
    base = 16.8
    with plt.rc_context({"font.size": 12, "axes.titlesize": 13, "legend.fontsize": 11}):
        fig, axes = plt.subplots(4, 2, figsize=(10, base + extra))

        ax = axes[0, 0]
        top = 30.0 * baseline  # an explosion would flatten everything else: cut it off here
        for run in memory:
            color = color_of[run["label"]]
            loss = np.asarray(run["test_loss"], dtype=np.float64)
            steps = np.asarray(run["eval_step"])
            ok = np.isfinite(loss)
            ax.semilogy(steps[ok], np.minimum(loss[ok], top), color=color, label=run["label"], lw=2)
            high = ok & (loss > top)
            if high.any():
                peak = int(np.argmax(np.where(ok, loss, -np.inf)))
                ax.annotate(f"off the chart: {loss[peak]:.0e}", (steps[peak], top),
                            color=color, xytext=(8, -14), textcoords="offset points")
            if not ok.all():
                first = steps[~ok][0]
                ax.axvline(first, color=color, ls=":", lw=1)
                ax.annotate("diverged (NaN)", (first, baseline), color=color, rotation=90,
                            va="bottom", ha="right")
        ax.set_ylim(top=top * 1.5)
        ax.axhline(baseline, color="black", ls="--", lw=1.5, label=f"predict the mean ({baseline:.3f})")
        ax.set_xlabel("training step")
        ax.set_ylabel("test MSE")
        ax.set_title("(a) learning curves")
        ax.grid(alpha=0.3, which="both")
        handles, labels = ax.get_legend_handles_labels()  # one legend for (a) and (c)-(f), under them

        ax = axes[0, 1]
        for run in clipping:
            color = color_of[run["label"]]
            gn = np.asarray(run["grad_norm"], dtype=np.float64)
            steps, m = _smooth_max(gn, max(1, len(gn) // 50))
            ok = np.isfinite(m)
            ax.semilogy(steps[ok], m[ok], color=color, label=run["label"], lw=2)
            if not ok.all():
                ax.plot(steps[~ok][:1], [np.nanmax(m[ok]) if ok.any() else 1.0], "x", color=color, ms=12, mew=2)
            if run.get("clip") is not None:
                ax.axhline(run["clip"], color=color, ls=":", lw=1.5)
        ax.set_xlabel("training step")
        ax.set_ylabel("gradient norm (max per window)")
        ax.set_title("(b) gradient norm before clipping")
        ax.grid(alpha=0.3, which="both")
        ax.legend(title="x: overflow; dotted: clip", loc="upper right")

        _gradflow_axes(axes[1, 0], memory, "gradflow_init", "(c) gradient vs distance, initial",
                       colors=[color_of[r["label"]] for r in memory])
        _gradflow_axes(axes[1, 1], memory, "gradflow_trained", "(d) gradient vs distance, trained",
                       colors=[color_of[r["label"]] for r in memory])
        _spectrum_axes(axes[2, 0], memory, "spectrum_init", "(e) Jacobian spectrum, initial",
                       colors=[color_of[r["label"]] for r in memory], legend=False)
        _spectrum_axes(axes[2, 1], memory, "spectrum_trained", "(f) Jacobian spectrum, trained",
                       colors=[color_of[r["label"]] for r in memory], legend=False)
        _clipping_axes(axes[3, 0], axes[3, 1], clipping, baseline, color_of)
        for ax in axes[1:].flat:
            ax.set_ylabel(ax.get_ylabel(), fontsize=11)
        fig.suptitle(title, fontsize=13)
        height = base + extra
        rows_of_legend = -(-len(labels) // 3)
        legend_top = (extra + 0.25 + 0.3 * rows_of_legend) / height
        fig.tight_layout(rect=(0, legend_top, 1, 0.98))
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, legend_top), ncols=3, frameon=False)
        if summary:
            fig.text(0.01, extra / height - 0.005, summary, family="monospace", fontsize=7, va="top", ha="left")
        fig.savefig(path, dpi=100)
        plt.close(fig)


def _clipping_axes(ax_loss, ax_cos, runs: Sequence[dict], baseline: float, color_of: dict) -> None:
    """Panels (g) and (h): the clipping runs' test MSE, and the cosine between
    each clipped gradient and the true one (1: the direction kept)."""
    for run in runs:
        color = color_of[run["label"]]
        loss = np.asarray(run["test_loss"], dtype=np.float64)
        steps = np.asarray(run["eval_step"])
        ok = np.isfinite(loss)
        ax_loss.semilogy(steps[ok], loss[ok], color=color, label=run["label"], lw=2)
        if not ok.all():
            ax_loss.plot(steps[~ok][:1], [baseline], "x", color=color, ms=12, mew=2)
        if "cosine" in run and (run.get("clip") is not None or run.get("clip_value") is not None):
            cos = np.asarray(run["cosine"], dtype=np.float64)
            at, mean, low = _cosine_windows(cos, max(1, len(cos) // 50))
            ax_cos.plot(at, mean, color=color, lw=2, label=run["label"])
            ax_cos.fill_between(at, low, mean, color=color, alpha=0.2, lw=0)
    ax_loss.axhline(baseline, color="black", ls="--", lw=1.5)
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("test MSE")
    ax_loss.set_title("(g) clipping: learning curves")
    ax_loss.grid(alpha=0.3, which="both")
    ax_loss.legend(title="x: NaN; dashed: the mean", fontsize=9, loc="lower left")
    ax_cos.set_ylim(-0.05, 1.05)
    ax_cos.set_xlabel("training step")
    ax_cos.set_ylabel("cos(clipped, true gradient)")
    ax_cos.set_title("(h) direction kept by clipping")
    ax_cos.grid(alpha=0.3)
    if ax_cos.lines:
        ax_cos.legend(title="line: mean; band: down to min", fontsize=9, loc="lower left")


def gradflow_report(path: Path, runs: Sequence[dict], title: str) -> None:
    """``gradflow``'s figure: gradient vs distance and the Jacobian spectrum."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    _gradflow_axes(axes[0], runs, "gradflow", "gradient norm vs distance from the loss")
    axes[0].legend(fontsize=8)
    _spectrum_axes(axes[1], runs, "spectrum", "largest singular value of dh_t/dh_0")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def training_report(path: Path, history: dict[str, Any], baseline: float, title: str, metric_name: str) -> None:
    """``train``'s figure: loss (with the baseline) and gradient norm per step."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = np.asarray(history["step"])
    loss = np.asarray(history["loss"], dtype=np.float64)
    ok = np.isfinite(loss)
    axes[0].semilogy(steps[ok], loss[ok], lw=0.8, label="training loss")
    if history.get("eval_step"):
        axes[0].semilogy(history["eval_step"], history["eval_loss"], "o-", label="test loss")
    axes[0].axhline(baseline, color="black", ls="--", lw=1, label=f"baseline {baseline:.3f}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    axes[0].grid(alpha=0.3, which="both")
    gn = np.asarray(history["grad_norm"], dtype=np.float64)
    ok = np.isfinite(gn)
    axes[1].semilogy(steps[ok], gn[ok], lw=0.8)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("gradient norm before clipping")
    axes[1].grid(alpha=0.3, which="both")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
