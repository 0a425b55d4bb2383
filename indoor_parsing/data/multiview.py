"""S4NetDataModule: a labelled source DataModule + the unlabelled registered RGB-D sequence of one target scene.

S4-Net (Stekovic et al.) trains on batches of labelled source images S and of frames e of a target sequence U, each
with neighbours e' drawn from the whole sequence among the frames that overlap it by at least 25 %; it is evaluated on
that sequence (its labels are never used in training) and on an independent scan of the same scene. U may be RGB-only
(no depth: the depth-predicting variant, Sec. 3.3). This module is an IndoorDataModule over the *target* layout
(so frames, pose filtering and ``skipped_invalid_pose`` are the usual ones) that also owns the source DataModule.

Loaders: fit = CombinedLoader({"source", "target"}); val / test = one loader per ``eval_sequences`` entry (scan1
first, then scan2); predict = ``predict_sequences`` (default: the training sequence: its auto-annotation).
"""

import logging
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import CombinedLoader, rank_zero_warn
from torch.utils.data import DataLoader

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.captures.report import neighbour_report
from indoor_parsing.data.dataset import FrameDataset
from indoor_parsing.data.layout import Frame
from indoor_parsing.data.overlap import candidates, diagnose, sequence_overlap
from indoor_parsing.data.sequences import SequenceIndex
from indoor_parsing.data.transforms import JointTransform
from indoor_parsing.io import DataFileError

log = logging.getLogger(__name__)


