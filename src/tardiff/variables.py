"""Clinical variables: names, MIMIC-III item ids, eICU columns, valid ranges.

One declarative table shared by the demo simulator (which writes raw rows) and the extraction
(which reads them). Item ids follow ``../shared/reference/ehr-sources.md`` and the
mimic3-benchmarks item map (``resources/mimic3_itemids.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variable:
    """One time-series variable in physical units.

    ``carevue``/``metavision`` are the MIMIC-III CHARTEVENTS item ids in that unit;
    ``fahrenheit_items`` are item ids charted in °F (converted with (F − 32) / 1.8);
    ``valid`` is the plausible range in physical units after conversion (outside → dropped);
    ``eicu`` lists (table, column) sources in priority order.
    """

    name: str
    label: str
    unit: str
    carevue: tuple[int, ...]
    metavision: tuple[int, ...]
    valid: tuple[float, float]
    eicu: tuple[tuple[str, str], ...] = ()
    eicu_valid: tuple[float, float] | None = None
    fahrenheit_items: tuple[int, ...] = field(default=())

    @property
    def mimic_items(self) -> tuple[int, ...]:
        """All MIMIC-III item ids (CareVue, MetaVision and °F items)."""
        return self.carevue + self.metavision + self.fahrenheit_items


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in [
        Variable(
            "hr",
            "heart rate",
            "bpm",
            (211,),
            (220045,),
            (0, 300),
            eicu=(("vitalPeriodic", "heartrate"),),
            eicu_valid=(25, 225),
        ),
        Variable(
            "sbp",
            "systolic blood pressure",
            "mmHg",
            (51, 442, 455, 6701),
            (220050, 220179),
            (0, 400),
            eicu=(("vitalPeriodic", "systemicsystolic"), ("vitalAperiodic", "noninvasivesystolic")),
            eicu_valid=(0, 400),
        ),
        Variable(
            "dbp",
            "diastolic blood pressure",
            "mmHg",
            (8368, 8440, 8441, 8555),
            (220051, 220180),
            (0, 300),
            eicu=(
                ("vitalPeriodic", "systemicdiastolic"),
                ("vitalAperiodic", "noninvasivediastolic"),
            ),
            eicu_valid=(0, 300),
        ),
        Variable(
            "mbp",
            "mean blood pressure",
            "mmHg",
            (52, 443, 456, 6702),
            (220052, 220181, 225312),
            (0, 300),
            eicu=(("vitalPeriodic", "systemicmean"), ("vitalAperiodic", "noninvasivemean")),
            eicu_valid=(0, 300),
        ),
        Variable(
            "rr",
            "respiratory rate",
            "/min",
            (615, 618),
            (220210, 224690),
            (0, 70),
            eicu=(("vitalPeriodic", "respiration"),),
            eicu_valid=(0, 60),
        ),
        Variable(
            "spo2",
            "oxygen saturation",
            "%",
            (646,),
            (220277,),
            (0, 100),
            eicu=(("vitalPeriodic", "sao2"),),
            eicu_valid=(0, 100),
        ),
        Variable(
            "temp",
            "temperature",
            "°C",
            (676, 677),
            (223762,),
            (10, 50),
            eicu=(("vitalPeriodic", "temperature"),),
            eicu_valid=(25, 46),
            fahrenheit_items=(678, 679, 223761),
        ),
        Variable(
            "gcs",
            "Glasgow coma scale total",
            "points",
            (198,),
            (),
            (3, 15),
        ),
        Variable(
            "glucose",
            "glucose (chart)",
            "mg/dL",
            (807, 811, 1529),
            (225664, 220621, 226537),
            (0.1, 2000),
        ),
    ]
}

#: GCS components (eye, motor, verbal) charted as text with the score in VALUENUM. MetaVision has
#: no total: the total is the sum of the three components charted at the same time.
GCS_COMPONENTS: dict[str, tuple[int, ...]] = {
    "carevue": (184, 454, 723),
    "metavision": (220739, 223901, 223900),
}

#: Blood-pressure items whose VALUE may be charted as a "120/80" string.
BP_STRING_ITEMS: tuple[int, ...] = (51, 442, 455, 6701, 220050, 220179)


def get_variable(name: str) -> Variable:
    """Look up a variable by name, failing with the known names."""
    try:
        return VARIABLES[name]
    except KeyError:
        known = ", ".join(sorted(VARIABLES))
        raise KeyError(f"unknown feature {name!r}; known features: {known}") from None
