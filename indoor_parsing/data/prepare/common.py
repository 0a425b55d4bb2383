"""What the four converters of ``indoor-parsing prepare`` (nyudv2, sunrgbd, scannet, s3dis) share.

* one *job* per frame, run by a worker function in a process pool (``--workers N``) behind a tqdm bar;
* resumable: a finished frame leaves ``records/<job id>.json`` (written last, atomically, after its image files), and
  a later run reuses every record whose files still exist;
* a :class:`PrepareReport` (printed, and written as ``prepare_report.json``) naming every missing or corrupt file,
  counting unknown label ids (mapped to 0 = unlabeled, hence ignored by every class set), frames skipped for invalid
  poses, and comparing counts with the official split sizes;
* index.json and manifest.json written last, so a layout with a manifest is complete;
* :func:`check_prepared`, with which each dataset's DataModule checks the layout it is given.

Also: pixel-centre-exact resizing with matching intrinsics, and MATLAB → OpenCV intrinsics.
"""

import functools
import itertools
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from indoor_parsing.data.layout import MANIFEST, Frame, write_layout
from indoor_parsing.io import DataFileError, read_json, write_json

REPORT = "prepare_report.json"
RECORDS = "records"


@dataclass
class Outcome:
    """What one job produced: a frame, or the reason it has none."""

    frame: Frame | None = None
    skipped: str | None = None  # a deliberate skip, e.g. "invalid_pose"
    problems: list[str] = field(default_factory=list)  # "<file>: <what is wrong>"
    unknown_ids: dict[str, int] = field(default_factory=dict)  # unknown source label id -> pixels mapped to 0
    files: list[str] = field(default_factory=list)  # outputs other than the frame's (e.g. a point cloud)
    info: dict = field(default_factory=dict)  # small facts for the manifest (e.g. {"points": relpath})
    notes: list[str] = field(default_factory=list)  # data repaired on the way (kept in the report)


@dataclass
class PrepareReport:
    """Everything a user needs to trust (or fix) a prepared dataset."""

    dataset: str
    src: str
    dst: str
    frames: dict[str, int] = field(default_factory=dict)  # split -> frames in the layout
    written: int = 0
    resumed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unknown_ids: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict] = field(default_factory=dict)  # what -> {"found", "expected"} (official sizes)
    notes: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome, resumed: bool) -> None:
        self.problems += outcome.problems
        self.notes += outcome.notes
        for key, n in outcome.unknown_ids.items():
            self.unknown_ids[key] = self.unknown_ids.get(key, 0) + n
        if outcome.skipped:
            self.skipped[outcome.skipped] = self.skipped.get(outcome.skipped, 0) + 1
        if outcome.frame is not None:
            self.frames[outcome.frame.split] = self.frames.get(outcome.frame.split, 0) + 1
            self.resumed += int(resumed)
            self.written += int(not resumed)

    def check_count(self, what: str, found: int, expected: int) -> None:
        """Record a count against its official value; a mismatch becomes a note (partial downloads are legal)."""
        self.counts[what] = {"found": int(found), "expected": int(expected)}
        if found != expected:
            self.notes.append(f"{what}: found {found}, the official split has {expected}")

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [f"prepared {self.dataset}: {self.src} -> {self.dst}",
                 f"  frames per split: {dict(sorted(self.frames.items()))} "
                 f"(written {self.written}, resumed {self.resumed})"]  # fmt: skip
        if self.skipped:
            lines.append(f"  skipped frames: {self.skipped}")
        if self.unknown_ids:
            top = sorted(self.unknown_ids.items(), key=lambda kv: -kv[1])[:20]
            lines.append(f"  unknown label ids mapped to 0 (unlabeled), id: pixels (or points:id: points): {dict(top)}")
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  PROBLEM {p}" for p in self.problems]
        lines.append("  OK" if self.ok else f"  {len(self.problems)} problem(s): fix the files named above and rerun")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------- jobs


def _record_path(dst: Path, job_id: str) -> Path:
    return dst / RECORDS / f"{job_id.replace('/', '__')}.json"


def _load_record(dst: Path, job_id: str) -> Outcome | None:
    """A finished job's outcome, if its record and every file it names still exist."""
    path = _record_path(dst, job_id)
    if not path.is_file():
        return None
    try:
        rec = read_json(path)
        frame = rec["frame"] and Frame(**{**rec["frame"], "intrinsics": tuple(rec["frame"]["intrinsics"]),
                                          "pose": rec["frame"]["pose"] and tuple(rec["frame"]["pose"])})  # fmt: skip
        outcome = Outcome(**{**rec, "frame": frame})
    except (DataFileError, KeyError, TypeError):
        return None  # unreadable record: redo the job
    files = outcome.files + ([p for p in (frame.rgb, frame.depth, frame.label) if p] if frame else [])
    return outcome if all((dst / p).is_file() for p in files) else None


def _run_job(fn: Callable[[object, Path], Outcome], dst: Path, job: tuple[str, object]) -> Outcome:
    job_id, payload = job
    try:
        outcome = fn(payload, dst)
    except DataFileError as err:
        return Outcome(problems=[str(err)])
    if not outcome.problems:  # problems are retried on the next run, so they leave no record
        write_json(_record_path(dst, job_id), asdict(outcome))
    return outcome


