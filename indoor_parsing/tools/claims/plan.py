"""What the claims check compares: each paper's method next to its own baseline, at equal budgets.

An arm is an experiment config plus overrides; every arm of a comparison trains on the same generated SynthRooms,
for the same number of steps (the comparison's one step constant below), at the same input size, with the same
encoder. The SynthRooms generation settings are those of the configs (or of ``--data-seed`` / ``--synthrooms``),
fixed before any run.

Paper gains (``PaperGain``) are the papers' own mIoU numbers for a claim's two rows, with the table they come from;
``verified=False`` marks figures entered from memory that must be checked against the paper before they are cited.
"""

from dataclasses import dataclass, field

# Step budgets, one per comparison, chosen from the learning curves (docs/curves/README.md): the fewest steps at
# which the comparisons' baselines pass 25 % mIoU; the 3D teacher trains 1.5x that, once.
GEOAWARE_TABLE4_STEPS = 1600  # 800 until session 16 (baseline 18.3 %); 1200 until session 22 (+ L_s 24.9 %)
GEOAWARE_TABLE5_STEPS = GEOAWARE_TABLE4_STEPS  # its 0 % and 100 % arms are Table 4's trainings
DISTILL3D_PAIRED_STEPS = 800
DISTILL3D_UNPAIRED_STEPS = 800
S4NET_STEPS = 1600  # the source stage (800 until session 15: its source-only model underfit the new scene)
S4NET_ADAPT_STEPS = 240  # the adaptation arms (and source only) continue for this many steps, as since issue 14
TEACHER_STEPS = 1200
BUDGET_NOTE = (
    "Budgets come from the learning curves (docs/curves/README.md, 96x128, version-2 rooms): 800 steps per arm "
    "(GeoAware: 1600 since session 22; S4-Net: a 1600-step source stage, then 240 adaptation steps); the 3D teacher "
    "trains 1200 steps, once. On the curves (1000-step schedules) the Unet and PSPNet baselines stand at 25-28 % val "
    "mIoU after 800 steps (Unet 27.9, PSPNet 24.7) and are still rising; an 800-step schedule anneals fully, so its "
    "end is a little higher. 600 steps would leave them near 22 %. GeoAware's sem-only row, whose decoder has no "
    "encoder skips, learned slower (18.4 % after 800 steps at output stride 32 on 100 rooms; 22.2 % after 1600), so "
    "since session 16 its SynthRooms rows dilate the last encoder stage (output stride 16, 1.3x the step cost) and "
    "train on 300 rooms (probe, seed 0, 1200 steps: 26.9 % val mIoU). At 1200 steps the 5-seed means of the Table 4 "
    "rows the next rows are compared against, sem + L_s and + DepEm, ended at 24.9 and 24.4 %, under the 25 % asked "
    "for, so since session 22 every GeoAware row trains 1600 steps (1.33x their cost). S4-Net's new scene is, since "
    "session 14, the source world seen by another camera rig and sensor (target_rig_v2; on scan1 / scan2 of a probe "
    "room a seed-0 source stage scored 17.6 / 25.5 % after 800 steps and 24.3 / 29.2 % after 1600, hence the 1600-step "
    "source stage since session 15): on the target_v2 room before it, the source-only baseline was 3.6 %. In "
    "session 19 neither a milder rig nor a 3200-step source stage raised the seed-0 source-only score over three "
    "rig-style rooms (24.2 % mean, 24.3 % after 3200 steps; the room alone moves it from 20 to 30 %), so S4-Net is "
    "also adapted to and tested on a second room (data seed 1, picked on the source-only score alone). With 1200-step "
    "GeoAware rows the whole check (5 seeds) took 13.4 hours of our 2-core CPU as recorded; with 1600-step rows a "
    "rerun projects to 12.5 h, 8.4 h with --precision bf16-mixed (claims --estimate, docs/claims/estimates, plus "
    "400 steps per GeoAware row), more than the 6 hours asked for: the 25 % "
    "baselines were put first. Seed rounds run 3 seeds everywhere and the 4th and 5th only where a claim is "
    "underpowered. At this budget the networks underfit: the SynthRooms rows (S4-Net's source batches too) train "
    "without augmentation, the PSPNet rows with median-frequency class weights. The arms are compared before "
    "convergence, at equal steps."
)
TEACHER_CONFIG = "teacher3d_synthrooms.yaml"
TARGET_ROOMS = "target-style rooms"  # Table 8's extra evaluation sets: another appearance (target_v2) ...
RIG_ROOMS = "rig-style rooms"  # ... or the source world under another camera rig and sensor (target_rig_v2)


