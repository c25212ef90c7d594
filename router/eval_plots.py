"""Plots of ``evals/router_eval.py`` results (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot"]


def _finish(plt: Any, fig: Any, ax: Any, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    """Label, add the legend, save at 110 dpi and close one figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(results: dict[str, Any], out: Path, strong: str, weak: str) -> list[str]:
    """score_cost.png, pair_curves.png, shift.png under ``out``; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strat = results["replay"]["strategies"]
    bs = strat["best_single"]
    fig, ax = plt.subplots(figsize=(7, 5))
    for fam, mk in (("utility", "o-"), ("tiers", "s-"), ("linucb", "^-")):
        pts = sorted((r["cost"], r["score"]) for r in strat.values() if r["family"] == fam)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], mk, ms=4, label=fam)
    fixed = [(r["cost"], r["score"], r["option"]) for r in strat.values() if r["family"] == "fixed"]
    ax.scatter([f[0] for f in fixed], [f[1] for f in fixed], c="grey", marker="x", label="single models")
    ax.scatter([strat["oracle"]["cost"]], [strat["oracle"]["score"]], c="k", marker="*", s=90, label="oracle")
    ax.scatter([strat["random"]["cost"]], [strat["random"]["score"]], c="r", marker="D", label="random")
    ax.axhline(bs["score"], ls=":", c="grey")
    ax.axvline(0.4 * bs["cost"], ls="--", c="grey", lw=0.8)
    _finish(plt, fig, ax, out / "score_cost.png", "mean cost per query (input + output $/M of the chosen model)",
            "mean score (dcrouter_test, n=500)", "score vs cost; dotted: best single, dashed: 40% of its cost")

    pair = results["pair"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (x, y) in pair["curves"].items():
        ax.plot(x, y, "-" if len(x) > 30 else "^-", label=f"{name} (APGR {pair['routers'][name]['apgr']:.2f})")
    ax.plot([0, 1], [pair["weak_score"], pair["strong_score"]], "r--", label="random (APGR 0.50)")
    _finish(plt, fig, ax, out / "pair_curves.png", f"share of calls to {strong}", "mean score", f"pair {strong} / {weak}")

    sh = results["shift"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for v in sh["score"]:
        m, sd = np.array(sh["score"][v]), np.array(sh["score_sd"][v])
        ax.plot(sh["checkpoints"], m, "o-", label=f"linucb {v.replace('_', ' ')} (alpha {sh['alpha'][v]:g})")
        ax.fill_between(sh["checkpoints"], m - sd, m + sd, alpha=0.2)
    off = sh["offline_full"]["score"]
    ax.axhline(off, c="k", ls="-", lw=0.8, label="offline router, all groups")
    ax.axhline(0.9 * off, c="k", ls=":", lw=0.8, label="90% of it")
    ax.axhline(sh["best_single_on_half"]["score"], c="grey", ls="--", lw=0.8, label="best single model")
    _finish(plt, fig, ax, out / "shift.png", "feedback events (online half, train rows)",
            "greedy score on the online half's test rows",
            f"task shift: prior from {'+'.join(sh['groups']['prior_half'])}")
    return ["score_cost.png", "pair_curves.png", "shift.png"]
