"""``tokenmix export onnx``: every variant exports, onnxruntime matches PyTorch on batch sizes other
than the traced one, and bad input gets a clear error."""

import numpy as np
import pytest
import torch

import tokenmix
from tokenmix.cli.main import main
from tokenmix.io.configs import OnnxExportConfig

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

from tokenmix.io.onnx import export_onnx  # noqa: E402

SEQ = 16
SMALL = dict(vocab_size=101, max_position_embeddings=SEQ)

# Every variant once; the heads are spread over them (a pretraining folder exports its encoder).
CASES = [
    ("fnet", "classification", ("logits",), False),
    ("linear", "none", ("last_hidden_state", "pooler_output"), False),
    ("random", "regression", ("logits",), False),
    ("ff_only", "none", ("last_hidden_state", "pooler_output"), True),
    ("hybrid", "pretraining", ("last_hidden_state", "pooler_output"), False),
    ("bert", "classification", ("logits",), True),
    ("sparse_mixer", "none", ("last_hidden_state", "pooler_output"), False),
]


def save(tmp_path, name, head="none", **overrides):
    folder = tmp_path / name
    tokenmix.create_model(name, "tiny", head=head, **{**SMALL, **overrides}).save_pretrained(folder)
    return folder


def run_onnx(path, ids, types, mask):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_ids": ids.numpy(), "token_type_ids": types.numpy(), "attention_mask": mask.numpy()})


@pytest.mark.parametrize("name,head,outputs,dynamic_length", CASES, ids=[c[0] for c in CASES])
def test_every_variant_exports_and_matches_pytorch(tmp_path, name, head, outputs, dynamic_length):
    folder = save(tmp_path, name, head, num_labels=3) if head == "classification" else save(tmp_path, name, head)
    result = export_onnx(OnnxExportConfig(str(folder), str(tmp_path / "m.onnx"), batch_size=2, check_batch_sizes=(1, 3)))
    assert result["outputs"] == list(outputs)
    assert result["max_abs_diff"] <= 1e-4 and result["checked_batch_sizes"] == [1, 2, 3]
    assert result["inputs"]["input_ids"] == ["batch", "seq_len" if dynamic_length else SEQ]

    # Independently of the built-in check: a batch size never traced, against the PyTorch model.
    reference = tokenmix.load_pretrained(folder, **({"head": "none"} if head == "pretraining" else {})).eval()
    if reference.config.num_moe_layers:  # the graph routes every example on its own
        reference = tokenmix.load_pretrained(folder, max_group_size=SEQ).eval()
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 101, (5, SEQ), generator=generator)
    types = torch.randint(0, 2, (5, SEQ), generator=generator)
    mask = torch.ones(5, SEQ, dtype=torch.long)
    mask[1, 10:] = 0
    with torch.no_grad():
        out = reference(ids, types, mask)
    got = run_onnx(tmp_path / "m.onnx", ids, types, mask)
    for name_, array in zip(outputs, got):
        expected = getattr(out, name_).numpy()
        assert array.shape == expected.shape
        np.testing.assert_allclose(array, expected, atol=1e-4, rtol=0)
    if head == "classification":
        assert got[0].shape == (5, 3)
    if dynamic_length:  # attention-only / FF-only graphs also take other lengths
        with torch.no_grad():
            short = reference(ids[:, :7], types[:, :7], mask[:, :7])
        got = run_onnx(tmp_path / "m.onnx", ids[:, :7], types[:, :7], mask[:, :7])
        np.testing.assert_allclose(got[0], getattr(short, outputs[0]).numpy(), atol=1e-4, rtol=0)


def test_mixing_model_graph_is_fixed_to_the_exported_length(tmp_path, capsys):
    folder = save(tmp_path, "fnet")
    out = tmp_path / "sub" / "fnet.onnx"
    assert main(["export", "onnx", str(folder), str(out), "--seq-len", "8", "--check-batch-sizes", "4"]) == 0
    printed = capsys.readouterr().out
    assert "exactly 8 tokens" in printed and "max abs diff" in printed
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [["batch", 8]] * 3
    ids = np.zeros((2, 12), dtype=np.int64)
    with pytest.raises(Exception, match="invalid dimensions"):  # another length is refused, not silently wrong
        session.run(None, {"input_ids": ids, "token_type_ids": ids, "attention_mask": ids + 1})
    assert [p.name for p in out.parent.iterdir()] == ["fnet.onnx"]  # no temporary file left behind
    import onnx

    graph = onnx.load(str(out)).graph  # the DFT matrices are constants, one copy for both layers
    assert not {"Cos", "Sin"} & {node.op_type for node in graph.node}
    assert [tuple(t.dims) for t in graph.initializer].count((2, 8, 8)) == 1


def test_encoder_only_drops_the_classification_head(tmp_path):
    folder = save(tmp_path, "bert", "classification")
    result = export_onnx(OnnxExportConfig(str(folder), str(tmp_path / "e.onnx"), encoder_only=True, check_batch_sizes=()))
    assert result["outputs"] == ["last_hidden_state", "pooler_output"] and result["head"] == "none"


def test_bad_input_gets_clear_errors(tmp_path, capsys):
    folder = save(tmp_path, "fnet")
    (tmp_path / "afile").write_text("x")
    cases = [
        (["export", "onnx", str(tmp_path / "missing"), str(tmp_path / "m.onnx")], "no such model directory"),
        (["export", "onnx", str(tmp_path), str(tmp_path / "m.onnx")], "no config.json"),
        (["export", "onnx", str(folder), str(tmp_path / "afile" / "m.onnx")], "cannot write"),
        (["export", "onnx", str(folder), str(tmp_path)], "is a folder"),
        (["export", "onnx", str(folder), str(tmp_path / "m.onnx"), "--seq-len", "64"], "max_position_embeddings=16"),
        (["export", "onnx", str(folder), str(tmp_path / "m.onnx"), "--opset", "13"], "opset=13"),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("tokenmix: error:") and message in err, (argv, err)
    assert not (tmp_path / "m.onnx").exists()


def test_fft_only_mixing_is_refused(tmp_path):
    folder = save(tmp_path, "linear", mixing="circulant")
    with pytest.raises(ValueError, match="circulant mixing"):
        export_onnx(OnnxExportConfig(str(folder), str(tmp_path / "m.onnx")))


def test_failed_check_writes_nothing(tmp_path):
    folder = save(tmp_path, "fnet")
    with pytest.raises(ValueError, match="was not written"):
        export_onnx(OnnxExportConfig(str(folder), str(tmp_path / "m.onnx"), atol=1e-15))
    assert list(tmp_path.glob("*.onnx*")) == [] and list(tmp_path.glob(".m.onnx*")) == []


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'tokenmix\[onnx\]'"):
        export_onnx(OnnxExportConfig(str(save(tmp_path, "fnet")), str(tmp_path / "m.onnx")))
