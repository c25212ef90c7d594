"""Small synthetic outcome data with a known structure, for tests, demos and smoke runs.

Prompts mix a topic (arithmetic, proof, code, trivia) and a difficulty word
(simple / tricky / olympiad) with filler; each option has a skill, and
P(correct) = sigmoid(skill - 1.6 * difficulty + topic bonus). Thinking length
is log-normal and grows with difficulty, capped by the option's budget; answer
length depends on the topic. Nothing here is real data.
"""

from __future__ import annotations

import math
import random

from predictors.records import OutcomeRecord, OutcomeRow, parse_option, records_to_table

__all__ = ["SYNTHETIC_COSTS", "make_synthetic_records", "make_synthetic_table"]

_TOPICS = {
    "arithmetic": ["compute", "sum", "product", "digits", "remainder"],
    "proof": ["prove", "lemma", "theorem", "integer", "inequality"],
    "code": ["function", "python", "return", "list", "loop"],
    "trivia": ["capital", "river", "author", "year", "painting"],
}
_DIFFICULTY = {"simple": 0, "tricky": 1, "olympiad": 2}
_SKILL = {"small@256": -0.2, "small": 0.6, "large@1024": 1.6, "large": 2.4}
_BONUS = {"arithmetic": 0.5, "proof": -0.7, "code": 0.0, "trivia": 0.8}
#: Cost per query of each synthetic option.
SYNTHETIC_COSTS = {"small@256": 0.05, "small": 0.1, "large@1024": 0.5, "large": 1.0}


def make_synthetic_records(n_prompts: int = 200, samples: int = 1, seed: int = 0) -> list[OutcomeRecord]:
    """``n_prompts`` prompts x 4 options x ``samples`` outcome records (deterministic for a seed)."""
    rng = random.Random(seed)
    out: list[OutcomeRecord] = []
    for i in range(n_prompts):
        topic = rng.choice(sorted(_TOPICS))
        level = rng.choice(sorted(_DIFFICULTY))
        d = _DIFFICULTY[level]
        words = rng.sample(_TOPICS[topic], 3) + [level] + [rng.choice(["the", "a", "of", "and", "then"]) for _ in range(4 + 4 * d)]
        rng.shuffle(words)
        prompt = f"Q{i}: " + " ".join(words) + f" {rng.randint(1, 999)} ?"
        for option, skill in _SKILL.items():
            _, budget = parse_option(option)
            p = 1.0 / (1.0 + math.exp(-(skill - 1.6 * d + _BONUS[topic])))
            for _ in range(samples):
                think = int(math.exp(rng.gauss(4.5 + 0.8 * d, 0.35)))
                if budget is not None:
                    think = min(think, budget)
                answer = int(math.exp(rng.gauss(3.0 + (1.0 if topic == "code" else 0.0), 0.3)))
                out.append(
                    OutcomeRecord(
                        model=option.split("@")[0], thinking_budget=budget, prompt=prompt, dataset="synthetic",
                        score=1.0 if rng.random() < p else 0.0, thinking_tokens=think, answer_tokens=answer,
                        cost_usd=SYNTHETIC_COSTS[option], finish_reason="stop",
                    )
                )
    return out


def make_synthetic_table(n_prompts: int = 200, seed: int = 0) -> list[OutcomeRow]:
    """The wide-table form of :func:`make_synthetic_records` (one sample per option)."""
    return records_to_table(make_synthetic_records(n_prompts, 1, seed))
