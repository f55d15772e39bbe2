"""Mixture-of-experts layer and routers (Sparse Mixers)."""

import pytest
import torch
import torch.nn.functional as F

import tokenmix
from conftest import SMALL, random_ids
from tokenmix.models.moe import MoEFeedForward, expert_capacity, experts_choose, num_groups, tokens_choose


def moe_layer(**overrides):
    config = tokenmix.make_config("sparse_mixer", "tiny", **{**SMALL, "expert_dropout": 0.0, **overrides})
    return MoEFeedForward(config, layer_index=3).eval()


def dense_reference(layer, x, slot_token, slot_weight):
    """The MoE output computed the slow, obvious way: loop over groups, experts and slots."""
    groups = slot_token.shape[0]
    tokens = x.reshape(groups, -1, x.shape[-1])
    out = torch.zeros_like(tokens)
    ex = layer.experts
    for g in range(groups):
        for e in range(slot_token.shape[1]):
            for c in range(slot_token.shape[2]):
                t = slot_token[g, e, c]
                h = ex.activation(tokens[g, t] @ ex.weight_in[e] + ex.bias_in[e, 0])
                out[g, t] += slot_weight[g, e, c] * (h @ ex.weight_out[e] + ex.bias_out[e, 0])
    return out.view_as(x)


def test_capacity_and_group_arithmetic():
    assert expert_capacity(4096, 16, 1.0, 4) == 256  # Sparse Mixer Base
    assert expert_capacity(4096, 16, 0.5, 4) == 128  # Fast Sparse Mixer
    assert expert_capacity(20, 16, 1.0, 4) == 4  # min_expert_capacity
    assert expert_capacity(3, 16, 1.0, 4) == 3  # never more than the group holds
    assert num_groups(8 * 512, 4096) == 1 and num_groups(64 * 512, 4096) == 8
    assert num_groups(4097 * 3, 4096) == 17  # 12291 = 3 * 17 * 241: smallest divisor >= ceil(12291 / 4096) = 4
    assert num_groups(10, 4) == 5  # ceil(10/4) = 3 does not divide 10; 5 does


@pytest.mark.parametrize("router,k", [("experts_choose", 1), ("tokens_choose", 1), ("tokens_choose", 2)])
def test_dispatch_matches_dense_reference(router, k):
    layer = moe_layer(router=router, num_selected_experts=k, max_group_size=16)
    x = torch.randn(2, 16, 64)
    y, _ = layer(x, None)
    _, _, slot_token, slot_weight = layer.route(x.reshape(2, 16, 64), None)
    assert torch.allclose(y, dense_reference(layer, x, slot_token, slot_weight), atol=1e-5)


def test_experts_choose_fills_every_expert_with_its_top_tokens():
    probs = torch.softmax(torch.randn(2, 12, 3), dim=-1)
    token, weight = experts_choose(probs, None, capacity=4)
    assert token.shape == (2, 3, 4)
    assert (weight > 0).all()  # every slot taken
    for g in range(2):
        for e in range(3):
            top = probs[g, :, e].topk(4).indices
            assert set(token[g, e].tolist()) == set(top.tolist())
            assert torch.allclose(weight[g, e], probs[g, token[g, e], e])  # combine weight = router prob


def test_tokens_choose_respects_capacity_and_priority():
    # 4 tokens, 2 experts, capacity 1. Everyone prefers expert 0; token 2 is the most confident.
    probs = torch.tensor([[[0.6, 0.4], [0.7, 0.3], [0.9, 0.1], [0.55, 0.45]]])
    token, weight = tokens_choose(probs, None, capacity=1, k=2, prioritize=True)
    assert token[0, 0, 0] == 2 and weight[0, 0, 0] == pytest.approx(0.9)  # top-1 claims by confidence
    # expert 1's only slot goes to a second choice, in priority order: token 2 again (most confident)
    assert token[0, 1, 0] == 2 and weight[0, 1, 0] == pytest.approx(0.1)
    # without batch prioritisation, position order decides
    token, _ = tokens_choose(probs, None, capacity=1, k=1, prioritize=False)
    assert token[0, 0, 0] == 0


def test_tokens_choose_first_choices_beat_second_choices():
    # token 0 wants expert 1 first; token 1 wants expert 0 first, expert 1 second (more confident).
    probs = torch.tensor([[[0.2, 0.8], [0.95, 0.05]]])
    token, weight = tokens_choose(probs, None, capacity=1, k=2, prioritize=True)
    assert token[0, 1, 0] == 0 and weight[0, 1, 0] == pytest.approx(0.8)


@pytest.mark.parametrize("router,k", [("experts_choose", 1), ("tokens_choose", 2)])
def test_no_slot_holds_two_tokens_and_no_token_exceeds_capacity(router, k):
    layer = moe_layer(router=router, num_selected_experts=k, train_capacity_factor=0.5)
    layer.train()
    _, _, slot_token, slot_weight = layer.route(torch.randn(1, 32, 64), None)
    taken = slot_weight > 0
    for e in range(slot_token.shape[1]):
        chosen = slot_token[0, e][taken[0, e]]
        assert len(set(chosen.tolist())) == len(chosen)  # a token at most once per expert
        assert len(chosen) <= expert_capacity(32, 4, 0.5, 4)


