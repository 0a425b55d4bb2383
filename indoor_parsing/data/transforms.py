"""Joint augmentation of image, depth, label and intrinsics (albumentations 2.x with parameters drawn up front).

Every geometric parameter (scale, crop offset, flip) is drawn from the caller's ``np.random.Generator`` and baked
into fixed albumentations ops, so the new intrinsics follow exactly. Each geometric step is a 3x3 pixel-coordinate
map ``A`` (integer pixel centres) and the intrinsics become ``K' = A K``:

- resize by (sx, sy): ``u' = sx (u + 0.5) - 0.5``, i.e. fx' = sx fx, cx' = sx (cx + 0.5) - 0.5 (pixel-centre aligned,
  which is what cv2's INTER_AREA / INTER_LINEAR / INTER_NEAREST_EXACT sample);
- crop at (x0, y0): ``u' = u - x0``; padding at the bottom/right leaves K unchanged;
- horizontal flip of width W: ``u' = W - 1 - u``, i.e. fx' = -fx, cx' = W - 1 - cx. The negative focal length is
  exact for the mirrored image: back-projecting pixel u' with K' gives the same 3D point as pixel W - 1 - u' with K,
  so poses and depth stay valid and the geometry functions need no special case.

Depth and label are resized with nearest-neighbour (centre-aligned), so depth values are never interpolated.
"""

import albumentations as A
import cv2
import numpy as np

IGNORE = 255


def _resize_map(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])


def _resize(hw: tuple[int, int]) -> A.Resize:
    return A.Resize(
        *hw, interpolation=cv2.INTER_LINEAR, area_for_downscale="image", mask_interpolation=cv2.INTER_NEAREST_EXACT
    )


