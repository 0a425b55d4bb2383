"""The claims check's --precision: it sets the 2D arms' trainer precision, never the frozen 3D teacher's, and by
default on the CPU it leaves the configs' own (32-true), so the committed fp32 records keep their fingerprints."""

from indoor_parsing.tools.claims import run as claims_run
from indoor_parsing.tools.claims.plan import GEOAWARE


def _configs(tmp_path, *options):
    args = claims_run.parse_args(["--out", str(tmp_path), "--accelerator", "cpu", *options])
    arm = GEOAWARE.arms[0]
    config = claims_run._config(arm.config, {}, 0, 5, tmp_path / "arm", args, {})
    return config["trainer"], claims_run.Runner(args)._teacher_config(5)["trainer"]


def test_precision_is_set_on_the_2d_arms_only_and_left_alone_by_default(tmp_path):
    arm, teacher = _configs(tmp_path)
    assert arm["precision"] == teacher["precision"] == "32-true"  # the configs' own
    arm, teacher = _configs(tmp_path, "--precision", "bf16-mixed")
    assert arm["precision"] == "bf16-mixed" and teacher["precision"] == "32-true"
