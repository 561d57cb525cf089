"""Fixtures for the trainer engine tests: tiny random models built on disk.

They are saved as ordinary Hugging Face folders and loaded through `trainer.models`, the
same path a real model takes. Character-level tokenizer, ChatML-like template.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch

SPECIALS = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
CHARS = [c for c in string.printable if c not in "\r\x0b\x0c"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_model(path: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0, arch: str = "llama",
                    **config_extra) -> Path:
    """Write a random causal LM (Llama unless `arch` names another transformers architecture,
    e.g. "gemma2", "mistral") with a character-level tokenizer to `path` and return it."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIALS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>",
                                        pad_token="<pad>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    config = AutoConfig.for_model(arch, vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                  head_dim=hidden // 4, max_position_embeddings=1024, tie_word_embeddings=True,
                                  eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<pad>"], bos_token_id=None,
                                  **config_extra)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture
def qa_tasks() -> list[dict]:
    """Small arithmetic-looking tasks; the tiny model cannot solve them, the graders don't care."""
    return [{"messages": [{"role": "user", "content": f"what is {a}+{b}?"}], "answer": str(a + b)}
            for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (2, 2), (4, 4), (6, 1), (9, 0)]]
