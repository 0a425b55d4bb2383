"""View overlap: which share of one view another view sees, from the validity of the Eq. 4 warp (S4-Net's neighbour
selection and the capture checks)."""

import torch

from indoor_parsing.geometry.camera import relative_pose
from indoor_parsing.geometry.warp import inverse_warp


def view_overlap(
    depth_a: torch.Tensor,
    K_a: torch.Tensor,
    T_a: torch.Tensor,
    depth_b: torch.Tensor,
    K_b: torch.Tensor,
    T_b: torch.Tensor,
    *,
    stride: int = 4,
    abs_tol: float = 0.05,
    rel_tol: float = 0.05,
) -> torch.Tensor:
    """Fraction of view a's valid-depth pixels (every ``stride``-th) seen by view b with agreeing depth, (B,).

    S4-Net keeps neighbours with at least 25 % overlap. Pixel ``j`` of the subsampled grid is pixel ``j * stride`` of
    the full one, so its intrinsics are ``diag(1/stride, 1/stride, 1) K``.
    """
    sub = depth_a[..., ::stride, ::stride]  # (B, 1, h, w)
    S = torch.diag(sub.new_tensor([1.0 / stride, 1.0 / stride, 1.0]))
    _, valid = inverse_warp(
        depth_b, depth_b, sub, S @ K_a.to(sub), K_b, relative_pose(T_a, T_b), abs_tol=abs_tol, rel_tol=rel_tol
    )
    total = (sub > 0).flatten(1).sum(1)
    return valid.flatten(1).sum(1).to(sub.dtype) / total.clamp(min=1).to(sub.dtype)


def overlap_matrix(
    depth: torch.Tensor,
    K: torch.Tensor,
    T: torch.Tensor,
    *,
    src_depth: torch.Tensor | None = None,
    K_src: torch.Tensor | None = None,
    occlusion: bool = True,
    abs_tol: float = 0.05,
    rel_tol: float = 0.05,
    chunk: int = 256,
) -> torch.Tensor:
    """All-pairs view overlap of a sequence from the validity of its Eq. 4 warps, (N, N) with a zero diagonal.

    Entry ``[i, j]`` is the fraction of view i's pixels with depth whose warp into view j is valid (in view, source
    depth present, not occluded): the same test L_G applies, so a pair passes the threshold exactly when the warp
    would supervise that share of e. Pass a coarse grid of e's pixels (e.g. every 8th pixel with
    ``diag(1/8, 1/8, 1) K``): the cost is N^2 times its pixel count. The views warped into read their depth from
    ``src_depth`` (finer, for an occlusion test as exact as L_G's; default: ``depth``).

    Args:
        depth: (N, 1, h, w) depth of every view's grid of target pixels, metres (0 = missing).
        K: (N, 3, 3) intrinsics of that grid.
        T: (N, 4, 4) camera-to-world poses.
        src_depth: (N, 1, Hs, Ws) depth read at the warped positions (None: ``depth``).
        K_src: (N, 3, 3) intrinsics of ``src_depth`` (None: ``K``).
        occlusion: test source depth and occlusion; False keeps only "lands inside view j in front of it" (views
            without depth, where ``depth`` is a proxy).
        abs_tol, rel_tol: occlusion tolerance, as in :func:`inverse_warp`.
        chunk: views j warped per call (memory bound).
    """
    N = depth.shape[0]
    src_depth, K_src = (depth, K) if src_depth is None else (src_depth, K_src)
    total = (depth > 0).flatten(1).sum(1).clamp(min=1).to(depth.dtype)  # (N,)
    out = depth.new_zeros(N, N)
    for i in range(N):
        for j0 in range(0, N, chunk):
            js = slice(j0, min(N, j0 + chunk))
            n = js.stop - js.start
            views = src_depth[js].to(depth.dtype)  # (n, 1, Hs, Ws); may be stored in half precision
            _, valid = inverse_warp(
                views, views if occlusion else None, depth[i : i + 1].expand(n, -1, -1, -1),
                K[i : i + 1].expand(n, -1, -1), K_src[js], relative_pose(T[i : i + 1].expand(n, -1, -1), T[js]),
                abs_tol=abs_tol, rel_tol=rel_tol,
            )  # fmt: skip
            out[i, js] = valid.flatten(1).sum(1).to(depth.dtype) / total[i]
    return out.fill_diagonal_(0)
