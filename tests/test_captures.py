"""Capture readers: each format's official layout (fixtures written here) and the real HoloLens frames."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indoor_parsing.data.capture import CaptureDataModule, index_capture
from indoor_parsing.data.captures import open_capture
from indoor_parsing.data.captures.base import (
    CaptureOptions,
    NonRigidPoseError,
    PoseConventionError,
    RegistrationError,
)
from indoor_parsing.data.captures.checks import reproject_depth, verdict
from indoor_parsing.data.captures.sevenscenes import K_COLOUR, K_DEPTH
from indoor_parsing.data.captures.tum import CAMERAS
from indoor_parsing.data.layout import read_layout
from indoor_parsing.io import DataFileError, load_depth, load_rgb
from tests.capture_fixtures import (
    real_frames,
    room_frames,
    write_7scenes,
    write_scannet_export,
    write_sens_file,
    write_tum,
)

K_SMALL = np.array([[80.0, 0, 63.5], [0, 80.0, 47.5], [0, 0, 1]])


def _layout(root: Path):
    manifest, frames = read_layout(root)
    return manifest, frames


def _depth(root: Path, frame) -> np.ndarray:
    return load_depth(root / frame.depth)


@pytest.fixture(scope="module")
def real(realdata):
    return real_frames(realdata)


def test_real_hololens_folder_as_is(realdata, real, tmp_path):
    seq = realdata / "sequences" / "hololens_dvmvs_000"
    root = index_capture(seq, layout=tmp_path / "lay", options=CaptureOptions(poses="poses_selected.txt"))
    manifest, frames = _layout(root)
    assert manifest["format"] == "folder" and [f.extra["name"] for f in frames] == [f["name"] for f in real]
    np.testing.assert_allclose(frames[0].K, real[0]["K"])
    for f, r in zip(frames, real, strict=True):
        np.testing.assert_allclose(f.T, r["pose"], atol=1e-5)
        np.testing.assert_array_equal(_depth(root, f), r["depth_m"])
        assert Path(f.depth).is_absolute()  # referenced in place, nothing copied
    probe = manifest["recordings"]["hololens_dvmvs_000"]["pose_probe"]
    assert probe["verdict"] == "ok" and probe["given"] > 2 * probe["inverse"]
    with pytest.raises(PoseConventionError, match="pass --pose-convention camera-to-world"):
        inverse = CaptureOptions(poses="poses_selected.txt", pose_convention="world-to-camera")
        index_capture(seq, layout=tmp_path / "inv", options=inverse)
    with pytest.raises(DataFileError, match="373 unnamed pose lines for 6 colour frames"):
        index_capture(seq, layout=tmp_path / "all", options=CaptureOptions(poses="poses_all.txt"))


@pytest.mark.parametrize("padded", [False, True])
def test_scannet_export_padded_and_unpadded_real_frames(real, tmp_path, padded):
    cap = write_scannet_export(tmp_path / "scene0000_00", real, padded)
    name = "000002" if padded else "2"
    (cap / "depth" / f"{name}.png").unlink()  # frame 2 lost its depth
    (cap / "pose" / "000004.txt" if padded else cap / "pose" / "4.txt").write_text("-inf " * 16)
    root = index_capture(cap)
    manifest, frames = _layout(root)
    rec = manifest["recordings"]["scene0000_00"]
    assert rec["skipped"] == [{"frame": name, "reason": f"no depth file for {name}.jpg in {cap / 'depth'}"}]
    assert [i["frame"] for i in rec["no_pose"]] == ["000004" if padded else "4"]
    assert "tracking lost" in rec["no_pose"][0]["reason"] and frames[3].pose is None
    assert len(frames) == 5 and frames[0].extra["name"] == ("000000" if padded else "0")
    np.testing.assert_array_equal(_depth(root, frames[1]), np.round(real[1]["depth_m"] * 1000) / 1000)
    np.testing.assert_allclose(frames[4].T, real[5]["pose"], atol=1e-5)
    (cap / "depth" / ("000001.png" if padded else "1.png")).rename(cap / "depth" / "00001.png")
    if not padded:  # "1.png" renamed "00001.png" still is frame 1; a second spelling beside it is an error
        assert len(_layout(index_capture(cap))[1]) == 5
        (cap / "depth" / "1.png").write_bytes((cap / "depth" / "00001.png").read_bytes())
        with pytest.raises(DataFileError, match=r"several files for frame '1'"):
            index_capture(cap)


def test_sens_file_read_directly(real, tmp_path):
    path = write_sens_file(tmp_path / "scans" / "scene0001_00" / "scene0001_00.sens", real[:4])
    root = index_capture(path, layout=tmp_path / "lay")
    manifest, frames = _layout(root)
    assert manifest["format"] == "sens" and [f.extra["name"] for f in frames] == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(_depth(root, frames[2]), np.round(real[2]["depth_m"] * 1000) / 1000)
    assert np.abs(load_rgb(root / frames[2].rgb).astype(int) - real[2]["rgb"]).mean() < 3  # the stored JPEG
    np.testing.assert_allclose(frames[3].T, real[3]["pose"], atol=1e-5)
    assert index_capture(tmp_path / "scans", layout=tmp_path / "lay2") and \
        _layout(tmp_path / "lay2")[0]["sequences"] == ["scene0001_00"]  # fmt: skip


def test_7scenes_65535_is_invalid_and_depth_is_registered_to_colour(tmp_path):
    size = (640, 480)
    colour = room_frames(K_COLOUR, size, n=3)
    depth = room_frames(K_DEPTH, size, n=3)  # the unregistered depth camera, same centre and orientation
    hole = np.zeros(size[::-1], bool)
    hole[200:260, 300:380] = True  # no measurement here: written as 65535
    for d in depth:
        d["depth_m"] = np.where(hole, 0, d["depth_m"]).astype(np.float32)
    write_7scenes(tmp_path / "chess" / "seq-01", colour, depth)
    write_7scenes(tmp_path / "chess" / "seq-02", colour[:2], depth[:2])
    root = index_capture(tmp_path / "chess")
    manifest, frames = _layout(root)
    assert manifest["sequences"] == ["seq-01", "seq-02"] and len(frames) == 5
    np.testing.assert_allclose(frames[0].K, K_COLOUR)
    got = _depth(root, frames[0])
    expected = reproject_depth(depth[0]["depth_m"], K_DEPTH, K_COLOUR, size)
    np.testing.assert_allclose(got, np.round(expected * 1000) / 1000, atol=1e-6)
    moved = reproject_depth(hole.astype(np.float32), K_DEPTH, K_COLOUR, size) > 0  # the hole in the colour camera
    assert moved.sum() > 3000 and (got[moved] == 0).all() and got.max() < 6  # 65535 never became 65.5 m
    valid = (got > 0) & (colour[0]["depth_m"] > 0)
    assert valid.mean() > 0.6 and np.median(np.abs(got - colour[0]["depth_m"])[valid]) < 0.01
    np.testing.assert_allclose(frames[1].T, colour[1]["pose"], atol=1e-5)


def test_tum_association_metres_quaternions_and_freiburg_intrinsics(tmp_path):
    fx, fy, cx, cy = CAMERAS["fr1"]
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    frames = room_frames(K, (640, 480), n=4)
    seq = write_tum(tmp_path / "rgbd_dataset_freiburg1_xyz", frames)
    lines = (seq / "depth.txt").read_text().splitlines()
    late = f"{1305031102.0 + 2 / 30 + 0.025:.6f} {lines[4].split()[1]}"  # 25 ms after frame 2: beyond 20 ms
    (seq / "depth.txt").write_text("\n".join([*lines[:3], late, *lines[4:]]) + "\n")  # frame 2's own depth is gone
    root = index_capture(seq)
    manifest, got = _layout(root)
    rec = manifest["recordings"]["rgbd_dataset_freiburg1_xyz"]
    t2 = f"{1305031102.0 + 2 / 30:.6f}"
    assert [i["frame"] for i in rec["skipped"]] == [t2] and "no depth image within 0.02 s" in rec["skipped"][0][
        "reason"
    ]
    assert [f.extra["name"] for f in got] == [f"{1305031102.0 + n / 30:.6f}" for n in (0, 1, 3)]
    np.testing.assert_allclose(got[0].K, K)
    d = _depth(root, got[2])
    np.testing.assert_allclose(d, np.round(frames[3]["depth_m"] * 5000) / 5000, atol=6e-4)  # metres, not x5
    np.testing.assert_allclose(got[2].T, frames[3]["pose"], atol=1e-5)  # the nearest of three ground-truth samples
    with pytest.raises(DataFileError, match="pass --camera fr1|fr2|fr3"):
        index_capture(write_tum(tmp_path / "my_sequence", frames[:2]))
    root = index_capture(tmp_path / "my_sequence", options=CaptureOptions(camera="fr3"))
    np.testing.assert_allclose(_layout(root)[1][0].K[0, 0], CAMERAS["fr3"][0])


def test_generic_folder_options(tmp_path):
    frames = room_frames(K_SMALL, (128, 96), n=4)
    cap = tmp_path / "walk"
    lines = []
    for f in frames:
        Image.fromarray(f["rgb"]).save(_mk(cap / "rgb") / f"{f['name']}.jpg")
        raw = np.round(f["depth_m"] * 4000).astype(np.uint16)  # quarter millimetres
        raw[:5] = 9999  # the sensor's "no measurement"
        Image.fromarray(raw).save(_mk(cap / "depth") / f"{f['name']}.png")
        w2c = np.linalg.inv(f["pose"])
        lines.append(f"{f['name']}.jpg " + " ".join(f"{v:.9f}" for v in w2c.ravel()))
    (cap / "trajectory.txt").write_text("\n".join(lines) + "\n")
    opts = dict(depth_scale=4000, depth_invalid=(9999,), intrinsics="80,80,63.5,47.5", poses="trajectory.txt")
    root = index_capture(cap, options=CaptureOptions(**opts, pose_convention="world-to-camera"))
    _, got = _layout(root)
    d = _depth(root, got[1])
    assert (d[:5] == 0).all()
    np.testing.assert_allclose(d[5:], np.round(frames[1]["depth_m"][5:] * 1000) / 1000, atol=1e-3)
    np.testing.assert_allclose(got[2].T, frames[2]["pose"], atol=1e-5)
    with pytest.raises(PoseConventionError, match="world-to-camera"):  # the same poses taken as camera-to-world
        index_capture(cap, layout=tmp_path / "wrong", options=CaptureOptions(**opts))


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_registration_and_rigidity_errors(real, tmp_path):
    cap = write_scannet_export(tmp_path / "reg", real[:3], padded=False)
    K4 = np.eye(4)
    K4[:3, :3] = real[0]["K"] * np.array([[1.2], [1.2], [1]])
    np.savetxt(cap / "intrinsic" / "intrinsic_depth.txt", K4)
    with pytest.raises(RegistrationError, match="disagree with the depth intrinsics"):
        index_capture(cap)
    (cap / "intrinsic" / "intrinsic_depth.txt").unlink()
    wide = np.zeros((360, 700, 3), np.uint8)
    for p in (cap / "color").iterdir():
        Image.fromarray(wide).save(p)
    with pytest.raises(RegistrationError, match="differ in aspect ratio"):
        index_capture(cap)
    cap2 = write_scannet_export(tmp_path / "rigid", real[:3], padded=False)
    T = real[1]["pose"].copy()
    T[:3, :3] *= 1.1  # a scaled rotation
    np.savetxt(cap2 / "pose" / "1.txt", T)
    with pytest.raises(NonRigidPoseError, match=r"pose/1.txt: not a rigid pose"):
        index_capture(cap2)


def test_detection_and_unknown_folders(real, tmp_path):
    assert open_capture(write_scannet_export(tmp_path / "s", real[:2], padded=True)).format == "scannet"
    assert open_capture(write_7scenes(tmp_path / "7" / "seq-01", real[:2])).format == "7scenes"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="not a capture in any known format"):
        open_capture(tmp_path / "empty")
    with pytest.raises(DataFileError, match="capture not found"):
        open_capture(tmp_path / "nothing")


def test_capture_datamodule_serves_every_recording(real, tmp_path):
    for name in ("rec_a", "rec_b"):
        write_scannet_export(tmp_path / "room" / name, real[:3], padded=True)
    dm = CaptureDataModule(str(tmp_path / "room"), class_set="synthrooms", batch_size=3, with_pose=True)
    batch = next(iter(dm.predict_dataloader()))
    assert {f.sequence for f in dm.frames("capture")} == {"rec_a", "rec_b"} and batch["image"].shape == (3, 3, 360, 540)
    assert batch["meta"]["name"] == ["000000", "000001", "000002"]
    report = dm.labelling_report()
    assert set(report["recordings"]) == {"rec_a", "rec_b"}
    assert json.loads((tmp_path / "room" / "manifest.json").read_text())["num_frames"] == 6


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    from indoor_parsing.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


def test_index_capture_names_skipped_frames(real, tmp_path, capsys):
    cap = write_scannet_export(tmp_path / "scan", real, padded=False)
    (cap / "depth" / "2.png").unlink()
    (cap / "pose" / "4.txt").write_text("-inf " * 16)
    code, err = _run_cli(["index-capture", str(cap)], capsys)
    assert code == 0 and "scan: 5 frames" in err
    assert f"1 skipped:\n      2: no depth file for 2.jpg in {cap / 'depth'}" in err
    assert (
        f"1 indexed without a pose (not used for adaptation):\n      4: non-finite pose in {cap / 'pose' / '4.txt'}"
        in err
    )


def test_capture_and_prepare_errors_are_one_line(real, tmp_path, capsys):
    bad_pose = write_scannet_export(tmp_path / "bad_pose", real[:3], padded=False)
    np.savetxt(bad_pose / "pose" / "1.txt", np.diag([2.0, 2.0, 2.0, 1.0]))
    tum = write_tum(tmp_path / "no_camera_name", room_frames(K_SMALL, (128, 96), n=2))
    cases = [
        (["index-capture", str(tmp_path / "missing")], f"{tmp_path / 'missing'}: capture not found"),
        (["index-capture", str(bad_pose)], f"{bad_pose / 'pose' / '1.txt'}: not a rigid pose"),
        (["index-capture", str(tum)], f"{tum}: which TUM camera recorded this?"),
        (["index-capture", str(tum), "--camera", "fr1", "--format", "7scenes"], f"{tum}: no frame-NNNNNN.color.png"),
        (["prepare", "scannet-export", "--src", str(tmp_path / "x.sens"), "--dst", str(tmp_path / "o")],
         f"{tmp_path / 'x.sens'}: no .sens files found"),
    ]  # fmt: skip
    for argv, message in cases:
        code, err = _run_cli(argv, capsys)
        assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, (argv, err)
        assert "Traceback" not in err
    stage = ["predict", "--model", "indoor_parsing.methods.base.SegmentationModule", "--model.encoder_name", "resnet18",
             "--data", "indoor_parsing.data.capture.CaptureDataModule", "--data.root", str(bad_pose),
             "--data.class_set", "synthrooms", "--trainer.logger", "false"]  # fmt: skip
    code, err = _run_cli(stage, capsys)  # a Lightning stage indexing a bad capture in setup()
    assert code == 2 and err.splitlines()[-1].startswith(f"error: {bad_pose / 'pose' / '1.txt'}: not a rigid pose")
    assert "Traceback" not in err


def test_probe_verdicts():
    assert verdict(0.10, 0.60) == "refuse" and verdict(0.40, 0.60) == "warn" and verdict(0.55, 0.60) == "ok"
    assert verdict(0.60, 0.10) == "ok" and verdict(0.02, 0.03) == "no_overlap" and verdict(0.02, 0.08) == "warn"


def test_an_8_bit_depth_png_is_refused(real, tmp_path):
    cap = write_scannet_export(tmp_path / "scan", real[:3], padded=False)
    Image.fromarray((real[2]["depth_m"] * 50).astype(np.uint8)).save(cap / "depth" / "2.png")
    with pytest.raises(DataFileError, match=r"depth/2.png: expected a 16-bit single-channel depth PNG, got mode L"):
        index_capture(cap)
