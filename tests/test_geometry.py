"""Camera geometry: analytic scenes (planes seen from known poses) and the real HoloLens frames."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from indoor_parsing.geometry.camera import backproject, invert_pose, project, relative_pose, transform_points
from indoor_parsing.geometry.hha import hha
from indoor_parsing.geometry.overlap import overlap_matrix, view_overlap
from indoor_parsing.geometry.warp import inverse_warp, zbuffer_project
from indoor_parsing.io import load_depth, load_rgb
from indoor_parsing.methods.s4net_consistency import boundary_mask


def _K(fx=40.0, fy=42.0, cx=23.5, cy=15.5, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=dtype)


def _pose(rx=0.0, ry=0.0, rz=0.0, t=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Camera-to-world from Euler angles (radians, applied x then y then z) and a translation."""
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    Rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=torch.float64)
    Ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    Rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=torch.float64)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = Rz @ Ry @ Rx
    T[:3, 3] = torch.tensor(t, dtype=torch.float64)
    return T


def _random_pose(g: torch.Generator) -> torch.Tensor:
    a = (torch.rand(3, generator=g, dtype=torch.float64) - 0.5) * 2 * math.pi
    return _pose(*a.tolist(), t=tuple(torch.randn(3, generator=g, dtype=torch.float64).tolist()))


# Two planes facing the cameras: a textured far wall at world z = 4 and a near board at z = 2 covering x in
# [-0.3, 0.3], y in [-0.4, 0.4]. Textures are smooth so bilinear sampling reproduces them closely.
FAR_Z, NEAR_Z, NEAR_HALF = 4.0, 2.0, (0.3, 0.4)


def _texture(X: torch.Tensor, Y: torch.Tensor, near: torch.Tensor) -> torch.Tensor:
    far_tex = 0.5 + 0.25 * torch.sin(3 * X) + 0.2 * torch.cos(2 * Y)
    near_tex = 0.2 + 0.1 * torch.sin(5 * Y)
    return torch.where(near, near_tex, far_tex)


