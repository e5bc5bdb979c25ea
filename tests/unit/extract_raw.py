"""Builders of small raw MIMIC-III / eICU table sets for the extraction tests."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tardiff.config import validate_config
from tardiff.settings import DatasetSettings, SplitSettings

MIMIC_COLUMNS = {
    "PATIENTS": "ROW_ID SUBJECT_ID GENDER DOB DOD DOD_HOSP DOD_SSN EXPIRE_FLAG",
    "ADMISSIONS": "ROW_ID SUBJECT_ID HADM_ID ADMITTIME DISCHTIME DEATHTIME ADMISSION_TYPE "
    "ADMISSION_LOCATION DISCHARGE_LOCATION INSURANCE LANGUAGE RELIGION MARITAL_STATUS ETHNICITY "
    "EDREGTIME EDOUTTIME DIAGNOSIS HOSPITAL_EXPIRE_FLAG HAS_CHARTEVENTS_DATA",
    "ICUSTAYS": "ROW_ID SUBJECT_ID HADM_ID ICUSTAY_ID DBSOURCE FIRST_CAREUNIT LAST_CAREUNIT "
    "FIRST_WARDID LAST_WARDID INTIME OUTTIME LOS",
    "CHARTEVENTS": "ROW_ID SUBJECT_ID HADM_ID ICUSTAY_ID ITEMID CHARTTIME STORETIME CGID VALUE "
    "VALUENUM VALUEUOM WARNING ERROR RESULTSTATUS STOPPED",
}
EICU_COLUMNS = {
    "patient": "patientunitstayid patienthealthsystemstayid gender age ethnicity hospitalid "
    "wardid apacheadmissiondx admissionheight hospitaladmittime24 hospitaladmitoffset "
    "hospitaladmitsource hospitaldischargeyear hospitaldischargetime24 hospitaldischargeoffset "
    "hospitaldischargelocation hospitaldischargestatus unittype unitadmittime24 unitadmitsource "
    "unitvisitnumber unitstaytype admissionweight dischargeweight unitdischargetime24 "
    "unitdischargeoffset unitdischargelocation unitdischargestatus uniquepid",
    "vitalPeriodic": "vitalperiodicid patientunitstayid observationoffset temperature sao2 "
    "heartrate respiration cvp etco2 systemicsystolic systemicdiastolic systemicmean pasystolic "
    "padiastolic pamean st1 st2 st3 icp",
    "vitalAperiodic": "vitalaperiodicid patientunitstayid observationoffset noninvasivesystolic "
    "noninvasivediastolic noninvasivemean paop cardiacoutput cardiacinput svr svri pvr pvri",
}
T0 = datetime(2150, 3, 1, 8, 0, 0)
FMT = "%Y-%m-%d %H:%M:%S"


def write_csv(
    folder: Path,
    name: str,
    columns: list[str],
    rows: list[dict],
    *,
    gz: bool = True,
    mimic_style: bool = True,
) -> Path:
    """One table file as distributed: MIMIC style quotes the header and strings (not numbers or
    timestamps), eICU style quotes only strings with a comma; NULL is an empty field."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name + (".csv.gz" if gz else ".csv"))
    opener = gzip.open if gz else open
    with opener(path, "wt", newline="") as fh:
        fh.write(",".join(_quote(c) if mimic_style else c for c in columns) + "\n")
        for row in rows:
            cells = [_cell(row.get(c.upper(), row.get(c)), mimic_style) for c in columns]
            fh.write(",".join(cells) + "\n")
    return path


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _cell(value, mimic_style: bool) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return value.strftime(FMT)
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if mimic_style or "," in value or '"' in value:
        return _quote(value)
    return value


