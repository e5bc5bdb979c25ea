"""Clinical variables: names, MIMIC-III item ids, eICU columns, valid ranges.

One declarative table shared by the demo simulator (which writes raw rows), the extraction
(which reads them) and the fidelity metrics (which check plausible ranges). Item ids follow
``../shared/reference/ehr-sources.md`` and the mimic3-benchmarks item map
(``resources/mimic3_itemids.csv``).

YAIB / ricu cohorts name their variables by ricu concept (``map``, ``resp``, ``o2sat``, ``glu``,
``na``, ...). One entry per quantity: a concept the project already has is an alias of it
(:data:`ALIASES`, e.g. ``map`` -> ``mbp``: the project's unit and range apply); the other concepts
of YAIB's 48 dynamic variables are entries of their own (no MIMIC-III items, no eICU source) with
ricu's unit and, as range, the limits of ricu's concept dictionary (``concept-dict.json``; an
open upper limit, ``inf``, where ricu sets none). A name the catalogue does not know (e.g.
``inr_pt``, to which ricu gives no limits) has no range: :func:`find_variable` returns None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import inf


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


#: ricu concepts of YAIB's dynamic variables the project has no entry for:
#: name -> (label, unit, low, high), ricu's first unit and concept-dictionary limits.
_RICU: dict[str, tuple[str, str, float, float]] = {
    "alb": ("albumin", "g/dL", 0, 6),
    "alp": ("alkaline phosphatase", "IU/L", 0, inf),
    "alt": ("alanine aminotransferase", "IU/L", 0, inf),
    "ast": ("aspartate aminotransferase", "IU/L", 0, inf),
    "be": ("base excess", "mEq/L", -25, 25),
    "bicar": ("bicarbonate", "mEq/L", 5, 50),
    "bili": ("total bilirubin", "mg/dL", 0, 100),
    "bili_dir": ("direct bilirubin", "mg/dL", 0, 50),
    "bnd": ("band form neutrophils", "%", 0, 100),  # ricu sets no limits: a percentage
    "bun": ("blood urea nitrogen", "mg/dL", 0, 200),
    "ca": ("calcium", "mg/dL", 4, 20),
    "cai": ("ionized calcium", "mmol/L", 0.5, 2),
    "ck": ("creatine kinase", "IU/L", 0, inf),
    "ckmb": ("creatine kinase MB", "ng/mL", 0, inf),
    "cl": ("chloride", "mEq/L", 80, 130),
    "crea": ("creatinine", "mg/dL", 0, 15),
    "crp": ("C-reactive protein", "mg/L", 0, inf),
    "fgn": ("fibrinogen", "mg/dL", 0, 1500),
    "fio2": ("fraction of inspired oxygen", "%", 21, 100),
    "hgb": ("hemoglobin", "g/dL", 4, 18),
    "k": ("potassium", "mEq/L", 0, 10),
    "lact": ("lactate", "mmol/L", 0, 50),
    "lymph": ("lymphocytes", "%", 0, 100),
    "mch": ("mean corpuscular hemoglobin", "pg", 0, inf),
    "mchc": ("mean corpuscular hemoglobin concentration", "%", 20, 50),
    "mcv": ("mean corpuscular volume", "fL", 50, 150),
    "methb": ("methemoglobin", "%", 0, 100),
    "mg": ("magnesium", "mg/dL", 0.5, 5),
    "na": ("sodium", "mEq/L", 110, 165),
    "neut": ("neutrophils", "%", 0, 100),
    "pco2": ("CO2 partial pressure", "mmHg", 10, 150),
    "ph": ("blood pH", "", 6.8, 8),
    "phos": ("phosphate", "mg/dL", 0, 40),
    "plt": ("platelet count", "K/uL", 5, 1200),
    "po2": ("O2 partial pressure", "mmHg", 40, 600),
    "ptt": ("partial thromboplastin time", "s", 0, inf),
    "tnt": ("troponin T", "ng/mL", 0, inf),
    "urine": ("urine output", "mL", 0, 2000),
    "wbc": ("white blood cell count", "K/uL", 0, inf),
}
VARIABLES.update(
    {
        name: Variable(name, label, unit, (), (), (lo, hi))
        for name, (label, unit, lo, hi) in _RICU.items()
    }
)

#: ricu concept name -> the project's variable of the same quantity (``hr``, ``sbp``, ``dbp`` and
#: ``temp`` share the project's names).
ALIASES: dict[str, str] = {"map": "mbp", "resp": "rr", "o2sat": "spo2", "glu": "glucose"}


def canonical_name(name: str) -> str:
    """The catalogue name of ``name`` (an alias resolved; any other name unchanged)."""
    return ALIASES.get(name, name)


def find_variable(name: str) -> Variable | None:
    """The variable called ``name`` (or an alias of it); None if the catalogue lacks it."""
    return VARIABLES.get(canonical_name(name))
