"""How far a source-trained network falls as the SynthRooms style moves from source_v2 towards target_v2.

A probe for the claims report (issue 14), not part of the package. Each blend ``t`` interpolates every numeric
setting of the two styles (palettes, material groups, lights, camera, noise; class materials stay the source's):
``t = 0`` is source_v2, ``t = 1`` is target_v2's settings (under another name, so other rooms). The checkpoint is
scored on scan1 of ``--rooms`` rooms of each blend; mIoU is over the classes present in the labels.

    python docs/claims/probes/style_gap.py docs/claims/runs/S4-Net__source_stage__seed0/ckpt/last.ckpt \
        --blends 0 0.2 0.3 0.4 0.5 1
"""

import argparse
import json
import tempfile
from pathlib import Path

import torch

import indoor_parsing  # noqa: F401  (the torchvision guard runs first)
from indoor_parsing.data.synthrooms import SynthRoomsDataModule
from indoor_parsing.data.synthrooms.style import SOURCE_V2, TARGET_V2, Style, save_style
from indoor_parsing.methods.s4net import S4NetModule


def mix(a, b, t: float):
    """Elementwise a + t (b - a) over nested records; integers stay integers, strings are a's."""
    if isinstance(a, dict):
        return {k: mix(a[k], b[k], t) for k in a}
    if isinstance(a, list):
        return [mix(x, y, t) for x, y in zip(a, b, strict=True)]
    if isinstance(a, str):
        return a
    if isinstance(a, int) and isinstance(b, int):
        return int(round(a + t * (b - a)))
    return round(a + t * (b - a), 4)


def blend(t: float) -> Style:
    s, g = SOURCE_V2.to_dict(), TARGET_V2.to_dict()
    skip = ("name", "class_materials")
    d = mix({k: v for k, v in s.items() if k not in skip}, {k: v for k, v in g.items() if k not in skip}, t)
    return Style.from_dict({**d, "name": f"blend{t:g}", "class_materials": s["class_materials"]})


def score(model, style: str, rooms: int, seed: int = 0) -> dict:
    k = model.hparams.num_classes
    dm = SynthRoomsDataModule(num_scenes=rooms, sequences=["scan1"], frames_per_sequence=20, height=96, width=128,
                              style=style, seed=seed, split=[0, 0, rooms], class_set="synthrooms", batch_size=8,
                              num_workers=0)  # fmt: skip
    dm.prepare_data()
    dm.setup("test")
    conf = torch.zeros(k, k, dtype=torch.long)  # (label, prediction)
    with torch.no_grad():
        for b in dm.test_dataloader():
            pred, lab = model(b["image"]).argmax(1), b["label"]  # (B, H, W)
            m = lab < k
            conf += torch.bincount(lab[m] * k + pred[m], minlength=k * k).view(k, k)
    tp, present = conf.diag().float(), conf.sum(1) > 0
    iou = tp / (conf.sum(1) + conf.sum(0) - tp).clamp(min=1)
    return {"pixel_acc": round(float(tp.sum() / conf.sum()), 4), "mIoU": round(float(iou[present].mean()), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--blends", type=float, nargs="+", default=[0.0, 0.2, 0.3, 0.4, 0.5, 1.0])
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument(
        "--room-seed",
        type=int,
        default=0,
        help="generation seed of the scored rooms (not 0: rooms other than the claims' target room, seed 0 scene 0)",
    )
    args = p.parse_args()
    torch.set_num_threads(1)  # a probe beside a training run: one core
    model = S4NetModule.load_from_checkpoint(args.checkpoint, map_location="cpu").eval()
    with tempfile.TemporaryDirectory() as tmp:
        for t in args.blends:
            named = {0.0: "source_v2", 1.0: "target_v2"}
            style = named.get(t) or str(save_style(blend(t), Path(tmp) / f"b{t:g}.yaml"))
            print(json.dumps({"blend": t, **score(model, style, args.rooms, args.room_seed)}), flush=True)


if __name__ == "__main__":
    main()
