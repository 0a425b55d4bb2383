"""DataModuleWrapper: the base of DataModules that add to another one's batches (data/features.py, data/points.py)."""

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.layout import Frame


class DataModuleWrapper(IndoorDataModule):
    """A DataModule that is the wrapped ``data`` except for what a subclass changes (its datasets or loaders).

    Layout, frames, splits, classes, loader settings and class statistics are ``data``'s: the wrapper has no settings
    of its own besides its arguments, and reading or setting one of ``data``'s attributes (``root``, ``classes``,
    ``manifest``, ``with_pose``, ...) reads or sets ``data``'s. So one wrapper serves every dataset's DataModule
    (instead of a subclass per dataset), as :class:`~indoor_parsing.data.multiview.S4NetDataModule` composes a
    source and a target.

    Args:
        data: the wrapped DataModule (any :class:`IndoorDataModule`: a dataset's, SynthRooms, a capture, ...).
    """

    def __init__(self, data: IndoorDataModule):
        L.LightningDataModule.__init__(self)  # not IndoorDataModule's: every setting is data's
        self.data = data

    def __getattr__(self, name: str):
        data = self.__dict__.get("data")  # absent while unpickling
        if data is None or name.startswith("_"):  # private state stays each object's own
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return getattr(data, name)

    def __setattr__(self, name: str, value) -> None:
        data = self.__dict__.get("data")
        if data is not None and not name.startswith("_") and name not in self.__dict__ and hasattr(data, name):
            setattr(data, name, value)  # e.g. S4NetDataModule's ``target.with_pose = True`` reaches the wrapped data
        else:
            super().__setattr__(name, value)

    def prepare_data(self) -> None:
        self.data.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.data.setup(stage)

    @property
    def all_frames(self) -> list[Frame]:
        return self.data.all_frames

    def frames(self, split: str) -> list[Frame]:
        return self.data.frames(split)

    def dataset(self, stage: str):
        return self.data.dataset(stage)

    def make_loader(self, dataset, shuffle: bool) -> DataLoader:
        return self.data.make_loader(dataset, shuffle)

    def class_pixel_counts(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.class_pixel_counts()
