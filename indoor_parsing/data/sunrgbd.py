"""SUNRGBDDataModule: SUN RGB-D, as converted by ``indoor-parsing prepare sunrgbd`` (prepare/sunrgbd.py)."""

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.prepare.common import check_prepared


class SUNRGBDDataModule(IndoorDataModule):
    """SUN RGB-D (5285 train / 5050 test) from ``indoor-parsing prepare sunrgbd``.

    Args:
        root: the prepared layout.
        class_set: "sun37" (default), or any set over NYU-40 ids, e.g. "scannet20" for SUN RGB-D -> ScanNet.
        **kwargs: IndoorDataModule options (val_from_train, image_size, ...).
    """

    dataset_name = "sunrgbd"

    def __init__(self, root: str = "data/prepared/sunrgbd", class_set: str = "sun37", **kwargs) -> None:
        check_prepared(root, "sunrgbd", "nyu40")
        super().__init__(root=root, class_set=class_set, **kwargs)
