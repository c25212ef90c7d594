"""The testbed's character-level tokenizer and chat template.

Every character of the task language is one token (so digits are never merged,
which keeps arithmetic learnable for tiny models), spelled in the byte-level
alphabet of Qwen2 tokenizers (space is ``Ġ``, newline ``Ċ``); the chat markers and the
thinking markers are single added tokens, so vLLM's ``deepseek_r1`` / ``qwen3``
reasoning parsers find ``<think>`` and ``</think>`` as one id each.

Imports of ``tokenizers``/``transformers`` happen inside the functions so that
importing this module stays cheap.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "build_tokenizer", "save_tokenizer"]

PAD = "<|endoftext|>"
UNK = "<unk>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK_START = "<think>"
THINK_END = "</think>"
#: Added tokens in id order; the first five are special (skipped on decode when asked).
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, IM_START, IM_END, THINK_START, THINK_END)
#: Role names are single tokens so prompts stay short.
_WORD_TOKENS: tuple[str, ...] = ("system", "user", "assistant")
#: Label+digit pairs of the task (``a1`` .. ``m9``) are single tokens: one attention
#: lookup finds a term (see testbed.tasks).
TERM_TOKENS: tuple[str, ...] = tuple(f"{lab}{d}" for lab in "abcdefghijklm" for d in range(1, 10))
# Lower-case letters, digits, a few symbols, space and newline cover the task
# language and the chat frame; anything else maps to <unk>.
_CHARS: str = string.digits + string.ascii_lowercase + " \n=+-:?.,!()*/'" + string.ascii_uppercase

# The generation prompt opens the thinking block (as DeepSeek-R1 / Qwen3 thinking
# templates do), so everything the model emits before </think> is reasoning.
CHAT_TEMPLATE: str = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}"
)


# Byte-level spelling (GPT-2 / Qwen2 convention) of the two non-printable characters
# we use; printable ASCII maps to itself.
_BYTE_LEVEL = {" ": "\u0120", "\n": "\u010a"}
# Qwen2's pre-tokenisation regex (transformers' Qwen2Tokenizer rebuilds exactly this
# pipeline from the vocabulary when it loads a qwen2 model folder, and vLLM loads the
# tokenizer through it); with no merges any split yields the same character tokens.
_QWEN2_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def build_tokenizer() -> Any:
    """Build the tokenizer as a ``transformers.PreTrainedTokenizerFast``.

    Ids: the added tokens of ``SPECIAL_TOKENS`` first (pad = 0), then the
    single characters, then the role words, then the term tokens. The pipeline is the one
    transformers' ``Qwen2Tokenizer`` reconstructs for a ``qwen2`` model (NFC,
    Qwen2 split regex, byte-level alphabet, BPE without merges), so the saved
    folder tokenises identically whichever class loads it, and
    ``decode(encode(s)) == s`` for text in the alphabet.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for tok in SPECIAL_TOKENS:
        vocab[tok] = len(vocab)
    for ch in _CHARS:
        vocab[_BYTE_LEVEL.get(ch, ch)] = len(vocab)
    for word in _WORD_TOKENS:
        vocab[word] = len(vocab)
    for term in TERM_TOKENS:
        vocab[term] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False, byte_fallback=False))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    # <think>/</think> are not "special" in the skip-on-decode sense (as in Qwen3):
    # reasoning parsers and graders see them in the text.
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (PAD, UNK, IM_START, IM_END)])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in (THINK_START, THINK_END)])
    core.add_tokens([AddedToken(w, special=False, normalized=False) for w in (*_WORD_TOKENS, *TERM_TOKENS)])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=1024,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def save_tokenizer(tok: Any, out_dir: Path) -> None:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` (with the chat template) to ``out_dir``.

    transformers 5 writes the template to ``chat_template.jinja`` and names its
    own backend class; the config is rewritten so that older loaders (and any
    tool reading ``tokenizer_config.json`` directly) find the template and a
    class name every transformers version knows.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out_dir))
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["bos_token"] = None
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
