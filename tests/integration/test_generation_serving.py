"""Streamed generation through the live server: equal to transformers, cancellable, bounded.

A decoder trained here from a small recipe (the registered tinygpt's recipe, shrunk: the same
code and graph) is exported, served by `maas serve` behind the gateway, and called with the
clients over both protocols.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from maas.base.errors import InvalidInputError, ServerOverloadedError
from maas.clients import Protocol
from maas.clients.generate import AsyncTextGenerator, TextGenerator
from maas.export import ModelRepository, export_model
from maas.export.models.tinygpt import Recipe, tinygpt_spec
from tests.conftest import RunningServer, start_maas_serve, stop_maas_serve

# 15 s of training: enough that greedy text varies (a guard below checks it), far from tinygpt.
RECIPE = Recipe(
    vocab_size=512, layers=2, width=64, heads=4, positions=128, steps=800, batch=16, block=48
)
STEP = "tinygpt_test"
SERVICE = STEP + "_generate"
PROMPTS = (
    "The with statement",
    "Exceptions are raised when an error is detected during execution",
    "A",
    "Assignment statements are used to (re)bind names to values and to modify attributes",
)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    repository = ModelRepository(tmp_path_factory.mktemp("generation"))
    export_model(tinygpt_spec(RECIPE, STEP), repository)
    return repository


@pytest.fixture(scope="module")
def served(
    repository: ModelRepository, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    running = start_maas_serve(repository.root, tmp_path_factory.mktemp("serve-generation"))
    yield running
    assert stop_maas_serve(running) == 0


@pytest.fixture(scope="module")
def one_slot(
    repository: ModelRepository, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The same model with one slot and one waiting place: easy to fill."""
    folder = tmp_path_factory.mktemp("one-slot")
    for name in (STEP, SERVICE):
        shutil.copytree(repository.model_dir(name), folder / "repo" / name, symlinks=True)
    config = folder / "repo" / SERVICE / "config.pbtxt"
    text = config.read_text()
    text = text.replace('string_value: "16"', 'string_value: "1"')
    config.write_text(text.replace('string_value: "64"', 'string_value: "1"'))
    running = start_maas_serve(folder / "repo", folder)
    yield running
    assert stop_maas_serve(running) == 0


@pytest.fixture(scope="module")
def reference(repository: ModelRepository) -> dict[str, list[int]]:
    """transformers' greedy generate on the same weights, 24 new tokens per prompt."""
    folder = repository.version_dir(STEP, 1) / "hf"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    found = {}
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=24,
                pad_token_id=tokenizer.eos_token_id,
            )
        found[prompt] = out[0, ids.shape[1] :].tolist()
    return found


