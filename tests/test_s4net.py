"""S4-Net: warping and masks, teacher refresh, L_G gradients, real-frame photometry, data modules, the method."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from indoor_parsing.data.capture import CaptureDataModule
from indoor_parsing.data.multiview import S4NetDataModule
from indoor_parsing.data.synthrooms.datamodule import SynthRoomsDataModule
from indoor_parsing.geometry.camera import relative_pose
from indoor_parsing.geometry.warp import inverse_warp
from indoor_parsing.io import DataFileError, load_depth, load_label, save_depth, save_image
from indoor_parsing.losses import photometric_loss
from indoor_parsing.methods.s4net import S4NetModule, merge_labels, warp_neighbors
from tests.helpers import make_batch
from tests.method_harness import check_checkpoint_round_trip, check_forward_backward, check_odd_sizes

K20 = 20


def _K(B: int, H: int, W: int) -> torch.Tensor:
    return torch.tensor([[40.0, 0, (W - 1) / 2], [0, 40.0, (H - 1) / 2], [0, 0, 1]]).expand(B, 3, 3).clone()


def _pose(B: int, tx: float = 0.0) -> torch.Tensor:
    T = torch.eye(4).expand(B, 4, 4).clone()
    T[:, 0, 3] = tx
    return T


def combined_batch(B=2, H=32, W=32, neighbors=2, seed=0) -> dict:
    """A source batch and a target batch whose neighbours are slightly shifted views of a fronto-parallel wall."""
    target = make_batch(B, H, W, K=K20, seed=seed + 1)
    target.pop("label")
    target["depth"] = torch.full((B, 1, H, W), 2.0)
    target["depth"][..., :3, :] = 0  # a band without depth: never supervised by L_G
    target["intrinsics"], target["pose"] = _K(B, H, W), _pose(B)
    target["neighbors"] = [
        {"image": make_batch(B, H, W, seed=seed + 2 + k)["image"], "depth": torch.full((B, 1, H, W), 2.0),
         "intrinsics": _K(B, H, W), "pose": _pose(B, 0.02 * (k + 1))}
        for k in range(neighbors)
    ]  # fmt: skip
    return {"source": make_batch(B, H, W, K=K20, seed=seed), "target": target}


def module(**kw) -> S4NetModule:
    args = {"num_classes": K20, "arch": "DeepLabV3Plus", "encoder_name": "resnet18", "class_weighting": "none"}
    return S4NetModule(**{**args, **kw})


# ---- geometry of L_G ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Tiny SynthRooms: 3 labelled source rooms and one target room with scans scan1 and scan2."""
    root = tmp_path_factory.mktemp("synthrooms")
    common = {"height": 48, "width": 64, "batch_size": 2}
    source = SynthRoomsDataModule(str(root / "source"), num_scenes=3, frames_per_sequence=2, split=(1, 1, 1), **common)
    target = SynthRoomsDataModule(str(root / "target"), num_scenes=1, sequences=("scan1", "scan2"),
                                  frames_per_sequence=8, style="target", split=(1, 0, 0), **common)  # fmt: skip
    dm = S4NetDataModule(source, target, eval_sequences=["scan1", "scan2"])
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_warped_labels_reproduce_the_neighbours_labels(synth):
    frames = synth.sequences["scan1"]
    synth.target_dataset()
    pairs = [(i, j) for i, js in enumerate(synth.overlap_candidates) for j in js][:8]
    assert pairs, "no overlapping pair in the tiny sequence"

    def view(f):
        label = torch.from_numpy(synth.classes.map(load_label(synth.root / f.label)).astype(np.int64))[None]
        onehot = F.one_hot(torch.where(label == 255, K20, label), K20 + 1)[..., :K20].permute(0, 3, 1, 2).double()
        depth = torch.from_numpy(load_depth(synth.root / f.depth))[None, None].double()
        return label, onehot, depth, torch.from_numpy(f.K)[None], torch.from_numpy(f.T)[None]

    agree = total = 0
    for i, j in pairs:
        label_e, _, depth_e, K_e, T_e = view(frames[i])
        _, prob, depth_n, K_n, T_n = view(frames[j])
        nb = {"prob": prob, "depth": depth_n, "intrinsics": K_n, "pose": T_n, "usable": torch.ones(1, dtype=bool)}
        warped = merge_labels(warp_neighbors(depth_e, K_e, T_e, [nb], boundary_width=0))
        ok = (warped != 255) & (label_e != 255)
        agree += int((warped[ok] == label_e[ok]).sum())
        total += int(ok.sum())
    assert total > 500 and agree / total >= 0.98


