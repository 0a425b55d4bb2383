"""GeoAware's Table 4 / Table 5 rows (Jiao et al., CVPR 2019): one config per row, one switch per row, each row
trains; the exact seeded depth subsets of Table 5."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from indoor_parsing.data.base import IndoorDataModule, depth_subset
from indoor_parsing.tools import config_rewrite as cr
from tests.helpers import make_batch, make_layout
from tests.method_harness import check_forward_backward
from tests.test_geoaware import K, module

EXPERIMENTS = Path(__file__).parents[1] / "configs/experiments"
SWITCH_KEYS = ("seg_loss", "hha_input", "depth_branch", "featprop", "scale_propagation", "fusion", "gap_placement",
               "spf")  # fmt: skip
# Table 4 rows in order, each with the row it builds on (one switch apart); hha and vanconv are side rows.
TABLE4_PARENT = {"sem_only": None, "ls": "sem_only", "hha": "ls", "depem": "ls", "featprop": "depem",
                 "scaleprop": "featprop", "vanconv": "scaleprop", "gap": "scaleprop", "spf": "gap"}  # fmt: skip
TABLE5 = (0, 20, 40, 60, 80, 100)


def model_args(path: Path) -> dict:
    return cr.load(path)["model"]["init_args"]


def without_run_paths(path: Path) -> dict:
    config = cr.load(path)
    config["trainer"].pop("default_root_dir")
    config.pop("checkpoint", None)
    return config


@pytest.mark.parametrize("row", list(TABLE4_PARENT), ids=list(TABLE4_PARENT))
def test_table4_row_trains_one_step(row):
    switches = {k: model_args(EXPERIMENTS / f"geoaware_table4/synthrooms/{row}.yaml")[k] for k in SWITCH_KEYS}
    m = module(**switches, optimizer=lambda groups: torch.optim.Adam(groups, lr=1e-3), grad_clip=1.0)
    batch = make_batch(2, 32, 32, K=K)
    terms = check_forward_backward(m, batch)
    expected = {"seg"} | ({"depth"} if switches["depth_branch"] else set())
    expected |= {"distilled", "side1", "side2", "side3"} if switches["spf"] else set()
    assert terms.keys() == expected
    opt = m.configure_optimizers()
    before = [p.detach().clone() for p in m.parameters()]
    sum(m.losses(batch).values()).backward()
    m.on_before_optimizer_step(opt)
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, m.parameters(), strict=True))


@pytest.mark.parametrize("dataset", ["synthrooms", "nyudv2"])
def test_table4_rows_build_on_each_other_one_switch_at_a_time(dataset):
    folder = EXPERIMENTS / "geoaware_table4" / dataset
    assert {p.stem for p in folder.glob("*.yaml")} == set(TABLE4_PARENT)
    for row, parent in TABLE4_PARENT.items():
        args = model_args(folder / f"{row}.yaml")
        if dataset == "nyudv2":  # the paper's setting: ResNet-50 with ImageNet weights, same switches as SynthRooms
            assert args["encoder_name"] == "resnet50" and args["encoder_weights"] == "imagenet"
            assert {k: args[k] for k in SWITCH_KEYS} == {
                k: model_args(EXPERIMENTS / f"geoaware_table4/synthrooms/{row}.yaml")[k] for k in SWITCH_KEYS
            }
        if parent is None:
            assert args["seg_loss"] == "ce" and not (args["depth_branch"] or args["spf"])
            continue
        mine, theirs = without_run_paths(folder / f"{row}.yaml"), without_run_paths(folder / f"{parent}.yaml")
        changed = {k for k in args if mine["model"]["init_args"][k] != theirs["model"]["init_args"][k]}
        assert len(changed) == 1 and changed <= set(SWITCH_KEYS), (row, changed)
        mine["model"]["init_args"] = theirs["model"]["init_args"] = None
        assert mine == theirs, f"{row} differs from {parent} outside the model switches"
    full = "geoaware_resnet18_synthrooms.yaml" if dataset == "synthrooms" else "geoaware_resnet50_nyudv2.yaml"
    assert model_args(folder / "spf.yaml") == model_args(EXPERIMENTS / full), "the last row is the full model"


@pytest.mark.parametrize("dataset", ["synthrooms", "nyudv2"])
def test_table5_rows_differ_in_the_depth_fraction_only(dataset):
    folder = EXPERIMENTS / "geoaware_table5" / dataset
    assert {p.stem for p in folder.glob("*.yaml")} == {f"depth{f}" for f in TABLE5}
    full = without_run_paths(EXPERIMENTS / f"geoaware_table4/{dataset}/spf.yaml")
    for f in TABLE5:
        config = without_run_paths(folder / f"depth{f}.yaml")
        assert config["data"]["init_args"].pop("depth_fraction") == f / 100
        assert config["data"]["init_args"].pop("split_seed") == 0
        row = "ls" if f == 0 else "spf"  # 0 % depth: no depth branch, sem + L_s
        assert config == without_run_paths(EXPERIMENTS / f"geoaware_table4/{dataset}/{row}.yaml"), f
    assert full["model"]["init_args"]["depth_branch"]


def test_depth_subsets_are_exact_seeded_and_nested(tmp_path):
    frames = [SimpleNamespace(key=f"s{i // 7}/seq/{i % 7:06d}") for i in range(23)]
    kept = {f: depth_subset(frames, f / 100, seed=0) for f in (20, 40, 60, 80)}
    for f, keep in kept.items():
        assert keep.sum() == int(f / 100 * 23 + 0.5), f  # an exact count, not a threshold
    assert depth_subset(frames, 1.0, 0) is None and not depth_subset(frames, 0.0, 0).any()
    for small, large in ((20, 40), (40, 60), (60, 80)):
        assert (kept[small] <= kept[large]).all()  # 20 % ⊂ 40 % ⊂ ...
    assert not np.array_equal(depth_subset(frames, 0.4, seed=1), kept[40])
    perm = np.random.default_rng(3).permutation(23)  # the layout's order does not matter
    assert np.array_equal(depth_subset([frames[i] for i in perm], 0.4, seed=0), kept[40][perm])
    dm = IndoorDataModule(str(make_layout(tmp_path / "toy", frames=5)), "synthrooms", depth_fraction=0.4, split_seed=2)
    ds = dm.dataset("fit")  # 2 training scenes x 5 frames
    assert sum(bool(ds[i]["depth_valid"].any()) for i in range(len(ds))) == 4