def test_greedy_streams_equal_transformers_generate_token_for_token_when_concurrent(
    served: RunningServer, protocol: Protocol, reference: dict[str, list[int]]
) -> None:
    # Not a degenerate model: the references differ and use many tokens.
    assert len({token for tokens in reference.values() for token in tokens}) > 12
    answers: dict[str, tuple[list[int], str, str]] = {}

    def call(prompt: str) -> None:
        with TextGenerator(SERVICE, served.url(protocol), protocol) as generator:
            whole = generator.generate(prompt, max_tokens=24)
            streamed = "".join(generator.stream(prompt, max_tokens=24))
        answers[prompt] = (list(whole.token_ids), whole.text, streamed)

    threads = [threading.Thread(target=call, args=(prompt,)) for prompt in PROMPTS * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for prompt, expected in reference.items():
        tokens, text, streamed = answers[prompt]
        assert tokens == expected, prompt
        assert streamed == text and text.strip(), prompt


def test_seeded_sampling_repeats_and_another_seed_differs(
    served: RunningServer, protocol: Protocol
) -> None:
    async def three() -> list[str]:
        async with AsyncTextGenerator(SERVICE, served.url(protocol), protocol) as generator:
            options = {"max_tokens": 24, "temperature": 1.0, "top_k": 50, "top_p": 0.95}
            first = await generator.generate(PROMPTS[0], seed=11, **options)
            again = await generator.generate(PROMPTS[0], seed=11, **options)
            other = await generator.generate(PROMPTS[0], seed=12, **options)
            streamed = "".join([t async for t in generator.stream(PROMPTS[0], seed=11, **options)])
        return [first.text, again.text, other.text, streamed]

    first, again, other, streamed = asyncio.run(three())
    assert first == again == streamed
    assert other != first


def test_a_stop_string_ends_the_text_before_it(served: RunningServer, protocol: Protocol) -> None:
    with TextGenerator(SERVICE, served.url(protocol), protocol) as generator:
        full = generator.generate(PROMPTS[1], max_tokens=24).text
        stop = full.strip()[4:7]  # three characters from inside the greedy text
        cut = generator.generate(PROMPTS[1], max_tokens=24, stop=[stop])
    assert cut.finish_reason == "stop"
    assert cut.text == full[: full.index(stop)]


def test_a_cancelled_stream_frees_its_slot_at_the_next_step(
    one_slot: RunningServer, protocol: Protocol
) -> None:
    url = one_slot.url(protocol)
    with TextGenerator(SERVICE, url, protocol) as generator:
        began = time.monotonic()
        generator.generate(PROMPTS[0], max_tokens=100)
        whole_s = time.monotonic() - began
        stream = generator.stream(PROMPTS[0], max_tokens=100)
        next(stream), next(stream)
        stream.close()  # the caller goes away after two tokens
    with TextGenerator(SERVICE, url, protocol) as generator:
        began = time.monotonic()
        assert generator.generate(PROMPTS[2], max_tokens=3).token_ids
        waited_s = time.monotonic() - began
    # With the slot still held, this request would wait for the 98 tokens left.
    assert waited_s < whole_s / 2, (waited_s, whole_s)


def test_beyond_the_slots_and_the_waiting_line_requests_are_refused_and_nothing_is_lost(
    one_slot: RunningServer, protocol: Protocol
) -> None:
    url = one_slot.url(protocol)
    outcomes: list[object] = []

    def call() -> None:
        try:
            with TextGenerator(SERVICE, url, protocol) as generator:
                outcomes.append(generator.generate(PROMPTS[1], max_tokens=100))
        except Exception as error:  # the test's finding
            outcomes.append(error)

    start = threading.Barrier(12)

    def at_once() -> None:
        start.wait()
        call()

    threads = [threading.Thread(target=at_once) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    refused = [o for o in outcomes if isinstance(o, Exception)]
    answered = [o for o in outcomes if not isinstance(o, Exception)]
    assert refused and answered, outcomes
    unexpected = [repr(error) for error in refused if not isinstance(error, ServerOverloadedError)]
    assert not unexpected, unexpected
    assert all("retry" in str(error) for error in refused)
    with TextGenerator(SERVICE, url, protocol) as generator:  # still serving
        assert generator.generate(PROMPTS[2], max_tokens=3).finish_reason == "length"


def post(url: str, path: str, body: object) -> tuple[int, str]:
    host, _, port = url.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_bad_generation_requests_are_refused_with_what_was_wrong(served: RunningServer) -> None:
    path = f"/v2/models/{SERVICE}/generate"
    status, body = post(served.http_url, path, {"text_input": "Hi", "max_tokens": 0})
    assert "max_tokens must be 1-4096" in body, (status, body)
    status, body = post(served.http_url, path, {"text_input": "word " * 200, "max_tokens": 8})
    assert "must fit the model's 128 positions" in body, (status, body)
    status, body = post(served.http_url, path, {"max_tokens": 8})
    assert status == 400 and "text_input" in body, body
    with (
        TextGenerator(SERVICE, served.grpc_url, "grpc") as generator,
        pytest.raises(InvalidInputError, match="must fit the model's 128 positions"),
    ):
        generator.generate("word " * 200, max_tokens=8)
    with TextGenerator(SERVICE, served.http_url, "http") as generator:
        assert generator.generate(PROMPTS[0], max_tokens=4).token_ids  # still serving


def test_maas_infer_streams_generated_text_to_the_terminal(served: RunningServer) -> None:
    command = [sys.executable, "-m", "maas.cli", "infer", SERVICE, "--url", served.http_url]
    command += ["--generate", PROMPTS[0], "--max-tokens", "12"]
    printed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    with TextGenerator(SERVICE, served.http_url) as generator:
        expected = generator.generate(PROMPTS[0], max_tokens=12).text
    assert printed.stdout == PROMPTS[0] + expected + "\n"
    assert printed.stderr == ""


def test_the_served_repository_names_the_service_beside_its_step(
    repository: ModelRepository,
) -> None:
    assert (repository.version_dir(SERVICE, 1) / "model.py").is_file()
    assert 'key: "step_model"' in (repository.model_dir(SERVICE) / "config.pbtxt").read_text()
    assert Path(repository.version_dir(STEP, 1) / "generation.json").is_file()