def test_occlusion_mask_removes_pixels_hidden_in_the_neighbour():
    H, W = 24, 32
    depth = torch.full((1, 1, H, W), 4.0)
    nb_depth = depth.clone()
    nb_depth[..., 8:16, 10:20] = 1.0  # an occluder in front of the wall, seen only by the neighbour
    K, T = _K(1, H, W), _pose(1)
    nb = {"prob": torch.ones(1, 3, H, W) / 3, "depth": nb_depth, "intrinsics": K, "pose": T,
          "usable": torch.ones(1, dtype=bool)}  # fmt: skip
    valid = warp_neighbors(depth, K, T, [nb], boundary_width=0)[0]["valid"][0, 0]
    hidden = torch.zeros(H, W, dtype=torch.bool)
    hidden[8:16, 10:20] = True
    # The outermost pixels are left out: round-off may put their exact-border projection a hair outside the image.
    assert not valid[hidden].any() and valid[1:-1, 1:-1][~hidden[1:-1, 1:-1]].all()


@pytest.mark.parametrize("width", [0, 1, 3])
def test_boundary_mask_width_is_respected(width):
    H, W, c = 16, 24, 10
    seg = torch.zeros(1, H, W, dtype=torch.long)
    seg[..., c:] = 1
    nb = {"prob": F.one_hot(seg, 2).permute(0, 3, 1, 2).double(), "depth": torch.full((1, 1, H, W), 2.0).double(),
          "intrinsics": _K(1, H, W).double(), "pose": _pose(1).double(),
          "usable": torch.ones(1, dtype=bool)}  # fmt: skip
    label = merge_labels(warp_neighbors(nb["depth"], nb["intrinsics"], nb["pose"], [nb], boundary_width=width))[0]
    inner = label[1:-1, 1:-1]  # border pixels may fall a round-off outside the view
    ignored_columns = [j + 1 for j in (inner == 255).all(0).nonzero().flatten().tolist()]
    assert ignored_columns == list(range(c - width, c + width))
    assert (inner[:, : c - width - 1] == 0).all() and (inner[:, c + width - 1 :] == 1).all()


def test_unusable_neighbour_gives_no_label():
    H, W = 8, 8
    nb = {"prob": torch.ones(1, 2, H, W), "depth": torch.ones(1, 1, H, W), "intrinsics": _K(1, H, W),
          "pose": _pose(1), "usable": torch.zeros(1, dtype=bool)}  # fmt: skip
    assert (merge_labels(warp_neighbors(nb["depth"], nb["intrinsics"], nb["pose"], [nb], 0)) == 255).all()


def test_geometric_loss_has_no_gradient_on_masked_pixels():
    torch.manual_seed(0)
    m = module(boundary_width=1)
    m.refresh_teacher_if_due(0)
    batch = combined_batch(B=1)
    seg = torch.randn(1, K20, 32, 32, requires_grad=True)
    m.model.forward = lambda image: {"logits": seg}  # the teacher keeps the real network
    m.target_losses(batch["target"])["geo"].backward()
    grad = seg.grad.abs().sum(1)[0]  # (H, W)
    assert (grad[:3] == 0).all()  # rows without depth
    assert (grad > 0).sum() > 100
    with torch.no_grad():
        probs = m.teacher(torch.cat([nb["image"] for nb in batch["target"]["neighbors"]]))["logits"].softmax(1)
    views = [{**nb, "prob": p[None], "usable": torch.ones(1, dtype=bool)}
             for nb, p in zip(batch["target"]["neighbors"], probs, strict=True)]  # fmt: skip
    t = batch["target"]
    label = merge_labels(warp_neighbors(t["depth"], t["intrinsics"], t["pose"], views, 1))[0]
    assert torch.equal(grad > 0, label != 255)


def _real_view(realdata, name: str) -> tuple[torch.Tensor, ...]:
    seq = realdata / "sequences" / "hololens_dvmvs_000"
    rgb = torch.from_numpy(np.asarray(Image.open(seq / "images" / f"{name}.png"))[..., :3].copy())
    depth = torch.from_numpy(load_depth(seq / "depth" / f"{name}.png"))[None, None].double()
    poses = {line.split()[0]: line.split()[1:] for line in (seq / "poses_selected.txt").read_text().splitlines()}
    T = torch.tensor([float(v) for v in poses[f"{name}.png"]], dtype=torch.float64).view(1, 4, 4)
    K = torch.from_numpy(np.loadtxt(seq / "K.txt"))[None]
    return rgb.permute(2, 0, 1)[None].double() / 255, depth, K, T


