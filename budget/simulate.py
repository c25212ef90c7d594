"""Replay an outcome table through online allocation policies and score them.

An outcome table is a list of records ``{question, scores: {option: score},
costs: {option: cost}}`` (the predictors' format). Requests stream in a seeded
order; each policy picks one option per request under a total budget; the
result is compared with the offline MCKP optimum on the same stream
(``regret``), at the same spend and at the full budget.

For the LLMRouter table (``llmrouter/dcrouter_{train,test}.json``) the cost of
a query on a model is ``input_price + output_price`` ($ per million tokens, from
``default_llm.json``), as the shared data README does.

Run: ``python -m budget.simulate --budget-per-request 0.4 [--json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from budget.mckp import solve_exact, solve_greedy
from budget.online import DualPacer, PacingState, ThresholdPolicy

__all__ = [
    "OutcomeTable",
    "SimResult",
    "table_from_records",
    "load_llmrouter",
    "shared_data_dir",
    "offline_optimum",
    "simulate_policy",
    "run_policies",
]


@dataclass(frozen=True)
class OutcomeTable:
    """Dense outcome table: ``values[t, j]`` and ``costs[t, j]`` of option ``options[j]``."""

    options: tuple[str, ...]
    questions: tuple[str, ...]
    values: np.ndarray
    costs: np.ndarray

    def subset(self, idx: np.ndarray) -> OutcomeTable:
        """Rows ``idx`` in that order."""
        return OutcomeTable(self.options, tuple(self.questions[i] for i in idx), self.values[idx], self.costs[idx])


@dataclass(frozen=True)
class SimResult:
    """One policy's run. ``regret`` = 1 - value / opt_at_spend (offline optimum at the same spend)."""

    policy: str
    requests: int
    budget: float
    value: float
    spend: float
    utilisation: float
    overshoot: float  # max(0, spend - budget) / budget
    opt_at_budget: float
    opt_at_spend: float
    ratio_at_budget: float
    regret: float


def table_from_records(records: Sequence[dict], options: Sequence[str] | None = None) -> OutcomeTable:
    """Build a table from ``{question, scores, costs}`` records; every record needs every option."""
    if not records:
        raise ValueError("records: empty outcome table")
    opts = tuple(options) if options is not None else tuple(sorted(records[0]["scores"]))
    vals = np.empty((len(records), len(opts)))
    costs = np.empty_like(vals)
    for i, r in enumerate(records):
        try:
            vals[i] = [float(r["scores"][o]) for o in opts]
            costs[i] = [float(r["costs"][o]) for o in opts]
        except KeyError as exc:
            raise ValueError(f"records[{i}]: missing {exc.args[0]!r} in scores or costs") from exc
    return OutcomeTable(opts, tuple(str(r.get("question", "")) for r in records), vals, costs)


def shared_data_dir() -> Path:
    """``$THINKGATE_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("THINKGATE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def load_llmrouter(split: str = "test", data_dir: Path | None = None) -> OutcomeTable:
    """Load ``dcrouter_{split}.json`` with per-query cost = input_price + output_price."""
    if split not in ("train", "test"):
        raise ValueError(f"split: must be 'train' or 'test', got {split!r}")
    base = (data_dir or shared_data_dir()) / "llmrouter"
    prices = json.loads((base / "default_llm.json").read_text())
    rows = json.loads((base / f"dcrouter_{split}.json").read_text())
    records = []
    for r in rows:
        cost = {m: float(prices[m]["input_price"]) + float(prices[m]["output_price"]) for m in r["scores"]}
        records.append({"question": r["question"], "scores": r["scores"], "costs": cost})
    return table_from_records(records)


def _dp_unit(costs: np.ndarray, capacity: float) -> float:
    """Largest decimal unit that represents every cost exactly (else capacity / 20000)."""
    finite = costs[np.isfinite(costs)]
    for d in range(0, 7):
        unit = 10.0**-d
        if capacity / unit > 5e6:
            break
        if np.allclose(finite / unit, np.round(finite / unit), atol=1e-6):
            return unit
    return capacity / 20_000


def offline_optimum(table: OutcomeTable, capacity: float) -> float:
    """Exact offline MCKP value of the stream at ``capacity`` (exact when costs are decimal)."""
    return solve_exact(table.values, table.costs, capacity, unit=_dp_unit(table.costs, capacity)).value


def simulate_policy(table: OutcomeTable, policy: DualPacer | ThresholdPolicy, *, incremental: bool = False) -> tuple[float, float]:
    """Stream the table through ``policy``; returns (value, spend).

    With ``incremental`` the policy sees each option as an upgrade over the
    request's cheapest option (value and cost differences), which is how a
    threshold policy for "take one or nothing" items handles classes that must
    be served; the cheapest option's own cost is always paid.
    """
    state: PacingState = policy.initial()
    value = spend = 0.0
    for t in range(table.values.shape[0]):
        v = table.values[t].tolist()
        c = table.costs[t].tolist()
        if incremental:
            j0 = min(range(len(c)), key=lambda j: (c[j], -v[j]))
            dv = [x - v[j0] for x in v]
            dc = [x - c[j0] for x in c]
            d = policy.decide(state, dv, dc)
            j = j0 if d.index is None else d.index
            state = policy.update(state, dc[j])
        else:
            d = policy.decide(state, v, c)
            j = d.index if d.index is not None else int(np.argmin(c))
            state = policy.update(state, c[j])
        value += v[j]
        spend += c[j]
    return value, spend


def _result(name: str, table: OutcomeTable, budget: float, value: float, spend: float, opt_b: float) -> SimResult:
    opt_s = offline_optimum(table, min(spend, budget)) if spend < budget else opt_b
    return SimResult(
        policy=name,
        requests=table.values.shape[0],
        budget=budget,
        value=value,
        spend=spend,
        utilisation=spend / budget,
        overshoot=max(0.0, spend - budget) / budget,
        opt_at_budget=opt_b,
        opt_at_spend=opt_s,
        ratio_at_budget=value / opt_b if opt_b else math.nan,
        regret=1.0 - value / opt_s if opt_s else math.nan,
    )


def _density_bounds(table: OutcomeTable) -> tuple[float, float]:
    """Min and max positive value-per-cost of upgrades over each row's cheapest option."""
    j0 = np.argmin(table.costs, axis=1)
    rows = np.arange(table.values.shape[0])
    dv = table.values - table.values[rows, j0][:, None]
    dc = table.costs - table.costs[rows, j0][:, None]
    ok = (dv > 0) & (dc > 0)
    dens = dv[ok] / dc[ok]
    if dens.size == 0:
        return 1.0, 1.0
    return float(dens.min()), float(dens.max())


