"""ListOps generator: exact values, tokenisation that keeps brackets, determinism, bounds."""

from __future__ import annotations

import pytest
import torch

from tokenmix.lra import listops
from tokenmix.lra.listops import (
    CLS_ID,
    PAD_ID,
    TOKEN_TO_ID,
    UNK_ID,
    VOCAB,
    encode,
    evaluate_expression,
    generate_examples,
    make_split,
    max_expression_length,
)


@pytest.mark.parametrize("expression, value", [
    ("[SM 5 7 ]", 2),
    ("[MED 1 9 3 ]", 3),
    ("[MED 1 4 ]", 2),  # even count: mean of the middle two, rounded down (LRA's int(np.median))
    ("[MED 1 2 3 9 ]", 2),
    ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
    ("[MIN 8 [MAX 1 5 ] 6 ]", 5),
    ("[SM [SM 9 9 ] [MED 7 [MAX 0 8 ] 1 ] 3 ]", 8 + 7 + 3 - 10),
    ("[MAX [MIN [SM 4 4 ] 9 ] [MED 2 3 ] ]", 8),
])
def test_evaluate_known_expressions(expression, value):
    assert evaluate_expression(expression) == value
    assert evaluate_expression(expression.split()) == value


@pytest.mark.parametrize("bad", ["", "[MAX 1 2", "[MAX 1 2 ] ]", "[MAX ]", "3", "[FOO 1 2 ]", "[MAX 1 12 ]", "[MAX 1 2 ] 3"])
def test_malformed_expressions_raise(bad):
    with pytest.raises(ValueError):
        evaluate_expression(bad)


def test_vocabulary_layout():
    assert VOCAB[:2] == ("[PAD]", "[CLS]") and PAD_ID == 0 and CLS_ID == 1
    assert len(VOCAB) == len(set(VOCAB)) == listops.VOCAB_SIZE


def test_brackets_survive_tokenisation():
    expression = "[MAX 2 9 [MIN 4 7 ] [MED 1 2 3 ] [SM 5 5 ] 0 ]"
    tokens = expression.split()
    ids, mask = encode(tokens, 32)
    assert ids[0] == CLS_ID and UNK_ID not in ids
    assert ids[1 : len(tokens) + 1] == [TOKEN_TO_ID[t] for t in tokens]
    for op in ("MAX", "MIN", "MED", "SM"):
        assert ids.count(TOKEN_TO_ID[f"[{op}"]) == tokens.count(f"[{op}") == 1
    assert ids.count(TOKEN_TO_ID["]"]) == 4  # every closing bracket is its own token
    assert len({TOKEN_TO_ID[t] for t in ("[MAX", "[MIN", "[MED", "[SM", "]")}) == 5
    assert mask == [1] * (len(tokens) + 1) + [0] * (32 - len(tokens) - 1)
    assert ids[len(tokens) + 1 :] == [PAD_ID] * (32 - len(tokens) - 1)


def test_encode_truncates_and_maps_unknown_tokens():
    ids, mask = encode(["[MAX", "1", "oops", "]"], 3)
    assert ids == [CLS_ID, TOKEN_TO_ID["[MAX"], TOKEN_TO_ID["1"]] and mask == [1, 1, 1]
    assert encode(["oops"], 4)[0] == [CLS_ID, UNK_ID, PAD_ID, PAD_ID]


def test_generated_examples_are_deterministic_and_consistent():
    kwargs = dict(max_depth=3, max_args=4)
    a, b = generate_examples(50, 7, **kwargs), generate_examples(50, 7, **kwargs)
    assert a == b and a != generate_examples(50, 8, **kwargs)
    for tokens, label in a:
        assert label == evaluate_expression(tokens) and 0 <= label <= 9
        assert all(t in TOKEN_TO_ID for t in tokens)


def test_depth_args_and_length_bounds():
    examples = generate_examples(200, 1, max_depth=2, max_args=3, min_length=8, max_length=15, op_prob=0.5)
    for tokens, _ in examples:
        assert 8 <= len(tokens) <= 15
        depth = deepest = 0
        for token in tokens:
            depth += token.startswith("[") - (token == "]")
            deepest = max(deepest, depth)
        assert depth == 0 and 1 <= deepest <= 2
    flat = generate_examples(100, 2, max_depth=1, max_args=3)
    assert all(t[0].startswith("[") and 4 <= len(t) <= 5 for t, _ in flat)
    assert max_expression_length(1, 3) == 5 and max_expression_length(2, 3) == 2 + 3 * 5


def test_lra_settings_generate_long_expressions():
    examples = generate_examples(3, 0, **listops.LRA_SETTINGS)
    assert all(500 <= len(tokens) <= 2000 for tokens, _ in examples)


def test_impossible_bounds_raise():
    with pytest.raises(ValueError, match="no expression"):
        generate_examples(1, 0, max_depth=1, max_args=3, min_length=10)
    with pytest.raises(ValueError):
        generate_examples(1, 0, max_depth=1, max_args=1)


def test_exclude_makes_splits_disjoint():
    train = generate_examples(300, 0, max_depth=1, max_args=3)
    seen = {" ".join(t) for t, _ in train}
    held_out = generate_examples(100, 1, max_depth=1, max_args=3, exclude=seen)
    assert not seen & {" ".join(t) for t, _ in held_out}


def test_make_split_tensors():
    ids, mask, labels = make_split(64, 3, 48, max_depth=3, max_args=4)
    assert ids.shape == mask.shape == (64, 48) and labels.shape == (64,)
    assert ids.dtype == mask.dtype == labels.dtype == torch.long
    assert bool((ids[:, 0] == CLS_ID).all()) and int(labels.min()) >= 0 and int(labels.max()) <= 9
    assert bool(((ids == PAD_ID) == (mask == 0)).all())  # nothing truncated: max_length = seq_len - 1
    assert not bool((ids == UNK_ID).any())
    again = make_split(64, 3, 48, max_depth=3, max_args=4)
    assert all(torch.equal(x, y) for x, y in zip((ids, mask, labels), again))
    # Labels agree with re-evaluating the decoded inputs.
    for row, label in zip(ids[:5].tolist(), labels[:5].tolist()):
        assert evaluate_expression([VOCAB[i] for i in row[1:] if i != PAD_ID]) == label
