"""What the claims check compares: each paper's method next to its own baseline, at equal budgets.

An arm is an experiment config plus overrides; every arm of a comparison trains on the same generated SynthRooms,
for the same number of steps, at the same input size, with the same encoder (the configs share their data blocks;
`run.py` fixes steps and seeds). The SynthRooms generation settings are those of the configs, fixed before any run.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arm:
    """One trained model of a comparison.

    Args:
        name: row label in the report.
        config: experiment config, relative to configs/experiments.
        overrides: dotted config keys -> values (applied to the YAML tree).
        steps: training steps at budget 1.
        init_from: name of an earlier arm (same comparison, same seed) whose final weights initialise this one.
        report: False for a stage that only initialises later arms.
        baseline: the arm its "Δ vs baseline" column is taken against, when not the comparison's baseline (an arm
            trained on other 2D data needs a baseline trained on that data).
    """

    name: str
    config: str
    steps: int
    overrides: dict = field(default_factory=dict)
    init_from: str | None = None
    report: bool = True
    baseline: str | None = None


@dataclass(frozen=True)
class Comparison:
    """A method and its baseline (the paper's table whose direction is checked).

    ``claims`` are the paper's directions as (better arm, worse arm) pairs; the report tests each on every evaluation
    set the two arms share. ``paired_seeds``: the arms of one seed start from the same weights (a later stage of one
    earlier arm), so the report tests differences per seed (paired t-test).
    """

    name: str
    paper_table: str
    baseline: str
    arms: tuple[Arm, ...]
    claims: tuple[tuple[str, str], ...]
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


GEOAWARE = Comparison(
    "GeoAware", "Jiao et al. 2019, Table 4", baseline="sem-only (plain CE)",
    arms=(
        Arm("sem-only (plain CE)", "geoaware_table4/synthrooms/sem_only.yaml", 240),
        Arm("sem + L_s", "geoaware_table4/synthrooms/ls.yaml", 240),
        Arm("GeoAware (full)", "geoaware_resnet18_synthrooms.yaml", 240),
    ),
    claims=(("sem + L_s", "sem-only (plain CE)"), ("GeoAware (full)", "sem-only (plain CE)"),
            ("GeoAware (full)", "sem + L_s")),
    note="Same Unet-style ResNet-18 network; sem-only trains with cross-entropy, sem + L_s with the focal-style "
         "semantic loss, the full model adds the depth decoder (berHu), FeatProp, scale propagation, GAP and SPF. "
         "Source-style SynthRooms, tested on its test split.",
)  # fmt: skip

DISTILL3D = Comparison(
    "Distill3D", "Liu et al. 2021, Tables 2, 6, 7", baseline="PSPNet",
    arms=(
        Arm("PSPNet", "pspnet_resnet18_synthrooms.yaml", 200),
        Arm("3D-to-2D paired (DN)", "distill3d_resnet18_synthrooms.yaml", 200),
        Arm("3D-to-2D paired (BN)", "distill3d_bn_resnet18_synthrooms.yaml", 200),
        # Table 6: unpaired 2D images (target-style rooms, never seen by the 3D teacher) against PSPNet trained and
        # tested on those same images.
        Arm("PSPNet (target-style 2D)", "pspnet_resnet18_synthrooms.yaml", 200, {"data.init_args.style": "target"}),
        Arm("3D-to-2D unpaired", "distill3d_unpaired_resnet18_synthrooms.yaml", 200,
            baseline="PSPNet (target-style 2D)"),
    ),
    claims=(("3D-to-2D paired (DN)", "PSPNet"), ("3D-to-2D paired (BN)", "PSPNet"),
            ("3D-to-2D paired (DN)", "3D-to-2D paired (BN)"), ("3D-to-2D unpaired", "PSPNet (target-style 2D)")),
    note="PSPNet-ResNet-18 throughout. The 3D teacher (sparse-voxel Unet, fitted once on the source-style point clouds "
         "and frozen) supplies the features the paired arms regress through DN or BN; the unpaired arm sees "
         "target-style rooms only and matches per-class feature distributions adversarially, so its baseline is "
         "PSPNet trained and tested on those target-style rooms.",
    needs_teacher=True,
)  # fmt: skip

S4NET = Comparison(
    "S4-Net", "Stekovic et al., Table 1", baseline="source only",
    arms=(
        Arm("source stage", "s4net_resnet18_synthrooms_source.yaml", 200, report=False),
        # Equal budget: the source-only model continues supervised training for as many steps as S4-Net adapts.
        Arm("source only", "s4net_resnet18_synthrooms.yaml", 60, {"model.init_args.consistency_weight": 0.0},
            init_from="source stage"),
        Arm("S4-Net (sensor depth)", "s4net_resnet18_synthrooms.yaml", 60, init_from="source stage"),
        Arm("S4-Net (predicted depth)", "s4net_depthpred_resnet18_synthrooms.yaml", 60, init_from="source stage"),
    ),
    claims=(("S4-Net (sensor depth)", "source only"), ("S4-Net (predicted depth)", "source only")),
    paired_seeds=True,
    note="A Unet-ResNet-18 first trained on labelled source-style rooms (the source stage), then for the same number "
         "of steps either on the source labels alone (source only) or with the geometric consistency loss on the "
         "unlabelled target-style sequence scan1 (sensor depth, or depth from the network's own depth head); "
         "tested on scan1 (the adapted sequence) and scan2 (same room, unseen sequence).",
)  # fmt: skip

COMPARISONS = (GEOAWARE, DISTILL3D, S4NET)
TEACHER_CONFIG = "teacher3d_synthrooms.yaml"
TEACHER_STEPS = 300
