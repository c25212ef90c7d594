"""Plot accuracy and thinking tokens against the budget, per mode, from eval_guidance.py's JSON.

    python reports/guidance/plot.py reports/guidance/results.json reports/guidance/accuracy_vs_budget.png [PREFIX,...]

Optional third argument: plot only the runs whose key starts with one of the comma-separated prefixes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODES = ("hard", "soft", "soft+hard")
STYLE = {"hard": ("tab:red", "s"), "soft": ("tab:blue", "o"), "soft+hard": ("tab:green", "^")}


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: plot.py RESULTS.json OUT.png [PREFIX,...]", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(Path(argv[0]).read_text())
    if len(argv) == 3:
        prefixes = tuple(argv[2].split(","))
        results = {k: v for k, v in results.items() if k.startswith(prefixes)}
        if not results:
            print(f"no run key starts with {argv[2]!r}", file=sys.stderr)
            return 2
    fig, axes = plt.subplots(2, len(results), figsize=(5 * len(results), 7), squeeze=False)
    for col, (key, res) in enumerate(results.items()):
        acc_ax, tok_ax = axes[0][col], axes[1][col]
        for mode in MODES:
            cells = sorted((c for c in res["cells"] if c["mode"] == mode), key=lambda c: c["budget"])
            color, marker = STYLE[mode]
            xs = [c["budget"] for c in cells]
            acc_ax.plot(xs, [c["accuracy"] for c in cells], marker=marker, color=color, label=mode)
            tok_ax.plot(xs, [c["mean_thinking"] for c in cells], marker=marker, color=color, label=f"{mode} mean")
            tok_ax.plot(xs, [c["p95_thinking"] for c in cells], marker=marker, color=color, ls=":", alpha=0.7,
                        label=f"{mode} p95")
        acc_ax.axhline(res["unlimited"]["accuracy"], color="gray", ls="--", label="unlimited")
        acc_ax.set_title(f"{key} (n={res['n']}, median thinking {res['median_thinking']:g})")
        acc_ax.set_ylabel("accuracy")
        acc_ax.set_xlabel("thinking budget (tokens)")
        acc_ax.legend(fontsize=8)
        budgets = sorted({c["budget"] for c in res["cells"]})
        tok_ax.plot(budgets, budgets, color="black", lw=0.8, label="budget")
        tok_ax.set_ylabel("thinking tokens")
        tok_ax.set_xlabel("thinking budget (tokens)")
        tok_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(argv[1], dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
