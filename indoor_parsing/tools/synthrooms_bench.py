"""Rendering speed of SynthRooms: ``python -m indoor_parsing.tools.synthrooms_bench`` prints frames/s at 120x160.

Measured on one core: open3d casts with one thread and the process is pinned to one CPU where the OS allows it.
The time covers ray casting, shading and sensor noise of a frame (not PNG encoding). Both wall-clock and CPU-time
rates are printed: on a shared machine the wall-clock rate also counts the time other processes held the core.
"""

import argparse
import os
import time

import numpy as np

from indoor_parsing.data.synthrooms.render import Renderer, kinect_intrinsics
from indoor_parsing.data.synthrooms.scene import sample_scene
from indoor_parsing.data.synthrooms.style import get_style
from indoor_parsing.data.synthrooms.trajectory import sample_trajectory


def bench(
    frames: int = 200, height: int = 120, width: int = 160, scenes: int = 3, style: str = "source", threads: int = 1
) -> dict:
    """Render ``frames`` frames per scene along a trajectory; returns frames/s (median over scenes) and details."""
    K = kinect_intrinsics(height, width)
    rates, cpu_rates, triangles = [], [], []
    for i in range(scenes):
        renderer = Renderer(sample_scene(np.random.default_rng([0, i]), get_style(style)), nthreads=threads)
        poses = sample_trajectory(renderer.scene, frames, np.random.default_rng([0, i, 1]))
        rng = np.random.default_rng(i)
        renderer.render(K, poses[0], height, width, rng)  # warm-up: ray tables, BVH
        start, cpu = time.perf_counter(), time.process_time()
        for pose in poses:
            renderer.render(K, pose, height, width, rng)
        rates.append(frames / (time.perf_counter() - start))
        cpu_rates.append(frames / (time.process_time() - cpu))
        triangles.append(len(renderer.mesh.triangles))
    return {"fps": float(np.median(rates)), "cpu_fps": float(np.median(cpu_rates)), "fps_per_scene": rates,
            "triangles": triangles}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--style", default="source")
    parser.add_argument("--threads", type=int, default=1, help="open3d ray-casting threads (0 = all)")
    args = parser.parse_args(argv)
    if args.threads == 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    r = bench(args.frames, args.height, args.width, args.scenes, args.style, args.threads)
    rates = ", ".join(f"{x:.0f}" for x in r["fps_per_scene"])
    print(
        f"SynthRooms render {args.height}x{args.width}, {args.threads} thread(s): {r['fps']:.1f} frames/s wall-clock, "
        f"{r['cpu_fps']:.1f} frames/s of CPU time (per scene wall-clock: {rates}; triangles: {r['triangles']}; "
        f"load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
