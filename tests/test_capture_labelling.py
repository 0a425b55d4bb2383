"""A whole capture through S4-Net: every recording adapted on and labelled, outputs named after the input frames."""

import json

import lightning as L
import numpy as np
from PIL import Image

from indoor_parsing.data.capture import CaptureDataModule
from indoor_parsing.data.multiview import S4NetDataModule
from indoor_parsing.methods.s4net import S4NetModule
from indoor_parsing.training.callbacks import PredictionWriter
from tests.capture_fixtures import look_pose, render_room, room_frames, write_scannet_export

K = np.array([[40.0, 0, 31.5], [0, 40.0, 23.5], [0, 0, 1]])


def _capture(tmp_path):
    room = tmp_path / "flat"
    write_scannet_export(room / "kitchen", room_frames(K, (64, 48), n=4), padded=True)
    frames = room_frames(K, (64, 48), n=3)
    pose = look_pose(170, (0.6, 0.2, -0.8))  # frame 2 looks the other way: no neighbour sees what it sees
    frames[2]["rgb"], frames[2]["depth_m"] = render_room(K, (64, 48), pose)
    frames[2]["pose"] = pose
    write_scannet_export(room / "hall", frames, padded=False)
    return room


def test_every_recording_is_adapted_on_and_labelled(tmp_path):
    room = _capture(tmp_path)
    capture = dict(root=str(room), class_set="synthrooms", batch_size=2)
    dm = S4NetDataModule(CaptureDataModule(**capture), CaptureDataModule(**capture), train_sequence="*",
                         eval_sequences=[], target_splits="capture", num_neighbors=2, overlap_stride=2)  # fmt: skip
    target = dm.target_dataset()
    seqs = [f.sequence for f in target.frames]
    assert dm.train_sequences == ["hall", "kitchen"] and sorted(seqs) == ["hall"] * 3 + ["kitchen"] * 4
    assert all(seqs[j] == seqs[i] for i, js in enumerate(dm.overlap_candidates) for j in js)  # never across
    assert dm.overlap_candidates[2] == [] and all(dm.overlap_candidates[i] for i in (0, 1, 3, 4, 5, 6))

    out = tmp_path / "labels"
    module = S4NetModule(num_classes=dm.num_classes, encoder_name="resnet18", class_weighting="none",
                         consistency_weight=0.0)  # fmt: skip
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[PredictionWriter(str(out))])  # fmt: skip
    trainer.predict(module, datamodule=dm, return_predictions=False)
    names = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    for rec, frames in (("kitchen", ["000000", "000001", "000002", "000003"]), ("hall", ["0", "1", "2"])):
        for name in frames:
            assert {f"flat/{rec}/{name}{s}.png" for s in ("", "_conf", "_color")} <= names
    conf = np.asarray(Image.open(out / "flat" / "hall" / "0_conf.png"))
    assert conf.shape == (48, 64) and conf.dtype == np.uint8 and conf.min() >= 255 // dm.num_classes
    report = json.loads((out / "labelling_report.json").read_text())
    assert report["labelled"] == {"flat/hall": 3, "flat/kitchen": 4}
    assert (
        report["adaptation"]["hall"]["no_neighbour"] == ["2"] and report["adaptation"]["kitchen"]["no_neighbour"] == []
    )
    # a turning camera: each frame's border is seen by no neighbour; hall's frame 2 (no neighbour) covers nothing
    assert 0.8 < report["adaptation"]["kitchen"]["coverage"] < 0.99
    assert 0.4 < report["adaptation"]["hall"]["coverage"] < 2 / 3
