"""Typed, frozen settings: one dataclass per config section.

The config is validated once (:func:`tardiff.config.validate_config`, which also fills the
schema's defaults); each section then becomes one of these objects with ``from_config``. The
schema stays the one place that lists keys, defaults and allowed values: the fields here are the
schema's keys (a test checks that they agree), and nothing re-checks allowed values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self


class _Section:
    """``from_config`` for a dataclass whose fields are the keys of one config section."""

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Self:
        """Build from a *validated* section (all keys present after schema defaults)."""
        return cls(**{k: _frozen(v) for k, v in section.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists), e.g. for a checkpoint."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


@dataclass(frozen=True)
class DemoSettings(_Section):
    n_stays: int


@dataclass(frozen=True)
class TaskSettings(_Section):
    threshold_days: float


@dataclass(frozen=True)
class ExternalSettings(_Section):
    """A dataset's external test population (its source resolved by the validation)."""

    source: str
    raw_dir: str | None
    path: str | None
    demo: DemoSettings

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Self:
        demo = DemoSettings.from_config(section["demo"])
        return cls(**{**section, "path": section.get("path"), "demo": demo})


def own_files(source: str | None, raw_dir: str | None, path: str | None) -> str | None:
    """The folder a dataset (or external population) of ``source`` reads: a YAIB cohort's
    ``path``, otherwise the ``raw_dir`` of its raw tables; None where it names none, i.e. the
    embedded demo simulates it."""
    return path if source == "yaib" else raw_dir


@dataclass(frozen=True)
class DatasetSettings(_Section):
    """One entry of ``datasets:`` with the source's defaults filled in by the validation."""

    source: str
    raw_dir: str | None
    path: str | None
    demo: DemoSettings
    hours: int
    resolution_minutes: int
    features: tuple[str, ...]
    item_ids: dict[str, tuple[int, ...]]
    tasks: dict[str, TaskSettings]
    external: ExternalSettings | None = None

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Self:
        """Build from a validated dataset entry (``validate_config(...)["datasets"][name]``)."""
        external = section.get("external")
        return cls(
            **{
                **section,
                "path": section.get("path"),
                "demo": DemoSettings.from_config(section["demo"]),
                "features": tuple(section["features"]),
                "item_ids": {k: tuple(v) for k, v in section["item_ids"].items()},
                "tasks": {k: TaskSettings.from_config(v) for k, v in section["tasks"].items()},
                "external": None if external is None else ExternalSettings.from_config(external),
            }
        )

    def external_entry(self) -> DatasetSettings:
        """What extraction reads the external population as: this dataset's features, tasks and
        grid from the external source's raw files (or its simulator)."""
        if self.external is None:
            raise ValueError("this dataset has no external population")
        ext = self.external
        return dataclasses.replace(self, source=ext.source, raw_dir=ext.raw_dir, path=ext.path,
                                   demo=ext.demo, external=None)  # fmt: skip

    @property
    def steps(self) -> int:
        """Number of grid steps T of the dataset's time series."""
        return 60 * self.hours // self.resolution_minutes

    @property
    def files(self) -> str | None:
        """The user's folder extraction reads (:func:`own_files`); None: the embedded demo."""
        return own_files(self.source, self.raw_dir, self.path)

    @property
    def uses_demo(self) -> bool:
        """Whether the raw tables come from the embedded demo simulator."""
        return self.files is None


@dataclass(frozen=True)
class SplitSettings(_Section):
    train: float
    val: float
    test: float
    guide_fraction: float
    folds: int
    repeats: int


@dataclass(frozen=True)
class ClassifierSettings(_Section):
    arch: str
    hidden: int
    layers: int
    dropout: float
    loss: str
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int


@dataclass(frozen=True)
class InfluenceSettings(_Section):
    source: str
    normalize: str
    loss: str


@dataclass(frozen=True)
class DiffusionSettings(_Section):
    base_channels: int
    channel_mults: tuple[int, ...]
    num_res_blocks: int
    dropout: float
    timesteps: int
    schedule: str
    prediction: str
    label_dropout: float
    lr: float
    weight_decay: float
    warmup_steps: int
    train_steps: int
    batch_size: int
    ema_decay: float


@dataclass(frozen=True)
class ScaleGrids(_Section):
    """Guidance scale grid of each guided method (``generation.scales``)."""

    tardiff: tuple[float, ...]
    classifier_guidance: tuple[float, ...]
    cfg: tuple[float, ...] = ()  # from_config always fills the schema's grid

    def of(self, method: str) -> tuple[float, ...]:
        return getattr(self, method)


