"""Shipped testbed models: files, size limits, load in transformers, generate with and without a budget."""

import json

import pytest

from testbed import models, tasks

SHIPPED = models.list_models()
needs_models = pytest.mark.skipif(not SHIPPED, reason="no models under testbed/models")


def test_model_path_errors_name_the_choices():
    with pytest.raises(ValueError, match="available"):
        models.model_path("no-such-model")


@needs_models
@pytest.mark.parametrize("name", SHIPPED)
def test_files_and_limits(name):
    d = models.model_path(name)
    for f in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
              "tokenizer_config.json", "recipe.json"):
        assert (d / f).is_file(), f
    assert (d / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2ForCausalLM"]
    assert cfg["hidden_size"] // cfg["num_attention_heads"] in (32, 64)
    recipe = json.loads((d / "recipe.json").read_text())
    assert recipe["command"].startswith("python -m testbed.train") and recipe["train_minutes"] <= 30
    args = models.vllm_args(name, port=8001)
    assert args[args.index("--reasoning-parser") + 1] == "deepseek_r1"
    assert args[args.index("--served-model-name") + 1] == name and "8001" in args


@needs_models
def test_sizes_differ():
    params = {n: json.loads((models.model_path(n) / "recipe.json").read_text())["parameters"] for n in SHIPPED}
    assert max(params.values()) >= 2.5 * min(params.values())


@needs_models
@pytest.mark.parametrize("name", SHIPPED)
def test_loads_in_transformers_and_generates(name):
    pytest.importorskip("transformers")
    from testbed.hf_backend import HFGenerator

    gen = HFGenerator(models.model_path(name))
    problems = [tasks.Problem(2, (3, 8, 5)), tasks.Problem(1, (4, 4))]
    free = gen.generate([p.text for p in problems], None, max_new_tokens=200)
    for p, g in zip(problems, free, strict=True):
        assert g.reasoning.startswith("a")  # it thinks term by term
        assert g.reasoning.count("\n") == len(p.terms)
        assert tasks.parse_answer(g.content) is not None, (p.text, g)
    zero = gen.generate([problems[0].text], 0, max_new_tokens=20)[0]
    assert zero.reasoning == "" and zero.forced and tasks.parse_answer(zero.content) is not None
    # vLLM semantics: the prompt's "\n" after <think> is the first counted token.
    four = gen.generate([tasks.Problem(9, (1,) * 10).text], 4, max_new_tokens=40)[0]
    assert four.thinking_tokens == 3 and four.forced


@needs_models
@pytest.mark.parametrize("name", SHIPPED)
def test_stats_match_vllm_args(name):
    stats = models.thinking_stats(name)
    if stats is None:
        pytest.skip(f"{name}: no thinking_stats.json (run testbed.evaluate --write-stats)")
    assert models.median_thinking_tokens(name) == int(stats["median_thinking_tokens"]) > 0
    assert set(stats["accuracy"]) == {"easy", "medium", "hard"}


@needs_models
@pytest.mark.parametrize("name", SHIPPED)
def test_solves_easy_problems(name):
    pytest.importorskip("transformers")
    from testbed.hf_backend import HFGenerator

    gen = HFGenerator(models.model_path(name))
    problems = tasks.sample_problems(12, "test", seed=5, difficulties=[1, 2, 3])
    outs = gen.generate([p.text for p in problems], None, max_new_tokens=120)
    acc = sum(tasks.grade(p, g.content) for p, g in zip(problems, outs, strict=True)) / len(problems)
    assert acc >= 0.75, acc
