"""Raw MIMIC-III v1.4 tables from the simulator, in the distributed schema with its dirty values.

PATIENTS, ADMISSIONS, ICUSTAYS, CHARTEVENTS, LABEVENTS, OUTPUTEVENTS, D_ITEMS and D_LABITEMS as
``<TABLE>.csv.gz`` (``ehr-sources.md`` §1). Item ids come from :mod:`tardiff.variables` and
``resources/mimic3_itemids.csv``; CareVue or MetaVision ids are chosen by the stay's DBSOURCE.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tardiff.demo import simulator as sim
from tardiff.demo.writer import CsvGz, number_text, rounded, table, text
from tardiff.variables import BP_STRING_ITEMS, GCS_COMPONENTS, VARIABLES

INT, FLT, STR, TS = pa.int64(), pa.float64(), pa.string(), pa.timestamp("s")
SCHEMAS: dict[str, list[tuple[str, pa.DataType]]] = {
    "PATIENTS": [
        ("ROW_ID", INT),
        ("SUBJECT_ID", INT),
        ("GENDER", STR),
        ("DOB", TS),
        ("DOD", TS),
        ("DOD_HOSP", TS),
        ("DOD_SSN", TS),
        ("EXPIRE_FLAG", INT),
    ],
    "ADMISSIONS": [
        ("ROW_ID", INT),
        ("SUBJECT_ID", INT),
        ("HADM_ID", INT),
        ("ADMITTIME", TS),
        ("DISCHTIME", TS),
        ("DEATHTIME", TS),
        ("ADMISSION_TYPE", STR),
        ("ADMISSION_LOCATION", STR),
        ("DISCHARGE_LOCATION", STR),
        ("INSURANCE", STR),
        ("LANGUAGE", STR),
        ("RELIGION", STR),
        ("MARITAL_STATUS", STR),
        ("ETHNICITY", STR),
        ("EDREGTIME", TS),
        ("EDOUTTIME", TS),
        ("DIAGNOSIS", STR),
        ("HOSPITAL_EXPIRE_FLAG", INT),
        ("HAS_CHARTEVENTS_DATA", INT),
    ],
    "ICUSTAYS": [
        ("ROW_ID", INT),
        ("SUBJECT_ID", INT),
        ("HADM_ID", INT),
        ("ICUSTAY_ID", INT),
        ("DBSOURCE", STR),
        ("FIRST_CAREUNIT", STR),
        ("LAST_CAREUNIT", STR),
        ("FIRST_WARDID", INT),
        ("LAST_WARDID", INT),
        ("INTIME", TS),
        ("OUTTIME", TS),
        ("LOS", FLT),
    ],
    "CHARTEVENTS": [
        ("ROW_ID", INT),
        ("SUBJECT_ID", INT),
        ("HADM_ID", INT),
        ("ICUSTAY_ID", INT),
        ("ITEMID", INT),
        ("CHARTTIME", TS),
        ("STORETIME", TS),
        ("CGID", INT),
        ("VALUE", STR),
        ("VALUENUM", FLT),
        ("VALUEUOM", STR),
        ("WARNING", INT),
        ("ERROR", INT),
        ("RESULTSTATUS", STR),
        ("STOPPED", STR),
    ],
    "LABEVENTS": [
        ("ROW_ID", INT),
        ("SUBJECT_ID", INT),
        ("HADM_ID", INT),
        ("ITEMID", INT),
        ("CHARTTIME", TS),
        ("VALUE", STR),
        ("VALUENUM", FLT),
        ("VALUEUOM", STR),
        ("FLAG", STR),
    ],
    "OUTPUTEVENTS": [
        ("ROW_ID", INT),
        ("SUBJECT_ID", INT),
        ("HADM_ID", INT),
        ("ICUSTAY_ID", INT),
        ("CHARTTIME", TS),
        ("ITEMID", INT),
        ("VALUE", FLT),
        ("VALUEUOM", STR),
        ("STORETIME", TS),
        ("CGID", INT),
        ("STOPPED", STR),
        ("NEWBOTTLE", INT),
        ("ISERROR", INT),
    ],
    "D_ITEMS": [
        ("ROW_ID", INT),
        ("ITEMID", INT),
        ("LABEL", STR),
        ("ABBREVIATION", STR),
        ("DBSOURCE", STR),
        ("LINKSTO", STR),
        ("CATEGORY", STR),
        ("UNITNAME", STR),
        ("PARAM_TYPE", STR),
        ("CONCEPTID", INT),
    ],
    "D_LABITEMS": [
        ("ROW_ID", INT),
        ("ITEMID", INT),
        ("LABEL", STR),
        ("FLUID", STR),
        ("CATEGORY", STR),
        ("LOINC_CODE", STR),
    ],
}
TABLES = list(SCHEMAS)

HOUR = 3600
DAY = 86400
CV, MV = 0, 1  # DBSOURCE index: carevue, metavision


def _ids(name: str) -> tuple[int, int]:
    var = VARIABLES[name]
    return var.carevue[0], var.metavision[0]


# (CareVue, MetaVision) item ids and units of the charted vitals.
HR, SPO2 = _ids("hr"), _ids("spo2")
RESP = (618, 220210)  # 615 / 224690 (total rate) now and then
ART = (51, 220050), (8368, 220051), (52, 220052)
NBP = (455, 220179), (8441, 220180), (456, 220181)
TEMP_F, TEMP_C, TEMP_C_CALC = (678, 223761), (676, 223762), 677
UNITS = {
    211: "BPM",
    220045: "bpm",
    618: "BPM",
    615: "BPM",
    220210: "insp/min",
    224690: "insp/min",
    646: "%",
    220277: "%",
    678: "Deg. F",
    679: "Deg. F",
    676: "Deg. C",
    677: "Deg. C",
    223761: "?F",
    223762: "?C",
    807: "mg/dL",
    811: "mg/dL",
    1529: "mg/dL",
    225664: "mg/dL",
    220621: "mg/dL",
    226537: "mg/dL",
    3420: "%",
    223835: "None",
    223834: "L/min",
    220046: "bpm",
    220047: "bpm",
    8549: "BPM",
    5815: "BPM",
    762: "kg",
    226512: "kg",
}
for _item in (
    *VARIABLES["sbp"].mimic_items,
    *VARIABLES["dbp"].mimic_items,
    *VARIABLES["mbp"].mimic_items,
):
    UNITS[_item] = "mmHg"

GCS_WORDS = {
    "eye": ["No Response", "To Pain", "To Speech", "Spontaneously"],
    "motor": [
        "No response",
        "Abnormal extension",
        "Abnormal Flexion",
        "Flex-withdraws",
        "Localizes Pain",
        "Obeys Commands",
    ],
    "verbal": [
        "No Response",
        "Incomprehensible sounds",
        "Inappropriate Words",
        "Confused",
        "Oriented",
    ],
}
ETT = ("1.0 ET/Trach", "No Response-ETT")
# Non-target chart items the item filter must skip: (CareVue, MetaVision, label, values or None).
EXTRA_ITEMS = [
    (212, 220048, "Heart Rhythm", ["Sinus Rhythm", "Atrial Fib", "Sinus Tachy", "1st AV Block"]),
    (161, 224650, "Ectopy Type", ["None", "PVC's", "PAC's"]),
    (467, 223834, "O2 Delivery Device / O2 Flow", None),
    (8549, 220046, "Heart Rate Alarm - High", None),
    (5815, 220047, "Heart Rate Alarm - Low", None),
]
EXTRA_D_ITEMS = [
    (212, "Heart Rhythm", "carevue", "", "", ""),
    (161, "Ectopy Type", "carevue", "", "", ""),
    (467, "O2 Delivery Device", "carevue", "", "", ""),
    (8549, "HR Alarm [High]", "carevue", "", "", ""),
    (5815, "HR Alarm [Low]", "carevue", "", "", ""),
    (220048, "Heart Rhythm", "metavision", "Routine Vital Signs", "", "Text"),
    (224650, "Ectopy Type 1", "metavision", "Routine Vital Signs", "", "Text"),
    (223834, "O2 Flow", "metavision", "Respiratory", "L/min", "Numeric"),
    (220046, "Heart rate Alarm - High", "metavision", "Alarms", "bpm", "Numeric"),
    (220047, "Heart Rate Alarm - Low", "metavision", "Alarms", "bpm", "Numeric"),
]
O2_DEVICES = ["None", "Nasal cannula", "Face tent", "Endotracheal tube"]

# Labs: simulator name → (ITEMID, unit, decimals, normal low, normal high).
LAB_ITEMS = {
    "creatinine": (50912, "mg/dL", 1, 0.5, 1.2),
    "bun": (51006, "mg/dL", 0, 6, 20),
    "glucose": (50931, "mg/dL", 0, 70, 105),
    "potassium": (50971, "mEq/L", 1, 3.3, 5.1),
    "sodium": (50983, "mEq/L", 0, 133, 145),
    "bicarbonate": (50882, "mEq/L", 0, 22, 32),
    "hemoglobin": (51222, "g/dL", 1, 12, 16),
    "wbc": (51301, "K/uL", 1, 4, 11),
    "platelets": (51265, "K/uL", 0, 150, 440),
    "lactate": (50813, "mmol/L", 1, 0.5, 2),
    "ph": (50820, "units", 2, 7.35, 7.45),
    "pco2": (50818, "mm Hg", 0, 35, 45),
    "po2": (50821, "mm Hg", 0, 85, 105),
    "bilirubin": (50885, "mg/dL", 1, 0, 1.5),
}
PANELS = {
    "chem": ["creatinine", "bun", "glucose", "potassium", "sodium", "bicarbonate"],
    "cbc": ["hemoglobin", "wbc", "platelets"],
    "gas": ["lactate", "ph", "pco2", "po2"],
    "liver": ["bilirubin"],
}
URINE = {CV: (40055, 40069, 43175), MV: (226559, 226560)}


def write(out: Path, n_stays: int, seed: int) -> dict:
    """Write the MIMIC-III tables of ``n_stays`` simulated ICU stays into ``out``."""
    if n_stays > 99_999:
        raise ValueError("mimic3 demo: n_stays must be at most 99,999 (ICUSTAY_ID range)")
    streams = {
        name: CsvGz(out / f"{name}.csv.gz", [c for c, _ in SCHEMAS[name]], "mimic3")
        for name in TABLES
    }
    ids = _Ids(stride=max(1, min(3, 99_998 // max(n_stays, 1))))
    deaths = adults = 0
    try:
        _write_dictionaries(streams)
        for batch in sim.simulate("mimic3", n_stays, seed):
            rng = np.random.default_rng([seed, 11, batch.first // sim.BATCH])
            stays, tables = _hierarchy(batch, rng, ids)
            for name, data in tables.items():
                streams[name].write(_numbered(name, data, streams[name].rows))
            for name, data in (
                ("CHARTEVENTS", _chartevents(batch, stays, rng)),
                ("LABEVENTS", _labevents(batch, stays, rng)),
                ("OUTPUTEVENTS", _outputevents(batch, stays, rng)),
            ):
                streams[name].write(_numbered(name, data, streams[name].rows))
            adult = stays["adult"]
            adults += int(adult.sum())
            deaths += int(batch.label[adult].sum())
    finally:
        for stream in streams.values():
            stream.close()
    return {
        "rows": {name: s.rows for name, s in streams.items()},
        "adult_stays": adults,
        "prevalence": deaths / max(adults, 1),
    }


class _Ids:
    """Monotone ids with random gaps: SUBJECT_ID < 100000, HADM 1xxxxx, ICUSTAY 2xxxxx."""

    def __init__(self, stride: int):
        self.stride = stride
        self.next = {"subject": 0, "hadm": 0, "icustay": 0}

    def take(self, kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
        base = {"subject": 1, "hadm": 100_001, "icustay": 200_001}[kind]
        idx = self.next[kind] + np.arange(n)
        self.next[kind] += n
        return base + idx * self.stride + rng.integers(0, self.stride, n)


def _numbered(name: str, data: dict, done: int) -> pa.Table:
    n = len(next(iter(data.values())))
    data["ROW_ID"] = np.arange(done + 1, done + n + 1)
    return table(SCHEMAS[name], data)


def _pick(rng: np.random.Generator, options: list, p: list[float], n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.choice(len(options), n, p=p)]


def _ts(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds (float, NaN = NULL) → timestamp array."""
    seconds = np.asarray(seconds, dtype=np.float64)
    mask = np.isnan(seconds)
    ints = np.where(mask, 0, seconds).astype(np.int64)
    return pa.array(ints, type=pa.int64(), mask=mask if mask.any() else None).cast(
        pa.timestamp("s")
    )