@dataclass
class Mimic:
    """A small MIMIC-III table set: add stays and chart rows, then :meth:`write`."""

    patients: list[dict] = field(default_factory=list)
    admissions: list[dict] = field(default_factory=list)
    icustays: list[dict] = field(default_factory=list)
    chart: list[dict] = field(default_factory=list)

    def stay(
        self,
        stay_id: int,
        *,
        subject_id: int | None = None,
        hadm_id: int | None = None,
        intime: datetime = T0,
        los: float = 2.0,
        age: float = 60.0,
        gender: str = "F",
        expire: int = 0,
        careunit: str = "MICU",
        dbsource: str = "carevue",
    ) -> dict:
        """Add an ICU stay (and its patient and admission unless already there)."""
        subject_id = subject_id or stay_id - 200000
        hadm_id = hadm_id or stay_id - 100000
        if all(p["SUBJECT_ID"] != subject_id for p in self.patients):
            dob = intime - timedelta(days=365.2425 * age)
            self.patients.append(
                {
                    "ROW_ID": subject_id,
                    "SUBJECT_ID": subject_id,
                    "GENDER": gender,
                    "DOB": dob.replace(hour=0, minute=0),
                    "EXPIRE_FLAG": expire,
                }
            )
        if all(a["HADM_ID"] != hadm_id for a in self.admissions):
            self.admissions.append(
                {
                    "ROW_ID": hadm_id,
                    "SUBJECT_ID": subject_id,
                    "HADM_ID": hadm_id,
                    "ADMITTIME": intime - timedelta(hours=3),
                    "DISCHTIME": intime + timedelta(days=los + 1),
                    "HOSPITAL_EXPIRE_FLAG": expire,
                }
            )
        row = {
            "ROW_ID": stay_id,
            "SUBJECT_ID": subject_id,
            "HADM_ID": hadm_id,
            "ICUSTAY_ID": stay_id,
            "DBSOURCE": dbsource,
            "FIRST_CAREUNIT": careunit,
            "LAST_CAREUNIT": careunit,
            "INTIME": intime,
            "OUTTIME": intime + timedelta(days=los),
            "LOS": los,
        }
        self.icustays.append(row)
        return row

    def event(
        self,
        stay_id: int,
        itemid: int,
        minutes: float,
        value,
        *,
        valuenum="auto",
        error=0,
        icustay: bool = True,
        hadm: bool = True,
    ) -> None:
        """Chart ``value`` under ``itemid`` at INTIME + ``minutes`` of stay ``stay_id``."""
        stay = next(s for s in self.icustays if s["ICUSTAY_ID"] == stay_id)
        if valuenum == "auto":
            valuenum = value if isinstance(value, int | float) else None
        self.chart.append(
            {
                "ROW_ID": len(self.chart) + 1,
                "SUBJECT_ID": stay["SUBJECT_ID"],
                "HADM_ID": stay["HADM_ID"] if hadm else None,
                "ICUSTAY_ID": stay_id if icustay else None,
                "ITEMID": itemid,
                "CHARTTIME": stay["INTIME"] + timedelta(minutes=minutes),
                "STORETIME": stay["INTIME"] + timedelta(minutes=minutes + 5),
                "CGID": 17000,
                "VALUE": str(value),
                "VALUENUM": valuenum,
                "ERROR": error,
            }
        )

    def write(self, folder: Path, *, gz: bool = True, lower: bool = False) -> Path:
        """Write the four tables (``lower``: lower-case headers and file names)."""
        tables = {
            "PATIENTS": self.patients,
            "ADMISSIONS": self.admissions,
            "ICUSTAYS": self.icustays,
            "CHARTEVENTS": self.chart,
        }
        for name, rows in tables.items():
            columns = MIMIC_COLUMNS[name].split()
            if lower:
                columns = [c.lower() for c in columns]
                rows = [{k.lower(): v for k, v in r.items()} for r in rows]
            write_csv(folder, name.lower() if lower else name, columns, rows, gz=gz)
        return folder


def mimic_basic(n: int = 20, hr_minutes: float = 30) -> Mimic:
    """``n`` adult stays, alternating labels for both tasks, one HR value each."""
    m = Mimic()
    for k in range(n):
        stay_id = 200001 + k
        m.stay(stay_id, expire=k % 2, los=1.0 + 4 * (k % 3 == 0), age=40 + k)
        m.event(stay_id, 211, hr_minutes, 70 + k)
    return m


@dataclass
class Eicu:
    """A small eICU table set."""

    patients: list[dict] = field(default_factory=list)
    periodic: list[dict] = field(default_factory=list)
    aperiodic: list[dict] = field(default_factory=list)

    def stay(
        self,
        stay_id: int,
        *,
        uniquepid: str | None = None,
        age: str = "60",
        status: str = "Alive",
        los_minutes: int = 2 * 1440,
        visit: int = 1,
        gender: str = "Female",
    ) -> None:
        """Add a unit stay."""
        self.patients.append(
            {
                "patientunitstayid": stay_id,
                "patienthealthsystemstayid": stay_id + 1,
                "gender": gender,
                "age": age,
                "hospitaldischargestatus": status,
                "unitvisitnumber": visit,
                "unitdischargeoffset": los_minutes,
                "uniquepid": uniquepid or f"002-{stay_id}",
            }
        )

    def vital(self, stay_id: int, offset: int, **values) -> None:
        """A vitalPeriodic row (heartrate=..., sao2=..., systemicsystolic=...)."""
        self.periodic.append(
            {
                "vitalperiodicid": len(self.periodic) + 1,
                "patientunitstayid": stay_id,
                "observationoffset": offset,
                **values,
            }
        )

    def nibp(self, stay_id: int, offset: int, **values) -> None:
        """A vitalAperiodic row (noninvasivesystolic=...)."""
        self.aperiodic.append(
            {
                "vitalaperiodicid": len(self.aperiodic) + 1,
                "patientunitstayid": stay_id,
                "observationoffset": offset,
                **values,
            }
        )

    def write(self, folder: Path, *, gz: bool = True) -> Path:
        tables = {
            "patient": self.patients,
            "vitalPeriodic": self.periodic,
            "vitalAperiodic": self.aperiodic,
        }
        for name, rows in tables.items():
            write_csv(folder, name, EICU_COLUMNS[name].split(), rows, gz=gz, mimic_style=False)
        return folder


def eicu_basic(n: int = 20) -> Eicu:
    """``n`` adult first unit stays, alternating labels, one heart rate each."""
    e = Eicu()
    for k in range(n):
        stay_id = 1000 + k
        e.stay(
            stay_id,
            status="Expired" if k % 2 else "Alive",
            los_minutes=1440 * (1 + 4 * (k % 3 == 0)),
        )
        e.vital(stay_id, 10, heartrate=70 + k, respiration=16, sao2=97)
    return e


def entry(source: str = "mimic3", **overrides) -> DatasetSettings:
    """A resolved dataset entry: the source's defaults as tardiff.config fills them in."""
    raw = {"source": source}
    if source == "yaib":
        raw.update(path="unused", features=["hr", "sbp", "o2sat"], tasks={"mortality24": {}})
    resolved = validate_config({"datasets": {"d": {**raw, **overrides}}})["datasets"]["d"]
    return DatasetSettings.from_config(resolved)


SPLIT = SplitSettings.from_config(
    validate_config({"datasets": {"d": {"source": "mimic3"}}})["split"]
)