class JointTransform:
    """Resize / scale-crop / flip / photometric augmentation that keeps image, depth, label and K consistent.

    Args:
        size: output (H, W); None keeps the input size (eval) or crops to the input size (train).
        train: random scale, crop, flip and photometric jitter when True; a deterministic resize when False.
        scale_range: (min, max) of the random scale s relative to ``size``; the image is resized to
            (round(s H), round(s W)) before the random crop of ``size``.
        flip: horizontal flip with probability 0.5 (train only).
        color_jitter: strength j of brightness / contrast / saturation factors in [1 - j, 1 + j] and hue shift in
            [-j / 4, j / 4] (hue is far more destructive, as in the usual 0.4 / 0.1 torchvision setting).
        gamma_range: (min, max) gamma drawn uniformly (train only), or None.
    """

    def __init__(
        self,
        size: tuple[int, int] | None = None,
        train: bool = False,
        scale_range: tuple[float, float] = (1.0, 1.0),
        flip: bool = False,
        color_jitter: float = 0.0,
        gamma_range: tuple[float, float] | None = None,
    ) -> None:
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"JointTransform: size must be (H, W) with positive entries, got {size}")
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"JointTransform: scale_range must satisfy 0 < min <= max, got {scale_range}")
        if color_jitter < 0:
            raise ValueError(f"JointTransform: color_jitter must be >= 0, got {color_jitter}")
        if gamma_range is not None and not 0 < gamma_range[0] <= gamma_range[1]:
            raise ValueError(f"JointTransform: gamma_range must satisfy 0 < min <= max, got {gamma_range}")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.train = train
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip = flip
        self.color_jitter = float(color_jitter)
        self.gamma_range = gamma_range

    def __call__(
        self,
        image: np.ndarray,
        K: np.ndarray,
        depth: np.ndarray | None = None,
        label: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict:
        """Transform one frame.

        Args:
            image: (H, W, 3) uint8.
            K: (3, 3) intrinsics of ``image``.
            depth: optional (H, W) metres, 0 = missing.
            label: optional (H, W) uint8 ids, 255 = ignore.
            rng: source of every random choice (train); a fresh unseeded generator when None.

        Returns:
            dict with ``image`` uint8 (h, w, 3), ``K`` float64 (3, 3), ``depth`` float32 (h, w) or None,
            ``label`` uint8 (h, w) or None.
        """
        H, W = self._check(image, K, depth, label)
        rng = np.random.default_rng() if rng is None else rng
        ops, M = self._geometric_ops((H, W), rng) if self.train else self._eval_ops((H, W))
        targets = {"image": image}
        if depth is not None:
            targets["depth"] = np.ascontiguousarray(depth, dtype=np.float32)
        if label is not None:
            # albumentations has one padding value for all masks; shifting ids by one (uint8 wrap-around, exact under
            # nearest resampling) turns its 0 padding into IGNORE for the label while depth pads with 0.
            targets["label"] = np.ascontiguousarray(label, dtype=np.uint8) + np.uint8(1)
        if self.train:
            ops += self._photometric_ops(rng)
        seed = int(rng.integers(2**31)) if self.train else 0  # ColorJitter shuffles its sub-ops with this seed
        out = A.Compose(ops, additional_targets={"depth": "mask", "label": "mask"}, seed=seed)(**targets)
        # Contiguous copies: flips may return negative-stride views, which torch.from_numpy rejects.
        return {
            "image": np.ascontiguousarray(out["image"]),
            "K": M @ np.asarray(K, np.float64),
            "depth": np.ascontiguousarray(out["depth"]) if depth is not None else None,
            "label": (out["label"] - np.uint8(1)) if label is not None else None,
        }

    def _eval_ops(self, hw: tuple[int, int]) -> tuple[list, np.ndarray]:
        if self.size is None or self.size == hw:
            return [], np.eye(3)
        return [_resize(self.size)], _resize_map(hw, self.size)

    def _geometric_ops(self, hw: tuple[int, int], rng: np.random.Generator) -> tuple[list, np.ndarray]:
        out_h, out_w = self.size or hw
        s = rng.uniform(*self.scale_range)
        sh, sw = max(1, round(s * out_h)), max(1, round(s * out_w))
        ops, M = [_resize((sh, sw))], _resize_map(hw, (sh, sw))
        y0, x0 = int(rng.integers(max(sh - out_h, 0) + 1)), int(rng.integers(max(sw - out_w, 0) + 1))
        if sh < out_h or sw < out_w:
            ops.append(
                A.PadIfNeeded(out_h, out_w, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)
            )
        ops.append(A.Crop(x0, y0, x0 + out_w, y0 + out_h))
        M = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]]) @ M
        if self.flip and rng.random() < 0.5:
            ops.append(A.HorizontalFlip(p=1.0))
            M = np.array([[-1, 0, out_w - 1], [0, 1, 0], [0, 0, 1]]) @ M
        return ops, M

    def _photometric_ops(self, rng: np.random.Generator) -> list:
        ops = []
        j = self.color_jitter
        if j > 0:
            b, c, s = (float(v) for v in rng.uniform(max(0.0, 1 - j), 1 + j, size=3))
            h = float(rng.uniform(-min(j / 4, 0.5), min(j / 4, 0.5)))
            ops.append(A.ColorJitter(brightness=(b, b), contrast=(c, c), saturation=(s, s), hue=(h, h), p=1.0))
        if self.gamma_range is not None:
            g = 100.0 * float(rng.uniform(*self.gamma_range))  # albumentations takes gamma in percent
            ops.append(A.RandomGamma(gamma_limit=(g, g), p=1.0))
        return ops

    @staticmethod
    def _check(image: np.ndarray, K: np.ndarray, depth: np.ndarray | None, label: np.ndarray | None):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"JointTransform: image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        H, W = image.shape[:2]
        if np.shape(K) != (3, 3):
            raise ValueError(f"JointTransform: K must be (3, 3), got {np.shape(K)}")
        for name, arr in (("depth", depth), ("label", label)):
            if arr is not None and arr.shape != (H, W):
                raise ValueError(f"JointTransform: {name} must be ({H}, {W}) like the image, got {arr.shape}")
        if label is not None and label.dtype != np.uint8:
            raise ValueError(f"JointTransform: label must be uint8, got {label.dtype}")
        return H, W
