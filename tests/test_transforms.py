"""JointTransform keeps image, depth, label and intrinsics consistent: 3D points land where the new K projects them."""

import numpy as np
import pytest

from indoor_parsing.data.transforms import JointTransform

H, W = 48, 64
K0 = np.array([[50.0, 0.0, 31.2], [0.0, 55.0, 24.7], [0.0, 0.0, 1.0]])


def _scene(seed: int = 0):
    """Known 3D points at integer pixels of the original image, each painted as a 3x3 patch of a unique id / depth.

    A 3x3 patch survives any nearest (centre-aligned) resize with scale >= 0.5: the output pixel nearest to the
    projection reads a source pixel within one pixel of the original one.
    """
    rng = np.random.default_rng(seed)
    v, u = np.meshgrid(np.arange(3, H - 3, 6), np.arange(3, W - 3, 6), indexing="ij")
    u, v = u.ravel(), v.ravel()
    z = rng.uniform(1.0, 5.0, u.size)
    points = np.linalg.inv(K0) @ np.stack([u, v, np.ones_like(u)]) * z  # (3, N) camera points
    label = np.full((H, W), 255, np.uint8)
    depth = np.zeros((H, W), np.float32)
    for i, (ui, vi) in enumerate(zip(u, v, strict=True)):
        label[vi - 1 : vi + 2, ui - 1 : ui + 2] = i
        depth[vi - 1 : vi + 2, ui - 1 : ui + 2] = z[i]
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return image, depth, label, points, z.astype(np.float32)


def _check_points_land(out: dict, points: np.ndarray, z: np.ndarray) -> int:
    """Every point projecting into the output (with the returned K) reads its own id and depth; returns the count."""
    h, w = out["label"].shape
    uvw = out["K"] @ points
    u, v = np.round(uvw[0] / uvw[2]).astype(int), np.round(uvw[1] / uvw[2]).astype(int)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    ids = np.nonzero(inside)[0]
    np.testing.assert_array_equal(out["label"][v[ids], u[ids]], ids)
    np.testing.assert_array_equal(out["depth"][v[ids], u[ids]], z[ids])
    return ids.size


def _assert_types(out: dict, hw: tuple[int, int]) -> None:
    assert all(out[k].flags.c_contiguous for k in ("image", "depth", "label")), "torch.from_numpy needs these"
    assert out["image"].dtype == np.uint8 and out["image"].shape == (*hw, 3)
    assert out["K"].dtype == np.float64 and out["K"].shape == (3, 3)
    assert out["depth"].dtype == np.float32 and out["depth"].shape == hw
    assert out["label"].dtype == np.uint8 and out["label"].shape == hw


@pytest.mark.parametrize("size", [(24, 32), (36, 40), (96, 100), (H, W)])
def test_eval_resize_keeps_points_and_updates_K_exactly(size):
    image, depth, label, points, z = _scene()
    out = JointTransform(size=size)(image, K0, depth, label)
    _assert_types(out, size)
    assert _check_points_land(out, points, z) == points.shape[1]
    sx, sy = size[1] / W, size[0] / H
    expected = np.array([[sx * 50, 0, sx * (31.2 + 0.5) - 0.5], [0, sy * 55, sy * (24.7 + 0.5) - 0.5], [0, 0, 1]])
    np.testing.assert_allclose(out["K"], expected, rtol=0, atol=1e-12)


def test_scale_and_crop_keep_points():
    image, depth, label, points, z = _scene()
    t = JointTransform(size=(40, 48), train=True, scale_range=(0.6, 1.8))
    seen = 0
    for seed in range(12):
        out = t(image, K0, depth, label, rng=np.random.default_rng(seed))
        _assert_types(out, (40, 48))
        assert out["K"][0, 0] > 0
        seen += _check_points_land(out, points, z)
    assert seen > 100