def _minute(seconds: np.ndarray) -> np.ndarray:
    return np.floor(seconds / 60) * 60


def _hierarchy(batch: sim.Batch, rng: np.random.Generator, ids: _Ids):
    """Group stays into subjects and admissions; dates, demographics and the three ID tables.

    A stay that dies ends its subject and opens its own admission, so every ICU stay's hospital
    outcome is its simulated label. Returns per-stay arrays and the PATIENTS/ADMISSIONS/ICUSTAYS
    column data.
    """
    n, y, los = batch.n, batch.label, batch.los_h
    subj_of, adm_of, neo_subj = np.zeros(n, int), np.zeros(n, int), []
    i, n_subj, n_adm = 0, 0, 0
    while i < n:
        neonate = rng.random() < 0.03
        k = 1 if neonate else int(rng.choice([1, 2, 3], p=[0.82, 0.13, 0.05]))
        for j in range(k):
            if i >= n:
                break
            if j == 0 or y[i] or rng.random() > 0.3:
                n_adm += 1
            subj_of[i], adm_of[i] = n_subj, n_adm - 1
            i += 1
            if y[i - 1]:
                break
        neo_subj.append(neonate)
        n_subj += 1
    neo = np.array(neo_subj)
    adm_subj = np.zeros(n_adm, int)
    adm_subj[adm_of] = subj_of

    # subjects
    male = rng.random(n_subj) < 0.57
    age = np.where(neo, 0.0, np.clip(rng.normal(66, 16, n_subj), 18, 101))
    minor = ~neo & (rng.random(n_subj) < 0.015)
    age[minor] = rng.uniform(15, 18, minor.sum())
    carevue = np.where(neo, rng.random(n_subj) < 0.9, rng.random(n_subj) < 2 / 3)
    year0 = np.datetime64("2100-01-01", "s").astype(np.int64)
    first = year0 + rng.uniform(0, 95 * 365.25 * DAY, n_subj)
    dob = first - np.where(age >= 90, 300.0, age) * 365.25 * DAY - rng.uniform(0, 365 * DAY, n_subj)
    dob = dob // DAY * DAY

    # admissions and stays in time order
    emergency = ~neo[adm_subj] & (rng.random(n_adm) < 0.8)
    admit, disch, death = np.zeros(n_adm), np.zeros(n_adm), np.full(n_adm, np.nan)
    intime, outtime = np.zeros(n), np.zeros(n)
    clock = first.copy()
    gaps = rng.uniform(20, 900, n_adm) * DAY
    lead = np.where(emergency, rng.uniform(1, 12, n_adm), rng.uniform(0.2, 6, n_adm)) * HOUR
    ward = rng.uniform(6, 96, n) * HOUR
    after = rng.uniform(0.5, 12, n_adm) * DAY
    in_icu = rng.random(n_adm) < 0.75
    after_death = rng.uniform(2, 144, n_adm) * HOUR
    for a in range(n_adm):
        subj = adm_subj[a]
        admit[a] = np.floor(clock[subj] / 60) * 60
        t = admit[a] + lead[a]
        for st in np.flatnonzero(adm_of == a):
            intime[st] = np.floor(t)
            outtime[st] = intime[st] + np.round(los[st] * HOUR)
            t = outtime[st] + ward[st]
        last = np.flatnonzero(adm_of == a)[-1]
        if y[last]:
            death[a] = outtime[last] if in_icu[a] else np.floor(outtime[last] + after_death[a])
            disch[a] = death[a]
        else:
            disch[a] = np.floor(outtime[last] + after[a])
        clock[subj] = disch[a] + gaps[a]
    hosp_died = ~np.isnan(death)

    # PATIENTS
    died_subj = np.zeros(n_subj, bool)
    died_subj[adm_subj[hosp_died]] = True
    last_disch = np.zeros(n_subj)
    np.maximum.at(last_disch, adm_subj, disch)
    later = ~died_subj & (rng.random(n_subj) < 0.25)
    dod_hosp = np.full(n_subj, np.nan)
    dod_hosp[adm_subj[hosp_died]] = death[hosp_died] // DAY * DAY
    dod = np.where(later, (last_disch + rng.uniform(1, 2000, n_subj) * DAY) // DAY * DAY, dod_hosp)
    dod_ssn = np.where(later | (rng.random(n_subj) < 0.6), dod, np.nan)
    subject_id = ids.take("subject", n_subj, rng)
    patients = {
        "SUBJECT_ID": subject_id,
        "GENDER": np.where(male, "M", "F").astype(object),
        "DOB": _ts(dob),
        "DOD": _ts(dod),
        "DOD_HOSP": _ts(dod_hosp),
        "DOD_SSN": _ts(dod_ssn),
        "EXPIRE_FLAG": (~np.isnan(dod)).astype(int),
    }

    # ADMISSIONS
    hadm_id = ids.take("hadm", n_adm, rng)
    neo_a = neo[adm_subj]
    adm_type = np.where(
        neo_a,
        "NEWBORN",
        np.where(emergency, _pick(rng, ["EMERGENCY", "URGENT"], [0.95, 0.05], n_adm), "ELECTIVE"),
    )
    location = np.where(
        emergency,
        _pick(
            rng,
            ["EMERGENCY ROOM ADMIT", "TRANSFER FROM HOSP/EXTRAM", "CLINIC REFERRAL/PREMATURE"],
            [0.7, 0.2, 0.1],
            n_adm,
        ),
        "PHYS REFERRAL/NORMAL DELI",
    )
    discharge = np.where(
        hosp_died,
        "DEAD/EXPIRED",
        _pick(
            rng,
            [
                "HOME",
                "HOME HEALTH CARE",
                "SNF",
                "REHAB/DISTINCT PART HOSP",
                "LONG TERM CARE HOSPITAL",
            ],
            [0.35, 0.3, 0.2, 0.1, 0.05],
            n_adm,
        ),
    )
    ed = emergency & (location == "EMERGENCY ROOM ADMIT")
    edreg = np.where(ed, admit - rng.uniform(1, 8, n_adm) * HOUR // 60 * 60, np.nan)
    edout = np.where(ed, admit + rng.uniform(0, 40, n_adm) // 1 * 60, np.nan)
    diagnosis = np.where(
        neo_a,
        "NEWBORN",
        _pick(
            rng,
            [
                "SEPSIS",
                "PNEUMONIA",
                "CONGESTIVE HEART FAILURE",
                "GASTROINTESTINAL BLEED",
                "INTRACRANIAL HEMORRHAGE",
                "CORONARY ARTERY DISEASE\\CORONARY ARTERY BYPASS GRAFT /SDA",
                "ALTERED MENTAL STATUS",
                "S/P FALL",
                "ACUTE RENAL FAILURE;TELEMETRY",
            ],
            [0.15, 0.15, 0.12, 0.1, 0.08, 0.15, 0.1, 0.08, 0.07],
            n_adm,
        ),
    )
    admissions = {
        "SUBJECT_ID": subject_id[adm_subj],
        "HADM_ID": hadm_id,
        "ADMITTIME": _ts(admit),
        "DISCHTIME": _ts(disch),
        "DEATHTIME": _ts(death),
        "ADMISSION_TYPE": adm_type,
        "ADMISSION_LOCATION": location,
        "DISCHARGE_LOCATION": discharge,
        "INSURANCE": np.where(
            neo_a,
            "Private",
            _pick(
                rng,
                ["Medicare", "Private", "Medicaid", "Government", "Self Pay"],
                [0.55, 0.3, 0.1, 0.03, 0.02],
                n_adm,
            ),
        ),
        "LANGUAGE": np.where(
            neo_a, None, _pick(rng, ["ENGL", "SPAN", "RUSS", None], [0.7, 0.05, 0.02, 0.23], n_adm)
        ),
        "RELIGION": _pick(
            rng,
            ["CATHOLIC", "NOT SPECIFIED", "PROTESTANT QUAKER", "JEWISH", "UNOBTAINABLE", None],
            [0.35, 0.25, 0.15, 0.1, 0.1, 0.05],
            n_adm,
        ),
        "MARITAL_STATUS": np.where(
            neo_a,
            None,
            _pick(
                rng,
                ["MARRIED", "SINGLE", "WIDOWED", "DIVORCED", None],
                [0.45, 0.25, 0.13, 0.07, 0.1],
                n_adm,
            ),
        ),
        "ETHNICITY": _pick(
            rng,
            [
                "WHITE",
                "BLACK/AFRICAN AMERICAN",
                "HISPANIC OR LATINO",
                "ASIAN",
                "UNKNOWN/NOT SPECIFIED",
            ],
            [0.7, 0.1, 0.05, 0.05, 0.1],
            n_adm,
        ),
        "EDREGTIME": _ts(edreg),
        "EDOUTTIME": _ts(edout),
        "DIAGNOSIS": diagnosis,
        "HOSPITAL_EXPIRE_FLAG": hosp_died.astype(int),
        "HAS_CHARTEVENTS_DATA": np.ones(n_adm, int),
    }

    # ICUSTAYS
    neo_s = neo[subj_of]
    unit = np.where(
        neo_s,
        "NICU",
        _pick(rng, ["MICU", "SICU", "CCU", "CSRU", "TSICU"], [0.35, 0.15, 0.15, 0.2, 0.15], n),
    )
    last_unit = np.where(~neo_s & (rng.random(n) < 0.08), "MICU", unit)
    wards = np.array([7, 12, 14, 15, 23, 33, 52, 57])
    icustay_id = ids.take("icustay", n, rng)
    dbsource = np.where(carevue[subj_of], CV, MV)
    icustays = {
        "SUBJECT_ID": subject_id[subj_of],
        "HADM_ID": hadm_id[adm_of],
        "ICUSTAY_ID": icustay_id,
        "DBSOURCE": np.array(["carevue", "metavision"], dtype=object)[dbsource],
        "FIRST_CAREUNIT": unit,
        "LAST_CAREUNIT": last_unit,
        "FIRST_WARDID": rng.choice(wards, n),
        "LAST_WARDID": rng.choice(wards, n),
        "INTIME": _ts(intime),
        "OUTTIME": _ts(outtime),
        "LOS": np.round((outtime - intime) / DAY, 4),
    }

    stay_age = (intime - dob[subj_of]) / (365.25 * DAY)
    stays = {
        "subject": subject_id[subj_of],
        "hadm": hadm_id[adm_of],
        "icustay": icustay_id,
        "db": dbsource,
        "intime": intime,
        "admit": admit[adm_of],
        "neonate": neo_s,
        "adult": ~neo_s & (stay_age >= 18),
    }
    return stays, {"PATIENTS": patients, "ADMISSIONS": admissions, "ICUSTAYS": icustays}


class _Rows:
    """Chart rows collected per item group, then assembled into one sorted table."""

    def __init__(self):
        self.parts: list[dict[str, np.ndarray]] = []
        self.vocab: list[str] = []

    def add(self, stay, hours, item, num, decimals, words=None, num2=None):
        n = len(stay)
        codes = np.full(n, -1)
        if words is not None:  # text values: words is an index into the list in ``decimals``
            base = len(self.vocab)
            self.vocab.extend(decimals)
            codes = base + np.asarray(words)
            decimals = -1
        self.parts.append(
            {
                "stay": np.asarray(stay),
                "hours": np.asarray(hours, float),
                "item": np.broadcast_to(item, n).astype(np.int64),
                "num": np.broadcast_to(np.asarray(num, float), n),
                "dec": np.broadcast_to(decimals, n).astype(np.int8),
                "code": codes,
                "num2": np.full(n, np.nan) if num2 is None else np.asarray(num2, float),
            }
        )

    def concat(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}


def _chartevents(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    db = stays["db"]
    stay, hours, hour_no = sim.charting_rounds(rng, batch.los_h)
    idx = batch.index(stay, hours)
    ser = batch.series
    neo = stays["neonate"][stay]
    dbr = db[stay]
    rows = _Rows()

    def chart(mask, items, values, decimals, num2=None):
        rows.add(
            stay[mask],
            hours[mask],
            np.asarray(items)[dbr[mask]],
            values[mask],
            decimals,
            num2=None if num2 is None else num2[mask],
        )

    hr = ser["hr"][idx] + 45 * neo
    m = rng.random(len(stay)) < 0.97
    chart(m, HR, hr, 0)
    chart(rng.random(len(stay)) < 0.93, SPO2, ser["spo2"][idx], 0)
    rr_item = np.where(rng.random(len(stay)) < 0.9, RESP[0], 615)
    rr_item = np.where(dbr == MV, np.where(rng.random(len(stay)) < 0.9, RESP[1], 224690), rr_item)
    m = rng.random(len(stay)) < 0.92
    rows.add(stay[m], hours[m], rr_item[m], (ser["rr"][idx] + 20 * neo)[m], 0)

    sbp, dbp = ser["sbp"][idx] - 30 * neo, ser["dbp"][idx] - 20 * neo
    art = batch.arterial[stay] & ~neo
    for mask, (i_s, i_d, i_m), noise in (
        (art & (rng.random(len(stay)) < 0.93), ART, 0.0),
        (np.where(art, rng.random(len(stay)) < 0.2, rng.random(len(stay)) < 0.9), NBP, 4.0),
    ):
        e = noise * rng.standard_normal((2, len(stay)))
        s_, d_ = sbp + e[0], dbp + e[1]
        m_ = d_ + (s_ - d_) / 3 + rng.normal(0, 1.5, len(stay))
        chart(mask, i_s, s_, 0, num2=d_)
        chart(mask, i_d, d_, 0)
        chart(mask, i_m, np.clip(m_, d_ + 1, s_ - 1), 0)

    # temperature every ~4 h. CareVue: F + C (calc) 60 %, F 20 %, C 20 %; MetaVision: F 75 %,
    # F + C 5 %, C 20 %.
    phase = rng.integers(0, 4, batch.n)
    t_at = (hour_no >= 0) & (hour_no % 4 == phase[stay]) & (rng.random(len(stay)) < 0.9)
    temp = ser["temp"][idx]
    u = rng.random(len(stay))
    chart(t_at & (u < 0.8), TEMP_F, temp * 1.8 + 32, 1)
    cv = dbr == CV
    c_item = np.where(cv & (u < 0.6), TEMP_C_CALC, np.asarray(TEMP_C)[dbr])
    m = t_at & ((u >= 0.8) | (cv & (u < 0.6)) | (~cv & (u >= 0.75)))
    rows.add(stay[m], hours[m], c_item[m], temp[m], 1)

    # GCS every 1-4 h: CareVue total + components, MetaVision components only
    every = rng.choice([1, 2, 4], batch.n, p=[0.2, 0.5, 0.3])
    g_at = (hour_no >= 0) & (hour_no % every[stay] == 0)
    gs, gh, gi = stay[g_at], hours[g_at], idx[g_at]
    total = np.rint(ser["gcs"][gi]).astype(int)
    eye = np.clip(np.rint(total * 4 / 15), 1, 4).astype(int)
    motor = np.clip(np.rint(total * 6 / 15), 1, 6).astype(int)
    verbal = np.clip(total - eye - motor, 1, 5)
    ett = batch.intubated[gs]
    verbal[ett] = 1
    gdb = db[gs]
    cv = gdb == CV
    rows.add(gs[cv], gh[cv], 198, (eye + motor + verbal)[cv], 0)
    for part, score in (("eye", eye), ("motor", motor), ("verbal", verbal)):
        words = GCS_WORDS[part]
        vocab = [f"{k + 1} {w}" for k, w in enumerate(words)] + words
        code = score - 1 + np.where(cv, 0, len(words))
        if part == "verbal":
            vocab += list(ETT)
            code = np.where(ett, 2 * len(words) + (~cv), code)
        j = {"eye": 0, "motor": 1, "verbal": 2}[part]
        items = np.array([GCS_COMPONENTS["carevue"][j], GCS_COMPONENTS["metavision"][j]])
        rows.add(gs, gh, items[gdb], score, vocab, words=code)

    # chart glucose every ~6 h
    g_at = (hour_no >= 0) & (hour_no % 6 == phase[stay]) & (rng.random(len(stay)) < 0.8)
    gl_items = np.array([[807, 811, 1529], [225664, 220621, 226537]])
    pick = rng.choice(3, len(stay), p=[0.6, 0.25, 0.15])
    rows.add(stay[g_at], hours[g_at], gl_items[dbr, pick][g_at], ser["glucose"][idx][g_at], 0)

    # non-target items
    for j, (i_cv, i_mv, _, words) in enumerate(EXTRA_ITEMS):
        at = (hour_no >= 0) & (hour_no % (2 + 2 * (j > 1)) == 0)
        if words is not None:
            vocab = words if j else words + ["SR (Sinus Rhythm)", "AF (Atrial Fibrillation)"]
            code = rng.choice(
                len(words), at.sum(), p=np.r_[0.7, np.full(len(words) - 1, 0.3 / (len(words) - 1))]
            )
            if not j:
                code = np.where(dbr[at] == MV, len(words) + (code > 0), code)
            rows.add(
                stay[at], hours[at], np.array([i_cv, i_mv])[dbr[at]], np.nan, vocab, words=code
            )
        elif i_cv == 467:  # CareVue device (text), MetaVision O2 flow (numeric)
            cv_at, mv_at = at & (dbr == CV), at & (dbr == MV)
            dev = np.where(batch.intubated[stay[cv_at]], 3, rng.choice(3, cv_at.sum()))
            rows.add(stay[cv_at], hours[cv_at], i_cv, np.nan, O2_DEVICES, words=dev)
            rows.add(stay[mv_at], hours[mv_at], i_mv, rng.choice([2, 3, 4, 6], mv_at.sum()), 0)
        else:
            level = 120.0 if "High" in EXTRA_ITEMS[j][2] else 50.0
            rows.add(stay[at], hours[at], np.array([i_cv, i_mv])[dbr[at]], level, 0)
    return _assemble(rows, stays, rng)


def _assemble(rows: _Rows, stays: dict, rng: np.random.Generator) -> dict:
    """Dirty values, error rows, metadata and sort order of the chart rows."""
    r = rows.concat()
    n = len(r["stay"])
    item, num, dec = r["item"], r["num"], r["dec"]
    numeric = dec >= 0
    u = rng.random((6, n))
    # SpO2 as a fraction
    frac = np.isin(item, SPO2) & (u[0] < 0.005)
    num = np.where(frac, np.round(num) / 100.0, num)
    dec = np.where(frac, 2, dec)
    # Fahrenheit value under a Celsius item
    cf = np.isin(item, (*TEMP_C, TEMP_C_CALC)) & (u[1] < 0.02)
    num = np.where(cf, num * 1.8 + 32, num)
    # out-of-range typos
    typo = numeric & ~frac & (u[2] < 0.001)
    num = np.where(typo, np.where(np.isin(item, HR), 999.0, num * 10), num)
    # blood pressure charted as "120/80"
    bp = np.isin(item, BP_STRING_ITEMS) & (u[3] < 0.015)
    dec = np.where(bp, 3, dec)
    # ERROR = 1 rows (MetaVision) with garbage values
    mv = stays["db"][r["stay"]] == MV
    err = mv & numeric & (u[4] < 0.005)
    dup = {k: v[err] for k, v in {**r, "num": num, "dec": dec}.items()}
    dup["num"] = np.round(dup["num"] * rng.uniform(0, 20, err.sum()))
    dup["dec"] = np.zeros(err.sum(), np.int8)
    cols = {k: np.concatenate([v, dup[k]]) for k, v in {**r, "num": num, "dec": dec}.items()}
    error = np.concatenate([np.zeros(n), np.ones(err.sum())])

    order = np.lexsort((error, cols["item"], cols["hours"], cols["stay"]))
    c = {k: v[order] for k, v in cols.items()}
    error = error[order]
    stay, dec, num = c["stay"], c["dec"], c["num"]
    m = len(stay)
    is_mv = stays["db"][stay] == MV

    vocab = rows.vocab + [""]
    words = text(np.where(c["code"] >= 0, c["code"], len(vocab) - 1), vocab)
    digits = number_text(num, np.maximum(dec, 0))
    bp_text = pc.binary_join_element_wise(
        number_text(num, np.zeros(m)), number_text(c["num2"], np.zeros(m)), "/"
    )
    choice = np.select([dec < 0, dec == 3], [0, 2], 1).astype(np.int8)
    value = pc.choose(pa.array(choice), words, digits, bp_text)
    valuenum = np.where(dec == 3, np.nan, np.where(dec >= 0, rounded(num, np.maximum(dec, 0)), num))

    charttime = _minute(stays["intime"][stay] + c["hours"] * HOUR)
    no_stay = rng.random(m) < 0.01
    no_hadm = no_stay & (rng.random(m) < 0.5)
    units = np.array([UNITS.get(int(i)) for i in np.unique(c["item"])], dtype=object)
    uom = units[np.searchsorted(np.unique(c["item"]), c["item"])]
    uom = np.where(dec == 3, None, uom)
    return {
        "SUBJECT_ID": stays["subject"][stay],
        "HADM_ID": np.where(no_hadm, np.nan, stays["hadm"][stay]),
        "ICUSTAY_ID": np.where(no_stay, np.nan, stays["icustay"][stay]),
        "ITEMID": c["item"],
        "CHARTTIME": _ts(charttime),
        "STORETIME": _ts(charttime + rng.integers(1, 90, m) * 60),
        "CGID": rng.integers(14000, 21000, m),
        "VALUE": value,
        "VALUENUM": valuenum,
        "VALUEUOM": uom,
        "WARNING": np.where(is_mv, (rng.random(m) < 0.02).astype(float), np.nan),
        "ERROR": np.where(is_mv, error, np.nan),
        "STOPPED": np.where(is_mv, None, "NotStopd"),
    }


def _labevents(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Lab panels every 6-24 h from INTIME − 6 h, a pre-ICU draw, a few outpatient (no HADM)."""
    los = batch.los_h
    every = rng.uniform(6, 24, batch.n)
    count = np.floor((los + 6) / every).astype(int) + 1
    stay = np.repeat(np.arange(batch.n), count)
    hours = -6 + rng.uniform(0, 2, batch.n)[stay] + sim.ragged_arange(count) * every[stay]
    hours = np.minimum(hours + rng.uniform(0, 1, len(stay)), los[stay])
    pre = -rng.uniform(8, 30, batch.n)
    pre_ok = stays["intime"] + pre * HOUR >= stays["admit"]
    outpatient = rng.random(batch.n) < 0.05
    out_h = -rng.uniform(5, 60, batch.n) * 24
    stay = np.concatenate([stay, np.flatnonzero(pre_ok), np.flatnonzero(outpatient)])
    hours = np.concatenate([hours, pre[pre_ok], out_h[outpatient]])
    no_hadm = np.r_[np.zeros(len(stay) - outpatient.sum(), bool), np.ones(outpatient.sum(), bool)]
    hours = np.floor(hours * 60) / 60
    values = sim.lab_values(batch, rng, stay, hours)
    draws = {
        "chem": np.ones(len(stay), bool),
        "cbc": rng.random(len(stay)) < 0.9,
        "gas": rng.random(len(stay)) < 0.5,
        "liver": rng.random(len(stay)) < 0.3,
    }
    parts = []
    for panel, names in PANELS.items():
        for name in names:
            m = draws[panel]
            item, _, decimals, lo, hi = LAB_ITEMS[name]
            parts.append((np.flatnonzero(m), item, values[name][m], decimals, lo, hi))
    draw = np.concatenate([p[0] for p in parts])
    item = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    num = np.concatenate([p[2] for p in parts])
    dec = np.concatenate([np.full(len(p[0]), p[3]) for p in parts])
    lo = np.concatenate([np.full(len(p[0]), p[4]) for p in parts])
    hi = np.concatenate([np.full(len(p[0]), p[5]) for p in parts])
    order = np.lexsort((item, hours[draw], stay[draw]))
    draw, item, num, dec, lo, hi = (
        draw[order],
        item[order],
        num[order],
        dec[order],
        lo[order],
        hi[order],
    )
    n = len(draw)
    num = rounded(num, dec)
    below = (item == LAB_ITEMS["bilirubin"][0]) & (num < 0.15)
    error = rng.random(n) < 0.002
    value = pc.choose(
        pa.array(np.select([error, below], [1, 2], 0).astype(np.int8)),
        number_text(num, dec),
        pa.array(["ERROR"] * n),
        pa.array(["<0.1"] * n),
    )
    valuenum = np.where(error | below, np.nan, num)
    units = {v[0]: v[1] for v in LAB_ITEMS.values()}
    s = stay[draw]
    return {
        "SUBJECT_ID": stays["subject"][s],
        "HADM_ID": np.where(no_hadm[draw], np.nan, stays["hadm"][s]),
        "ITEMID": item,
        "CHARTTIME": _ts(_minute(stays["intime"][s] + hours[draw] * HOUR)),
        "VALUE": value,
        "VALUENUM": valuenum,
        "VALUEUOM": np.array([units[i] for i in item], dtype=object),
        "FLAG": np.where(~np.isnan(valuenum) & ((num < lo) | (num > hi)), "abnormal", None),
    }


def _outputevents(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Urine output about every 1-2 h (mL since the previous row), Foley mostly."""
    los = batch.los_h
    count = np.floor(los / 1.5).astype(int) + 1
    stay = np.repeat(np.arange(batch.n), count)
    hours = np.minimum(sim.ragged_arange(count) * 1.5 + rng.uniform(0.5, 1.5, len(stay)), los[stay])
    hours = np.floor(hours * 60) / 60
    volume = batch.series["urine"][batch.index(stay, hours)] * 1.5
    volume = np.maximum(0, np.round(volume * rng.lognormal(0, 0.3, len(stay)) / 5) * 5)
    db = stays["db"][stay]
    pick = rng.random(len(stay))
    item = np.where(
        db == CV,
        np.select([pick < 0.85, pick < 0.95], [40055, 40069], 43175),
        np.where(pick < 0.85, 226559, 226560),
    )
    irrigant = (db == MV) & (rng.random(batch.n)[stay] < 0.02)
    item = np.where(irrigant & (pick < 0.3), 227488, item)
    charttime = _minute(stays["intime"][stay] + hours * HOUR)
    no_stay = rng.random(len(stay)) < 0.01
    return {
        "SUBJECT_ID": stays["subject"][stay],
        "HADM_ID": stays["hadm"][stay],
        "ICUSTAY_ID": np.where(no_stay, np.nan, stays["icustay"][stay]),
        "CHARTTIME": _ts(charttime),
        "ITEMID": item,
        "VALUE": volume,
        "VALUEUOM": np.where(db == CV, "ml", "mL"),
        "STORETIME": _ts(charttime + rng.integers(1, 60, len(stay)) * 60),
        "CGID": rng.integers(14000, 21000, len(stay)),
        "ISERROR": np.where((db == MV) & (rng.random(len(stay)) < 0.001), 1.0, np.nan),
    }


def _item_rows() -> list[dict[str, str]]:
    with resources.files("tardiff").joinpath("resources/mimic3_itemids.csv").open() as fh:
        return list(csv.DictReader(fh))


def _write_dictionaries(streams: dict[str, CsvGz]) -> None:
    """D_ITEMS (chart and output items, plus the non-target extras) and D_LABITEMS."""
    rows = _item_rows()
    items, seen = [], set()
    for r in rows:
        if r["LINKSTO"] in {"chartevents", "outputevents"} and r["ITEMID"] not in seen:
            seen.add(r["ITEMID"])
            mv = r["DBSOURCE"] == "metavision"
            items.append(
                (
                    int(r["ITEMID"]),
                    r["MIMIC LABEL"],
                    r["MIMIC LABEL"] if mv else None,
                    r["DBSOURCE"],
                    r["LINKSTO"],
                    r["CATEGORY"] or None,
                    r["UNITNAME"] or None,
                    r["PARAM_TYPE"] or None,
                )
            )
    for item, label, db, category, unit, param in EXTRA_D_ITEMS:
        items.append(
            (
                item,
                label,
                label if db == "metavision" else None,
                db,
                "chartevents",
                category or None,
                unit or None,
                param or None,
            )
        )
    items.sort()
    keys = [
        "ITEMID",
        "LABEL",
        "ABBREVIATION",
        "DBSOURCE",
        "LINKSTO",
        "CATEGORY",
        "UNITNAME",
        "PARAM_TYPE",
    ]
    data = {k: np.array([it[j] for it in items], dtype=object) for j, k in enumerate(keys)}
    data["ITEMID"] = data["ITEMID"].astype(np.int64)
    data["ROW_ID"] = np.arange(1, len(items) + 1)
    streams["D_ITEMS"].write(table(SCHEMAS["D_ITEMS"], data))

    labs = sorted({int(r["ITEMID"]): r for r in rows if r["LINKSTO"] == "labevents"}.items())
    data = {
        "ROW_ID": np.arange(1, len(labs) + 1),
        "ITEMID": np.array([i for i, _ in labs]),
        "LABEL": np.array([r["MIMIC LABEL"] for _, r in labs], dtype=object),
        "FLUID": np.array([r["FLUID"] for _, r in labs], dtype=object),
        "CATEGORY": np.array([r["CATEGORY"] for _, r in labs], dtype=object),
        "LOINC_CODE": np.array([r["LOINC_CODE"] or None for _, r in labs], dtype=object),
    }
    streams["D_LABITEMS"].write(table(SCHEMAS["D_LABITEMS"], data))
