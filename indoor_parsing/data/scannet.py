"""ScanNetDataModule: ScanNet v2 frames, as converted by ``indoor-parsing prepare scannet`` (prepare/scannet.py)."""

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.prepare.common import check_prepared


class ScanNetDataModule(IndoorDataModule):
    """ScanNet v2 frames (official train / val / test scans) from ``indoor-parsing prepare scannet``.

    Args:
        root: the prepared layout.
        class_set: "scannet20" (default; the 20 benchmark classes over NYU-40 ids), "nyu40", ...
        **kwargs: IndoorDataModule options (with_pose / num_neighbors for multi-view methods, ...).
    """

    dataset_name = "scannet"

    def __init__(self, root: str = "data/prepared/scannet", class_set: str = "scannet20", **kwargs) -> None:
        check_prepared(root, "scannet", "nyu40")
        super().__init__(root=root, class_set=class_set, **kwargs)
