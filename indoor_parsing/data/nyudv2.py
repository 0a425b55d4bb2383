"""NYUDv2DataModule: the NYU Depth V2 labeled subset, from ``indoor-parsing prepare nyudv2`` (prepare/nyudv2.py)."""

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.prepare.common import check_prepared


class NYUDv2DataModule(IndoorDataModule):
    """NYU-Dv2 (795 train / 654 test) from a layout written by ``indoor-parsing prepare nyudv2``.

    Args:
        root: the prepared layout.
        class_set: "nyu40" (default), "nyu13", "scannet20", "sun37", ... (data/taxonomy.py).
        val_from_train: fraction of the 795 training frames held out (deterministically) as validation.
        **kwargs: IndoorDataModule options (batch_size, image_size, augment, ...).
    """

    dataset_name = "nyudv2"

    def __init__(self, root: str = "data/prepared/nyudv2", class_set: str = "nyu40", val_from_train: float = 0.0,
                 **kwargs) -> None:  # fmt: skip
        check_prepared(root, "nyudv2", "nyu40")
        super().__init__(root=root, class_set=class_set, val_from_train=val_from_train, **kwargs)