def run_jobs(
    fn: Callable[[object, Path], Outcome],
    jobs: Sequence[tuple[str, object]],
    dst: str | Path,
    report: PrepareReport,
    workers: int = 1,
    overwrite: bool = False,
    desc: str = "frames",
) -> list[Outcome]:
    """Run ``fn(payload, dst)`` for every ``(job_id, payload)``; returns the outcomes in job order.

    ``fn`` must be a module-level function (or a ``functools.partial`` of one) so worker processes can pickle it.
    """
    dst = Path(dst)
    outcomes: list[Outcome | None] = [None] * len(jobs)
    todo = []
    for i, (job_id, _) in enumerate(jobs):
        cached = None if overwrite else _load_record(dst, job_id)
        if cached is None:
            todo.append(i)
        else:
            outcomes[i] = cached
            report.add(cached, resumed=True)
    call = functools.partial(_run_job, fn, dst)
    with tqdm(total=len(todo), desc=f"{report.dataset} {desc}", unit="job", disable=None) as bar:
        if workers <= 1 or len(todo) <= 1:
            for i in todo:
                outcomes[i] = call(jobs[i])
                report.add(outcomes[i], resumed=False)
                bar.update()
        else:
            # A bounded window of submitted jobs: millions of ScanNet frames must not all sit in the queue.
            pending, queue = {}, iter(todo)
            with ProcessPoolExecutor(max_workers=workers) as pool:
                while True:
                    for i in itertools.islice(queue, 8 * workers - len(pending)):
                        pending[pool.submit(call, jobs[i])] = i
                    if not pending:
                        break
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = pending.pop(fut)
                        outcomes[i] = fut.result()
                        report.add(outcomes[i], resumed=False)
                        bar.update()
    return outcomes


def frames_of(outcomes: list[Outcome]) -> list[Frame]:
    return [o.frame for o in outcomes if o.frame is not None]


def finish(dst: str | Path, manifest: dict, frames: list[Frame], report: PrepareReport) -> PrepareReport:
    """Write the report, then index and manifest (last); print the summary."""
    dst = Path(dst)
    report.problems = sorted(set(report.problems))  # workers finish in any order
    write_json(dst / REPORT, asdict(report))
    write_layout(dst, {**manifest, "prepare_report": REPORT}, frames)
    print(report.summary(), file=sys.stderr)
    return report


def check_prepared(root: str | Path, dataset: str, label_space: str) -> dict:
    """The manifest of a prepared ``dataset`` at ``root``; a clear error when it is another dataset or absent."""
    path = Path(root).expanduser() / MANIFEST
    if not path.is_file():
        raise DataFileError(f"{path}: no prepared {dataset} layout here; run `indoor-parsing prepare {dataset}` first")
    manifest = read_json(path)
    found = (manifest.get("dataset"), manifest.get("label_space"))
    if found != (dataset, label_space):
        raise DataFileError(
            f"{path}: expected a prepared {dataset!r} layout with label_space "
            f"{label_space!r}, found dataset {found[0]!r} with label_space {found[1]!r}"
        )
    return manifest


# ------------------------------------------------------------------------------------------------ labels and geometry


def map_labels(ids: np.ndarray, lut: np.ndarray, unknown: Counter | None = None) -> np.ndarray:
    """Source ids -> stored uint8 ids through ``lut`` (-1 = unknown id: stored as 0, counted in ``unknown``)."""
    ids = np.asarray(ids).astype(np.int64)
    inside = (ids >= 0) & (ids < len(lut))
    out = np.where(inside, lut[np.clip(ids, 0, len(lut) - 1)], -1)
    bad = out < 0
    if bad.any() and unknown is not None:
        values, counts = np.unique(ids[bad], return_counts=True)
        unknown.update({str(int(v)): int(c) for v, c in zip(values, counts, strict=True)})
    return np.where(bad, 0, out).astype(np.uint8)


def matlab_to_opencv_K(K: np.ndarray) -> np.ndarray:
    """MATLAB toolboxes (NYU, SUN RGB-D) project with 1-based pixel coordinates; ours are 0-based: cx - 1, cy - 1."""
    K = np.array(K, np.float64).reshape(3, 3)
    K[0, 2] -= 1.0
    K[1, 2] -= 1.0
    return K


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics after resizing by (sx, sy) with pixel centres at integers: f' = s f, c' = s (c + 0.5) - 0.5."""
    K = np.array(K, np.float64).reshape(3, 3)
    out = K.copy()
    out[0, 0], out[0, 1], out[0, 2] = sx * K[0, 0], sx * K[0, 1], sx * (K[0, 2] + 0.5) - 0.5
    out[1, 1], out[1, 2] = sy * K[1, 1], sy * (K[1, 2] + 0.5) - 0.5
    return out


def resize_image(array: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    """Resize (H, W[, 3]) to ``size`` = (W, H): nearest for labels and depth (no invented values), else bilinear."""
    if (array.shape[1], array.shape[0]) == tuple(size):
        return array
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(array).resize(tuple(size), resample))


def check_same_size(what: dict[str, np.ndarray], where: str) -> None:
    """Raise when arrays that must be pixel-aligned differ in (H, W); the message names the file."""
    sizes = {name: tuple(a.shape[:2]) for name, a in what.items()}
    if len(set(sizes.values())) > 1:
        raise DataFileError(f"{where}: size mismatch (H, W) between {sizes}")