def run_policies(
    table: OutcomeTable,
    budget_per_request: float,
    *,
    train: OutcomeTable | None = None,
    seed: int = 0,
    eta_rel: float = 0.5,
) -> list[SimResult]:
    """Run every policy on one seeded shuffle of ``table``; ``train`` (a past sample) seeds lam0 and Psi bounds.

    Policies: ``paced`` (dual pacing, lam0 = the offline LP dual price on
    ``train`` at the same budget per request), ``paced_cold`` (lam0 = 0),
    ``static`` (fixed lam0, no pacing), ``zcl`` and ``ect0.3`` (threshold
    pricing of upgrades over the cheapest option), ``greedy`` (lam = 0 until
    the money runs out). ``eta_rel``: a spend error of one planned step moves
    lam by ``eta_rel * lam_scale``, lam_scale = mean value / mean cost.
    """
    rng = np.random.default_rng(seed)
    stream = table.subset(rng.permutation(table.values.shape[0]))
    n = stream.values.shape[0]
    budget = budget_per_request * n
    opt_b = offline_optimum(stream, budget)
    past = train if train is not None else stream
    lam0 = solve_greedy(past.values, past.costs, budget_per_request * past.values.shape[0]).lam
    floor = float(stream.costs.min(axis=1).mean())
    lam_scale = float(np.abs(past.values).mean() / max(past.costs.mean(), 1e-12))
    plan = budget / n
    eta = eta_rel * lam_scale / plan
    low, high = _density_bounds(past)
    net = budget - float(stream.costs.min(axis=1).sum())
    out: list[SimResult] = []
    policies: list[tuple[str, DualPacer | ThresholdPolicy, bool]] = [
        ("paced", DualPacer(budget, n, eta, lam0=lam0, floor_cost=floor), False),
        ("paced_cold", DualPacer(budget, n, eta, lam0=0.0, floor_cost=floor), False),
        ("static", DualPacer(budget, n, 0.0, lam0=lam0, floor_cost=floor), False),
        ("greedy", DualPacer(budget, n, 0.0, lam0=0.0, floor_cost=floor), False),
    ]
    if net > 0:
        policies.append(("zcl", ThresholdPolicy(net, low, high), True))
        policies.append(("ect0.3", ThresholdPolicy(net, low, high, alpha=0.3), True))
    for name, pol, inc in policies:
        value, spend = simulate_policy(stream, pol, incremental=inc)
        out.append(_result(name, stream, budget, value, spend, opt_b))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: simulate the policies on the LLMRouter outcome table and print a table (or JSON)."""
    ap = argparse.ArgumentParser(prog="python -m budget.simulate", description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="test", choices=["train", "test"])
    ap.add_argument("--budget-per-request", type=float, default=0.4, help="$ per M tokens per request on average")
    ap.add_argument("--seeds", type=int, default=5, help="number of shuffles to average over")
    ap.add_argument("--eta-rel", type=float, default=0.5)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args(argv)
    if args.budget_per_request <= 0:
        ap.error("--budget-per-request: must be > 0")
    data_dir = args.data_dir or shared_data_dir()
    if not (data_dir / "llmrouter").is_dir():
        print(f"no llmrouter data under {data_dir}", file=sys.stderr)
        return 2
    table = load_llmrouter(args.split, data_dir)
    train = load_llmrouter("train", data_dir) if args.split == "test" else None
    runs = [r for s in range(args.seeds) for r in run_policies(table, args.budget_per_request, train=train, seed=s, eta_rel=args.eta_rel)]
    names = list(dict.fromkeys(r.policy for r in runs))
    summary = {}
    for name in names:
        rs = [r for r in runs if r.policy == name]
        summary[name] = {
            "value_vs_opt_at_spend": float(np.mean([1 - r.regret for r in rs])),
            "value_vs_opt_at_budget": float(np.mean([r.ratio_at_budget for r in rs])),
            "utilisation": float(np.mean([r.utilisation for r in rs])),
            "max_overshoot": float(max(r.overshoot for r in rs)),
        }
    print(f"{'policy':<12}{'value/OPT(spend)':>18}{'value/OPT(B)':>14}{'utilisation':>13}{'max overshoot':>15}")
    for name, s in summary.items():
        print(f"{name:<12}{s['value_vs_opt_at_spend']:>18.4f}{s['value_vs_opt_at_budget']:>14.4f}"
              f"{s['utilisation']:>13.4f}{s['max_overshoot']:>15.4%}")
    if args.json:
        print(json.dumps({"split": args.split, "budget_per_request": args.budget_per_request, "seeds": args.seeds,
                          "policies": summary, "runs": [asdict(r) for r in runs]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