@dataclass(frozen=True)
class PaperGain:
    """The paper's mIoU (percent) of a claim's worse and better rows."""

    table: str
    baseline: float
    method: float
    verified: bool = False

    @property
    def points(self) -> float:
        return self.method - self.baseline

    @property
    def relative(self) -> float:
        return self.points / self.baseline


@dataclass(frozen=True)
class DataSeed:
    """An override value: the data seed ``offset`` after the one the key holds (the config's, or ``--data-seed``)."""

    offset: int

    def after(self, seed, where: str) -> int:
        if not isinstance(seed, int):
            raise ValueError(f"{where} holds no data seed for a DataSeed override (found {seed!r})")
        return seed + self.offset


@dataclass(frozen=True)
class Claim:
    """A paper's direction: ``better`` beats ``worse`` on ``eval_sets`` (None: every set both arms have)."""

    better: str
    worse: str
    paper: PaperGain | None = None
    eval_sets: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Arm:
    """One trained model of a comparison.

    Args:
        name: row label in the report.
        config: experiment config, relative to ``--configs``.
        steps: training steps at budget 1.
        overrides: dotted config keys -> values (applied to the YAML tree).
        init_from: name of an earlier arm (same comparison, same seed) whose final weights this one loads.
        init_key: the config key that receives that checkpoint.
        report: False for a stage that only initialises later arms (not tested).
        baseline: the arm its "Δ vs baseline" column is taken against, when not the comparison's baseline.
        extra_evals: extra evaluation sets after the config's own test set: name -> SynthRooms settings
            (no extra training: the same final weights tested on other rooms).
    """

    name: str
    config: str
    steps: int
    overrides: dict = field(default_factory=dict)
    init_from: str | None = None
    init_key: str = "model.init_args.init_checkpoint"
    report: bool = True
    baseline: str | None = None
    extra_evals: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """A method and its baseline (the paper's table whose direction is checked).

    ``paired_seeds``: the arms of one seed start from the same weights (a later stage of one earlier arm), so the
    report tests differences per seed (paired t-test).
    """

    name: str
    paper_table: str
    baseline: str
    arms: tuple[Arm, ...]
    claims: tuple[Claim, ...]
    note: str = ""
    needs_teacher: bool = False
    paired_seeds: bool = False

    @property
    def baselines(self) -> set[str]:
        """Every arm some other arm is measured against."""
        return {self.baseline, *(a.baseline for a in self.arms if a.baseline is not None)}

    def baseline_of(self, arm_name: str) -> str:
        arm = next((a for a in self.arms if a.name == arm_name), None)
        return arm.baseline if arm is not None and arm.baseline is not None else self.baseline


T4 = "geoaware_table4/synthrooms/"
SEM, LS, DEPEM, FULL = "sem-only (plain CE)", "sem + L_s", "+ DepEm", "GeoAware (full)"
GEOAWARE = Comparison(
    "GeoAware", "Jiao et al. 2019, Table 4", baseline=SEM,
    arms=(
        Arm(SEM, T4 + "sem_only.yaml", GEOAWARE_TABLE4_STEPS),
        Arm(LS, T4 + "ls.yaml", GEOAWARE_TABLE4_STEPS),
        Arm(DEPEM, T4 + "depem.yaml", GEOAWARE_TABLE4_STEPS),
        Arm(FULL, T4 + "spf.yaml", GEOAWARE_TABLE4_STEPS),
    ),
    claims=(Claim(LS, SEM, PaperGain("Table 4", 44.0, 44.9)), Claim(DEPEM, LS, PaperGain("Table 4", 44.9, 46.3)),
            Claim(FULL, DEPEM, PaperGain("Table 4", 46.3, 49.6)), Claim(FULL, SEM, PaperGain("Table 4", 44.0, 49.6))),
    note="Same GeoAwareNet: ResNet-18 encoder (output stride 16), up-projection decoders without encoder skips; "
         "sem-only trains with cross-entropy, sem + L_s with the focal-style semantic loss, + DepEm adds the depth "
         "decoder (berHu), the full model FeatProp, scale propagation, GAP and SPF (SPF alone reads encoder "
         "features). 300 source-style SynthRooms rooms, tested on their test split.",
)  # fmt: skip

