"""Tokenizer and chat template: single-token thinking markers, exact round trip, R1-style prompt."""

import json

import pytest

pytest.importorskip("transformers")

from testbed import tasks  # noqa: E402
from testbed.tokenizer import CHAT_TEMPLATE, build_tokenizer, save_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_markers_are_single_tokens(tok):
    for marker in ("<think>", "</think>", "<|im_start|>", "<|im_end|>"):
        ids = tok(marker, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, marker
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token_id == 0
    assert tok.convert_tokens_to_ids("<think>") != tok.convert_tokens_to_ids("</think>")


def test_round_trip_is_exact_and_digits_are_single_tokens(tok):
    p = tasks.Problem(5, (9, 1, 7, 3, 3, 8))
    text = tasks.render_thinking(p, "careful") + "</think>\n31<|im_end|>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(tok("1234", add_special_tokens=False)["input_ids"]) == ["1", "2", "3", "4"]
    # Each label+digit pair of a problem is one token; the digits after it are not merged.
    assert tok.convert_ids_to_tokens(tok("sum a3 m9 12", add_special_tokens=False)["input_ids"]) == [
        "s", "u", "m", "\u0120", "a3", "\u0120", "m9", "\u0120", "1", "2"]


def test_generation_prompt_opens_thinking(tok):
    text = tok.apply_chat_template([{"role": "user", "content": "sum a=1 b=2"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == "<|im_start|>user\nsum a=1 b=2<|im_end|>\n<|im_start|>assistant\n<think>\n"


def test_qwen2_tokenizer_class_agrees(tmp_path, tok):
    """transformers (and so vLLM) load a qwen2 folder through Qwen2Tokenizer: ids must not change."""
    save_tokenizer(tok, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}))
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(tmp_path))
    text = "<|im_start|>user\nsum a3 b8<|im_end|>\n<|im_start|>assistant\n<think>\na3 0+3=3\nb8 3+8=11\n</think>\n11"
    assert auto(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert auto.decode(auto(text, add_special_tokens=False)["input_ids"]) == text


def test_saved_config_carries_template(tmp_path, tok):
    save_tokenizer(tok, tmp_path)
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert cfg["chat_template"] == CHAT_TEMPLATE
    assert cfg["eos_token"] == "<|im_end|>"
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert again("a=3 </think>\n", add_special_tokens=False)["input_ids"] == tok(
        "a=3 </think>\n", add_special_tokens=False)["input_ids"]