@pytest.mark.parametrize("pair", [("00003", "00005"), ("00004", "00005")])
def test_real_frames_warp_better_with_the_true_pose(realdata, pair):
    rgb_e, depth_e, K, T_e = _real_view(realdata, pair[0])
    rgb_n, depth_n, _, T_n = _real_view(realdata, pair[1])
    angle = math.radians(2.0)
    delta = torch.eye(4, dtype=torch.float64)
    delta[:3, :3] = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0,
                                                                                     math.cos(angle)]])  # fmt: skip
    delta[:3, 3] = torch.tensor([0.05, 0.0, 0.0])
    errors = []
    for T in (T_n, T_n @ delta):
        # Loose occlusion test: a wrong pose must not be excused by dropping all disagreeing pixels.
        warped, valid = inverse_warp(rgb_n, depth_n, depth_e, K, K, relative_pose(T_e, T), abs_tol=0.5, rel_tol=0.2)
        assert valid.float().mean() > 0.4
        errors.append(float(photometric_loss(warped.float(), rgb_e.float(), valid)))
    assert errors[0] < 0.9 * errors[1], errors


# ---- teacher ----------------------------------------------------------------------------------------------------
def test_teacher_is_refreshed_exactly_every_n_steps():
    import lightning as L  # after indoor_parsing (its import guard must run before torchvision loads)

    m = module(teacher_refresh=2, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    batches = [combined_batch(H=32, W=32, neighbors=1, seed=s) for s in range(5)]
    teacher_after = {}

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            teacher_after[batch_idx] = pl_module.teacher.state_dict()["encoder.conv1.weight"].clone()

    trainer = L.Trainer(max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Snapshot()])  # fmt: skip
    trainer.fit(m, train_dataloaders=DataLoader(batches, batch_size=None, collate_fn=lambda b: b))
    assert m.teacher_refresh_steps == [0, 2, 4]
    assert {"train/seg", "train/geo", "train/geo_coverage", "train/geo_frames_without_neighbor"} <= set(
        trainer.callback_metrics
    )
    assert float(trainer.callback_metrics["train/geo_coverage"]) > 0  # an untrained teacher: many boundaries
    assert int(m.teacher_step) == 4 and not m.teacher.training
    assert not any(p.requires_grad for p in m.teacher.parameters())
    same = [torch.equal(teacher_after[s], teacher_after[s + 1]) for s in range(4)]
    assert same == [True, False, True, False]  # changed exactly at steps 2 and 4
    assert not torch.equal(teacher_after[4], m.model.state_dict()["encoder.conv1.weight"])  # step 4 moved Θ on


# ---- the method -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "switches, expected",
    [
        ({}, {"seg", "geo"}),
        ({"arch": "PSPNet", "aux_head": True}, {"seg", "seg_aux", "geo", "geo_aux"}),
        ({"depth_prediction": True}, {"seg", "depth", "geo", "photo"}),
        ({"depth_prediction": True, "warp_depth": "predicted"}, {"seg", "depth", "geo", "photo"}),
        ({"consistency_weight": 0.0}, {"seg"}),
    ],
)
def test_forward_backward_for_every_switch(switches, expected):
    torch.manual_seed(0)
    m = module(**switches)
    m.refresh_teacher_if_due(0)
    terms = check_forward_backward(m, combined_batch())
    assert set(terms) == expected
    assert (m.teacher is None) == (switches.get("consistency_weight") == 0.0)


def test_plain_source_batch_odd_sizes_and_checkpoint(tmp_path):
    m = module(depth_prediction=True)
    assert set(check_forward_backward(m, make_batch(2, 32, 48, K=K20))) == {"seg", "depth"}
    check_odd_sizes(m, K20)
    check_checkpoint_round_trip(m, S4NetModule, tmp_path)


def test_init_checkpoint_loads_the_source_network(tmp_path):
    import lightning as L

    source = module(consistency_weight=0.0)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(source)
    trainer.save_checkpoint(tmp_path / "source.ckpt")
    adapted = module(depth_prediction=True, init_checkpoint=str(tmp_path / "source.ckpt"))
    adapted.load_source_weights(adapted.hparams.init_checkpoint)  # what setup("fit") does
    key = "encoder.conv1.weight"
    assert torch.equal(adapted.model.state_dict()[key], source.model.state_dict()[key])
    as_adapted = S4NetModule.load_from_checkpoint(tmp_path / "source.ckpt", consistency_weight=0.01)
    assert torch.equal(as_adapted.teacher.state_dict()[key], source.model.state_dict()[key])  # teacher filled in
    with pytest.raises(ValueError, match="not a checkpoint of this S4Net network"):
        module(num_classes=5).load_source_weights(str(tmp_path / "source.ckpt"))


def test_bad_switches_are_rejected():
    with pytest.raises(ValueError, match="warp_depth"):
        module(warp_depth="predicted")
    with pytest.raises(ValueError, match="teacher_refresh"):
        module(teacher_refresh=0)