@dataclass(frozen=True)
class GenerationSettings(_Section):
    methods: tuple[str, ...]
    sampler: str
    steps: int
    eta: float
    scales: ScaleGrids
    evaluate_on: str
    jacobian: str
    normalize: str
    preserve: str
    shift_schedule: str
    shift_cutoff: float
    fd_eps: float
    clip_x0: float | None
    guide_skip_share: float
    filter_factor: int
    n_samples: int | None
    batch_size: int

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Self:
        return super().from_config({**section, "scales": ScaleGrids.from_config(section["scales"])})


@dataclass(frozen=True)
class EvaluationModelSettings(_Section):
    """The downstream evaluation model's fixed recipe (``evaluation.model``)."""

    arch: str
    hidden: int
    layers: int
    lr: float
    weight_decay: float
    batch_size: int
    steps: int


@dataclass(frozen=True)
class PredictorSettings(_Section):
    """The post-hoc next-step predictor of the predictive score (``fidelity.predictor``)."""

    hidden: int
    lr: float
    batch_size: int
    steps: int


@dataclass(frozen=True)
class JudgeSettings(EvaluationModelSettings):
    """The label judge's recipe (``fidelity.judge``): an evaluation-model recipe and the offset of
    its model seed from the config seed."""

    seed_offset: int


@dataclass(frozen=True)
class FidelitySettings(_Section):
    runs: int
    discriminator: EvaluationModelSettings
    predictor: PredictorSettings
    max_mmd_samples: int
    judge: JudgeSettings

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Self:
        return super().from_config(
            {
                **section,
                "discriminator": EvaluationModelSettings.from_config(section["discriminator"]),
                "predictor": PredictorSettings.from_config(section["predictor"]),
                "judge": JudgeSettings.from_config(section["judge"]),
            }
        )


@dataclass(frozen=True)
class PrivacySettings(_Section):
    near_copy_distance: float
    bootstrap_resamples: int


@dataclass(frozen=True)
class StudySettings(_Section):
    """The guidance studies (``studies``): pairs, sweep scales, guidance-set variants."""

    pairs: tuple[str, ...]
    sweep_scales: tuple[float, ...]
    sweep_methods: tuple[str, ...]
    guide_fractions: tuple[float, ...]
    guide_sources: tuple[str, ...]


@dataclass(frozen=True)
class JitterSettings(_Section):
    noise_sd: float
    warp: float


@dataclass(frozen=True)
class ScarcitySettings(_Section):
    fractions: tuple[float, ...]
    pairs: tuple[str, ...]


@dataclass(frozen=True)
class TreeSettings(_Section):
    """The gradient-boosted trees evaluator's fixed recipe (``evaluation.trees``)."""

    rounds: int
    learning_rate: float
    num_leaves: int
    min_child_samples: int


@dataclass(frozen=True)
class PrimarySettings(_Section):
    """The pre-registered primary comparison (``evaluation.primary``)."""

    method: str
    baseline: str
    protocol: str
    ratio: float | None
    metric: str
    test_set: str
    evaluator: str


@dataclass(frozen=True)
class EvaluationSettings(_Section):
    seeds: int
    selection_seeds: int  # the first seeds: scale selection and guidance studies
    ratios: tuple[float, ...]
    minority_multiples: tuple[float, ...]
    model: EvaluationModelSettings
    jitter: JitterSettings
    baselines: tuple[str, ...]
    evaluators: tuple[str, ...]
    trees: TreeSettings
    bootstrap_resamples: int
    scarcity: ScarcitySettings
    primary: PrimarySettings

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Self:
        return super().from_config(
            {
                **section,
                "model": EvaluationModelSettings.from_config(section["model"]),
                "jitter": JitterSettings.from_config(section["jitter"]),
                "trees": TreeSettings.from_config(section["trees"]),
                "scarcity": ScarcitySettings.from_config(section["scarcity"]),
                "primary": PrimarySettings.from_config(section["primary"]),
            }
        )


SECTIONS: dict[str, type[_Section]] = {
    "split": SplitSettings,
    "classifier": ClassifierSettings,
    "influence": InfluenceSettings,
    "diffusion": DiffusionSettings,
    "generation": GenerationSettings,
    "evaluation": EvaluationSettings,
    "fidelity": FidelitySettings,
    "privacy": PrivacySettings,
    "studies": StudySettings,
}
