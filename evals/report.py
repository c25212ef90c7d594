"""Reports: markdown + PNG plots (matplotlib, Agg) from a replay result dict (:func:`evals.replay.run_replay`).

Plots: score vs cost per strategy family (frontier; each sweep is a line),
score vs tokens when the table has token counts, per-difficulty score of the
main strategies, and the predictor's reliability diagram when one was used.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["write_report"]

# Families drawn as lines (sweeps), in legend order; others are single markers.
_SWEEPS = ("predictor_knapsack", "predictor_paced", "predictor_argmax", "oracle_knapsack")
_MAIN = ("best_single", "oracle", "random")


def _fmt(x: Any, nd: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float):
        # Dollar costs per query can be 1e-6; keep significant digits there.
        return f"{x:.{nd}f}" if x == 0 or abs(x) >= 0.01 else f"{x:.3g}"
    return str(x)


def _plot_frontier(report: dict[str, Any], key: str, path: Path, xlabel: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = report["strategies"]
    pts = [(n, r) for n, r in strategies.items() if r.get(key) is not None]
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 5))
    fixed = [(n, r) for n, r in pts if r["family"] == "fixed"]
    if fixed:
        ax.scatter([r[key] for _, r in fixed], [r["score"] for _, r in fixed], c="0.55", marker="o", label="fixed options")
        for n, r in fixed:
            ax.annotate(n.split(":", 1)[1], (r[key], r["score"]), fontsize=6, color="0.4", xytext=(3, 2),
                        textcoords="offset points")
    for fam in _SWEEPS:
        line = sorted(((r[key], r["score"], n) for n, r in pts if r["family"] == fam))
        if line:
            ax.plot([p[0] for p in line], [p[1] for p in line], marker="s", ms=4, label=fam)
    markers = {"best_single": "*", "oracle": "D", "random": "x"}
    for n, r in pts:
        if r["family"] in _MAIN:
            ax.scatter([r[key]], [r["score"]], marker=markers[r["family"]], s=90, label=n, zorder=3)
    other = [(n, r) for n, r in pts if r["family"] not in (*_SWEEPS, *_MAIN, "fixed")]
    for n, r in other:
        ax.scatter([r[key]], [r["score"]], marker="^", s=50, label=n)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _plot_difficulty(report: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    chosen = [(n, r) for n, r in report["strategies"].items()
              if r.get("by_difficulty") and (r["family"] in _MAIN or n.endswith("@50%") or n.endswith("@100%"))]
    if not chosen:
        return False
    levels = sorted({d for _, r in chosen for d in r["by_difficulty"]})
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(levels) + 3), 4.5))
    width = 0.8 / len(chosen)
    x = np.arange(len(levels))
    for k, (n, r) in enumerate(chosen):
        ax.bar(x + k * width, [r["by_difficulty"].get(lv, 0.0) for lv in levels], width, label=n)
    ax.set_xticks(x + 0.4 - width / 2, levels)
    ax.set_ylabel("mean score")
    ax.set_xlabel("difficulty")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _plot_calibration(cal: dict[str, Any], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="0.6", label="perfect calibration")
    ax.plot(cal["mean_p"], cal["mean_y"], marker="o", label=f"{name} (ECE {cal['ece']:.3f})")
    for p, y, n in zip(cal["mean_p"], cal["mean_y"], cal["count"], strict=True):
        ax.annotate(str(n), (p, y), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set_xlabel("predicted P(correct)")
    ax.set_ylabel("observed mean score")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: str | Path, title: str = "Replay report",
                 command: str | None = None, predictor_name: str = "predictor") -> Path:
    """Write ``report.md`` and its PNGs into ``out_dir``; returns the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unit = report.get("cost_unit", "usd")
    lines = [f"# {title}", ""]
    if command:
        lines += ["Reproduce with:", "", "```", command, "```", ""]
    lines += [f"{report['n']} queries, {len(report['options'])} options; cost unit: `{unit}` (mean per query).", ""]
    lines += ["| strategy | score | cost | tokens | thinking | regret | budget used |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for n, r in report["strategies"].items():
        lines.append(f"| {n} | {_fmt(r['score'])} | {_fmt(r['cost'])} | {_fmt(r.get('tokens'), 1)} | "
                     f"{_fmt(r.get('thinking_tokens'), 1)} | {_fmt(r.get('regret'))} | {_fmt(r.get('budget_utilisation'), 3)} |")
    lines.append("")
    if report.get("aiq"):
        lines += ["## AIQ (RouterBench; area under the non-decreasing convex hull of score vs cost, normalised)", "",
                  "| family | AIQ |", "|---|---:|"]
        lines += [f"| {f} | {_fmt(v)} |" for f, v in report["aiq"].items()]
        lines.append("")
    pair = report.get("pair")
    if pair:
        lines += ["## Strong/weak pair (RouteLLM APGR, CPT)", "",
                  f"strong = `{pair['strong']}` ({_fmt(pair['strong_score'])}), weak = `{pair['weak']}` "
                  f"({_fmt(pair['weak_score'])}). CPT(x) = share of strong calls to recover x of the gap.", ""]
        if pair.get("note"):
            lines += [pair["note"], ""]
        lines += ["| router | APGR | CPT(50%) | CPT(80%) |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {_fmt(v['apgr'])} | {_fmt(v['cpt50'])} | {_fmt(v['cpt80'])} |"
                  for k, v in pair["routers"].items()]
        lines.append("")
    if report.get("tep"):
        lines += ["## TEP (EllieSQL) and E3 = A^2/T (Plan-and-Budget)", "", "| strategy | TEP vs weak | E3 |",
                  "|---|---:|---:|"]
        lines += [f"| {n} | {_fmt(v)} | {_fmt(report['strategies'][n].get('e3'), 6)} |" for n, v in report["tep"].items()]
        lines.append("")
    figures = []
    if _plot_frontier(report, "cost", out / "frontier_cost.png", f"mean cost per query ({unit})"):
        figures.append(("Score vs cost", "frontier_cost.png"))
    if _plot_frontier(report, "tokens", out / "frontier_tokens.png", "mean tokens per query"):
        figures.append(("Score vs tokens", "frontier_tokens.png"))
    if _plot_difficulty(report, out / "difficulty.png"):
        figures.append(("Score by difficulty", "difficulty.png"))
    if report.get("calibration"):
        _plot_calibration(report["calibration"], out / "calibration.png", predictor_name)
        figures.append((f"Calibration of {predictor_name} (all query x option cells)", "calibration.png"))
    for caption, fname in figures:
        lines += [f"## {caption}", "", f"![{caption}]({fname})", ""]
    md = out / "report.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    return md
