"""S4-Net data: neighbours from the whole sequence by warp-validity overlap, without repeats; the overlap diagnosis of
world-to-camera poses; RGB-only target sequences; the occlusion test under predicted depth's scale error."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from indoor_parsing.data.dataset import collate
from indoor_parsing.data.multiview import S4NetDataModule
from indoor_parsing.data.overlap import candidates, diagnose, sequence_overlap
from indoor_parsing.data.sequences import SequenceIndex
from indoor_parsing.geometry.overlap import view_overlap
from indoor_parsing.io import load_depth, load_label
from indoor_parsing.methods.s4net import merge_labels, warp_neighbors
from tests.test_s4net import K20, module, synth  # noqa: F401  (synth: the shared SynthRooms fixture)


def _depth(dm, f) -> torch.Tensor:
    return torch.from_numpy(load_depth(dm.root / f.depth))[None, None]


def test_overlap_is_the_warp_validity_over_the_whole_sequence(synth):  # noqa: F811
    synth.target_dataset()
    frames, s = synth.sequences["scan1"], synth.overlap_stride
    N = len(frames)
    assert synth.overlap.shape == (N, N) and synth.neighbor_window is None
    for i, j in [(0, 1), (2, 5), (0, N - 1), (N - 1, 3)]:
        a, b = frames[i], frames[j]
        K_a, T_a, K_b, T_b = (torch.from_numpy(x)[None].float() for x in (a.K, a.T, b.K, b.T))
        # e on every s-th pixel, e' at full resolution (stride 4 // 4): L_G's own validity test
        expected = view_overlap(_depth(synth, a), K_a, T_a, _depth(synth, b), K_b, T_b, stride=s)
        assert synth.overlap[i, j] == pytest.approx(float(expected), abs=0.011), (i, j)  # 2 pixels (float16 depth)
    far = [(i, j) for i, js in enumerate(synth.overlap_candidates) for j in js if abs(i - j) > 2]
    assert far, "candidates farther than two positions exist: the search is not a window"
    assert synth.overlap_candidates == candidates(synth.overlap, synth.min_overlap)
    windowed = S4NetDataModule(synth.source, synth.target, neighbor_window=2)
    windowed.target_dataset()
    assert all(abs(i - j) <= 2 for i, js in enumerate(windowed.overlap_candidates) for j in js)


def test_neighbours_are_distinct_and_padding_is_unusable(synth):  # noqa: F811
    frames = synth.sequences["scan1"]
    draw = SequenceIndex(frames).sampler(4, None, candidates=lambda i: [j for j in (1, 5) if j != i])
    for i in range(len(frames)):
        picked = draw(i)
        real = [j for j in picked if j != i]
        assert len(picked) == 4 and len(set(real)) == len(real) == len({1, 5} - {i})
    dataset = synth._dataset(frames, neighbors=draw)
    batch = collate([dataset[(1, 0)], dataset[(3, 0)]])
    usable = torch.stack([nb["usable"] for nb in batch["neighbors"]])  # (slots, B)
    assert usable.sum(0).tolist() == [1, 2]  # frame 1: only frame 5; frame 3: frames 1 and 5
    for nb in batch["neighbors"]:  # a padding slot is the frame itself, an actual neighbour is another frame
        same = (nb["pose"] == batch["pose"]).flatten(1).all(1)
        assert torch.equal(same, ~nb["usable"])


def test_world_to_camera_poses_are_diagnosed(synth):  # noqa: F811
    frames = synth.sequences["scan1"]
    inverted = [replace(f, pose=tuple(np.linalg.inv(f.T).ravel().tolist())) for f in frames]
    args = (synth.overlap_stride, *synth.occlusion_tol)
    overlap = sequence_overlap(synth.root, inverted, *args)
    message = diagnose(synth.root, inverted, overlap, 0.25, synth.overlap_stride, synth.occlusion_tol)
    assert message is not None and "no neighbour" in message and "look world-to-camera" in message, message
    synth.target_dataset()
    assert diagnose(synth.root, frames, synth.overlap, 0.25, synth.overlap_stride, synth.occlusion_tol) is None
    dm = S4NetDataModule(synth.source, synth.target)
    dm._noisy = lambda f: replace(f, pose=tuple(np.linalg.inv(f.T).ravel().tolist()))  # a world-to-camera layout
    with pytest.warns(UserWarning, match="world-to-camera"):
        dm.target_dataset()
    assert dm.frames_without_neighbor >= 0.5


def test_rgb_only_target_sequence_trains_the_depth_predicting_variant(synth):  # noqa: F811
    dm = S4NetDataModule(synth.source, synth.target, eval_sequences=["scan1", "scan2"], use_target_depth=False)
    dm.target_dataset()
    assert dm.rgb_only and any(dm.overlap_candidates)
    batch, _, _ = next(iter(dm.train_dataloader()))
    target = batch["target"]
    assert "depth" not in target and all("depth" not in nb for nb in target["neighbors"])
    m = module(depth_prediction=True, warp_depth="predicted")
    m.refresh_teacher_if_due(0)
    assert set(m.losses(batch)) == {"seg", "depth", "geo", "photo"}
    assert m.last_coverage["geo_coverage"] > 0


def _views(dm, f):
    label = torch.from_numpy(dm.classes.map(load_label(dm.root / f.label)).astype(np.int64))[None]
    onehot = torch.nn.functional.one_hot(torch.where(label == 255, K20, label), K20 + 1)[..., :K20]
    return label, onehot.permute(0, 3, 1, 2).double(), _depth(dm, f).double(), torch.from_numpy(f.K)[None], \
        torch.from_numpy(f.T)[None]  # fmt: skip


@pytest.mark.parametrize("scales", [(1.1, 0.9), (0.9, 1.1), (1.1, 1.1)])
def test_scale_tolerant_occlusion_test_keeps_the_warp_under_predicted_depth_scale(synth, scales):  # noqa: F811
    """SynthRooms pairs warped with both depths off by +-10 %: the scale-tolerant test keeps the pixels and labels
    of the true-depth warp; the metric test (5 cm + 5 %) throws most of them away when the errors differ."""
    frames = synth.sequences["scan1"]
    synth.target_dataset()
    pairs = [(i, j) for i, js in enumerate(synth.overlap_candidates) for j in js][:6]
    kept = total = agree = labelled = dropped = 0
    for i, j in pairs:
        label_e, _, depth_e, K_e, T_e = _views(synth, frames[i])
        _, prob, depth_n, K_n, T_n = _views(synth, frames[j])
        true = warp_neighbors(depth_e, K_e, T_e, [{"prob": prob, "depth": depth_n, "intrinsics": K_n, "pose": T_n}], 0)
        nb = {"prob": prob, "depth": scales[1] * depth_n, "intrinsics": K_n, "pose": T_n}
        tolerant = warp_neighbors(scales[0] * depth_e, K_e, T_e, [nb], 0, scale_invariant=True)
        metric = warp_neighbors(scales[0] * depth_e, K_e, T_e, [nb], 0)
        kept += int((tolerant[0]["valid"] & true[0]["valid"]).sum())
        dropped += int((metric[0]["valid"] & true[0]["valid"]).sum())
        total += int(true[0]["valid"].sum())
        merged = merge_labels(tolerant)
        ok = (merged != 255) & (label_e != 255)
        agree, labelled = agree + int((merged[ok] == label_e[ok]).sum()), labelled + int(ok.sum())
    assert total > 500 and kept / total > 0.9, kept / total
    assert agree / labelled > 0.95, agree / labelled
    if scales[0] != scales[1]:
        assert dropped / total < 0.5, dropped / total
