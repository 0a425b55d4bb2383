"""The batch contract every DataModule yields (DESIGN.md), and its validation.

Keys (B = batch): ``image`` float32 (B,3,H,W) normalised RGB; ``label`` int64 (B,H,W), 0..K-1 or 255;
``label_full`` int64 (B,H0,W0) labels at the stored resolution for full-size evaluation (padded with 255);
``depth`` float32 (B,1,H,W) metres, 0 = missing; ``depth_valid`` bool (B,1,H,W) where depth supervision exists;
``intrinsics`` float32 (B,3,3) of the image as returned; ``pose`` float32 (B,4,4) camera-to-world;
``feat3d`` float32 (B,C,h,w) and ``feat3d_mask`` bool (B,1,h,w); ``meta`` dict of lists;
``neighbors``: list of dicts with ``image``, ``depth``, ``intrinsics``, ``pose`` and ``usable`` bool (B,) (False:
a padding slot, fewer neighbours than slots) (multi-view methods).
"""

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BatchContractError(ValueError):
    """A batch does not follow the contract; the message names the key and what was expected."""


# key -> (dtype, rank, channel count or None)
_SPEC = {
    "image": (torch.float32, 4, 3),
    "label": (torch.int64, 3, None),
    "label_full": (torch.int64, 3, None),
    "depth": (torch.float32, 4, 1),
    "depth_valid": (torch.bool, 4, 1),
    "intrinsics": (torch.float32, 3, None),
    "pose": (torch.float32, 3, None),
    "feat3d": (torch.float32, 4, None),
    "feat3d_mask": (torch.bool, 4, 1),
}
_SHAPES = {"image": "(B,3,H,W)", "label": "(B,H,W)", "label_full": "(B,H0,W0)", "depth": "(B,1,H,W)",
           "depth_valid": "(B,1,H,W)", "intrinsics": "(B,3,3)", "pose": "(B,4,4)", "feat3d": "(B,C,h,w)",
           "feat3d_mask": "(B,1,h,w)"}  # fmt: skip


def _check_tensor(key: str, value, where: str) -> None:
    dtype, rank, channels = _SPEC[key]
    if not isinstance(value, torch.Tensor):
        raise BatchContractError(f"{where}{key!r}: expected a torch.Tensor {_SHAPES[key]}, got {type(value).__name__}")
    if value.dtype != dtype or value.dim() != rank or (channels is not None and value.shape[1] != channels):
        raise BatchContractError(
            f"{where}{key!r}: expected {dtype} {_SHAPES[key]}, got {value.dtype} {tuple(value.shape)}"
        )
    if key in ("intrinsics", "pose"):
        n = 3 if key == "intrinsics" else 4
        if tuple(value.shape[1:]) != (n, n):
            raise BatchContractError(f"{where}{key!r}: expected {_SHAPES[key]}, got {tuple(value.shape)}")


def validate_batch(batch: dict, required: tuple[str, ...] = ("image",), where: str = "") -> dict:
    """Check keys, dtypes and shapes against the contract; returns the batch unchanged.

    Args:
        batch: a collated batch.
        required: keys that must be present (a method declares what it consumes).
        where: prefix for messages (e.g. ``"neighbors[0]."``).
    """
    if not isinstance(batch, dict):
        raise BatchContractError(f"{where}batch: expected a dict, got {type(batch).__name__}")
    for key in required:
        if key not in batch:
            raise BatchContractError(f"{where}{key!r}: missing from the batch (present: {sorted(batch)})")
    for key, value in batch.items():
        if key in _SPEC:
            _check_tensor(key, value, where)
    image = batch.get("image")
    B, H, W = (image.shape[0], image.shape[2], image.shape[3]) if image is not None else (None, None, None)
    for key in ("label", "depth", "depth_valid"):
        if image is not None and key in batch:
            size = tuple(batch[key].shape[-2:])
            if batch[key].shape[0] != B or size != (H, W):
                raise BatchContractError(
                    f"{where}{key!r}: expected batch {B} and size {(H, W)} like 'image', got {tuple(batch[key].shape)}"
                )
    for key in ("intrinsics", "pose", "feat3d", "feat3d_mask"):
        if image is not None and key in batch and batch[key].shape[0] != B:
            raise BatchContractError(f"{where}{key!r}: batch size {batch[key].shape[0]}, 'image' has {B}")
    if "feat3d" in batch and "feat3d_mask" in batch:
        if batch["feat3d"].shape[-2:] != batch["feat3d_mask"].shape[-2:]:
            raise BatchContractError(f"{where}'feat3d_mask': grid {tuple(batch['feat3d_mask'].shape[-2:])} differs "
                                     f"from 'feat3d' {tuple(batch['feat3d'].shape[-2:])}")  # fmt: skip
    for i, nb in enumerate(batch.get("neighbors", [])):
        # depth is optional: an RGB-only sequence has none (the method that needs it says so)
        validate_batch(nb, ("image", "intrinsics", "pose"), where=f"{where}neighbors[{i}].")
    return batch


def normalize_image(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, device=rgb.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=rgb.device).view(3, 1, 1)
    return (rgb.float() / 255.0 - mean) / std


def denormalize_image(image: torch.Tensor) -> torch.Tensor:
    """float32 normalised (..., 3, H, W) -> uint8 RGB."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return ((image * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
