"""Training recipe: example mix, a few real optimizer steps, saved artefacts, exact schedule replay."""

import json
import random

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from testbed import tasks, train  # noqa: E402


def test_example_mix_contains_all_modes():
    rng = random.Random(0)
    mix = train.MixConfig()
    p = tasks.Problem(6, (1, 2, 3, 4, 5, 6, 7))
    completions = [train.make_example(p, rng, mix)[1] for _ in range(400)]
    prompts = {train.make_example(p, rng, mix)[0] for _ in range(5)}
    assert prompts == {"<|im_start|>user\nsum a1 b2 c3 d4 e5 f6 g7<|im_end|>\n<|im_start|>assistant\n<think>\n"}
    assert all(c.endswith("</think>\n28<|im_end|>") for c in completions)
    empty = sum(c.startswith("</think>") for c in completions)
    natural = sum(c.endswith("\n</think>\n28<|im_end|>") for c in completions)
    styles = {s: sum(tasks.render_thinking(p, s) in c for c in completions) for s in tasks.STYLES}
    assert 15 < empty < 80  # ~8% empty + cuts at 0
    assert 270 < natural < 355  # ~78% full traces (a few cuts land on a line end)
    assert all(n > 20 for n in styles.values())


def test_mix_validation():
    with pytest.raises(ValueError, match="style_weights"):
        train.MixConfig(style_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="p_empty"):
        train.MixConfig(p_empty=0.8, p_cut=0.5)


def test_build_model_shapes():
    m = train.build_model("small", vocab_size=203, pad_id=0, eos_id=3, seed=0)
    cfg = m.config
    assert type(m).__name__ == "Qwen2ForCausalLM"
    assert cfg.hidden_size // cfg.num_attention_heads in (32, 64)
    assert cfg.tie_word_embeddings and cfg.max_position_embeddings >= 1024
    with pytest.raises(ValueError, match="size"):
        train.build_model("huge", 203, 0, 3, 0)


@pytest.mark.slow
def test_few_steps_save_and_replay(tmp_path):
    rec = train.train("small", tmp_path / "a", steps=3, seed=1, tokens_per_batch=1024, warmup=1, threads=1)
    assert rec["steps_done"] == 3 and len(rec["progress_trace"]) == 3
    for f in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
              "tokenizer_config.json", "recipe.json"):
        assert (tmp_path / "a" / f).is_file(), f
    saved = json.loads((tmp_path / "a" / "recipe.json").read_text())
    again = train.train("small", tmp_path / "b", replay=saved["progress_trace"], seed=1, tokens_per_batch=1024,
                        warmup=1, threads=1)
    assert again["steps_done"] == 3
    # Same seed and schedule: same data and updates, so the same loss curve.
    assert again["log"] == [dict(r, minutes=again["log"][i]["minutes"]) for i, r in enumerate(saved["log"])]
    with pytest.raises(ValueError, match="exactly one"):
        train.train("small", tmp_path / "c", steps=3, minutes=1.0)


def test_curriculum_caps_the_difficulty_then_releases_it(tmp_path):
    rng = random.Random(0)
    assert {train._draw_train_problem(rng, 3).difficulty for _ in range(200)} == {1, 2, 3}
    assert max(train._draw_train_problem(rng).difficulty for _ in range(400)) == tasks.DIFFICULTIES[-1]
    rec = train.train("small", tmp_path / "m", steps=2, seed=0, tokens_per_batch=1024, warmup=1, threads=1,
                      curriculum=0.5)
    assert rec["curriculum"] == 0.5 and rec["steps_done"] == 2
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="--curriculum"):
            train.train("small", tmp_path / "x", steps=1, curriculum=bad)
