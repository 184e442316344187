"""The peers benchmark's pure parts: what goes on the wire, the settings, the goals, the subset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maas.base.errors import BenchmarkError
from maas.base.triton.repository import ModelRepository
from maas.benchmarks.load_test import Level, LevelResult, summarise_window
from maas.benchmarks.peers import wire
from maas.benchmarks.peers.launch import CORES, PeerSetting, missing_modules, torchserve_config
from maas.benchmarks.peers.tasks import TASKS, task_for, task_of_model
from maas.benchmarks.peers_bench import (
    PeersOptions,
    PeersResult,
    SystemRun,
    choose_best,
    load_result,
    save_result,
    subset_repository,
)
from maas.benchmarks.peers_report import p99_goal, throughput_goal
from maas.benchmarks.workloads import bytes_tensor

JPEG = b"\xff\xd8\xff\xe0 not really a photograph"
PIXELS = np.arange(3 * 224 * 224, dtype=np.float32).reshape(1, 3, 224, 224)
SENTENCE = "A sentence, with punctuation."


def inputs_of(kind: str) -> dict[str, np.ndarray]:
    if kind == "image":
        return {"IMAGE": bytes_tensor([JPEG])}
    if kind == "image-tensor":
        return {"pixel_values": PIXELS}
    return {"TEXT": bytes_tensor([SENTENCE.encode()])}


@pytest.mark.parametrize("peer", ["ray", "torchserve"])
def test_raw_body_peers_get_the_bytes_the_handler_decodes(peer: str) -> None:
    image = wire.encode(peer, TASKS["resnet50-jpeg"], inputs_of("image"))
    assert image.body == JPEG and image.headers["Content-Type"] == "image/jpeg"
    tensor = wire.encode(peer, TASKS["resnet50-tensor"], inputs_of("image-tensor"))
    np.testing.assert_array_equal(np.frombuffer(tensor.body, np.float32), PIXELS.reshape(-1))
    text = wire.encode(peer, TASKS["minilm-text"], inputs_of("text"))
    assert json.loads(text.body) == {"text": SENTENCE}
    prefix = "/predictions/" if peer == "torchserve" else "/"
    assert image.path == prefix + "resnet50_jpeg" and text.path == prefix + "minilm_text"


def test_bentoml_gets_what_its_client_sends_to_batchable_apis() -> None:
    image = wire.encode("bentoml", TASKS["resnet50-jpeg"], inputs_of("image"))
    boundary = image.headers["Content-Type"].split("boundary=")[1]
    assert image.body.startswith(f"--{boundary}\r\n".encode())
    assert b'name="images"' in image.body and JPEG in image.body
    tensor = wire.encode("bentoml", TASKS["resnet50-tensor"], inputs_of("image-tensor"))
    np.testing.assert_array_equal(np.asarray(json.loads(tensor.body)["pixels"]), PIXELS)
    text = wire.encode("bentoml", TASKS["minilm-text"], inputs_of("text"))
    assert json.loads(text.body) == {"texts": [SENTENCE]}  # a batch of one


def test_the_naive_service_takes_images_of_any_image_model_only() -> None:
    digits = task_for("naive", "digits_cnn_image")
    request = wire.encode("naive", digits, inputs_of("image"))
    assert (request.path, request.body) == ("/predict", JPEG)
    with pytest.raises(ValueError, match="encoded images"):
        wire.encode("naive", task_for("naive", "minilm_text"), inputs_of("text"))
    assert task_for("ray", "minilm_text") is TASKS["minilm-text"]


def test_an_answer_other_than_200_is_a_failure_naming_the_status() -> None:
    assert wire.decode(200, b'{"embeddings": [0.5]}') == {"embeddings": [0.5]}
    with pytest.raises(wire.PeerProtocolError, match="HTTP 503"):
        wire.decode(503, b"overloaded")


def test_tasks_are_found_by_the_model_maas_serves_them_as() -> None:
    assert task_of_model("resnet50_image").name == "resnet50-jpeg"
    with pytest.raises(ValueError, match="expected one of resnet50_image"):
        task_of_model("digits_cnn")


def test_settings_share_the_cores_out_and_say_so() -> None:
    one, two = PeerSetting(1, 10.0), PeerSetting(2)
    assert one.threads == 0 and "all cores" in one.label and "wait 10 ms" in one.label
    assert two.threads == max(1, CORES // 2) and "adaptive wait" in two.label


def test_torchserve_batches_as_the_setting_says(tmp_path: Path) -> None:
    ports = {"inference": 1, "management": 2, "metrics": 3}
    text = torchserve_config("minilm_text", 64, PeerSetting(2, 10.0), ports, tmp_path, tmp_path)
    models = json.loads(next(line for line in text.splitlines() if line.startswith("models="))[7:])
    settings = models["minilm_text"]["1.0"]
    assert (settings["batchSize"], settings["maxBatchDelay"]) == (64, 10)
    assert settings["minWorkers"] == settings["maxWorkers"] == 2
    assert "inference_address=http://127.0.0.1:1" in text
    assert (tmp_path / "log4j2.xml").is_file()


def test_unknown_tasks_and_peers_are_refused_by_name() -> None:
    with pytest.raises(BenchmarkError, match="unknown task 'gpt'"):
        PeersOptions(tasks=("gpt",)).check()
    with pytest.raises(BenchmarkError, match="unknown peer 'flask'"):
        PeersOptions(peers=("flask",)).check()


def level(users: int, throughput: float, p99: float, rate: float = 0.0) -> LevelResult:
    result = summarise_window(Level(users, rate), 1.0, [p99] * 10, [], 0, {}, (10, 0))
    result.throughput_rps = throughput
    return result


def run(system: str, *levels: LevelResult, setting: str = "s") -> SystemRun:
    return SystemRun("minilm-text", system, system.title(), setting, list(levels))


def test_the_throughput_goal_compares_saturation_with_the_best_peer() -> None:
    maas = run("maas", level(1, 100, 5), level(4, 300, 9))
    peers = [run("bentoml", level(1, 90, 6), level(4, 150, 20)), run("ray", level(4, 210, 8))]
    goal = throughput_goal("minilm-text", [maas, *peers])
    assert not goal.met and "300.0/s vs Ray 210.0/s = 1.43×" in goal.measured
    assert throughput_goal("minilm-text", [maas, peers[0]]).met  # 2.0×


def test_the_p99_goal_names_every_level_where_a_peer_was_as_fast() -> None:
    maas = run("maas", level(1, 100, 5), level(4, 300, 9))
    slower = run("bentoml", level(1, 90, 6), level(4, 150, 20))
    assert p99_goal("minilm-text", [maas, slower]).met
    faster = run("ray", level(1, 90, 4), level(4, 150, 20))
    goal = p99_goal("minilm-text", [maas, slower, faster])
    assert not goal.met and goal.measured == "1 users: Ray 4.0 ≤ maas 5.0 ms"


def test_the_naive_floor_and_unchosen_settings_are_not_what_maas_is_judged_against() -> None:
    maas = run("maas", level(4, 100, 9))
    naive = run("naive", level(4, 10, 1))
    weak = run("ray", level(4, 40, 1), setting="a")
    strong = run("ray", level(4, 60, 50), setting="b")
    choose_best([weak, strong])
    assert strong.chosen and not weak.chosen
    assert p99_goal("t", [maas, naive, weak, strong]).met
    assert throughput_goal("t", [maas, naive, weak, strong]).measured.endswith("1.67×")


def test_results_survive_a_round_trip_through_json(tmp_path: Path) -> None:
    result = PeersResult([run("maas", level(1, 5, 2), level(32, 9, 4, rate=20))], {"ray": "2"})
    save_result(result, tmp_path / "results.json")
    assert load_result(tmp_path / "results.json") == result


def config(name: str, steps: tuple[str, ...] = ()) -> str:
    text = f'name: "{name}"\nmax_batch_size: 8\n'
    if steps:
        text += 'platform: "ensemble"\nensemble_scheduling {\n'
        text += "".join(f'  step {{ model_name: "{step}" model_version: -1 }}\n' for step in steps)
        text += "}\n"
    return text


def test_a_subset_repository_holds_the_model_and_what_its_ensemble_calls(tmp_path: Path) -> None:
    root = tmp_path / "repository"
    for name, steps in {
        "a_image": ("a_preprocess", "a"),
        "a_preprocess": (),
        "a": (),
        "b": (),
    }.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(config(name, steps))
    subset = subset_repository(ModelRepository(root), "a_image", tmp_path / "subset")
    assert sorted(path.name for path in subset.iterdir()) == ["a", "a_image", "a_preprocess"]
    assert subset_repository(ModelRepository(root), "b", tmp_path / "b").joinpath("b").is_dir()


def test_a_peer_that_is_not_installed_says_how_to_install_it() -> None:
    reason = missing_modules("json", "no_such_peer.serve")
    assert reason == "no_such_peer.serve not installed (pip install 'maas[peers]')"
    assert missing_modules("json") == ""


def test_the_strict_p99_goal_counts_a_setting_that_lost_on_throughput() -> None:
    maas = run("maas", level(1, 100, 5), level(4, 300, 9))
    slow_but_quick = run("bentoml", level(1, 90, 4), level(4, 100, 20), setting="one worker")
    best = run("bentoml", level(1, 80, 6), level(4, 150, 20), setting="two workers")
    choose_best([slow_but_quick, best])
    assert p99_goal("t", [maas, slow_but_quick, best]).met
    strict = p99_goal("t", [maas, slow_but_quick, best], every_setting=True)
    assert not strict.met and strict.measured == "1 users: Bentoml (one worker) 4.0 ≤ maas 5.0 ms"
