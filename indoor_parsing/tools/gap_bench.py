"""``indoor-parsing gap-bench``: time and peak memory of the GAP forms (linear, direct, softmax) per feature-map size.

    indoor-parsing gap-bench                          # CPU, 60x80, 120x160, 240x320
    indoor-parsing gap-bench --device cuda --backward --json runs/gap_bench.json

The direct form's (N, N) affinity is estimated before anything is allocated and reported as OOM when it would
exceed ``--memory-limit-gb`` (default: half the free memory), so a large size never thrashes the machine. Peak
memory is ``torch.cuda.max_memory_allocated`` on GPU; on CPU each measurement runs in a fresh process and reports
its peak RSS growth (``resource.getrusage``), since torch's CPU allocator keeps no peak statistics.
"""

import argparse
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path

import torch

from indoor_parsing.io import write_json
from indoor_parsing.models.gap import FORMS, GAP

GIB = 2**30


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must look like 60x80, got {text!r}") from err
    return h, w


def estimate_bytes(form: str, B: int, C: int, Ck: int, N: int, itemsize: int, backward: bool) -> int:
    """Peak bytes of one GAP call beyond its inputs: O(N²) for the direct form, O(N (C + C')) for the others."""
    linear = B * N * (2 * C + 3 * Ck + 2 * max(C, Ck)) * itemsize * (3 if backward else 1)
    if form != "direct":
        return linear
    # The affinity (B, N, N) is saved for backward; its gradient is a second one.
    return B * N * N * itemsize * (2 if backward else 1) + linear


def _available_bytes(device: str) -> int:
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 8 * GIB


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(form: str, H: int, W: int, opts: dict) -> dict:
    """Median time (ms) and peak memory (MiB) of GAP forward (+ backward) on random (B, C, H, W) features."""
    torch.manual_seed(0)
    device, dtype, B = torch.device(opts["device"]), getattr(torch, opts["dtype"]), opts["batch"]
    C, Ck = opts["channels"], opts["key_channels"]
    gap = GAP(C, C, Ck, form=form).to(device, dtype)
    p = torch.randn(B, C, H, W, device=device, dtype=dtype, requires_grad=opts["backward"])
    g = torch.randn(B, C, H, W, device=device, dtype=dtype, requires_grad=opts["backward"])

    def step() -> None:
        with torch.set_grad_enabled(opts["backward"]):
            out = gap(p, g)
            if opts["backward"]:
                out.sum().backward()

    cuda = device.type == "cuda"
    step()  # warm-up (kernel selection, allocator)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(opts["repeats"]):
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - t0))
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    elif "rss_start" in opts:  # a fresh process: its RSS growth since start bounds what this cell allocated
        peak = (_maxrss_bytes() - opts["rss_start"]) / 2**20
    else:
        peak = float("nan")
    return {"time_ms": statistics.median(times), "peak_mib": peak, "status": "ok"}


def _child(form: str, H: int, W: int, opts: dict) -> dict:
    torch.set_num_threads(opts["threads"])
    return measure(form, H, W, {**opts, "rss_start": _maxrss_bytes()})


def run_one(form: str, H: int, W: int, opts: dict, limit: int) -> dict:
    """One (form, size) cell: estimate first, then measure (in a fresh process on CPU), catching OOM."""
    N = H * W
    itemsize = torch.empty((), dtype=getattr(torch, opts["dtype"])).element_size()
    est = estimate_bytes(form, opts["batch"], opts["channels"], opts["key_channels"], N, itemsize, opts["backward"])
    row = {"form": form, "size": f"{H}x{W}", "N": N, "estimate_mib": est / 2**20}
    if est > limit:
        return {**row, "time_ms": float("nan"), "peak_mib": float("nan"),
                "status": f"OOM (needs ~{est / GIB:.1f} GiB > limit {limit / GIB:.1f} GiB)"}  # fmt: skip
    try:
        if opts["device"] == "cpu" and not opts["in_process"]:
            with mp.get_context("spawn").Pool(1) as pool:
                result = pool.apply(_child, (form, H, W, opts))
        else:
            result = measure(form, H, W, opts)
    except (torch.OutOfMemoryError, MemoryError) as err:
        result = {"time_ms": float("nan"), "peak_mib": float("nan"), "status": f"OOM ({type(err).__name__})"}
    finally:
        if opts["device"] == "cuda":
            torch.cuda.empty_cache()
    return {**row, **result}


def format_rows(rows: list[dict]) -> str:
    lines = ["| form | size | N | est. MiB | time ms | peak MiB | status |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['form']} | {r['size']} | {r['N']} | {r['estimate_mib']:.0f} | {r['time_ms']:.2f} | "
                     f"{r['peak_mib']:.0f} | {r['status']} |")  # fmt: skip
    return "\n".join(lines)


def benchmark(argv: list[str] | None = None) -> list[dict]:
    """Parse the command line, run every (size, form) cell, print the table; returns the rows."""
    parser = argparse.ArgumentParser(prog="indoor-parsing gap-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="60x80,120x160,240x320", help="comma-separated HxW feature-map sizes")
    parser.add_argument("--forms", default=",".join(FORMS), help=f"comma-separated subset of {FORMS}")
    parser.add_argument("--channels", type=int, default=64, help="C of the semantic and depth features")
    parser.add_argument("--key-channels", type=int, default=32, help="C' of eta and phi")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--memory-limit-gb", type=float, default=None, help="default: half the free memory")
    parser.add_argument("--in-process", action="store_true", help="CPU: no fresh process (no memory column)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    if bad := [f for f in forms if f not in FORMS]:
        parser.error(f"unknown form(s) {bad}; choose from {FORMS}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    sizes = [_parse_size(s) for s in args.sizes.split(",")]
    limit = int(args.memory_limit_gb * GIB) if args.memory_limit_gb is not None else _available_bytes(args.device) // 2
    opts = {"device": args.device, "dtype": args.dtype, "batch": args.batch, "channels": args.channels,
            "key_channels": args.key_channels, "repeats": args.repeats, "backward": args.backward,
            "threads": args.threads, "in_process": args.in_process}  # fmt: skip
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({args.threads} threads)"
    print(f"GAP benchmark on {device_name}, {args.dtype}, B={args.batch}, C={args.channels}, "
          f"C'={args.key_channels}, {'forward+backward' if args.backward else 'forward'}")  # fmt: skip
    rows = []
    for H, W in sizes:
        for form in forms:
            rows.append(run_one(form, H, W, opts, limit))
            print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    print("\n" + format_rows(rows))
    if args.json is not None:
        write_json(args.json, {"device": device_name, "options": opts, "rows": rows})
    return rows


def main(argv: list[str] | None = None) -> int:
    benchmark(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