T5 = "geoaware_table5/synthrooms/"
GEOAWARE_DEPTH = Comparison(
    "GeoAware partial depth", "Jiao et al. 2019, Table 5", baseline="0 % depth",
    arms=(
        # 0 % and 100 % are Table 4's sem + L_s and full-model trainings (same settings: their records are reused).
        Arm("0 % depth", T4 + "ls.yaml", GEOAWARE_TABLE5_STEPS),
        Arm("20 % depth", T5 + "depth20.yaml", GEOAWARE_TABLE5_STEPS),
        Arm("100 % depth", T4 + "spf.yaml", GEOAWARE_TABLE5_STEPS),
    ),
    claims=(Claim("20 % depth", "0 % depth", PaperGain("Table 5", 44.9, 47.0)),
            Claim("100 % depth", "20 % depth", PaperGain("Table 5", 47.0, 49.6))),
    note="The full model with depth supervision on 20 % or 100 % of the training frames (a seeded, nested subset); "
         "0 % has no depth branch (sem + L_s).",
)  # fmt: skip

PSP, DN, BN = "PSPNet", "3D-to-2D paired (DN)", "3D-to-2D paired (BN)"
TARGET = {TARGET_ROOMS: {"style": "target_v2"}, RIG_ROOMS: {"style": "target_rig_v2"}}
DISTILL3D = Comparison(
    "Distill3D paired", "Liu et al. 2021, Tables 2, 7, 8", baseline=PSP,
    arms=(
        Arm(PSP, "pspnet_resnet18_synthrooms.yaml", DISTILL3D_PAIRED_STEPS, extra_evals=TARGET),
        Arm(DN, "distill3d_resnet18_synthrooms.yaml", DISTILL3D_PAIRED_STEPS, extra_evals=TARGET),
        Arm(BN, "distill3d_bn_resnet18_synthrooms.yaml", DISTILL3D_PAIRED_STEPS),
        Arm("Multitask", "distill3d_multitask_resnet18_synthrooms.yaml", DISTILL3D_PAIRED_STEPS),
        Arm("Cascade depth stage", "distill3d_cascade_depth_resnet18_synthrooms.yaml", DISTILL3D_PAIRED_STEPS,
            report=False),
        Arm("Cascade", "distill3d_cascade_resnet18_synthrooms.yaml", DISTILL3D_PAIRED_STEPS,
            init_from="Cascade depth stage", init_key="model.init_args.depth_ckpt"),
    ),
    claims=(Claim(DN, PSP, PaperGain("Table 2", 55.4, 58.2), ("test",)),
            Claim(DN, "Multitask", PaperGain("Table 2", 56.0, 58.2), ("test",)),
            Claim(DN, "Cascade", PaperGain("Table 2", 55.8, 58.2), ("test",)),
            Claim(DN, BN, PaperGain("Table 7", 57.0, 58.2), ("test",)),
            Claim(DN, PSP, PaperGain("Table 8", 34.1, 36.6), (TARGET_ROOMS,)),
            Claim(DN, PSP, PaperGain("Table 8", 34.1, 36.6), (RIG_ROOMS,))),
    note="PSPNet-ResNet-18 throughout, trained on source-style rooms. The 3D teacher (sparse-voxel Unet, fitted once "
         "on the source-style point clouds and frozen) supplies the features the paired arms regress through DN or "
         "BN; Multitask predicts depth instead, Cascade feeds a frozen depth network's prediction. Table 8 (no extra "
         "training): PSPNet and the DN model are also tested on 20 target-style rooms (target_v2: other palette, "
         "textures, lights, camera and sensor) and on 20 rig-style rooms (target_rig_v2: the source world seen by "
         "another camera rig and sensor).",
    needs_teacher=True,
)  # fmt: skip

