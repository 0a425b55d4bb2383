"""Preview sheet of SynthRooms: RGB / depth / label of a few frames (source and target style) and a point cloud.

``python -m indoor_parsing.tools.synthrooms_preview --out docs/synthrooms.png`` (add ``--source source_v2 --target
target_v2`` for generator version 2, or name style files).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from indoor_parsing.data.synthrooms.render import Renderer, kinect_intrinsics  # noqa: E402
from indoor_parsing.data.synthrooms.scene import sample_scene  # noqa: E402
from indoor_parsing.data.synthrooms.style import get_style  # noqa: E402
from indoor_parsing.data.synthrooms.trajectory import sample_trajectory  # noqa: E402
from indoor_parsing.data.taxonomy import NYU40, NYU40_ID, SYNTHROOMS_IDS, class_set, palette  # noqa: E402
from indoor_parsing.io import atomic_path  # noqa: E402

CLASSES = class_set("synthrooms")


def _label_colours(label: np.ndarray) -> np.ndarray:
    """NYU-40 ids -> RGB through the SynthRooms class set (unknown drawn black)."""
    pal = np.zeros((256, 3), np.uint8)
    pal[: CLASSES.num_classes] = palette(CLASSES.num_classes)
    return pal[CLASSES.map(label)]


def make_preview(
    out: str | Path, seed: int = 0, height: int = 240, width: int = 320, source: str = "source", target: str = "target"
) -> Path:
    """Render 3 ``source``-style frames, 1 ``target``-style frame and a point cloud of the first scene into one PNG."""
    K = kinect_intrinsics(height, width)
    views = []  # (title, frame)
    first = None
    for i, style in enumerate((source, source, source, target)):
        st = get_style(style)
        renderer = Renderer(sample_scene(np.random.default_rng([seed, i]), st))
        pose = sample_trajectory(renderer.scene, 8, np.random.default_rng([seed, i, 1]))[3]
        views.append((f"scene {i} ({style})", renderer.render(K, pose, height, width, np.random.default_rng(i))))
        first = renderer if first is None else first
    fig = plt.figure(figsize=(13, 17), dpi=90)
    grid = fig.add_gridspec(5, 3, height_ratios=[1, 1, 1, 1, 1.5], hspace=0.12, wspace=0.04)
    for r, (title, f) in enumerate(views):
        depth = np.where(f["depth"] > 0, f["depth"], np.nan)
        panels = [(f["rgb"], f"{title}: RGB"), (depth, "depth (m, white = no return)"), (None, "label (NYU-40)")]
        for c, (img, name) in enumerate(panels):
            ax = fig.add_subplot(grid[r, c])
            if c == 1:
                im = ax.imshow(img, cmap="viridis")
                fig.colorbar(im, ax=ax, fraction=0.035, pad=0.01)
            else:
                ax.imshow(img if img is not None else _label_colours(f["label"]))
            ax.set_title(name, fontsize=9)
            ax.axis("off")
    cloud = first.point_cloud(60_000, np.random.default_rng(seed))
    near_walls = (cloud["label"] == NYU40_ID["wall"]) & ((cloud["xyz"][:, 0] < 0.05) | (cloud["xyz"][:, 1] < 0.05))
    keep = (cloud["label"] != NYU40_ID["ceiling"]) & ~near_walls  # cut the room open towards the viewer
    xyz = cloud["xyz"][keep]
    for c, (colours, name) in enumerate([(cloud["rgb"][keep], "RGB"), (_label_colours(cloud["label"][keep]), "label")]):
        ax = fig.add_subplot(grid[4, c], projection="3d")
        ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], c=colours / 255.0, s=0.4, depthshade=False, linewidths=0)
        ax.view_init(elev=55, azim=-60)
        ax.set_box_aspect(np.ptp(xyz, 0))
        ax.set_title(f"scene 0 points: {name} (ceiling, 2 walls cut)", fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(grid[4, 2])
    pal = palette(CLASSES.num_classes)
    for k, i in enumerate(SYNTHROOMS_IDS):
        ax.add_patch(plt.Rectangle((0, -k), 0.8, 0.8, color=pal[k] / 255.0))
        ax.text(1.1, -k + 0.4, NYU40[i - 1], va="center", fontsize=9)
    ax.set_xlim(0, 6)
    ax.set_ylim(-len(SYNTHROOMS_IDS), 1)
    ax.axis("off")
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/synthrooms.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default="source", help="style of the first 3 rows (a name or a style file)")
    parser.add_argument("--target", default="target", help="style of the 4th row")
    args = parser.parse_args(argv)
    print(make_preview(args.out, seed=args.seed, source=args.source, target=args.target))


if __name__ == "__main__":
    main()
