"""The README's "Your own data: A folder of photos" commands and snippets run as written, on real photos."""

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indoor_parsing.cli import main
from tests.inference_tools import save_checkpoint

README = Path(__file__).resolve().parents[1] / "README.md"


def section(text: str, heading: str) -> str:
    """The body under ``heading`` (a markdown heading line) up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    ends = [m.start() for m in re.finditer(rf"\n#{{1,{len(level)}}} ", text[start:])]
    return text[start : start + ends[0]] if ends else text[start:]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


PHOTOS = section(section(README.read_text(), "## Your own data"), "### A folder of photos")
COMMANDS = [shlex.split(line, comments=True) for block in blocks(PHOTOS, "bash") for line in block.splitlines()
            if line.strip() and not line.startswith("#")]  # fmt: skip


def test_the_section_has_commands_and_snippets():
    assert [c[:2] for c in COMMANDS] == [["indoor-parsing", "segment"], ["indoor-parsing", "export"]]
    assert len(blocks(PHOTOS, "python")) == 2


def test_photo_commands_run_as_written(realdata, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["indoor-parsing"])
    photos = Path("photos")
    photos.mkdir()
    shutil.copy(realdata / "nyuv2" / "nyu0001" / "rgb.jpg", photos / "kitchen.jpg")  # real 480x640 frames
    shutil.copy(realdata / "sunrgbd" / "open3d_frame" / "SUN_color.jpg", photos / "living_room.jpg")
    # The checkpoint the README names, written here for a small GeoAware network (a trained one takes a GPU day).
    ckpt = {c[c.index("--ckpt_path") + 1] for c in COMMANDS}
    assert len(ckpt) == 1
    save_checkpoint("geoaware_resnet18_synthrooms.yaml", Path(ckpt.pop()), tmp_path / "work", (240, 320))
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main(command[1:])
        assert exit_info.value.code == 0, command
    labels = np.asarray(Image.open("photos_labels/kitchen_label.png"))
    assert labels.shape == (480, 640) and (Path("photos_labels") / "living_room_overlay.png").is_file()
    assert Path("geoaware_nyudv2.onnx").is_file() and "| ONNX Runtime (CPU) |" in capsys.readouterr().out
    for snippet in blocks(PHOTOS, "python"):
        scope = {}
        exec(compile(snippet, "README.md", "exec"), scope)  # noqa: S102
        if "segment" in scope:  # the Python API gives the labels the command wrote
            np.testing.assert_array_equal(scope["labels"], labels)
        else:  # the bare onnxruntime recipe: same network, so mostly the same labels (resize methods differ)
            ours = np.asarray(Image.fromarray(labels).resize((320, 240), Image.NEAREST))
            assert scope["labels"].shape == (1, 240, 320) and (scope["labels"][0] == ours).mean() > 0.5
