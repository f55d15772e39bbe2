"""The budget recipe's knobs: --recipe presets, the time-budget schedule, MLM-only data, pre-LN blocks."""

from __future__ import annotations

import pytest
import torch

from tokenmix.cli.main import main
from tokenmix.io.configs import OnnxExportConfig
from tokenmix.io.huggingface import _check_representable
from tokenmix.io.onnx import export_onnx
from tokenmix.models.config import ModelConfig
from tokenmix.models.factory import create_model
from tokenmix.models.layers import EncoderBlock
from tokenmix.models.mixing.registry import layer_mixers
from tokenmix.train.configs import RECIPES, PretrainConfig
from tokenmix.train.optim import warmup_budget_decay, warmup_linear_decay


def pretrain_config(**fields) -> PretrainConfig:
    return PretrainConfig(**{"data": "d", "out": "o", **fields})


def test_budget_recipe_sets_the_fields_left_at_their_defaults_and_explicit_values_win():
    paper = pretrain_config()
    assert (paper.nsp, paper.schedule, paper.learning_rate, paper.batch_size, paper.override) == ("swap", "linear", 1e-4, 32, ())
    budget = pretrain_config(recipe="budget", max_time=600.0)
    assert (budget.nsp, budget.schedule, budget.learning_rate, budget.warmup_steps, budget.batch_size) == \
        ("none", "budget", 1e-3, 300, 64)
    assert budget.override == ("dropout=0.0", "attention_dropout=0.0")
    mine = pretrain_config(recipe="budget", max_time=600.0, learning_rate=5e-4, nsp="random", override=("dropout=0.1",))
    assert (mine.learning_rate, mine.nsp, mine.schedule) == (5e-4, "random", "budget")
    assert mine.override[-1] == "dropout=0.1"  # later overrides win in parse_overrides
    assert set(RECIPES) == {"paper", "budget"}


@pytest.mark.parametrize(("fields", "message"), [
    ({"recipe": "fast"}, "--recipe must be one of paper, budget"),
    ({"recipe": "budget"}, "--schedule budget decays the learning rate to 0 at --max-time"),
    ({"schedule": "cosine"}, "--schedule must be one of linear, budget"),
    ({"nsp": "both"}, "nsp must be one of swap, random, none"),
])
def test_recipe_refusals(fields, message):
    with pytest.raises(ValueError, match=message):
        pretrain_config(**fields)


def test_recipe_refusal_on_the_command_line_is_one_line(capsys, tmp_path):
    assert main(["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--recipe", "budget"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tokenmix: error:") and "--max-time" in err[0]


def test_budget_schedule_warms_up_over_steps_and_reaches_zero_at_the_time_budget():
    assert warmup_budget_decay(0, 0.0, 10, 100.0) == pytest.approx(0.1)
    assert warmup_budget_decay(9, 5.0, 10, 100.0) == pytest.approx(0.95)  # the clock already eats into the peak
    assert warmup_budget_decay(50, 25.0, 10, 100.0) == pytest.approx(0.75)
    assert warmup_budget_decay(500, 100.0, 10, 100.0) == 0.0 and warmup_budget_decay(600, 130.0, 10, 100.0) == 0.0


def test_decay_fraction_holds_the_peak_then_decays_over_the_last_share():
    # Over time: the peak holds until 20% of the budget is left, then falls linearly to 0 at the budget.
    assert warmup_budget_decay(9, 5.0, 10, 100.0, 0.2) == pytest.approx(1.0)
    assert warmup_budget_decay(400, 80.0, 10, 100.0, 0.2) == pytest.approx(1.0)
    assert warmup_budget_decay(450, 90.0, 10, 100.0, 0.2) == pytest.approx(0.5)
    assert warmup_budget_decay(500, 100.0, 10, 100.0, 0.2) == 0.0
    assert warmup_budget_decay(0, 0.0, 10, 100.0, 0.2) == pytest.approx(0.1)  # the warm-up is unchanged
    # Over steps (warm-up 100, 1100 steps): flat to step 900, then linear to 0 at step 1100.
    assert [warmup_linear_decay(s, 100, 1100, 0.2) for s in (99, 500, 900, 1000, 1100)] == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0])
    assert warmup_linear_decay(600, 100, 1100) == pytest.approx(0.5)  # 1.0 = the official schedule, unchanged
    for bad in ("0", "1.5"):
        with pytest.raises(ValueError, match="--decay-fraction must be in"):
            pretrain_config(decay_fraction=float(bad))


def test_pre_ln_block_normalises_before_each_sublayer_and_the_encoder_after_the_last():
    config = ModelConfig(variant="bert", mixing="attention", vocab_size=50, hidden_size=16, num_layers=2, num_heads=2,
                         intermediate_size=32, dropout=0.0, attention_dropout=0.0, norm_position="pre")
    block = EncoderBlock(config, layer_mixers(config)[0], 0).eval()
    x = torch.randn(2, 5, 16)
    y = x + block.mixing(block.mixing_norm(x), None)
    expected = y + block.ff(block.output_norm(y))
    assert torch.allclose(block(x, None)[0], expected, atol=1e-6)
    pre = create_model("bert", "tiny", vocab_size=50, norm_position="pre").eval()
    post = create_model("bert", "tiny", vocab_size=50).eval()
    assert pre.encoder.final_norm is not None and post.encoder.final_norm is None
    # post-LN (official) keeps its parameter names: checkpoints written before the option load unchanged
    assert not any("final_norm" in name for name in post.state_dict())
    hidden = pre(torch.randint(0, 50, (2, 7))).last_hidden_state
    assert torch.allclose(hidden.mean(-1), torch.zeros(2, 7), atol=1e-5)  # the final LayerNorm's output (unit init)


def test_pre_ln_is_refused_by_the_hugging_face_conversion_and_round_trips_its_config(tmp_path):
    config = ModelConfig(norm_position="pre")
    with pytest.raises(ValueError, match="norm_position='pre' \\(Hugging Face FNet has post-LayerNorm blocks only\\)"):
        _check_representable(config, tmp_path)
    assert ModelConfig.from_dict(config.to_dict()).norm_position == "pre"
    assert ModelConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "norm_position"}).norm_position == "post"
    with pytest.raises(ValueError, match="norm_position='middle' is not valid; choose one of post, pre"):
        ModelConfig(norm_position="middle")


def test_pre_ln_models_export_to_onnx_and_match_pytorch(tmp_path):
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    create_model("fnet", "tiny", vocab_size=101, max_position_embeddings=16, norm_position="pre").save_pretrained(tmp_path / "m")
    result = export_onnx(OnnxExportConfig(str(tmp_path / "m"), str(tmp_path / "m.onnx"), batch_size=2, check_batch_sizes=(1,)))
    assert result["max_abs_diff"] <= 1e-4
