"""The generation engine's parts that need no model: options, sampling, text, the batch's cache."""

from __future__ import annotations

import numpy as np
import pytest

from maas.base.errors import InvalidInputError, ServerOverloadedError
from maas.base.served.generation import (
    INVALID_PREFIX,
    DecodeBatch,
    GenerationError,
    ModelShape,
    Sampler,
    SamplingParams,
    Sequence,
    TextStream,
    overlap,
)
from maas.clients.generate import sampling, sse_chunk, stream_error

SHAPE = ModelShape(layers=2, heads=2, head_dim=3, vocab=11, max_positions=32, eos_token_id=0)


def test_options_come_from_inputs_and_parameters_with_named_errors() -> None:
    params = SamplingParams.parse({"max_tokens": "5", "temperature": 0.5, "seed": 3, "x": 1})
    assert (params.max_tokens, params.temperature, params.seed) == (5, 0.5, 3)
    assert SamplingParams.parse({"stop": "\n"}).stop == ("\n",)
    for bad, words in (
        ({"max_tokens": 0}, "max_tokens must be 1-4096"),
        ({"max_tokens": "many"}, "max_tokens must be a number"),
        ({"temperature": -1}, "temperature must be 0-10"),
        ({"top_p": 0}, "top_p must be in (0, 1]"),
        ({"top_k": -2}, "top_k must be 0"),
        ({"stop": [""]}, "stop must be up to 8 non-empty strings"),
        ({"seed": True}, "seed must be a number"),
    ):
        with pytest.raises(GenerationError, match=words.replace("(", r"\(").replace("]", r"\]")):
            SamplingParams.parse(bad)


def test_greedy_takes_the_largest_logit_and_seeded_sampling_repeats() -> None:
    logits = np.array([0.1, 2.0, 1.9, -1.0])
    assert Sampler(SamplingParams()).pick(logits) == 1
    params = SamplingParams(temperature=1.0, seed=7)
    first = [Sampler(params).pick(logits) for _ in range(1)]
    draws = Sampler(params)
    again = Sampler(params)
    assert [draws.pick(logits) for _ in range(50)] == [again.pick(logits) for _ in range(50)]
    assert first[0] == Sampler(params).pick(logits)
    top1 = Sampler(SamplingParams(temperature=2.0, top_k=1, seed=1))
    assert {top1.pick(logits) for _ in range(30)} == {1}  # top-k 1 is greedy
    nucleus = Sampler(SamplingParams(temperature=1.0, top_p=0.5, seed=1))
    assert {nucleus.pick(logits) for _ in range(60)} <= {1, 2}  # the tail is cut


def test_text_is_handed_out_once_and_held_back_where_a_stop_string_may_start() -> None:
    vocabulary = {1: "Hello", 2: " wor", 3: "ld", 4: "\n\n", 5: "é"}
    stream = TextStream(lambda ids: "".join(vocabulary[i] for i in ids), ("\n\nEND",))
    assert stream.push(1) == "Hello"
    assert stream.push(2) == " wor"
    assert stream.push(4) == ""  # may begin "\n\nEND": held back
    assert stream.push(3) == "\n\nld"  # it did not
    assert not stream.stopped
    stopping = TextStream(lambda ids: "".join(vocabulary[i] for i in ids), ("ld",))
    assert stopping.push(1) + stopping.push(2) + stopping.push(3) == "Hello wor"
    assert stopping.stopped
    assert overlap("abc\n", "\nX") == 1 and overlap("abc", "X") == 0


def test_a_character_split_between_tokens_waits_for_its_last_byte() -> None:
    pieces = {1: b"caf", 2: b"\xc3", 3: b"\xa9!"}
    stream = TextStream(lambda ids: b"".join(pieces[i] for i in ids).decode(errors="replace"), ())
    assert stream.push(1) == "caf"
    assert stream.push(2) == ""
    assert stream.push(3) == "é!"


def cache(length: int, fill: float) -> list[np.ndarray]:
    return [np.full((1, 2, length, 3), fill, np.float32) for _ in range(2 * SHAPE.layers)]


def sequence(length: int) -> Sequence:
    params = SamplingParams()
    item = Sequence([1] * length, params, lambda *_: None, lambda: False, TextStream(str, ()))
    item.length = length
    return item


def test_rows_of_different_lengths_are_right_aligned_and_masked_on_the_left() -> None:
    batch = DecodeBatch(SHAPE)
    batch.join(sequence(2), cache(2, 1.0))
    batch.join(sequence(5), cache(5, 2.0))
    assert batch.mask.tolist() == [[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]]
    assert batch.cache[0].shape == (2, 2, 5, 3)
    assert (batch.cache[0][0, :, :3] == 0).all() and (batch.cache[0][0, :, 3:] == 1).all()
    inputs = batch.step_inputs()
    assert inputs["attention_mask"].shape == (2, 6) and inputs["position_ids"].tolist() == [
        [2],
        [5],
    ]
    batch.leave([1])  # the long row ends: the columns only it used go too
    assert batch.mask.tolist() == [[1, 1]] and batch.cache[3].shape == (1, 2, 2, 3)
    batch.leave([0])
    assert batch.rows == [] and batch.width == 0


def test_client_checks_options_and_types_stream_errors() -> None:
    with pytest.raises(InvalidInputError, match="unknown generation options: colour"):
        sampling({"colour": "red"})
    with pytest.raises(InvalidInputError, match="max_tokens must be 1-4096"):
        sampling({"max_tokens": 0})
    assert sampling({"max_tokens": 3, "seed": None}) == {"max_tokens": 3}
    piece = sse_chunk(b'data: {"text_output": "a", "token_ids": [5], "finish_reason": ""}', "m")
    assert piece == ("a", (5,), "")
    assert sse_chunk(b": keep-alive", "m") is None
    assert isinstance(stream_error(INVALID_PREFIX + "the prompt is long", "m"), InvalidInputError)
    busy = stream_error(
        "all 16 generation slots are busy and 64 requests are waiting; retry later", "m"
    )
    assert isinstance(busy, ServerOverloadedError)
