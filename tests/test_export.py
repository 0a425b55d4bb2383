"""Export of every method's RGB-only graph: ONNX (run in onnxruntime) and TorchScript match PyTorch's logits."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from indoor_parsing.cli import main
from indoor_parsing.errors import UserError
from indoor_parsing.inference.checkpoints import load_method
from indoor_parsing.inference.export import ATOL, RTOL, export
from tests.inference_tools import METHOD_CONFIGS, save_checkpoint

SIZE = (40, 56)  # not a multiple of the encoders' stride: the padding is part of the exported graph


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_ckpts")
    return {m: save_checkpoint(c, root / f"{m}.ckpt", root / m) for m, c in METHOD_CONFIGS.items()}


@pytest.mark.parametrize("method", sorted(METHOD_CONFIGS))
def test_onnx_matches_pytorch_in_onnxruntime(method, checkpoints, tmp_path):
    path = tmp_path / f"{method}.onnx"
    report = export(checkpoints[method], "onnx", SIZE, path, repeats=1)
    module, _ = load_method(checkpoints[method])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"] and session.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 5):  # dynamic batch: neither is the export example's size
        x = torch.randn(batch, 3, *SIZE, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            reference = module(x).numpy()
        (logits,) = session.run(["logits"], {"image": x.numpy()})
        assert logits.shape == (batch, module.num_classes, *SIZE)
        assert reference.std() > 0.05  # real logits, not a near-constant map any graph would match
        np.testing.assert_allclose(logits, reference, rtol=RTOL, atol=ATOL)
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["classes"] == module.class_names and meta["input"]["shape"] == ["batch", 3, *SIZE]
    assert report["latency_ms"]["onnx"] > 0 and report["latency_ms"]["pytorch"] > 0


@pytest.mark.parametrize("method", sorted(METHOD_CONFIGS))
def test_torchscript_matches_pytorch(method, checkpoints, tmp_path):
    path = tmp_path / f"{method}.ts"
    export(checkpoints[method], "torchscript", SIZE, path, repeats=1)
    module, _ = load_method(checkpoints[method])
    scripted = torch.jit.load(str(path))
    x = torch.randn(4, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), module(x), rtol=RTOL, atol=ATOL)


def test_export_command_prints_latency_next_to_pytorch(checkpoints, tmp_path, capsys):
    out = tmp_path / "model.ts"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--ckpt_path", str(checkpoints["baseline"]), "--format", "torchscript", "--size", "32", "48",
              "--output", str(out), "--repeats", "2"])  # fmt: skip
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "| PyTorch eager |" in printed and "| TorchScript |" in printed
    assert "max |Δ logits|" in printed


def test_depth_input_checkpoints_refuse_to_export(tmp_path):
    ckpt = save_checkpoint("geoaware_table4/synthrooms/hha.yaml", tmp_path / "hha.ckpt", tmp_path / "work")
    with pytest.raises(UserError, match="needs depth at test time"):
        export(ckpt, "onnx", SIZE, tmp_path / "hha.onnx")
    assert not (tmp_path / "hha.onnx").exists()
