"""indoor_parsing: indoor semantic segmentation from RGB, with geometry used at training time."""

from indoor_parsing._compat import ensure_torchvision_ops

ensure_torchvision_ops()

__version__ = "0.1.0"
