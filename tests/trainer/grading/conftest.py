"""Fixtures for the grading engine tests: a sandbox pool, a tiny judge model, a fake endpoint.

Everything is local and real: real worker processes, a real (tiny, random) Llama model
doing a forward pass, a real HTTP server on 127.0.0.1. Nothing here touches Django.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from trainer.grading import SandboxLimits, SandboxPool


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    """Two warm workers with a short timeout; checks that shutdown leaves no process behind."""
    sandbox = SandboxPool(2, SandboxLimits(timeout_s=3.0, startup_timeout_s=60.0))
    yield sandbox
    pids = sandbox.worker_pids()
    sandbox.shutdown()
    assert not [pid for pid in pids if _alive(pid)], "sandbox workers outlived shutdown"


@pytest.fixture(scope="session")
def tiny_judge_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer random Llama with a word-level tokenizer and a chat template.

    The final norm's weight is zeroed, so every logit is 0 and greedy decoding picks token
    id 0 -- which is "7". The forward pass is real; only the answer is predictable.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-judge")
    words = [
        "7",
        "<unk>",
        "<pad>",
        "</s>",
        "<s>",
        "user",
        "assistant",
        "system",
        "reply",
        "with",
        "only",
        "a",
        "number",
        "from",
        "0",
        "to",
        "10",
        "the",
        "answer",
        "is",
        "one",
        "of",
        "these",
        "labels",
    ]
    vocab = {word: index for index, word in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="</s>",
        bos_token="<s>",
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant {% endif %}"
    )
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=4,
        eos_token_id=3,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.save_pretrained(folder)
    return folder


class JudgeServer:
    """A local OpenAI-compatible `/chat/completions` that answers with `reply(body)`.

    Tests reach it through the `judge_server` fixture (and `judge_server.completion(...)`
    builds a reply body), so no test module needs to import this file.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.reply: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]] = lambda body: (
            200,
            completion("1"),
        )
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                status, payload = (
                    server.reply(body) if self.path == "/v1/chat/completions" else (404, {})
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(content: str | None, refusal: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "judge-remote",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, "refusal": refusal}}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
    }


JudgeServer.completion = staticmethod(completion)  # type: ignore[attr-defined]


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    server = JudgeServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_secrets_leak_into_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the test process a fake secret, so the sandbox tests can prove it stays here."""
    monkeypatch.setenv("DJANGO_SECRET_KEY", "s3cr3t-for-tests")
    assert os.environ["DJANGO_SECRET_KEY"]