def test_flip_mirrors_exactly():
    image, depth, label, points, z = _scene()
    t = JointTransform(train=True, flip=True)  # size None: crop to the input size, scale 1
    flipped = 0
    for seed in range(8):
        out = t(image, K0, depth, label, rng=np.random.default_rng(seed))
        assert _check_points_land(out, points, z) == points.shape[1]
        if out["K"][0, 0] < 0:
            flipped += 1
            np.testing.assert_array_equal(out["image"], image[:, ::-1])
            np.testing.assert_allclose(out["K"][0, :], [-50.0, 0.0, W - 1 - 31.2])
        else:
            np.testing.assert_array_equal(out["image"], image)
    assert 0 < flipped < 8


def test_everything_together_and_padding():
    image, depth, label, points, z = _scene()
    t = JointTransform(size=(40, 56), train=True, scale_range=(0.5, 2.0), flip=True, color_jitter=0.4,
                       gamma_range=(0.7, 1.5))  # fmt: skip
    seen, padded = 0, 0
    for seed in range(16):
        out = t(image, K0, depth, label, rng=np.random.default_rng(seed))
        _assert_types(out, (40, 56))
        seen += _check_points_land(out, points, z)
        if round(out["K"][1, 1] / 55 * H) < 40:  # scaled below the crop size: bottom rows are padding
            padded += 1
            assert (out["label"][-1] == 255).all() and (out["depth"][-1] == 0).all()
    assert seen > 100 and padded > 0


def test_photometric_ops_touch_only_the_image():
    image, depth, label, _, _ = _scene()
    kwargs = dict(size=(40, 48), train=True, scale_range=(0.8, 1.2), flip=True)
    plain = JointTransform(**kwargs)(image, K0, depth, label, rng=np.random.default_rng(5))
    jitter = JointTransform(**kwargs, color_jitter=0.4, gamma_range=(0.5, 0.6))(
        image, K0, depth, label, rng=np.random.default_rng(5)
    )
    np.testing.assert_array_equal(plain["K"], jitter["K"])
    np.testing.assert_array_equal(plain["depth"], jitter["depth"])
    np.testing.assert_array_equal(plain["label"], jitter["label"])
    assert np.abs(plain["image"].astype(int) - jitter["image"]).mean() > 5


def test_depth_is_never_interpolated():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 8.0, (H, W)).astype(np.float32)
    depth[rng.random((H, W)) < 0.2] = 0
    allowed = set(depth.ravel().tolist()) | {0.0}
    for t in (JointTransform(size=(37, 71)), JointTransform(size=(30, 40), train=True, scale_range=(0.5, 1.7))):
        for seed in range(4):
            out = t(image, K0, depth, rng=np.random.default_rng(seed))
            assert out["label"] is None
            assert set(out["depth"].ravel().tolist()) <= allowed


def test_deterministic_for_a_seed():
    image, depth, label, _, _ = _scene()
    t = JointTransform(size=(40, 48), train=True, scale_range=(0.7, 1.4), flip=True, color_jitter=0.3,
                       gamma_range=(0.8, 1.2))  # fmt: skip
    a = t(image, K0, depth, label, rng=np.random.default_rng(7))
    b = t(image, K0, depth, label, rng=np.random.default_rng(7))
    for key in ("image", "K", "depth", "label"):
        np.testing.assert_array_equal(a[key], b[key])
    others = [t(image, K0, depth, label, rng=np.random.default_rng(s)) for s in range(3)]
    assert any(not np.array_equal(o["image"], a["image"]) for o in others)


def test_bad_input_is_named():
    image, depth, label, _, _ = _scene()
    t = JointTransform(size=(24, 32))
    with pytest.raises(ValueError, match="depth must be"):
        t(image, K0, depth[:-1], label)
    with pytest.raises(ValueError, match="label must be uint8"):
        t(image, K0, depth, label.astype(np.int64))
    with pytest.raises(ValueError, match="image must be uint8"):
        t(image.astype(np.float32), K0)
    with pytest.raises(ValueError, match="scale_range"):
        JointTransform(scale_range=(1.5, 1.0))
