"""Segmenting plain images: the Python API and `indoor-parsing segment` on folders, globs and files of any size."""

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from indoor_parsing.cli import main
from indoor_parsing.data.sample import normalize_image
from indoor_parsing.data.taxonomy import colorize
from indoor_parsing.errors import UserError
from indoor_parsing.inference.segmenter import load_segmenter
from tests.inference_tools import save_checkpoint

TRAIN_SIZE = (48, 64)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("segment_ckpt")
    return save_checkpoint("geoaware_resnet18_synthrooms.yaml", root / "best.ckpt", root / "work", TRAIN_SIZE)


def _photo(path, size, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _segment(*args):
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", *map(str, args)])
    return exit_info.value.code


def test_segmenter_is_the_method_on_the_resized_normalised_image(ckpt):
    segment = load_segmenter(ckpt, device="cpu")
    assert segment.size == TRAIN_SIZE and segment.num_classes == 20
    rgb = np.random.default_rng(1).integers(0, 256, (75, 101, 3), dtype=np.uint8)  # any size, other aspect
    labels, prob = segment(rgb)
    assert labels.shape == (75, 101) and prob.shape == (20, 75, 101)
    np.testing.assert_allclose(prob.sum(0), 1.0, atol=1e-5)
    assert (labels == prob.argmax(0)).all()
    # Independently: ImageNet normalisation, resize to the training size, forward, logits back to the image size.
    x = normalize_image(torch.from_numpy(rgb).permute(2, 0, 1))[None]
    x = F.interpolate(x, size=TRAIN_SIZE, mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        logits = F.interpolate(segment.module(x), size=(75, 101), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(prob, logits.softmax(1)[0].numpy(), atol=1e-4)  # float32 sums in another order: ~1e-5


def test_batches_give_the_labels_of_single_images(ckpt, tmp_path):
    paths = [_photo(tmp_path / f"{i}.png", (50, 70), seed=i) for i in range(3)]
    single = [label for _, _, label, _ in load_segmenter(ckpt, "cpu", batch_size=1).segment_many(paths)]
    batched = list(load_segmenter(ckpt, "cpu", batch_size=3).segment_many(paths))
    assert [p for p, *_ in batched] == paths
    for a, (_, _, b, _) in zip(single, batched, strict=True):
        np.testing.assert_array_equal(a, b)


def test_segment_folder_writes_labels_previews_and_class_table(ckpt, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "kitchen.jpg", (90, 130))
    _photo(photos / "hall.png", (61, 47), seed=2)
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "labels"
    assert _segment("--ckpt_path", ckpt, "--input", photos, "--output", out, "--device", "cpu", "--confidence") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["classes.csv"] + [f"{s}_{k}.png" for s in ("hall", "kitchen")
                                              for k in ("label", "color", "overlay", "confidence")])  # fmt: skip
    ids = np.asarray(Image.open(out / "hall_label.png"))
    assert ids.shape == (61, 47) and ids.dtype == np.uint8 and ids.max() < 20
    labels, _ = load_segmenter(ckpt, "cpu")(photos / "hall.png")
    np.testing.assert_array_equal(ids, labels)
    colour = np.asarray(Image.open(out / "hall_color.png"))
    np.testing.assert_array_equal(colour[:61, :47], colorize(ids, 20))  # the map, then the legend to its right
    assert colour.shape[1] > 47 and colour.shape[0] >= 61
    rows = list(csv.reader((out / "classes.csv").open()))
    assert rows[0] == ["id", "name", "r", "g", "b"] and len(rows) == 21 and rows[1][1] == "wall"


def test_segment_glob_and_single_file_and_exif_orientation(ckpt, tmp_path):
    photo = tmp_path / "phone.jpg"
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated by 90 degrees (portrait)
    image.save(photo, exif=exif)
    _photo(tmp_path / "other.png", (30, 30))
    assert _segment("--ckpt_path", ckpt, "--input", tmp_path / "*.jpg", "--output", tmp_path / "g") == 0
    assert sorted(p.name for p in (tmp_path / "g").glob("*_label.png")) == ["phone_label.png"]
    assert np.asarray(Image.open(tmp_path / "g" / "phone_label.png")).shape == (60, 40)  # as displayed
    assert _segment("--ckpt_path", ckpt, "--input", tmp_path / "other.png", "--output", tmp_path / "f") == 0
    assert (tmp_path / "f" / "other_overlay.png").is_file()


@pytest.mark.parametrize("case", ["no_images", "clash", "missing_ckpt", "truncated_ckpt", "bad_image"])
def test_segment_mistakes_are_one_line(case, ckpt, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    ckpt_arg = ckpt
    if case == "clash":
        _photo(photos / "a.jpg", (20, 20))
        _photo(photos / "a.png", (20, 20))
    elif case == "bad_image":
        (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    elif case != "no_images":
        _photo(photos / "a.jpg", (20, 20))
    if case == "missing_ckpt":
        ckpt_arg = tmp_path / "nope.ckpt"
    if case == "truncated_ckpt":
        ckpt_arg = tmp_path / "cut.ckpt"
        data = ckpt.read_bytes()
        ckpt_arg.write_bytes(data[: len(data) // 2])
    assert _segment("--ckpt_path", ckpt_arg, "--input", photos, "--output", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    expected = {"no_images": (photos, "no images found"), "clash": (photos / "a.jpg", "called 'a'"),
                "missing_ckpt": (ckpt_arg, "checkpoint not found"), "truncated_ckpt": (ckpt_arg, "truncated"),
                "bad_image": (photos / "broken.jpg", "cannot decode")}[case]  # fmt: skip
    line = err.splitlines()[-1]  # after the progress bar, when the mistake shows only once segmenting started
    assert "Traceback" not in err and line.startswith(f"error: {expected[0]}: ") and expected[1] in line


def test_segmenter_refuses_depth_input_checkpoints(tmp_path):
    ckpt = save_checkpoint("geoaware_table4/synthrooms/hha.yaml", tmp_path / "hha.ckpt", tmp_path / "work")
    with pytest.raises(UserError, match="needs depth at test time"):
        load_segmenter(ckpt, "cpu")
