"""MLX quantization through mlx-lm, in the job the app and the CLI run, on tiny
random-weight models: every mode and recipe loads and answers, fewer bits measure
further from the float model, a learned mix lands on its bits-per-weight target, bad
input is one line before any work, and a cancelled job leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.errors import Cancelled, UserError
from macllm_app.core.jobs import Job
from macllm_app.core.library.catalogue import Catalogue
from macllm_app.core.quantize.mlx import MLX_QUANTIZE_TARGET, MLXQuantizePlan, plan_mlx_quantize
from macllm_app.core.quantize.quality import evaluate
from macllm_app.core.types import LoadConfig, Message
from tests.support.engine_events import collect_events, greedy_request
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = [pytest.mark.mlx, pytest.mark.slow]
TEXT = "the quick brown fox jumps over the lazy dog " * 60  # bytes: ~2,600 tokens


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mlx_model(tmp_path_factory.mktemp("float") / "tiny-f32", seed=5)


def _quantize(plan: MLXQuantizePlan) -> dict[str, Any]:
    entry: dict[str, Any] = Job(MLX_QUANTIZE_TARGET, (plan,), title="Quantizing").run()
    return entry


def _answers(folder: Path) -> list[int]:
    with EngineHost() as host:
        host.load(LoadConfig(model_path=str(folder), engine="mlx"))
        _, ids, _ = collect_events(host.stream(greedy_request((Message("user", "hi"),), 4)))
    return ids


@pytest.mark.parametrize(("options", "expected"), [
    ({"bits": 4, "group_size": 64}, {"bits": 4, "group_size": 64, "mode": "affine"}),
    ({"bits": 4, "group_size": 32, "mode": "mxfp4"}, {"bits": 4, "group_size": 32,
                                                       "mode": "mxfp4"}),
    ({"bits": 3, "group_size": 32, "recipe": "mixed_3_6"}, {"bits": 3, "group_size": 32}),
])
def test_each_kind_quantizes_loads_and_answers(base: Path, tmp_path: Path,
                                               options: dict[str, Any],
                                               expected: dict[str, Any]) -> None:
    dest = tmp_path / "quantized"
    plan = plan_mlx_quantize(base, dest, **options)
    entry = _quantize(plan)
    config = json.loads((dest / "config.json").read_text())
    assert {k: config["quantization"][k] for k in expected} == expected
    if "recipe" in options:  # mlx-lm's recipe: 3 bits, some layers 6
        layers = [v for v in config["quantization"].values() if isinstance(v, dict)]
        assert {layer["bits"] for layer in layers} == {3, 6}
    assert entry["extra"]["quantized_from"] == str(base)
    assert entry["extra"]["quantization"] == plan.label()
    assert Catalogue().get(entry["id"]) is not None
    assert len(_answers(dest)) == 4
    assert not list(tmp_path.glob(".*partial"))


def test_fewer_bits_measure_further_from_the_float_model(base: Path, tmp_path: Path) -> None:
    kld = {}
    for bits in (8, 4, 2):
        dest = tmp_path / f"q{bits}"
        _quantize(plan_mlx_quantize(base, dest, bits=bits, group_size=32))
        kld[bits] = evaluate(str(dest), str(base), text=TEXT, quick=True)["kld_mean"]
    assert 0 < kld[8] < kld[4] < kld[2]


def test_a_learned_mix_meets_its_bits_per_weight(base: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dynamic"
    entry = _quantize(plan_mlx_quantize(base, dest, bits=4, group_size=32, dynamic_bpw=7.0))
    plain = _quantize(plan_mlx_quantize(base, tmp_path / "plain", bits=4, group_size=32))
    low = float(plain["extra"]["bits_per_weight"])
    assert low + 0.5 < float(entry["extra"]["bits_per_weight"]) <= 7.0 + 0.1
    config = json.loads((dest / "config.json").read_text())
    raised = [v for v in config["quantization"].values() if isinstance(v, dict)]
    assert raised and {layer["bits"] for layer in raised} == {6}
    assert len(_answers(dest)) == 4


def test_bad_input_is_one_line_before_any_work(base: Path, tmp_path: Path) -> None:
    def refused(pattern: str, src: Path = base, **options: Any) -> None:
        with pytest.raises(UserError, match=pattern) as caught:
            plan_mlx_quantize(src, tmp_path / "out", **options)
        assert "\n" not in str(caught.value)

    refused(r"A group size of 128 does not divide tiny-f32's hidden size \(64\): "
            r"choose 32, 64\.$", group_size=128)
    refused(r"^MLX quantizes to 2, 3, 4, 5, 6, 8 bits, not 7\.$", bits=7)
    refused(r"^mxfp4 stores 4 bits in groups of 32; 4 bits in groups of 64 cannot be mxfp4\.$",
            mode="mxfp4")
    refused(r"^The mixed recipes .* are affine", bits=4, group_size=32, mode="mxfp4",
            recipe="mixed_3_6")
    refused(r"^A learned mix of 4 and 6 bits in groups of 64 weighs 5 to 7 bits a weight "
            r"\(F32 scales\); 7 is outside\.$", dynamic_bpw=7.0)
    quantized = make_tiny_mlx_model(tmp_path / "already", quantize=True)
    refused(r"^already is already quantized \(4-bit \(group 32\)\); MLX quantizes a float "
            r"model: start from its F16 or BF16 folder\.$", quantized)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="taken"):
        plan_mlx_quantize(base, tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "out").exists()


def test_a_cancelled_job_leaves_nothing(base: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    dest = tmp_path / "out" / "cancelled"
    job = Job(MLX_QUANTIZE_TARGET, (plan_mlx_quantize(base, dest, dynamic_bpw=6.0),))

    def cancel(_fraction: float, message: str) -> None:
        if message.startswith("Measuring"):
            job.cancel()

    with pytest.raises(Cancelled):
        job.run(cancel)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_float_gguf_is_made_mlx_on_the_way(f16_default_model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "smollm2-4bit"
    entry = _quantize(plan_mlx_quantize(f16_default_model, dest, bits=4, group_size=64))
    config = json.loads((dest / "config.json").read_text())
    assert config["quantization"]["bits"] == 4
    assert not (dest / "float").exists()
    assert entry["format"] == "mlx"
    assert len(_answers(dest)) == 4