class S4NetDataModule(IndoorDataModule):
    """Labelled source + unlabelled target sequence with overlap-filtered neighbours (S4-Net).

    Args:
        source: labelled DataModule S (SUN RGB-D, SynthRooms style "source", ...); its training split feeds L_S.
        target: DataModule whose layout holds the target scene's registered RGB-D sequences (ScanNet, SynthRooms
            style "target", a capture); its batch size, image size and ``eval_full_resolution`` are used for the
            target loaders.
        target_scene: scene of the target layout; None = the first scene (sorted) that has ``train_sequence``.
        train_sequence: the unlabelled sequence U (ScanNet "scan1"); None = the scene's first sequence; "*" = every
            sequence of the scene (a capture's recordings), each with neighbours from its own frames only.
        eval_sequences: sequences evaluated (val and test), in order; the first is logged under the base names
            (``val/mIoU``) and every one also as ``val/<sequence>/mIoU``. None = ``[train_sequence]``.
        predict_sequences: sequences auto-annotated by ``predict``; None = the training sequence(s).
        target_splits: layout splits searched for the target scene (comma-separated).
        num_neighbors: neighbours e' per target frame (4 in the paper), distinct; a frame with fewer candidates gets
            all of them and padding slots marked ``usable = False``.
        neighbor_window: None (the paper): candidates come from the whole sequence; an int keeps only frames within
            that many sequence positions.
        min_overlap: a candidate must see at least this fraction of e's valid-depth pixels (0.25 in the paper).
        overlap_stride: the overlap is computed on every ``overlap_stride``-th pixel (both views).
        occlusion_abs_tol, occlusion_rel_tol: depth agreement of the overlap test (metres, relative).
        use_target_depth: False drops the target sequences' sensor depth (an RGB-only recording); a sequence stored
            without depth is RGB-only anyway. Needs the depth-predicting S4NetModule (``warp_depth: predicted``).
        pose_noise_rot_deg: every target pose is rotated by exactly this angle about a random axis (failure study).
        pose_noise_trans_m: ... and shifted by exactly this distance in a random direction.
        pose_noise_seed: the noise is a function of this seed and the frame key.
        combine_mode: CombinedLoader mode of the fit loader.
    """

    dataset_name = "s4net"

    def __init__(
        self,
        source: IndoorDataModule,
        target: IndoorDataModule,
        target_scene: str | None = None,
        train_sequence: str | None = "scan1",
        eval_sequences: list[str] | None = None,
        predict_sequences: list[str] | None = None,
        target_splits: str = "train,val,test",
        num_neighbors: int = 4,
        neighbor_window: int | None = None,
        min_overlap: float = 0.25,
        overlap_stride: int = 4,
        occlusion_abs_tol: float = 0.05,
        occlusion_rel_tol: float = 0.05,
        use_target_depth: bool = True,
        pose_noise_rot_deg: float = 0.0,
        pose_noise_trans_m: float = 0.0,
        pose_noise_seed: int = 0,
        combine_mode: str = "max_size_cycle",
    ):
        if num_neighbors < 1 or not 0.0 <= min_overlap <= 1.0 or overlap_stride < 1:
            raise ValueError("num_neighbors >= 1, 0 <= min_overlap <= 1 and overlap_stride >= 1 are required")
        if source.class_names != target.class_names:
            raise ValueError(
                f"source classes {source.classes.name!r} and target classes {target.classes.name!r} differ; map both "
                "domains to the same class set"
            )
        super().__init__(
            root=str(getattr(target, "root", "")), class_set=target.classes.name, batch_size=target.batch_size,
            num_workers=target.num_workers, image_size=target.image_size, with_pose=True,
            eval_full_resolution=target.eval_full_resolution,
        )  # fmt: skip
        target.with_pose = True  # frames with invalid poses are dropped (and counted) by the target itself
        self.source, self.target = source, target
        self.target_scene, self.train_sequence = target_scene, train_sequence
        self.eval_sequences = None if eval_sequences is None else list(eval_sequences)
        self.predict_sequences = None if predict_sequences is None else list(predict_sequences)
        self.target_splits = target_splits
        self.num_neighbors, self.neighbor_window, self.min_overlap = num_neighbors, neighbor_window, min_overlap
        self.overlap_stride, self.occlusion_tol = overlap_stride, (occlusion_abs_tol, occlusion_rel_tol)
        self.use_target_depth = use_target_depth
        self.pose_noise = (pose_noise_rot_deg, pose_noise_trans_m, pose_noise_seed)
        self.combine_mode = combine_mode
        self.sequences: dict[str, list[Frame]] = {}
        self.train_sequences: list[str] = []
        self.overlap: np.ndarray | None = None  # (N, N) view overlap of the last training sequence
        self.overlap_candidates: list[list[int]] | None = None
        self.frames_without_neighbor = 0.0  # share of training frames with no candidate neighbour

    # ---- frames -----------------------------------------------------------------------------------------
    @property
    def eval_names(self) -> list[str]:
        """Names of the val / test loaders, in order (read by S4NetModule for its metric prefixes)."""
        return list(self.eval_sequences or [])

    def prepare_data(self) -> None:
        self.source.prepare_data()
        self.target.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if self._frames is not None:  # also stops the re-entry through self.frames() below
            return
        self.source.setup(stage)
        self.target.setup(stage)
        self.root = Path(self.target.root)
        super().setup(stage)
        try:
            self._select_sequences()
        except Exception:
            self._frames = None  # a later setup() starts over instead of returning half-built
            raise

    def _select_sequences(self) -> None:
        frames = [self._noisy(f) for f in self.frames(self.target_splits)]
        if not self.use_target_depth:
            frames = [replace(f, depth=None) for f in frames]
        scenes = sorted({f.scene for f in frames if self.train_sequence in (None, "*", f.sequence)})
        if not scenes:
            raise DataFileError(f"{self.root}: no scene has a sequence {self.train_sequence!r} in {self.target_splits}")
        scene = self.target_scene or scenes[0]
        if scene not in {f.scene for f in frames}:
            raise DataFileError(f"{self.root}: no scene {scene!r} in splits {self.target_splits!r} (scenes: {scenes})")
        by_seq: dict[str, list[Frame]] = {}
        for f in sorted(frames, key=lambda f: (f.sequence, f.index)):
            if f.scene == scene:
                by_seq.setdefault(f.sequence, []).append(f)
        self.train_sequence = self.train_sequence or min(by_seq, default=None)
        train = sorted(by_seq) if self.train_sequence == "*" else [self.train_sequence]
        self.train_sequences = train
        self.eval_sequences = list(train) if self.eval_sequences is None else self.eval_sequences
        self.predict_sequences = self.predict_sequences or list(train)
        for name in {*train, *self.eval_sequences, *self.predict_sequences}:
            if name not in by_seq:
                raise DataFileError(
                    f"{self.root}: scene {scene!r} has no sequence {name!r} (it has {sorted(by_seq)}) in splits "
                    f"{self.target_splits!r}"
                )
        for name in train:
            missing = [f.key for f in by_seq[name] if f.depth is None]
            if missing and len(missing) < len(by_seq[name]):
                raise DataFileError(
                    f"{self.root}: sequence {scene}/{name} has {len(missing)} frames without depth (e.g. "
                    f"{missing[0]}); it needs depth for every frame or for none"
                )
        self.sequences = by_seq
        log.info("S4-Net target %s: %s; %d frames skipped for invalid poses", scene,
                 {k: len(v) for k, v in by_seq.items()}, self.skipped_invalid_pose)  # fmt: skip

    def _noisy(self, frame: Frame) -> Frame:
        """The frame with its pose perturbed by the configured noise (unchanged without noise)."""
        rot_deg, trans_m, seed = self.pose_noise
        if rot_deg == 0 and trans_m == 0:
            return frame
        rng = np.random.default_rng([seed, zlib.crc32(frame.key.encode())])
        axis, direction = rng.normal(size=3), rng.normal(size=3)
        delta = np.eye(4)
        delta[:3, :3] = _axis_angle(axis / np.linalg.norm(axis), np.deg2rad(rot_deg))
        delta[:3, 3] = trans_m * direction / np.linalg.norm(direction)
        return replace(frame, pose=tuple((frame.T @ delta).ravel().tolist()))  # perturbed in the camera frame

    @property
    def rgb_only(self) -> bool:
        """The training sequence has no depth: L_G and L_DG must warp with predicted depth."""
        self.setup("fit")
        return all(f.depth is None for name in self.train_sequences for f in self.sequences[name])

    def _candidates(self, frames: list[Frame]) -> list[list[int]]:
        """Per frame: positions of the frames of the sequence with >= ``min_overlap`` view overlap (cached)."""
        args = (self.overlap_stride, *self.occlusion_tol)
        self.overlap = sequence_overlap(self.root, frames, *args, window=self.neighbor_window)
        found = candidates(self.overlap, self.min_overlap)
        self.frames_without_neighbor = sum(not c for c in found) / max(len(found), 1)
        warning = diagnose(self.root, frames, self.overlap, self.min_overlap, self.overlap_stride, self.occlusion_tol)
        if warning:
            rank_zero_warn(warning)
        return found

    # ---- loaders ----------------------------------------------------------------------------------------
    def _dataset(self, frames: list[Frame], neighbors=None, full_labels: bool = False) -> FrameDataset:
        return FrameDataset(
            self.root, frames, self.classes, JointTransform(self.image_size, train=False),
            dataset_name=self.target.manifest.get("dataset", self.target.dataset_name), with_pose=True,
            neighbors=neighbors, full_labels=full_labels,
        )  # fmt: skip

    def target_dataset(self) -> FrameDataset:
        """Training frames of U, without labels (they are for evaluation only), with overlapping neighbours."""
        self.setup("fit")
        frames = []
        candidates = []
        for name in self.train_sequences:  # neighbours never cross sequences (each has its own world frame)
            seq = [replace(f, label=None) for f in self.sequences[name]]
            if self.overlap_candidates is None:
                candidates += [[len(frames) + j for j in row] for row in self._candidates(seq)]
            frames += seq
        if self.overlap_candidates is None:
            self.overlap_candidates = candidates
            self.frames_without_neighbor = sum(not c for c in candidates) / max(len(candidates), 1)
        pool = self.overlap_candidates
        sampler = SequenceIndex(frames).sampler(self.num_neighbors, None, candidates=lambda i: pool[i])
        return self._dataset(frames, neighbors=sampler)

    def train_dataloader(self) -> CombinedLoader:
        loaders = {"source": self.source.train_dataloader(), "target": self.make_loader(self.target_dataset(), True)}
        return CombinedLoader(loaders, self.combine_mode)

    def _eval_loaders(self, names: list[str]) -> list[DataLoader]:
        self.setup()
        full = self.eval_full_resolution
        return [self.make_loader(self._dataset(self.sequences[n], full_labels=full), shuffle=False) for n in names]

    def val_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders(self.eval_sequences)

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders(self.eval_sequences)

    def predict_dataloader(self) -> DataLoader:
        self.setup()
        return self.make_loader(self._dataset([f for n in self.predict_sequences for f in self.sequences[n]]), False)

    def labelling_report(self) -> dict:
        """The target's own report (a capture's skipped frames) and, per training sequence, the coverage of L_G and
        the frames with no valid neighbour (captures/report.py)."""
        self.setup()
        own = self.target.labelling_report() if hasattr(self.target, "labelling_report") else {}
        return {**own, "adaptation": neighbour_report(self)}

    def class_pixel_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Class statistics of the *source* training split (L_S's median-frequency weights)."""
        return self.source.class_pixel_counts()


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation matrix (3, 3) about a unit axis."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
