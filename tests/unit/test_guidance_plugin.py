"""The class vLLM loads: one class for both interfaces, dispatch by constructor signature, duplicate guard."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("vllm")

from guidance import PLUGIN, server_args  # noqa: E402
from guidance.mrv2 import GuidanceMRV2  # noqa: E402
from guidance.v1 import GuidanceV1  # noqa: E402
from guidance.vocab import prior_only_model, vocab_from_texts  # noqa: E402

TEXTS = ["<pad>", "<think>", "</think>", "\n", "a"]
VOCAB = vocab_from_texts(TEXTS, 1, 2)


@pytest.fixture
def plugin(monkeypatch):
    from guidance import plugin as mod

    monkeypatch.setattr(GuidanceV1, "from_vllm", classmethod(
        lambda cls, cfg, device: cls(VOCAB, prior_only_model(len(TEXTS)), device)))
    monkeypatch.setattr(GuidanceMRV2, "from_vllm", classmethod(
        lambda cls, cfg, rs: cls(VOCAB, prior_only_model(len(TEXTS)), rs)))
    return mod.BudgetGuidance


def test_is_both_interfaces(plugin):
    from vllm.v1.sample.logits_processor.interface import LogitsProcessor as V1
    from vllm.v1.worker.gpu.sample.logits_processor.interface import LogitsProcessor as V2

    assert issubclass(plugin, V1) and issubclass(plugin, V2)
    assert PLUGIN == f"{plugin.__module__}:{plugin.__qualname__}"


def test_dispatch_by_signature_and_duplicate_guard(plugin):
    cfg = object()
    p1 = plugin(cfg, torch.device("cpu"), False)
    assert p1._v1 is not None and p1._v2 is None and not p1.is_argmax_invariant()
    out: list[int] = []
    p1.update_state(SimpleNamespace(removed=[], moved=[], added=[
        (0, SimpleNamespace(extra_args={"think_budget": 2}), [4, 1, 3], out)]))
    logits = torch.zeros(1, len(TEXTS))
    p1.apply(logits)
    assert logits[0, 2] > logits[0, 4]  # guided: end of thinking favoured at the line start
    dup = plugin(cfg, torch.device("cpu"), False)  # same engine config: the second load is inert
    assert dup._v1 is None and dup._v2 is None  # and builds no adapter (tokenizer, vocabulary, model)
    dup.update_state(SimpleNamespace(removed=[], moved=[], added=[
        (0, SimpleNamespace(extra_args={"think_budget": 2}), [4, 1, 3], [])]))
    logits = torch.zeros(1, len(TEXTS))
    assert torch.equal(dup.apply(logits), torch.zeros(1, len(TEXTS)))
    rs = SimpleNamespace(device=torch.device("cpu"), max_num_reqs=2, vocab_size=len(TEXTS),
                         all_token_ids=torch.zeros(2, 8, dtype=torch.int32),
                         prefill_len=SimpleNamespace(np=np.zeros(2, dtype=np.int32)))
    p2 = plugin(object(), rs)
    assert p2._v2 is not None and p2._v1 is None
    assert p2.add_request(0, SimpleNamespace(extra_args={"think_budget": 3})) is True
    with pytest.raises(TypeError):
        plugin(object())


def test_validate_params_raises_value_error(plugin):
    plugin.validate_params(SimpleNamespace(extra_args=None))
    with pytest.raises(ValueError, match="think_budget"):
        plugin.validate_params(SimpleNamespace(extra_args={"think_budget": -1}))


def test_server_args_load_the_plugin_once(monkeypatch):
    import guidance

    monkeypatch.setattr(guidance, "entry_point_installed", lambda: True)
    assert server_args() == []
    monkeypatch.setattr(guidance, "entry_point_installed", lambda: False)
    assert server_args() == ["--logits-processors", PLUGIN]