PSP_T = "PSPNet (target-style 2D)"
UNPAIRED = Comparison(
    "Distill3D unpaired", "Liu et al. 2021, Tables 6, 7", baseline=PSP_T,
    arms=(
        Arm(PSP_T, "pspnet_resnet18_synthrooms.yaml", DISTILL3D_UNPAIRED_STEPS, {"data.init_args.style": "target_v2"}),
        Arm("3D-to-2D unpaired (SAAL)", "distill3d_unpaired_resnet18_synthrooms.yaml", DISTILL3D_UNPAIRED_STEPS),
        Arm("unpaired, shared D", "distill3d_unpaired_shared_d_resnet18_synthrooms.yaml", DISTILL3D_UNPAIRED_STEPS),
    ),
    claims=(Claim("3D-to-2D unpaired (SAAL)", PSP_T, PaperGain("Table 6", 43.6, 45.4)),
            Claim("3D-to-2D unpaired (SAAL)", "unpaired, shared D", PaperGain("Table 7", 44.5, 45.4))),
    note="2D images of target-style rooms, never seen by the 3D teacher; per-class (SAAL) or one shared "
         "discriminator matches feature distributions adversarially. The baseline is PSPNet trained and tested on "
         "those target-style rooms.",
    needs_teacher=True,
)  # fmt: skip

S4NET_ROOM1 = {"data.init_args.target.init_args.seed": DataSeed(1)}  # the second new room (the configs' is seed 0)
R1_SOURCE, R1_SENSOR, R1_PREDICTED = (f"room 1: {a}" for a in ("source only", "S4-Net (sensor depth)",
                                                              "S4-Net (predicted depth)"))  # fmt: skip
S4NET = Comparison(
    "S4-Net", "Stekovic et al., Table 1", baseline="source only",
    arms=(
        Arm("source stage", "s4net_resnet18_synthrooms_source.yaml", S4NET_STEPS, report=False),
        # Equal budget: the source-only model continues supervised training for as many steps as S4-Net adapts.
        Arm("source only", "s4net_resnet18_synthrooms.yaml", S4NET_ADAPT_STEPS,
            {"model.init_args.consistency_weight": 0.0}, init_from="source stage"),
        Arm("S4-Net (sensor depth)", "s4net_resnet18_synthrooms.yaml", S4NET_ADAPT_STEPS, init_from="source stage"),
        Arm("S4-Net (predicted depth)", "s4net_depthpred_resnet18_synthrooms.yaml", S4NET_ADAPT_STEPS,
            init_from="source stage"),
        # Since session 19 the same three arms also adapt to, and are tested on, a second new room (data seed 1),
        # from the same source stage: one room's score moves by up to 10 points with the room alone.
        Arm(R1_SOURCE, "s4net_resnet18_synthrooms.yaml", S4NET_ADAPT_STEPS,
            {"model.init_args.consistency_weight": 0.0, **S4NET_ROOM1}, init_from="source stage", baseline=R1_SOURCE),
        Arm(R1_SENSOR, "s4net_resnet18_synthrooms.yaml", S4NET_ADAPT_STEPS, S4NET_ROOM1, init_from="source stage",
            baseline=R1_SOURCE),
        Arm(R1_PREDICTED, "s4net_depthpred_resnet18_synthrooms.yaml", S4NET_ADAPT_STEPS, S4NET_ROOM1,
            init_from="source stage", baseline=R1_SOURCE),
    ),
    claims=(Claim("S4-Net (sensor depth)", "source only", PaperGain("Table 1", 31.0, 36.0)),
            Claim("S4-Net (predicted depth)", "source only", PaperGain("Table 1", 31.0, 35.0)),
            Claim(R1_SENSOR, R1_SOURCE, PaperGain("Table 1", 31.0, 36.0)),
            Claim(R1_PREDICTED, R1_SOURCE, PaperGain("Table 1", 31.0, 35.0))),
    paired_seeds=True,
    note="A DeepLabV3+-ResNet-18 first trained on labelled source-style rooms (the source stage), then for the same "
         "number of steps either on the source labels alone (source only) or with the geometric consistency loss on "
         "the unlabelled sequence scan1 of a new room, the source world seen by another camera rig and sensor "
         "(target_rig_v2: camera 0.85-1.10 m high instead of 1.30-1.60 m, pitch -14 to +4 degrees instead of -28 to "
         "-8, noisier RGB and depth), with sensor depth or the network's own predicted depth; tested on scan1 (the "
         "adapted sequence) and scan2 (same room, unseen sequence). The room-1 rows (since session 19) repeat the "
         "three arms on a second new room of the same rig (data seed 1), from the same source stages: the first "
         "data seed after the configs' room whose source-only score (probe, seed-0 source stage, no S4-Net arm) "
         "reached 25 % on both scans (26.3 / 25.4 %; the configs' room 21.4 / 21.6 %).",
)  # fmt: skip

COMPARISONS = (GEOAWARE, GEOAWARE_DEPTH, DISTILL3D, UNPAIRED, S4NET)
