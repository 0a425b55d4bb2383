"""Data-loader throughput of `indoor-parsing bench`: frames/s of a layout's augmented training loader."""

import time
from pathlib import Path

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.layout import read_layout
from indoor_parsing.data.synthrooms import SynthRoomsDataModule


def synthrooms_layout(size: tuple[int, int] = (480, 640)) -> Path:
    """A small SynthRooms layout at ``size``, generated once into the SynthRooms cache folder."""
    dm = SynthRoomsDataModule(num_scenes=2, frames_per_sequence=16, height=size[0], width=size[1], split=[2, 0, 0])
    dm.prepare_data()
    return dm.root


def bench_loader(layout: Path, workers: int, frames: int, batch: int, size=(480, 640)) -> dict:
    """Frames/s of the augmented training loader of a layout (worker start-up excluded)."""
    manifest, _ = read_layout(layout)
    dm = IndoorDataModule(str(layout), class_set=manifest["label_space"], batch_size=batch, num_workers=workers,
                          image_size=tuple(size), augment=True, scale_range=(0.75, 1.5), color_jitter=0.2)  # fmt: skip
    loader, seen = dm.train_dataloader(), 0
    next(iter(loader))  # starts the (persistent) workers; timing from a fresh iterator gives them no head start
    start = time.perf_counter()
    while seen < frames:
        for b in loader:
            seen += b["image"].shape[0]
            if seen >= frames:
                break
    fps = seen / (time.perf_counter() - start)
    return {"dataset": manifest.get("dataset", layout.name), "workers": workers, "frames_per_s": fps,
            "frames_per_s_per_worker": fps / max(workers, 1)}  # fmt: skip