def test_padding_never_takes_capacity_or_changes_real_outputs():
    for router, k in (("experts_choose", 1), ("tokens_choose", 2)):
        layer = moe_layer(router=router, num_selected_experts=k)
        x = torch.randn(2, 8, 64)
        mask = torch.ones(2, 8, dtype=torch.bool)
        mask[1, 3:] = False
        y, stats = layer(x, mask)
        other = x.clone()
        other[1, 3:] = torch.randn(5, 64) * 10  # different padding content
        y2, _ = layer(other, mask)
        assert torch.allclose(y[mask], y2[mask], atol=1e-6)
        assert (y[~mask] == 0).all()
        _, _, slot_token, slot_weight = layer.route(x.reshape(1, 16, 64), mask.reshape(1, 16))
        pad_tokens = set(torch.nonzero(~mask.reshape(-1)).flatten().tolist())
        assert not pad_tokens & set(slot_token[slot_weight > 0].tolist())


def test_auxiliary_losses_on_a_hand_computed_case():
    layer = moe_layer(router="tokens_choose", num_selected_experts=1, num_experts=2)
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]])
    probs = logits.softmax(-1)
    token, weight = tokens_choose(probs, None, 4, 1, True)
    stats = layer.statistics(logits, probs, token, weight, None)
    z = (torch.logsumexp(logits, -1) ** 2).mean()
    assert stats["router_z_loss"] == pytest.approx(z.item())
    fraction = torch.tensor([2 / 3, 1 / 3])  # tokens 0 and 2 pick expert 0, token 1 expert 1
    assert stats["load_balancing_loss"] == pytest.approx((2 * (fraction * probs[0].mean(0)).sum()).item())
    assert stats["fraction_dropped"] == 0


def test_model_adds_weighted_aux_loss_and_reports_router_stats():
    model = tokenmix.create_model("sparse_mixer", "tiny", head="classification", **SMALL).eval()
    ids, labels = random_ids(2, 16), torch.tensor([0, 1])
    out = model(ids, labels=labels)
    stats = out.router_stats
    expected = 0.01 * stats["load_balancing_loss"] + 1e-4 * stats["router_z_loss"]
    assert torch.allclose(out.aux_loss, expected)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, labels) + out.aux_loss)
    assert stats["expert_usage"].shape == (2, 4)  # tiny: 2 MoE layers, 4 experts


def test_gradients_reach_router_and_experts_and_eval_is_deterministic():
    model = tokenmix.create_model("sparse_mixer", "tiny", head="classification", router_jitter=0.01, **SMALL)
    out = model(random_ids(2, 16), labels=torch.tensor([0, 1]))
    out.loss.backward()
    moe = model.encoder.layers[model.config.moe_layers().__iter__().__next__()].ff
    for p in (moe.router.weight, moe.experts.weight_in, moe.experts.weight_out):
        assert p.grad is not None and p.grad.abs().sum() > 0
    model.eval()
    ids = random_ids(2, 16)
    assert torch.equal(model(ids).last_hidden_state, model(ids).last_hidden_state)


def test_sparse_mixer_layouts_and_presets():
    base = tokenmix.make_config("sparse_mixer", "base")
    assert (base.hidden_size, base.num_layers, base.intermediate_size, base.num_experts) == (512, 14, 2048, 16)
    assert base.attention_layers() == {10, 11, 12, 13} and base.moe_layers() == {5, 6, 7, 8}
    small = tokenmix.make_config("fast_sparse_mixer", "small")
    assert small.num_layers == 8 and small.train_capacity_factor == small.eval_capacity_factor == 0.5
    assert small.attention_layers() == {4, 5, 6, 7} and small.moe_layers() == {2, 3, 4, 5}
    fnet_moe = tokenmix.make_config("fnet", "mini", num_moe_layers=2, moe_layout="top")
    assert fnet_moe.moe_layers() == {2, 3} and fnet_moe.mixing == "fourier"
    model = tokenmix.create_model("sparse_mixer", "tiny", **SMALL)
    assert all(torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if n.endswith("bias"))


@pytest.mark.parametrize("overrides,match", [
    (dict(train_capacity_factor=0.0), "train_capacity_factor must be > 0"),
    (dict(eval_capacity_factor=-1.0), "eval_capacity_factor must be > 0"),
    (dict(num_selected_experts=5), "exceeds num_experts=4"),
    (dict(router="random_choice"), "router='random_choice' is not valid"),
])
def test_bad_moe_configuration(overrides, match):
    with pytest.raises(ValueError, match=match):
        tokenmix.create_model("sparse_mixer", "tiny", **SMALL, **overrides)


def test_nan_router_logits_name_the_layer():
    layer = moe_layer()
    with pytest.raises(FloatingPointError, match="layer 3"):
        layer(torch.full((1, 4, 64), float("nan")), None)


def test_tiny_sparse_mixer_learns_a_small_task():
    torch.manual_seed(0)
    model = tokenmix.create_model("sparse_mixer", "tiny", head="classification", **SMALL, dropout=0.0)
    ids = random_ids(32, 16, seed=1)
    labels = (ids[:, 1] % 2).long()  # parity of the second token
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
