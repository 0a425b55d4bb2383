"""The README's capture commands ("Your own data" / "RGB-D captures"), run as written on fixtures of each format."""

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from indoor_parsing.cli import main
from indoor_parsing.data.captures.sevenscenes import K_COLOUR, K_DEPTH
from indoor_parsing.data.captures.tum import CAMERAS
from indoor_parsing.io import read_json
from tests.capture_fixtures import (
    real_frames,
    room_frames,
    write_7scenes,
    write_scannet_export,
    write_sens_file,
    write_tum,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_capture_commands() -> list[list[str]]:
    text = README.read_text()
    section = text.split("### RGB-D captures", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def _camera(name: str) -> np.ndarray:
    fx, fy, cx, cy = CAMERAS[name]
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])


def _write_fixtures(realdata: Path) -> None:
    real = real_frames(realdata)
    write_scannet_export(Path("scannet/scene0000_00"), real, padded=False)
    write_sens_file(Path("scans/scene0000_00/scene0000_00.sens"), real[:3])
    write_7scenes(
        Path("7scenes/chess/seq-01"), room_frames(K_COLOUR, (640, 480), 3), room_frames(K_DEPTH, (640, 480), 3)
    )
    write_tum(Path("tum/rgbd_dataset_freiburg1_desk"), room_frames(_camera("fr1"), (640, 480), 3))
    write_tum(Path("tum/my_walk"), room_frames(_camera("fr3"), (640, 480), 3))
    seq = realdata / "sequences" / "hololens_dvmvs_000"
    for sub in ("images", "depth"):
        shutil.copytree(seq / sub, Path("myroom") / sub)
    shutil.copy(seq / "K.txt", "myroom/K.txt")
    shutil.copy(seq / "poses_selected.txt", "myroom/poses.txt")


def test_readme_capture_commands_run_as_written(realdata, tmp_path, monkeypatch, capsys):
    commands = readme_capture_commands()
    assert all(c[:2] == ["indoor-parsing", "index-capture"] for c in commands) and len(commands) == 6
    monkeypatch.chdir(tmp_path)
    _write_fixtures(realdata)
    formats = []
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main(command[1:])
        err = capsys.readouterr().err
        assert exit_info.value.code == 0, (command, err)
        root, frames, fmt = re.match(r"(\S+): (\d+) frames of (\S+) capture", err).groups()
        manifest = read_json(Path(root) / "manifest.json")
        assert manifest["num_frames"] == int(frames) > 0 and manifest["format"] == fmt
        formats.append(fmt)
    assert set(formats) == {"scannet", "sens", "7scenes", "tum", "folder"}
    assert Path("myroom_index/manifest.json").is_file() and not Path("myroom/manifest.json").exists()  # --layout
