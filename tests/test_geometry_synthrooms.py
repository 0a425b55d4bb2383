"""Geometry on SynthRooms ground truth: warping frame A into frame B reproduces B's depth and labels where valid."""

import numpy as np
import torch

from indoor_parsing.data.layout import read_layout
from indoor_parsing.data.synthrooms import generate_synthrooms
from indoor_parsing.geometry.camera import backproject, relative_pose, transform_points
from indoor_parsing.geometry.warp import inverse_warp
from indoor_parsing.io import load_depth, load_label


def _view(root, frame):
    depth = torch.from_numpy(load_depth(root / frame.depth))[None, None].double()  # (1, 1, H, W)
    label = torch.from_numpy(load_label(root / frame.label).astype(np.int64))[None, None]  # (1, 1, H, W)
    return depth, label, torch.from_numpy(frame.K)[None], torch.from_numpy(frame.T)[None]


def test_warping_a_into_b_reproduces_depth_and_labels(tmp_path):
    root = generate_synthrooms(tmp_path / "s", num_scenes=1, frames_per_sequence=6, height=60, width=80,
                               split=(1, 0, 0), progress=False)  # fmt: skip
    _, frames = read_layout(root)
    checked = 0
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        depth_a, label_a, K_a, T_a = _view(root, a)
        depth_b, label_b, K_b, T_b = _view(root, b)
        points_a = transform_points(T_a, backproject(depth_a, K_a))  # (1, 3, H, W) world points seen by A
        T_b_to_a = relative_pose(T_b, T_a)
        warped_points, valid = inverse_warp(points_a, depth_a, depth_b, K_b, K_a, T_b_to_a)
        warped_labels, valid_l = inverse_warp(label_a, depth_a, depth_b, K_b, K_a, T_b_to_a, mode="nearest")
        if valid.sum() < 500:
            continue
        z_in_b = transform_points(torch.linalg.inv(T_b), warped_points)[:, 2:3]  # (1, 1, H, W)
        dz = (z_in_b - depth_b)[valid].abs()
        # both depth maps carry SynthRooms sensor noise (about 1% of depth each): a few cm of disagreement
        assert dz.median() < 0.04 and (dz < 0.1).double().mean() > 0.95, float(dz.median())
        agree = (warped_labels == label_b)[valid_l].double().mean()
        assert agree > 0.97, float(agree)
        checked += 1
    assert checked >= 3
