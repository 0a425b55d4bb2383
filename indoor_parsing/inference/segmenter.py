"""Segmenting plain RGB images with a trained checkpoint of any method: the Python side of ``indoor-parsing segment``.

::

    from indoor_parsing.inference.segmenter import load_segmenter

    segment = load_segmenter("runs/baseline_resnet18_synthrooms/checkpoints/best.ckpt")
    labels, probabilities = segment("photo.jpg")  # (H, W) class ids, (K, H, W) softmax, at the photo's size
    segment.class_names[labels[0, 0]]

Every image is resized to the size the network was trained at (recorded in the checkpoint; ``size`` overrides it),
ImageNet-normalised, run through the method's RGB-only ``forward``, and the logits are resized back to the image's
own size before the softmax, as ``predict`` does for dataset frames.
"""

import glob
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from indoor_parsing.data.sample import normalize_image
from indoor_parsing.errors import UserError
from indoor_parsing.inference.checkpoints import load_method, trained_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB as displayed (EXIF orientation applied: phone photos are often stored rotated)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "image not found")
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(path, f"cannot decode the image ({err})", "is it a complete image file?") from err


def find_images(spec: str | Path) -> list[Path]:
    """The images of a folder (not recursive), a glob pattern or one file, sorted; a UserError when none."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    candidates = sorted(path.iterdir()) if path.is_dir() else sorted(Path(p) for p in glob.glob(str(path)))
    found = [p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        what = "folder holds" if path.is_dir() else "pattern matches" if glob.has_magic(str(spec)) else "path names"
        raise UserError(spec, f"no images found: the {what} no {'/'.join(IMAGE_SUFFIXES)} file")
    return found


def _requires_depth(module) -> bool:
    # GeoAware's "+HHA" ablation row (Table 4) feeds depth to the network at test time too.
    return bool(getattr(module.hparams, "hha_input", False))


class Segmenter:
    """A trained method as a function of RGB images.

    Args:
        module: a method (SegmentationModule or subclass) whose ``forward(image)`` gives logits.
        size: (H, W) the network sees; None = the image's own size.
        device: where the network runs.
        batch_size: images per forward in :meth:`segment_many`.

    Shape:
        image (H, W, 3) uint8 -> labels (H, W) int64 and probabilities (K, H, W) float32.
    """

    def __init__(self, module, size: tuple[int, int] | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 4):  # fmt: skip
        if _requires_depth(module):
            raise UserError(f"{type(module).__name__}(hha_input=True) needs depth at test time; segmenting RGB "
                            "images needs a checkpoint of an RGB-only configuration")  # fmt: skip
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.size = tuple(size) if size is not None else None
        self.batch_size = batch_size
        self.class_names = list(module.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @torch.no_grad()
    def probabilities(self, images: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 images of one size -> softmax (B, K, H, W) on ``device``."""
        x = torch.from_numpy(np.require(images, np.uint8, ["C", "W"])).to(self.device)
        x = x.permute(0, 3, 1, 2)  # (B, 3, H, W)
        H, W = x.shape[-2:]
        x = normalize_image(x)
        if self.size is not None and (H, W) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        logits = self.module(x)  # (B, K, h, w)
        if logits.shape[-2:] != (H, W):
            logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
        return logits.float().softmax(1)

    def __call__(self, image: np.ndarray | Image.Image | str | Path) -> tuple[np.ndarray, np.ndarray]:
        """One image (array, PIL image or path) -> (labels (H, W) int64, probabilities (K, H, W) float32)."""
        rgb = read_image(image) if isinstance(image, str | Path) else np.asarray(Image.fromarray(np.asarray(image))
                                                                                   .convert("RGB"))  # fmt: skip
        prob = self.probabilities(rgb[None])[0]
        return prob.argmax(0).cpu().numpy(), prob.cpu().numpy()

    def segment_many(self, paths: list[Path]):
        """Yield (path, rgb, labels, confidence) per path; consecutive images of one size share a batch."""
        batch: list[tuple[Path, np.ndarray]] = []
        for path in paths:
            rgb = read_image(path)
            if batch and (len(batch) == self.batch_size or batch[0][1].shape != rgb.shape):
                yield from self._run(batch)
                batch = []
            batch.append((path, rgb))
        if batch:
            yield from self._run(batch)

    def _run(self, batch: list[tuple[Path, np.ndarray]]):
        prob = self.probabilities(np.stack([rgb for _, rgb in batch]))
        confidence, labels = prob.max(1)  # (B, H, W)
        for (path, rgb), label, conf in zip(batch, labels.cpu().numpy(), confidence.cpu().numpy(), strict=True):
            yield path, rgb, label, conf


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_segmenter(ckpt_path: str | Path, device: str | None = None, size: tuple[int, int] | None = None,
                   batch_size: int = 4) -> Segmenter:  # fmt: skip
    """A :class:`Segmenter` from a checkpoint of any method.

    Args:
        ckpt_path: a ``.ckpt`` written by ``fit``.
        device: ``cpu``, ``cuda``, ...; None picks a GPU when there is one.
        size: (H, W) the network sees; None = the training image size recorded in the checkpoint, or, for
            checkpoints without one, each image's own size.
        batch_size: images per forward when segmenting many files.
    """
    device = device or default_device()
    module, checkpoint = load_method(ckpt_path, device)
    return Segmenter(module, size or trained_size(checkpoint), device, batch_size)