# ---- data -------------------------------------------------------------------------------------------------------
def test_target_batches_have_overlapping_neighbours_and_no_labels(synth):
    loader = synth.train_dataloader()
    batch, _, _ = next(iter(loader))
    target = batch["target"]
    assert set(batch) == {"source", "target"} and (target["label"] == 255).all()
    assert len(target["neighbors"]) == 4 and target["pose"].shape == (2, 4, 4)
    assert any(synth.overlap_candidates) and all(i not in js for i, js in enumerate(synth.overlap_candidates))
    assert [len(loader) for loader in synth.val_dataloader()] == [4, 4]
    assert synth.eval_names == ["scan1", "scan2"] and synth.num_classes == K20
    assert list(synth.root.glob("s4net_overlap_*.npy"))  # cached in the layout folder


def test_pose_noise_has_the_configured_magnitude(synth):
    noisy = S4NetDataModule(synth.source, synth.target, pose_noise_rot_deg=3.0, pose_noise_trans_m=0.1)
    noisy.setup("fit")
    for clean, bad in zip(synth.sequences["scan1"], noisy.sequences["scan1"], strict=True):
        delta = np.linalg.inv(clean.T) @ bad.T
        angle = math.degrees(math.acos(np.clip((np.trace(delta[:3, :3]) - 1) / 2, -1, 1)))
        assert angle == pytest.approx(3.0, abs=1e-6) and np.linalg.norm(delta[:3, 3]) == pytest.approx(0.1)


def test_target_eval_full_resolution_reaches_the_eval_loaders(synth):
    target = SynthRoomsDataModule(str(synth.target.root), num_scenes=1, sequences=("scan1", "scan2"),
                                  frames_per_sequence=8, style="target", split=(1, 0, 0), height=48, width=64,
                                  image_size=(24, 32), eval_full_resolution=True, batch_size=2)  # fmt: skip
    dm = S4NetDataModule(synth.source, target, eval_sequences=["scan1", "scan2"])
    batch = next(iter(dm.test_dataloader()[1]))
    assert batch["label"].shape == (2, 24, 32) and batch["label_full"].shape == (2, 48, 64)
    assert "label_full" not in next(iter(synth.test_dataloader()[0]))  # off unless the target asks for it


def test_missing_sequence_is_a_clear_error(synth):
    with pytest.raises(DataFileError, match="no sequence 'scan3'"):
        S4NetDataModule(synth.source, synth.target, eval_sequences=["scan3"]).setup("fit")


def test_two_test_loaders_log_under_distinct_prefixes(synth):
    import lightning as L

    m = module(consistency_weight=0.0)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(m, datamodule=synth, verbose=False)
    logged = trainer.callback_metrics
    assert {"test/mIoU", "test/scan1/mIoU", "test/scan2/mIoU", "test/scan2/fwIoU"} <= set(logged)
    assert float(logged["test/mIoU"]) == float(logged["test/scan1/mIoU"])
    assert "test/scan2" in m.last_results


def test_capture_folder_is_indexed_and_read(tmp_path):
    cap = tmp_path / "mycapture"
    rng = np.random.default_rng(0)
    for n in range(4):
        save_image(cap / "color" / f"{n}.jpg", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        if n != 3:  # frame 3 has no depth: skipped and counted
            save_depth(cap / "depth" / f"{n}.png", np.full((24, 32), 1.5, np.float32))
        pose = np.eye(4) if n != 1 else np.full((4, 4), -np.inf)  # frame 1 lost tracking
        (cap / "pose").mkdir(exist_ok=True)
        np.savetxt(cap / "pose" / f"{n}.txt", pose)
    (cap / "intrinsic").mkdir()
    np.savetxt(cap / "intrinsic" / "intrinsic_color.txt", np.array([[60.0, 0, 31.5, 0], [0, 60, 23.5, 0],
                                                                      [0, 0, 1, 0], [0, 0, 0, 1]]))  # fmt: skip
    dm = CaptureDataModule(str(cap), class_set="synthrooms", batch_size=2, with_pose=True)
    batch = next(iter(dm.predict_dataloader()))
    assert dm.skipped_invalid_pose == 1 and len(dm.frames("capture")) == 2
    assert batch["image"].shape == (2, 3, 24, 32) and (batch["label"] == 255).all()
    torch.testing.assert_close(batch["intrinsics"][0], torch.tensor([[30.0, 0, 15.5], [0, 30, 11.5], [0, 0, 1]]))
    torch.testing.assert_close(batch["depth"], torch.full((2, 1, 24, 32), 1.5))
    as_target = S4NetDataModule(dm, CaptureDataModule(str(cap), class_set="synthrooms"), train_sequence=None,
                                target_splits="capture")  # fmt: skip
    as_target.setup("fit")
    assert as_target.skipped_invalid_pose == 1 and as_target.sequences == {"mycapture": dm.frames("capture")}
    (cap / "depth" / "0.png").write_bytes(b"broken")
    with pytest.raises(DataFileError, match="0.png"):
        CaptureDataModule(str(cap), class_set="synthrooms").setup()