def _hits_near(origin: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Whether the segment from ``origin`` (3,) to world points X (3, ...) crosses the near board before X."""
    t = (NEAR_Z - origin[2]) / (X[2] - origin[2])
    hx, hy = origin[0] + t * (X[0] - origin[0]), origin[1] + t * (X[1] - origin[1])
    return (t > 0) & (t < 1 - 1e-9) & (hx.abs() <= NEAR_HALF[0]) & (hy.abs() <= NEAR_HALF[1])


def _render(T: torch.Tensor, K: torch.Tensor, H: int = 32, W: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray-cast the two-plane scene: image (1, 1, H, W) and z-depth (1, 1, H, W)."""
    rays = backproject(torch.ones(1, 1, H, W, dtype=torch.float64), K[None])[0]  # (3, H, W), z = 1
    d = torch.einsum("ij,jhw->ihw", T[:3, :3], rays)
    o = T[:3, 3]
    t_far = (FAR_Z - o[2]) / d[2]
    t_near = (NEAR_Z - o[2]) / d[2]
    Xn = o.view(3, 1, 1) + t_near * d
    near = (t_near > 0) & (Xn[0].abs() <= NEAR_HALF[0]) & (Xn[1].abs() <= NEAR_HALF[1])
    t = torch.where(near, t_near, t_far)
    X = o.view(3, 1, 1) + t * d
    return _texture(X[0], X[1], near)[None, None], t[None, None]  # camera z of the ray with z = 1 is t


def test_backproject_then_project_is_identity():
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        depth = (torch.rand(2, 1, 5, 7, generator=g) * 4 + 0.5).to(dtype)
        K = torch.stack([_K(dtype=dtype), _K(55, 50, 3.2, 2.1, dtype=dtype)])
        uv, z = project(backproject(depth, K), K)
        v, u = torch.meshgrid(torch.arange(5.0), torch.arange(7.0), indexing="ij")
        assert uv.dtype == dtype and uv.shape == (2, 2, 5, 7) and z.shape == (2, 1, 5, 7)
        atol = 1e-3 if dtype == torch.float32 else 1e-9
        torch.testing.assert_close(uv[:, 0], u.expand(2, 5, 7).to(dtype), atol=atol, rtol=0)
        torch.testing.assert_close(uv[:, 1], v.expand(2, 5, 7).to(dtype), atol=atol, rtol=0)
        torch.testing.assert_close(z, depth)


def test_project_behind_camera_is_finite():
    pts = torch.tensor([[[0.5, -1.0, 0.0], [0.2, 3.0, 0.0], [-1.0, 0.0, 1e-12]]], dtype=torch.float32)  # (1, 3, N=3)
    uv, z = project(pts, _K(dtype=torch.float32)[None])
    assert torch.isfinite(uv).all() and torch.equal(z[:, 0], pts[:, 2])


def test_relative_pose_and_transform_points():
    g = torch.Generator().manual_seed(1)
    T_a = torch.stack([_random_pose(g) for _ in range(3)])
    T_b = torch.stack([_random_pose(g) for _ in range(3)])
    pts_a = torch.randn(3, 3, 4, 5, generator=g, dtype=torch.float64)  # (B, 3, ...) trailing shape kept
    world = transform_points(T_a, pts_a)
    expected_b = transform_points(torch.linalg.inv(T_b), world)
    T_ab = relative_pose(T_a, T_b)
    torch.testing.assert_close(transform_points(T_ab, pts_a), expected_b)
    torch.testing.assert_close(T_ab, torch.linalg.inv(T_b) @ T_a)
    torch.testing.assert_close(relative_pose(T_a, T_a), torch.eye(4, dtype=torch.float64).expand(3, 4, 4))
    torch.testing.assert_close(invert_pose(T_a) @ T_a, torch.eye(4, dtype=torch.float64).expand(3, 4, 4))


def _two_view_setup():
    K = _K()
    T_tgt, T_src = _pose(), _pose(ry=0.05, t=(0.5, 0.0, 0.0))
    img_t, dep_t = _render(T_tgt, K)
    img_s, dep_s = _render(T_src, K)
    return K[None], T_tgt[None], T_src[None], img_t, dep_t, img_s, dep_s


def test_inverse_warp_reproduces_target_and_masks_occlusion():
    K, T_tgt, T_src, img_t, dep_t, img_s, dep_s = _two_view_setup()
    T = relative_pose(T_tgt, T_src)
    warped, valid = inverse_warp(img_s, dep_s, dep_t, K, K, T)
    assert valid.dtype == torch.bool and valid.shape == (1, 1, 32, 48)
    err = (warped - img_t).abs()[valid]
    assert err.mean() < 0.01 and err.quantile(0.95) < 0.03
    assert (warped[~valid] == 0).all()
    # Ground truth: target pixels whose surface point is hidden behind the near board from the source camera.
    X = transform_points(T_tgt, backproject(dep_t, K))[0]  # (3, H, W) world
    occluded = _hits_near(T_src[0, :3, 3], X)
    uv, z = project(transform_points(T, backproject(dep_t, K)), K)
    inside = (uv[0, 0] >= 0) & (uv[0, 0] <= 47) & (uv[0, 1] >= 0) & (uv[0, 1] <= 31) & (z[0, 0] > 0)
    assert (occluded & inside).sum() >= 20, "scene must contain pixels occluded in the source"
    assert not valid[0, 0][occluded].any()
    visible = inside & ~occluded
    assert valid[0, 0][visible].float().mean() > 0.9
    # Without the occlusion test (huge tolerance) those pixels would read the near board instead.
    _, loose = inverse_warp(img_s, dep_s, dep_t, K, K, T, abs_tol=10.0)
    assert loose[0, 0][occluded & inside].float().mean() > 0.9


@pytest.mark.parametrize("scales", [(1.1, 0.9), (0.9, 1.1)])
def test_scale_invariant_occlusion_test_tolerates_scale_and_still_masks_occlusion(scales):
    """Predicted depths off by different factors: the metric test rejects most of the view, the scale-invariant
    test keeps it and still rejects the pixels hidden behind the near board."""
    K, T_tgt, T_src, img_t, dep_t, img_s, dep_s = _two_view_setup()
    T = relative_pose(T_tgt, T_src)
    _, true = inverse_warp(img_s, dep_s, dep_t, K, K, T)
    warped, tolerant = inverse_warp(img_s, scales[1] * dep_s, scales[0] * dep_t, K, K, T, scale_invariant=True)
    _, metric = inverse_warp(img_s, scales[1] * dep_s, scales[0] * dep_t, K, K, T)
    X = transform_points(T_tgt, backproject(dep_t, K))[0]
    occluded = _hits_near(T_src[0, :3, 3], X)
    # Hidden pixels stay rejected, up to a one-pixel strip at the board's edge that the scaled depth moves past it.
    assert occluded.sum() >= 20 and tolerant[0, 0][occluded].float().mean() < 0.25
    assert (tolerant & true).sum() > 0.9 * true.sum() and metric.sum() < 0.5 * true.sum()
    assert (warped - img_t).abs()[tolerant & true].mean() < 0.03  # the scaled warp still lands on the right texels


def test_overlap_matrix_is_pairwise_view_overlap():
    K, T_tgt, T_src, _, dep_t, _, dep_s = _two_view_setup()
    depth, Ks, T = torch.cat([dep_t, dep_s]), K.expand(2, 3, 3), torch.cat([T_tgt, T_src])
    M = overlap_matrix(depth, Ks, T, chunk=1)
    assert M.shape == (2, 2) and M[0, 0] == 0 and M[1, 1] == 0
    assert M[0, 1].item() == pytest.approx(view_overlap(dep_t, K, T_tgt, dep_s, K, T_src, stride=1).item())
    assert M[1, 0].item() == pytest.approx(view_overlap(dep_s, K, T_src, dep_t, K, T_tgt, stride=1).item())
    assert (overlap_matrix(depth, Ks, T, occlusion=False) >= M).all()  # no occlusion test: only "in view" left
    flipped = overlap_matrix(depth, Ks, invert_pose(T))
    assert not torch.allclose(flipped, M)


def test_inverse_warp_gradients():
    K, T_tgt, T_src, img_t, dep_t, img_s, dep_s = _two_view_setup()
    T = relative_pose(T_tgt, T_src)
    src = img_s.clone().requires_grad_(True)
    tgt_depth = dep_t.clone().requires_grad_(True)
    warped, valid = inverse_warp(src, dep_s, tgt_depth, K, K, T)
    w = torch.rand(warped.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (warped * w * ~valid).sum().backward(retain_graph=True)
    assert src.grad is not None and (src.grad == 0).all()
    src.grad = None
    (warped * w * valid).sum().backward()
    assert (src.grad != 0).sum() > 100
    assert torch.isfinite(tgt_depth.grad).all() and (tgt_depth.grad != 0).any()


def test_inverse_warp_nearest_labels_keep_dtype():
    K, T_tgt, T_src, _, dep_t, _, dep_s = _two_view_setup()
    labels = (dep_s < 3).long() + 1  # 2 on the near board, 1 on the far wall
    warped, valid = inverse_warp(labels, dep_s, dep_t, K, K, relative_pose(T_tgt, T_src), mode="nearest")
    assert warped.dtype == torch.int64
    expected = (dep_t < 3).long() + 1
    assert (warped[valid] == expected[valid]).float().mean() > 0.97
    with pytest.raises(ValueError, match="nearest"):
        inverse_warp(labels, dep_s, dep_t, K, K, relative_pose(T_tgt, T_src))


def test_zbuffer_nearest_point_wins_and_visibility():
    K, T = _K(), _pose()
    H, W = 32, 48
    ray = torch.tensor([(10 - 23.5) / 40, (8 - 15.5) / 42, 1.0], dtype=torch.float64)  # through pixel (u=10, v=8)
    points = torch.stack([3.0 * ray, 2.0 * ray, 2.5 * ray, torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)])
    index, mask = zbuffer_project(points, K, T, H, W)
    assert index.shape == (H, W) and index.dtype == torch.int64 and mask.dtype == torch.bool
    assert index[8, 10] == 1 and mask.sum() == 1 and (index[~mask] == -1).all()
    # Frame depth says the surface at that pixel is at 3 m: the two closer points are not visible.
    depth = torch.full((H, W), 3.0, dtype=torch.float64)
    index, mask = zbuffer_project(points, K, T, H, W, depth=depth, depth_tol=0.1)
    assert index[8, 10] == 0 and mask.sum() == 1
    # Points behind the depth surface are rejected too.
    index, mask = zbuffer_project(points[1:], K, T, H, W, depth=torch.full((H, W), 1.0, dtype=torch.float64))
    assert not mask.any()


def test_zbuffer_stride_ties_and_determinism():
    g = torch.Generator().manual_seed(3)
    K, T = _K(), _pose(ry=0.1, t=(0.1, -0.2, 0.0))
    cam = torch.cat([torch.rand(500, 2, generator=g, dtype=torch.float64) * 2 - 1, torch.ones(500, 1)], 1)
    cam = cam * (torch.rand(500, 1, generator=g, dtype=torch.float64) * 3 + 1)
    world = transform_points(T[None], cam.T[None])[0].T  # (N, 3)
    world = torch.cat([world, world[:50]])  # exact duplicates: z ties, the lower index must win
    index, mask = zbuffer_project(world, K, T, 32, 48, stride=4)
    assert index.shape == (8, 12) and mask.any()
    assert (index[mask] < 500).all()
    uv, z = project(cam.T[None], K[None])
    for cy, cx in torch.nonzero(mask)[:20].tolist():
        i = int(index[cy, cx])
        cell = ((uv[0, 1].round() // 4) == cy) & ((uv[0, 0].round() // 4) == cx) & (z[0, 0] > 0)
        assert z[0, 0, i] == z[0, 0][cell].min()
    perm = torch.randperm(world.shape[0], generator=g)
    index_p, mask_p = zbuffer_project(world[perm], K, T, 32, 48, stride=4)
    assert torch.equal(mask_p, mask)
    torch.testing.assert_close(world[perm][index_p[mask_p]], world[index[mask]])
    assert torch.equal(zbuffer_project(world, K, T, 32, 48, stride=4)[0], index)


def test_view_overlap():
    K, T_tgt, T_src, _, dep_t, _, dep_s = _two_view_setup()
    same = view_overlap(dep_t, K, T_tgt, dep_t, K, T_tgt, stride=2)
    assert same.shape == (1,) and same.item() == pytest.approx(1.0)
    shifted = view_overlap(dep_t, K, T_tgt, dep_s, K, T_src, stride=2).item()
    assert 0.3 < shifted < 0.99
    back = _pose(ry=math.pi)[None]
    _, dep_back = _render(back[0], K[0])
    assert view_overlap(dep_t, K, T_tgt, dep_back.abs(), K, back).item() < 0.01


def _floor_and_wall(K: torch.Tensor, T: torch.Tensor, H: int = 40, W: int = 56):
    """Depth of a room seen from T: floor at world y = +1.5 (y down), back wall at world z = 6."""
    rays = backproject(torch.ones(1, 1, H, W, dtype=torch.float64), K[None])[0]
    d = torch.einsum("ij,jhw->ihw", T[:3, :3], rays)
    o = T[:3, 3]
    t_floor = torch.where(d[1] > 1e-9, (1.5 - o[1]) / d[1], torch.full_like(d[1], math.inf))
    t_wall = (6.0 - o[2]) / d[2]
    floor = t_floor < t_wall
    return torch.where(floor, t_floor, t_wall)[None, None], floor


def test_hha_level_camera_floor_and_wall():
    K, T = _K(), _pose()
    depth, floor = _floor_and_wall(K, T)
    for gravity in (None, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)):
        out = hha(depth, K[None], gravity=gravity)
        assert out.shape == (1, 3, 40, 56) and out.min() >= 0 and out.max() <= 1
        disp, height, angle = out[0]
        # Away from the image border and the floor-wall edge by the reach of the normal window (3 px).
        inner = torch.zeros_like(floor)
        inner[3:-3, 3:-3] = True
        inner &= ~boundary_mask(floor.long()[None], 3)[0]
        floor_in, wall = floor & inner, ~floor & inner
        assert floor_in.sum() > 100 and wall.sum() > 100
        assert torch.allclose(angle[floor_in], torch.tensor(38 / 255, dtype=torch.float64), atol=0.5 / 255)
        assert torch.allclose(angle[wall], torch.tensor(128 / 255, dtype=torch.float64), atol=0.5 / 255)
        assert height[floor_in].abs().max() < 1 / 255
        wall_h = height[wall[:, 28], 28]
        wall_h = wall_h[wall_h < 1]  # heights above 2.55 m saturate, as in the 8-bit original
        assert len(wall_h) > 5 and (wall_h.diff() < 0).all(), "wall height must grow upwards (towards smaller v)"
        rows = floor_in[:, 28].nonzero().squeeze(1)
        far_rows = rows[depth[0, 0, rows, 28] > 1.5 * 310 / 255]  # nearer rows saturate at 255
        assert len(far_rows) > 3 and (disp[far_rows, 28].diff() > 0).all(), (
            "disparity must fall towards the far side of the floor"
        )


def test_hha_estimates_gravity_of_tilted_camera_and_handles_holes_and_flip():
    K = _K()
    depth, _ = _floor_and_wall(K, _pose(rx=-0.35))  # camera pitched down by 20 degrees
    depth[..., 5:9, 5:9] = 0
    est = hha(depth, K[None])
    true_g = _pose(rx=-0.35)[:3, :3].T @ torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    ref = hha(depth, K[None], gravity=true_g[None])
    assert (ref[..., 5:9, 5:9] == 0).all()
    assert (est - ref).abs().mean() < 1 / 255
    level = hha(depth, K[None], gravity=torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    assert (level - ref)[:, 2].abs().mean() > 10 / 255, "the tilt must matter, or the check above proves nothing"
    # A mirrored image with its mirrored intrinsics (fx -> -fx, cx -> W-1-cx) encodes the same surfaces.
    Kf = K.clone()
    Kf[0, 0], Kf[0, 2] = -K[0, 0], 55 - K[0, 2]
    flipped = hha(depth.flip(-1), Kf[None], gravity=true_g[None])
    torch.testing.assert_close(flipped, ref.flip(-1))


def test_boundary_mask():
    label = torch.zeros(1, 10, 10, dtype=torch.long)
    label[:, :, 5:] = 3
    assert not boundary_mask(label, 0).any()
    assert not boundary_mask(torch.zeros_like(label), 3).any(), "the image border is not a label change"
    m1 = boundary_mask(label, 1)
    assert m1.dtype == torch.bool and m1.shape == (1, 10, 10)
    assert m1[0].any(0).nonzero().squeeze(1).tolist() == [4, 5] and m1[0, :, 4:6].all()
    assert boundary_mask(label, 2)[0].any(0).nonzero().squeeze(1).tolist() == [3, 4, 5, 6]
    dot = torch.zeros(1, 11, 11, dtype=torch.long)
    dot[0, 5, 5] = 7
    expected = torch.zeros(1, 11, 11, dtype=torch.bool)
    expected[0, 3:8, 3:8] = True  # Chebyshev ball of radius 2
    assert torch.equal(boundary_mask(dot, 2), expected)


# --- the real HoloLens frames ------------------------------------------------------------------------------------

SEQ = "sequences/hololens_dvmvs_000"


def _real_frame(root: Path, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """image (1, 3, H, W) in [0, 1], depth (1, 1, H, W), pose (1, 4, 4) from poses_selected.txt."""
    seq = root / SEQ
    poses = {line.split()[0]: line.split()[1:] for line in (seq / "poses_selected.txt").read_text().splitlines()}
    image = torch.tensor(load_rgb(seq / "images" / f"{name}.png")).permute(2, 0, 1)[None].double() / 255
    depth = torch.tensor(load_depth(seq / "depth" / f"{name}.png"))[None, None].double()
    pose = torch.tensor([float(v) for v in poses[f"{name}.png"]], dtype=torch.float64).view(1, 4, 4)
    return image, depth, pose


def _real_K(root: Path) -> torch.Tensor:
    return torch.from_numpy(np.loadtxt(root / SEQ / "K.txt"))[None]


def _depth_agreement(root: Path, tgt: str, src: str, pose_tgt: torch.Tensor | None = None) -> tuple[float, float]:
    """Median |dz| between tgt's depth and src's depth moved into tgt's camera, and the valid fraction."""
    K = _real_K(root)
    _, dep_t, T_t = _real_frame(root, tgt)
    _, dep_s, T_s = _real_frame(root, src)
    T_t = T_t if pose_tgt is None else pose_tgt
    z_in_tgt = transform_points(relative_pose(T_s, T_t), backproject(dep_s, K))[:, 2:3]
    # A loose occlusion tolerance so the residual is measured rather than thresholded.
    warped, valid = inverse_warp(z_in_tgt, dep_s, dep_t, K, K, relative_pose(T_t, T_s), abs_tol=0.5, rel_tol=0.0)
    return (warped - dep_t)[valid].abs().median().item(), valid.float().mean().item()


def test_real_pose_file_indexing(realdata):
    """poses_all.txt line i is the i-th image of the full sequence, which starts at 00003: frame n is line n - 3."""
    seq = realdata / SEQ
    all_poses = np.loadtxt(seq / "poses_all.txt").reshape(-1, 16)
    assert all_poses.shape[0] == 373
    for line in (seq / "poses_selected.txt").read_text().splitlines():
        name, *values = line.split()
        np.testing.assert_array_equal(all_poses[int(name[:5]) - 3], np.array(values, float))
    # Reprojection confirms it: taking line n for frame n (off by three frames) breaks the depth agreement.
    wrong = torch.from_numpy(all_poses[3]).view(1, 4, 4)
    assert _depth_agreement(realdata, "00003", "00005", pose_tgt=wrong)[0] > 0.015


def test_real_depth_warp_agrees(realdata):
    median_dz, valid = _depth_agreement(realdata, "00003", "00005")
    assert median_dz < 0.02 and valid > 0.5


def test_real_photometric_error_lower_with_true_pose(realdata):
    K = _real_K(realdata)
    img_t, dep_t, T_t = _real_frame(realdata, "00003")
    img_s, dep_s, T_s = _real_frame(realdata, "00005")

    def photometric(T_src: torch.Tensor) -> float:
        warped, valid = inverse_warp(img_s, dep_s, dep_t, K, K, relative_pose(T_t, T_src))
        assert valid.float().mean() > 0.3
        return (warped - img_t).abs().mean(1, keepdim=True)[valid].mean().item()

    true_err = photometric(T_s)
    perturbed = T_s @ _pose(ry=math.radians(1.0), t=(0.03, 0.0, 0.0))[None]
    assert true_err < 0.04 and true_err < 0.8 * photometric(perturbed)
    assert view_overlap(dep_t, K, T_t, dep_s, K, T_s).item() > 0.5
