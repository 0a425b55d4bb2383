"""S3DISDataModule: Stanford 2D-3D-S frames, as converted by ``indoor-parsing prepare s3dis`` (prepare/s3dis.py)."""

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.prepare.common import check_prepared


class S3DISDataModule(IndoorDataModule):
    """2D-3D-S frames, Area-5 test fold (train: areas 1, 2, 3, 4, 6), from ``indoor-parsing prepare s3dis``.

    Args:
        root: the prepared layout.
        class_set: "s3dis13" (the 13 S3DIS classes).
        **kwargs: IndoorDataModule options.
    """

    dataset_name = "s3dis"

    def __init__(self, root: str = "data/prepared/s3dis", class_set: str = "s3dis13", **kwargs) -> None:
        check_prepared(root, "s3dis", "s3dis13")
        super().__init__(root=root, class_set=class_set, **kwargs)
