"""SegmentationMetrics against hand-computed values, an independent numpy reference and a 2-process DDP run."""

import math
import multiprocessing
import os
import socket

import numpy as np
import pytest
import torch

from indoor_parsing.metrics.segmentation import SegmentationMetrics, format_table, metrics_from_confusion, to_csv_rows

IGNORE = 255

# 3-class example, 12 pixels of which 4 are ignored (their predictions must not count).
#   confusion (rows = gt, cols = pred):  [[3, 1, 0],
#                                         [0, 2, 1],
#                                         [1, 0, 0]]
#   pixel_acc = 5/8; acc = [3/4, 2/3, 0] -> mean_acc = 17/36
#   IoU: c0 = 3/(4+4-3) = 0.6, c1 = 2/(3+3-2) = 0.5, c2 = 0/(1+1-0) = 0 -> mIoU = 1.1/3
#   fwIoU = (4*0.6 + 3*0.5 + 1*0) / 8 = 0.4875
HAND_TARGET = torch.tensor([[[0, 0, 0, 0], [1, 1, 1, 2], [IGNORE, IGNORE, IGNORE, IGNORE]]])
HAND_PREDS = torch.tensor([[[0, 0, 0, 1], [1, 1, 2, 0], [2, 2, 1, 0]]])
HAND_CONF = [[3, 1, 0], [0, 2, 1], [1, 0, 0]]


def _scalars(result: dict) -> dict[str, float]:
    return {k: float(v) for k, v in result.items() if k != "iou"}


def test_hand_computed_three_classes():
    metric = SegmentationMetrics(3)
    metric.update(HAND_PREDS, HAND_TARGET)
    assert metric.confmat.tolist() == HAND_CONF
    out = metric.compute()
    assert out["pixel_acc"].item() == pytest.approx(0.625)
    assert out["mean_acc"].item() == pytest.approx(17 / 36)
    assert out["mIoU"].item() == pytest.approx(1.1 / 3)
    assert out["fwIoU"].item() == pytest.approx(0.4875)
    assert out["iou"].tolist() == pytest.approx([0.6, 0.5, 0.0])


def test_ignored_pixels_do_not_count():
    base = SegmentationMetrics(3)
    base.update(HAND_PREDS, HAND_TARGET)
    # Flip every prediction at ignored pixels: nothing may change.
    preds = torch.where(HAND_TARGET == IGNORE, (HAND_PREDS + 1) % 3, HAND_PREDS)
    other = SegmentationMetrics(3)
    other.update(preds, HAND_TARGET)
    assert torch.equal(base.confmat, other.confmat)
    assert int(other.confmat.sum()) == int((HAND_TARGET != IGNORE).sum())
    only_ignored = SegmentationMetrics(3)
    only_ignored.update(HAND_PREDS, torch.full_like(HAND_TARGET, IGNORE))
    assert int(only_ignored.confmat.sum()) == 0


def test_absent_classes_are_nan_and_left_out_of_means():
    # Same pixels with K = 5: class 3 is absent from ground truth and prediction, class 4 is only predicted.
    target = HAND_TARGET.clone()
    preds = HAND_PREDS.clone()
    preds[0, 0, 0] = 4  # one gt-0 pixel now predicted as 4: c0 has tp 2, t 4, p 3
    metric = SegmentationMetrics(5)
    metric.update(preds, target)
    out = metric.compute()
    iou = out["iou"]
    assert math.isnan(iou[3].item())
    assert iou[4].item() == 0.0  # predicted but absent from gt: a real error, counted
    expected_iou = [2 / (4 + 3 - 2), 0.5, 0.0, 0.0]  # classes 0, 1, 2, 4
    assert iou[[0, 1, 2, 4]].tolist() == pytest.approx(expected_iou)
    assert out["mIoU"].item() == pytest.approx(sum(expected_iou) / 4)
    assert out["mean_acc"].item() == pytest.approx((2 / 4 + 2 / 3 + 0) / 3)  # classes with gt pixels only
    assert out["pixel_acc"].item() == pytest.approx(4 / 8)


def test_logits_equal_argmax():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=gen)
    target = torch.randint(0, 4, (2, 5, 6), generator=gen)
    target[0, :2] = IGNORE
    from_logits, from_ids = SegmentationMetrics(4), SegmentationMetrics(4)
    from_logits.update(logits, target)
    from_ids.update(logits.argmax(1), target)
    assert torch.equal(from_logits.confmat, from_ids.confmat)
    assert int(from_ids.confmat.sum()) == 2 * 5 * 6 - 2 * 6


def _numpy_reference(preds: list[np.ndarray], targets: list[np.ndarray], K: int) -> dict:
    """Independent reference: np.bincount confusion and per-class loops."""
    conf = np.zeros((K, K), np.int64)
    for p, t in zip(preds, targets, strict=True):
        keep = t != IGNORE
        conf += np.bincount(t[keep] * K + p[keep], minlength=K * K).reshape(K, K)
    iou, acc, fw = [], [], 0.0
    for c in range(K):
        tp, gt, pr = conf[c, c], conf[c, :].sum(), conf[:, c].sum()
        union = gt + pr - tp
        iou.append(tp / union if union else np.nan)
        if gt:
            acc.append(tp / gt)
            fw += gt * tp / union
    return {
        "pixel_acc": np.trace(conf) / conf.sum(),
        "mean_acc": np.mean(acc),
        "mIoU": np.nanmean(iou),
        "fwIoU": fw / conf.sum(),
        "iou": np.array(iou),
        "conf": conf,
    }


