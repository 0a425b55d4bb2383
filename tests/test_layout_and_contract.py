import json

import numpy as np
import pytest
import torch

from indoor_parsing.data.layout import pose_is_valid, read_layout
from indoor_parsing.data.sample import BatchContractError, validate_batch
from indoor_parsing.io import DataFileError, atomic_path, load_depth, load_label, save_depth
from tests.helpers import make_batch, make_layout


def test_layout_round_trip(tmp_path):
    make_layout(tmp_path, frames=2)
    manifest, frames = read_layout(tmp_path)
    assert manifest["num_frames"] == len(frames) == 8
    assert frames[0].K.shape == (3, 3) and frames[1].T[0, 3] == pytest.approx(0.1)


def test_missing_layout_names_the_file(tmp_path):
    with pytest.raises(DataFileError, match="manifest.json.*prepare"):
        read_layout(tmp_path)


def test_malformed_frame_record_names_the_index(tmp_path):
    make_layout(tmp_path, frames=1)
    index = json.loads((tmp_path / "index.json").read_text())
    del index["frames"][2]["intrinsics"]
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataFileError, match=r"index.json frame 2"):
        read_layout(tmp_path)


def test_depth_codecs_and_errors(tmp_path):
    depth = np.array([[0.0, 1.2345], [65.6, 2.0]], np.float32)
    save_depth(tmp_path / "d.png", depth)
    np.testing.assert_allclose(load_depth(tmp_path / "d.png"), [[0, 1.234], [0, 2.0]], atol=1e-6)  # >65.535 m dropped
    save_depth(tmp_path / "d.npy", depth)
    np.testing.assert_array_equal(load_depth(tmp_path / "d.npy"), depth)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataFileError, match="bad.png"):
        load_label(tmp_path / "bad.png")
    with pytest.raises(DataFileError, match="missing.png: file not found"):
        load_depth(tmp_path / "missing.png")


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.json") as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_pose_validity():
    assert pose_is_valid(np.eye(4))
    bad = np.eye(4)
    bad[0, 0] = -np.inf
    assert not pose_is_valid(bad) and not pose_is_valid(None) and not pose_is_valid(2 * np.eye(4))


def test_validate_batch_accepts_contract():
    assert validate_batch(make_batch(), ("image", "label", "depth"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("label"), r"'label': missing"),
        (lambda b: b.update(label=b["label"].int()), r"'label': expected torch.int64"),
        (lambda b: b.update(image=b["image"][:, :1]), r"'image': expected .*\(B,3,H,W\)"),
        (lambda b: b.update(depth=b["depth"][..., :-1]), r"'depth': expected batch 2 and size"),
        (lambda b: b.update(intrinsics=torch.zeros(2, 4, 4)), r"'intrinsics': expected \(B,3,3\)"),
        (lambda b: b.update(neighbors=[{"image": b["image"]}]), r"neighbors\[0\].'intrinsics': missing"),
    ],
)
def test_validate_batch_names_the_key(mutate, message):
    batch = make_batch()
    mutate(batch)
    with pytest.raises(BatchContractError, match=message):
        validate_batch(batch, ("image", "label"))
