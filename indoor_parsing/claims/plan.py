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
    """

    name: str
    config: str
    steps: int
    overrides: dict = field(default_factory=dict)
    init_from: str | None = None
    report: bool = True


@dataclass(frozen=True)
class Comparison:
    """A method and its baseline (the paper's table whose direction is checked)."""

    name: str
    paper_table: str
    baseline: str
    arms: tuple[Arm, ...]
    needs_teacher: bool = False


GEOAWARE = Comparison(
    "GeoAware", "Jiao et al. 2019, Table 4", baseline="sem-only (plain CE)",
    arms=(
        Arm("sem-only (plain CE)", "geoaware_table4/sem_only.yaml", 240),
        Arm("sem + L_s", "geoaware_table4/ls.yaml", 240),
        Arm("GeoAware (full)", "geoaware_resnet18_synthrooms.yaml", 240),
    ),
)  # fmt: skip

DISTILL3D = Comparison(
    "Distill3D", "Liu et al. 2021, Tables 2, 6, 7", baseline="PSPNet",
    arms=(
        Arm("PSPNet", "pspnet_resnet18_synthrooms.yaml", 200),
        Arm("3D-to-2D paired (DN)", "distill3d_resnet18_synthrooms.yaml", 200),
        Arm("3D-to-2D paired (BN)", "distill3d_bn_resnet18_synthrooms.yaml", 200),
        Arm("3D-to-2D unpaired", "distill3d_unpaired_resnet18_synthrooms.yaml", 200),
    ),
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
)  # fmt: skip

COMPARISONS = (GEOAWARE, DISTILL3D, S4NET)
TEACHER_CONFIG = "teacher3d_synthrooms.yaml"
TEACHER_STEPS = 300