def _random_batches(n: int, K: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Class 4 only in gt, class 5 only predicted, class 6 in neither; ~20 % ignored pixels."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n):
        target = rng.choice([0, 1, 2, 3, 4], size=(2, 7, 9))
        preds = rng.choice([0, 1, 2, 3, 5], size=(2, 7, 9))
        preds = np.where((rng.random(preds.shape) < 0.4) & (target != 4), target, preds)  # better than chance, never 4
        target[rng.random(target.shape) < 0.2] = IGNORE
        batches.append((torch.from_numpy(preds), torch.from_numpy(target)))
    assert K == 7
    return batches


def test_matches_numpy_reference_over_batches():
    K = 7
    batches = _random_batches(5, K)
    metric = SegmentationMetrics(K)
    for preds, target in batches:
        metric.update(preds, target)
    out = metric.compute()
    ref = _numpy_reference([p.numpy() for p, _ in batches], [t.numpy() for _, t in batches], K)
    assert np.array_equal(metric.confmat.numpy(), ref["conf"])
    for key in ("pixel_acc", "mean_acc", "mIoU", "fwIoU"):
        assert out[key].item() == pytest.approx(ref[key], abs=1e-6), key
    np.testing.assert_allclose(out["iou"].numpy(), ref["iou"], atol=1e-6, equal_nan=True)
    assert np.isnan(ref["iou"][6]) and ref["iou"][4] == 0 and ref["iou"][5] == 0  # the cases the data promises
    # A report recomputes the same numbers from the saved matrix.
    again = metrics_from_confusion(metric.confmat.clone())
    assert _scalars(again) == _scalars(out)


def test_size_mismatch_and_bad_ids_raise():
    metric = SegmentationMetrics(3)
    with pytest.raises(ValueError, match=r"preds \(1, 3, 3\) and target \(1, 3, 4\) differ"):
        metric.update(torch.zeros(1, 3, 3, dtype=torch.long), HAND_TARGET)
    with pytest.raises(ValueError, match="logits have 4 channels"):
        metric.update(torch.zeros(1, 4, 3, 4), HAND_TARGET)
    with pytest.raises(ValueError, match="target ids must be in"):
        metric.update(HAND_PREDS, torch.full_like(HAND_TARGET, 7))
    with pytest.raises(ValueError, match="predicted ids must be in"):
        metric.update(torch.full_like(HAND_PREDS, 3), HAND_TARGET)
    with pytest.raises(ValueError, match="must be integer ids"):
        metric.update(HAND_PREDS.float(), HAND_TARGET)
    with pytest.raises(ValueError, match="class_names"):
        SegmentationMetrics(3, class_names=["a", "b"])


def test_format_table_and_csv_rows():
    metric = SegmentationMetrics(4)
    metric.update(HAND_PREDS, HAND_TARGET)
    out = metric.compute()
    names = ["wall", "floor", "chair", "lamp"]
    table = format_table(out, names)
    lines = table.strip().splitlines()
    assert lines[2:6] == ["| pixel_acc | 62.50 |", "| mean_acc | 47.22 |", "| mIoU | 36.67 |", "| fwIoU | 48.75 |"]
    assert lines[6:] == ["| IoU wall | 60.00 |", "| IoU floor | 50.00 |", "| IoU chair | 0.00 |", "| IoU lamp | n/a |"]
    rows = to_csv_rows(out, names)
    assert rows[0] == ["name", "value"]
    assert rows[3] == ["mIoU", "0.366667"]
    assert rows[-2:] == [["iou/chair", "0.000000"], ["iou/lamp", "nan"]]
    assert to_csv_rows(out)[5][0] == "iou/class_0"
    with pytest.raises(ValueError, match="3 class names for a result with 4 classes"):
        format_table(out, names[:3])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        metric = SegmentationMetrics(7)
        for preds, target in _random_batches(6, 7)[rank::world_size]:
            metric.update(preds, target)
        local = int(metric.confmat.sum())
        result = metric.compute()  # torchmetrics sums the confusion matrices across processes here
        torch.save({"result": result, "local": local}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_processes_equal_single_process(tmp_path):
    single = SegmentationMetrics(7)
    for preds, target in _random_batches(6, 7):
        single.update(preds, target)
    expected = single.compute()
    # forkserver, not spawn: the server imports torch/torchmetrics once (seconds) and forks both ranks from that
    # clean process, and forked ranks skip interpreter teardown; spawn pays both twice on a 2-core runner.
    multiprocessing.set_forkserver_preload([_ddp_worker.__module__])
    torch.multiprocessing.start_processes(
        _ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="forkserver"
    )
    for rank in range(2):
        saved = torch.load(tmp_path / f"rank{rank}.pt")
        assert saved["local"] < int(single.confmat.sum())  # each process saw only part of the data
        got = saved["result"]
        assert _scalars(got) == pytest.approx(_scalars(expected), abs=1e-7)
        np.testing.assert_allclose(got["iou"].numpy(), expected["iou"].numpy(), atol=1e-7, equal_nan=True)
