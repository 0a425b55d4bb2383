"""The claims check's --precision and --channels-last: they reach the 2D arms (precision, the ChannelsLast
callback), never the frozen 3D teacher, and by default on the CPU leave the configs' own (32-true, default layout),
so the committed fp32 records keep their fingerprints."""

from indoor_parsing.tools.claims import run as claims_run
from indoor_parsing.tools.claims.options import CHANNELS_LAST, memory_layout
from indoor_parsing.tools.claims.plan import GEOAWARE


def _configs(tmp_path, *options):
    args = claims_run.parse_args(["--out", str(tmp_path), "--accelerator", "cpu", *options])
    arm = GEOAWARE.arms[0]
    config = claims_run._config(arm.config, {}, 0, 5, tmp_path / "arm", args, {})
    return config["trainer"], claims_run.Runner(args)._teacher_config(5)["trainer"]


def _layout(trainer) -> list:
    return [c for c in trainer.get("callbacks") or [] if c.get("class_path") == CHANNELS_LAST]


def test_precision_is_set_on_the_2d_arms_only_and_left_alone_by_default(tmp_path):
    arm, teacher = _configs(tmp_path)
    assert arm["precision"] == teacher["precision"] == "32-true"  # the configs' own
    arm, teacher = _configs(tmp_path, "--precision", "bf16-mixed")
    assert arm["precision"] == "bf16-mixed" and teacher["precision"] == "32-true"


def test_channels_last_reaches_the_2d_arms_once_and_never_the_teacher(tmp_path):
    arm, teacher = _configs(tmp_path)
    assert _layout(arm) == _layout(teacher) == []  # default: the configs' own layout (fingerprints kept)
    arm, teacher = _configs(tmp_path, "--channels-last")
    assert len(_layout(arm)) == 1 and _layout(teacher) == []
    memory_layout({"trainer": arm}, claims_run.parse_args(["--out", str(tmp_path), "--channels-last"]))
    assert len(_layout(arm)) == 1  # a config that has the callback keeps it once
