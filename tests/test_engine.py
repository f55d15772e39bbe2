"""The training engine on its own: one weight-decay policy, metrics by name, accumulation, stops, records."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tokenmix.models.factory import create_model
from tokenmix.train.distributed import DistributedContext
from tokenmix.train.engine import Engine, MeanLoss, TrainSettings, truncate_records
from tokenmix.train.state import gather_state

CPU = DistributedContext.single(torch.device("cpu"))


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("fnet", "tiny", head="classification", num_labels=3, vocab_size=40, max_position_embeddings=8,
                        dropout=0.0)


def batch(seed: int, size: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(5, 40, (size, 8), generator=generator),
            "labels": torch.randint(0, 3, (size,), generator=generator)}


def settings(**overrides) -> TrainSettings:
    return TrainSettings(**{"learning_rate": 1e-3, "schedule": lambda step, seconds: 1.0, "max_steps": 1, **overrides})


class SummedCrossEntropy:
    """Cross-entropy and accuracy as named sums, normalised by the examples of the whole step."""

    def counts(self, batch):
        return {"examples": float(len(batch["labels"]))}

    def loss(self, model, batch, totals):
        logits = model(batch["input_ids"]).logits
        loss_sum = F.cross_entropy(logits, batch["labels"], reduction="sum")
        correct = (logits.argmax(-1) == batch["labels"]).float().sum()
        return loss_sum / totals["examples"], {"loss_sum": loss_sum, "correct": correct}

    def metrics(self, sums, totals):
        return {"loss": sums["loss_sum"] / totals["examples"], "accuracy": sums["correct"] / totals["examples"]}


def test_every_parameter_is_decayed_biases_and_layer_norms_included():
    model = tiny_model()
    engine = Engine(model, settings(weight_decay=0.01), CPU)
    (group,) = engine.optimizer.param_groups
    assert group["weight_decay"] == 0.01
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}
    assert any(p.dim() == 1 for p in group["params"])  # biases and LayerNorm scales are in the decayed group


def test_micro_batches_with_named_sums_train_like_one_batch(tmp_path):
    whole, split = Engine(tiny_model(), settings(), CPU, tmp_path / "whole"), Engine(tiny_model(), settings(), CPU)
    a, b = batch(1), batch(2)
    (tmp_path / "whole").mkdir()
    merged = {k: torch.cat([a[k], b[k]]) for k in a}
    whole.run(lambda step: [merged], SummedCrossEntropy())
    split_metrics = split.train_step([a, b], SummedCrossEntropy(), 0.0)
    for name, tensor in whole.model.state_dict().items():
        torch.testing.assert_close(split.model.state_dict()[name], tensor)
    record = json.loads((tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["split"] == "train" and record["step"] == 1
    assert record["loss"] == pytest.approx(split_metrics["loss"]) and record["accuracy"] == pytest.approx(split_metrics["accuracy"])


def test_a_non_finite_loss_stops_the_run():
    engine = Engine(tiny_model(), settings(max_steps=5), CPU)
    with pytest.raises(FloatingPointError, match="loss became nan at step 1"):
        engine.run(lambda step: [batch(step)], MeanLoss(lambda model, b: model(**b).loss * float("nan")))


def test_the_time_budget_and_the_schedule_hook():
    seen = []

    def schedule(step: int, seconds: float) -> float:
        seen.append((step, seconds))
        return 0.5

    engine = Engine(tiny_model(), settings(max_steps=0, max_time=1e-6, schedule=schedule), CPU)
    result = engine.run(lambda step: [batch(step)], MeanLoss())
    assert (result.step, result.trained_steps, result.stop_reason) == (1, 1, "max_time")
    assert seen == [(0, 0.0)] and engine.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_evaluation_runs_every_n_steps_and_once_at_the_stop(tmp_path):
    engine = Engine(tiny_model(), settings(max_steps=5, eval_every=2, save_every=2), CPU, tmp_path)
    engine.run(lambda step: [batch(step)], MeanLoss(), lambda model: {"score": float(model.training)})
    evals = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if r["split"] == "eval"]
    assert [(r["step"], r["score"]) for r in evals] == [(2, 0.0), (4, 0.0), (5, 0.0)]  # in eval mode
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000005"]  # keep 1


def test_truncate_records_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "split": "train"}) + "\n" for s in (1, 2, 3, 4)))
    truncate_records(path, 2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def test_a_parameter_without_gradients_yet_resumes_exactly(tmp_path):
    """The pooler gets no gradient when the loss reads the first token's hidden state, so AdamW has no
    state for it; the checkpoint lacks that state and the resumed run ends like an uninterrupted one."""

    def first_token_loss(model, b):
        hidden = model.encoder(b["input_ids"]).last_hidden_state[:, 0]
        return F.cross_entropy(hidden[:, :3], b["labels"])

    def run(out, steps, resume=False):
        engine = Engine(tiny_model(), settings(max_steps=steps), CPU, out)
        out.mkdir(exist_ok=True)
        if resume:
            engine.resume()
        engine.run(lambda step: [batch(step)], MeanLoss(first_token_loss))
        return engine

    reference = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "b", 3, resume=True)
    _, optimizer_state = gather_state(resumed.model, resumed.optimizer)
    assert optimizer_state["state"] and not any("pooler" in name for name in optimizer_state["state"])  # still none
    for name, tensor in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor)
