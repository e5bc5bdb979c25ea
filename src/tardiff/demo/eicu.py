"""Raw eICU-CRD v2.0 tables from the simulator, in the distributed schema.

patient, vitalPeriodic, vitalAperiodic, nurseCharting and lab as ``<name>.csv.gz``
(``ehr-sources.md`` §2): lowercase bare headers, times as integer minutes from unit admission.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from tardiff.demo import simulator as sim
from tardiff.demo.writer import CsvGz, number_text, rounded, table, text

INT, FLT, STR = pa.int64(), pa.float64(), pa.string()
SCHEMAS: dict[str, list[tuple[str, pa.DataType]]] = {
    "patient": [
        (c, t)
        for c, t in [
            ("patientunitstayid", INT),
            ("patienthealthsystemstayid", INT),
            ("gender", STR),
            ("age", STR),
            ("ethnicity", STR),
            ("hospitalid", INT),
            ("wardid", INT),
            ("apacheadmissiondx", STR),
            ("admissionheight", FLT),
            ("hospitaladmittime24", STR),
            ("hospitaladmitoffset", INT),
            ("hospitaladmitsource", STR),
            ("hospitaldischargeyear", INT),
            ("hospitaldischargetime24", STR),
            ("hospitaldischargeoffset", INT),
            ("hospitaldischargelocation", STR),
            ("hospitaldischargestatus", STR),
            ("unittype", STR),
            ("unitadmittime24", STR),
            ("unitadmitsource", STR),
            ("unitvisitnumber", INT),
            ("unitstaytype", STR),
            ("admissionweight", FLT),
            ("dischargeweight", FLT),
            ("unitdischargetime24", STR),
            ("unitdischargeoffset", INT),
            ("unitdischargelocation", STR),
            ("unitdischargestatus", STR),
            ("uniquepid", STR),
        ]
    ],
    "vitalPeriodic": [
        ("vitalperiodicid", INT),
        ("patientunitstayid", INT),
        ("observationoffset", INT),
    ]
    + [
        (c, FLT)
        for c in (
            "temperature",
            "sao2",
            "heartrate",
            "respiration",
            "cvp",
            "etco2",
            "systemicsystolic",
            "systemicdiastolic",
            "systemicmean",
            "pasystolic",
            "padiastolic",
            "pamean",
            "st1",
            "st2",
            "st3",
            "icp",
        )
    ],
    "vitalAperiodic": [
        ("vitalaperiodicid", INT),
        ("patientunitstayid", INT),
        ("observationoffset", INT),
    ]
    + [
        (c, FLT)
        for c in (
            "noninvasivesystolic",
            "noninvasivediastolic",
            "noninvasivemean",
            "paop",
            "cardiacoutput",
            "cardiacinput",
            "svr",
            "svri",
            "pvr",
            "pvri",
        )
    ],
    "nurseCharting": [
        ("nursingchartid", INT),
        ("patientunitstayid", INT),
        ("nursingchartoffset", INT),
        ("nursingchartentryoffset", INT),
        ("nursingchartcelltypecat", STR),
        ("nursingchartcelltypevallabel", STR),
        ("nursingchartcelltypevalname", STR),
        ("nursingchartvalue", STR),
    ],
    "lab": [
        ("labid", INT),
        ("patientunitstayid", INT),
        ("labresultoffset", INT),
        ("labtypeid", INT),
        ("labname", STR),
        ("labresult", FLT),
        ("labresulttext", STR),
        ("labmeasurenamesystem", STR),
        ("labmeasurenameinterface", STR),
        ("labresultrevisedoffset", INT),
    ],
}
TABLES = list(SCHEMAS)

# nurseCharting (category, label, name) triples and value decimals.
NURSE = {
    "hr": (("Vital Signs", "Heart Rate", "Heart Rate"), 0),
    "rr": (("Vital Signs", "Respiratory Rate", "Respiratory Rate"), 0),
    "spo2": (("Vital Signs", "O2 Saturation", "O2 Saturation"), 0),
    "sbp": (("Vital Signs", "Non-Invasive BP", "Non-Invasive BP Systolic"), 0),
    "dbp": (("Vital Signs", "Non-Invasive BP", "Non-Invasive BP Diastolic"), 0),
    "mbp": (("Vital Signs", "Non-Invasive BP", "Non-Invasive BP Mean"), 0),
    "temp": (("Vital Signs", "Temperature", "Temperature (C)"), 1),
    "temp_f": (("Vital Signs", "Temperature", "Temperature (F)"), 1),
    "gcs": (("Scores", "Glasgow coma score", "GCS Total"), 0),
    "glucose": (("Other Vital Signs and Infusions", "Bedside Glucose", "Bedside Glucose"), 0),
}
GCS_UNABLE = "Unable to score due to medication"
# Labs: simulator name → (labname, labtypeid, unit, decimals).
LABS = {
    "creatinine": ("creatinine", 1, "mg/dL", 2),
    "bun": ("BUN", 1, "mg/dL", 0),
    "glucose": ("glucose", 1, "mg/dL", 0),
    "potassium": ("potassium", 1, "mmol/L", 1),
    "sodium": ("sodium", 1, "mmol/L", 0),
    "bicarbonate": ("bicarbonate", 1, "mmol/L", 0),
    "hemoglobin": ("Hgb", 3, "g/dL", 1),
    "wbc": ("WBC x 1000", 3, "K/mcL", 1),
    "platelets": ("platelets x 1000", 3, "K/mcL", 0),
    "lactate": ("lactate", 1, "mmol/L", 1),
    "ph": ("pH", 7, "Units", 2),
    "pco2": ("paCO2", 7, "mm Hg", 0),
    "po2": ("paO2", 7, "mm Hg", 0),
    "bilirubin": ("total bilirubin", 1, "mg/dL", 1),
}
DIAGNOSES = [
    "Sepsis, pulmonary",
    "Sepsis, renal/UTI (including bladder)",
    "CHF, congestive heart failure",
    "Infarction, acute myocardial (MI)",
    "CABG alone, coronary artery bypass grafting",
    "Rhythm disturbance (atrial, supraventricular)",
    "Overdose, other toxin, poison or drug",
    "Diabetic ketoacidosis",
    "Emphysema/bronchitis",
    "Stroke",
    "GI perforation/rupture",
    "Cardiac arrest (with or without respiratory arrest; for respiratory arrest see "
    "Respiratory System)",
]


def write(out: Path, n_stays: int, seed: int) -> dict:
    """Write the eICU tables of ``n_stays`` simulated unit stays into ``out``."""
    streams = {
        name: CsvGz(out / f"{name}.csv.gz", [c for c, _ in SCHEMAS[name]], "eicu")
        for name in TABLES
    }
    counters = {"stay": 0, "hosp": 0, "patient": 0}
    kept = deaths = 0
    try:
        for batch in sim.simulate("eicu", n_stays, seed):
            rng = np.random.default_rng([seed, 12, batch.first // sim.BATCH])
            stays, patient = _patients(batch, rng, counters)
            for name, data in (
                ("patient", patient),
                ("vitalPeriodic", _periodic(batch, stays, rng)),
                ("vitalAperiodic", _aperiodic(batch, stays, rng)),
                ("nurseCharting", _nurse(batch, stays, rng)),
                ("lab", _lab(batch, stays, rng)),
            ):
                key = SCHEMAS[name][0][0]
                if name != "patient":
                    data[key] = np.arange(
                        streams[name].rows + 1,
                        streams[name].rows + 1 + len(data["patientunitstayid"]),
                    )
                streams[name].write(table(SCHEMAS[name], data))
            keep = stays["cohort"]
            kept += int(keep.sum())
            deaths += int(batch.label[keep].sum())
    finally:
        for stream in streams.values():
            stream.close()
    return {
        "rows": {name: s.rows for name, s in streams.items()},
        "adult_stays": kept,
        "prevalence": deaths / max(kept, 1),
    }


def _pick(rng: np.random.Generator, options: list, p: list[float], n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.choice(len(options), n, p=p)]


def _clock(minutes: np.ndarray) -> np.ndarray:
    """Minutes (any integer) → 'HH:MM:SS' of the day."""
    m = np.mod(minutes, 1440).astype(int)
    return np.array(
        [f"{h:02d}:{mm:02d}:00" for h, mm in zip(m // 60, m % 60, strict=True)], dtype=object
    )


def _patients(batch: sim.Batch, rng: np.random.Generator, counters: dict):
    """Unit stays grouped into hospital stays (a second unit visit for some survivors) and
    patients; a death ends both. Returns per-stay arrays and the patient table's columns."""
    n, y = batch.n, batch.label
    hosp_of, pat_of, visit = np.zeros(n, int), np.zeros(n, int), np.ones(n, int)
    i, n_hosp, n_pat = 0, 0, 0
    while i < n:
        for _ in range(int(rng.choice([1, 2, 3], p=[0.85, 0.12, 0.03]))):
            if i >= n:
                break
            hosp_of[i], pat_of[i] = n_hosp, n_pat
            i += 1
            if not y[i - 1] and i < n and not y[i] and rng.random() < 0.1:
                hosp_of[i], pat_of[i], visit[i] = n_hosp, n_pat, 2
                i += 1
            n_hosp += 1
            if y[i - 1]:
                break
        n_pat += 1

    los_min = np.round(batch.los_h * 60).astype(int)
    before = rng.integers(0, 48 * 60, n_hosp)  # hospital admission → first unit
    gap = rng.integers(6 * 60, 4 * 1440, n)
    admit_off = np.zeros(n, int)  # unit admission, minutes after hospital admission
    for h in range(n_hosp):
        t = before[h]
        for st in np.flatnonzero(hosp_of == h):
            admit_off[st] = t
            t += los_min[st] + gap[st]
    last = np.zeros(n_hosp, int)
    last[hosp_of] = np.arange(n)  # stays are in order, so the last write wins
    died = y[last]
    in_unit = died & (rng.random(n_hosp) < 0.75)
    tail = np.where(
        died,
        np.where(in_unit, 0, rng.integers(120, 6 * 1440, n_hosp)),
        rng.integers(720, 12 * 1440, n_hosp),
    )
    hosp_end = admit_off[last] + los_min[last] + tail  # minutes after hospital admission
    unit_died = in_unit[hosp_of] & (np.arange(n) == last[hosp_of])

    age_p = np.clip(rng.normal(63, 17, n_pat), 16, 101).astype(int)
    age = np.where(age_p >= 90, "> 89", age_p.astype(str)).astype(object)
    age[rng.random(n_pat) < 0.003] = ""
    hospital = rng.choice(np.arange(60, 460, 7), n_pat)
    stay_ids = 141000 + (counters["stay"] + np.arange(n)) * 3 + rng.integers(0, 3, n)
    hosp_ids = 128000 + (counters["hosp"] + np.arange(n_hosp)) * 2 + rng.integers(0, 2, n_hosp)
    pids = np.array(
        [
            f"{h % 1000:03d}-{10000 + counters['patient'] + p}"
            for p, h in enumerate(rng.integers(1, 30, n_pat))
        ],
        dtype=object,
    )
    counters["stay"] += n
    counters["hosp"] += n_hosp
    counters["patient"] += n_pat

    status = np.where(died, "Expired", "Alive").astype(object)
    status[rng.random(n_hosp) < 0.005] = ""
    clock0 = rng.integers(0, 1440, n_hosp)[hosp_of]
    unit_clock = clock0 + admit_off
    weight = np.round(rng.normal(83, 22, n).clip(35, 250), 1)
    h = hosp_of
    patient = {
        "patientunitstayid": stay_ids,
        "patienthealthsystemstayid": hosp_ids[h],
        "gender": _pick(rng, ["Female", "Male", "Unknown", ""], [0.455, 0.54, 0.003, 0.002], n_pat)[
            pat_of
        ],
        "age": age[pat_of],
        "ethnicity": _pick(
            rng,
            [
                "Caucasian",
                "African American",
                "Hispanic",
                "Asian",
                "Native American",
                "Other/Unknown",
                "",
            ],
            [0.76, 0.11, 0.04, 0.02, 0.01, 0.05, 0.01],
            n_pat,
        )[pat_of],
        "hospitalid": hospital[pat_of],
        "wardid": hospital[pat_of] * 3 + rng.integers(0, 3, n),
        "apacheadmissiondx": _pick(rng, DIAGNOSES, None, n),
        "admissionheight": np.where(
            rng.random(n) < 0.03, np.nan, np.round(rng.normal(170, 10, n), 1)
        ),
        "hospitaladmittime24": _clock(clock0),
        "hospitaladmitoffset": -admit_off,
        "hospitaladmitsource": _pick(
            rng,
            [
                "Emergency Department",
                "Operating Room",
                "Floor",
                "Direct Admit",
                "Other Hospital",
                "",
            ],
            [0.45, 0.15, 0.1, 0.15, 0.1, 0.05],
            n_hosp,
        )[h],
        "hospitaldischargeyear": rng.choice([2014, 2015], n_hosp)[h],
        "hospitaldischargetime24": _clock(clock0 + hosp_end[h]),
        "hospitaldischargeoffset": hosp_end[h] - admit_off,
        "hospitaldischargelocation": np.where(
            died,
            "Death",
            _pick(
                rng,
                [
                    "Home",
                    "Skilled Nursing Facility",
                    "Rehabilitation",
                    "Other External",
                    "Nursing Home",
                ],
                [0.6, 0.2, 0.08, 0.07, 0.05],
                n_hosp,
            ),
        )[h],
        "hospitaldischargestatus": status[h],
        "unittype": _pick(
            rng,
            [
                "Med-Surg ICU",
                "MICU",
                "CCU-CTICU",
                "SICU",
                "Neuro ICU",
                "Cardiac ICU",
                "CSICU",
                "CTICU",
            ],
            [0.5, 0.1, 0.1, 0.08, 0.08, 0.06, 0.04, 0.04],
            n,
        ),
        "unitadmittime24": _clock(unit_clock),
        "unitadmitsource": np.where(
            visit == 2,
            "Floor",
            _pick(
                rng,
                [
                    "Emergency Department",
                    "Operating Room",
                    "Floor",
                    "Direct Admit",
                    "Recovery Room",
                ],
                [0.5, 0.15, 0.15, 0.1, 0.1],
                n,
            ),
        ),
        "unitvisitnumber": visit,
        "unitstaytype": np.where(
            visit == 2, "readmit", np.where(rng.random(n) < 0.05, "stepdown/other", "admit")
        ),
        "admissionweight": np.where(rng.random(n) < 0.05, np.nan, weight),
        "dischargeweight": np.where(
            rng.random(n) < 0.3, np.nan, np.round(weight + rng.normal(0, 2, n), 1)
        ),
        "unitdischargetime24": _clock(unit_clock + los_min),
        "unitdischargeoffset": los_min,
        "unitdischargelocation": np.where(
            unit_died,
            "Death",
            _pick(
                rng,
                ["Floor", "Step-Down Unit (SDU)", "Home", "Other ICU", "Telemetry"],
                [0.55, 0.2, 0.1, 0.05, 0.1],
                n,
            ),
        ),
        "unitdischargestatus": np.where(unit_died, "Expired", "Alive"),
        "uniquepid": pids[pat_of],
    }
    age_s = age[pat_of]
    adult = np.array([a == "> 89" or (a != "" and int(a) >= 18) for a in age_s])
    stays = {
        "id": stay_ids,
        "los_min": los_min,
        "admit_off": admit_off,
        "cohort": adult & (visit == 1) & (status[h] != ""),
    }
    return stays, patient


def _periodic(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """5-minute monitor medians with late starts, dropouts and missing values; ~8 % of stays
    are not interfaced at all."""
    n = batch.n
    interfaced = rng.random(n) < 0.92
    steps = np.diff(batch.start)
    flat = np.arange(batch.start[-1])
    sid = np.repeat(np.arange(n), steps)
    k = sim.ragged_arange(steps)
    drop = np.zeros(len(flat) + 1)
    count = rng.poisson(0.8 * batch.los_h / 24)
    ep = np.repeat(np.arange(n), count)
    i0 = batch.start[ep] + (rng.random(len(ep)) * steps[ep]).astype(int)
    i1 = np.minimum(i0 + rng.integers(3, 72, len(ep)), batch.start[1:][ep])
    np.add.at(drop, i0, 1)
    np.add.at(drop, i1, -1)
    offset = k * 5 + rng.integers(0, 5, n)[sid]
    keep = interfaced[sid] & (k >= rng.integers(0, 7, n)[sid]) & (np.cumsum(drop)[:-1] == 0)
    keep &= offset <= stays["los_min"][sid]
    idx, s = flat[keep], sid[keep]
    m = len(idx)
    ser = batch.series

    def value(name, p_missing, decimals=0, stay_mask=None):
        v = rounded(ser[name][idx], np.full(m, decimals))
        miss = rng.random(m) < p_missing
        if stay_mask is not None:
            miss |= ~stay_mask[s]
        return np.where(miss, np.nan, v)

    hr = value("hr", 0.01)
    artifact = rng.random(m) < 0.0005
    hr = np.where(artifact, rng.choice([0.0, 300.0], m), hr)
    has_st = rng.random(n) < 0.4
    art = batch.arterial
    st = np.round(rng.normal(0, 0.1, (3, m)), 1) + 0.0  # no "-0"
    return {
        "patientunitstayid": stays["id"][s],
        "observationoffset": offset[keep],
        "temperature": value("temp", 0.05, 1, rng.random(n) < 0.05),
        "sao2": value("spo2", 0.05),
        "heartrate": hr,
        "respiration": value("rr", 0.08, 0, rng.random(n) < 0.95),
        "cvp": np.where((rng.random(n) < 0.2)[s], np.round(rng.normal(10, 4, m)), np.nan),
        "systemicsystolic": value("sbp", 0.03, 0, art),
        "systemicdiastolic": value("dbp", 0.03, 0, art),
        "systemicmean": value("mbp", 0.03, 0, art),
        "st1": np.where(has_st[s], st[0], np.nan),
        "st2": np.where(has_st[s], st[1], np.nan),
        "st3": np.where(has_st[s], st[2], np.nan),
    }


def _aperiodic(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Non-invasive BP every 15-60 min (every 1-4 h with an arterial line)."""
    lo = np.where(batch.arterial, 60.0, 15.0)
    hi = np.where(batch.arterial, 240.0, 60.0)
    count = np.floor(batch.los_h * 60 / lo).astype(int) + 1
    sid = np.repeat(np.arange(batch.n), count)
    gaps = rng.uniform(lo[sid], hi[sid])
    t = np.cumsum(gaps)
    first = np.cumsum(count) - count
    t = t - np.repeat(t[first] - gaps[first], count) - rng.uniform(0, 15, batch.n)[sid]
    keep = (t >= 0) & (t <= stays["los_min"][sid])
    s, minutes = sid[keep], np.floor(t[keep]).astype(int)
    idx = batch.index(s, minutes / 60)
    e = rng.normal(0, 4, (2, len(s)))
    sbp = np.rint(batch.series["sbp"][idx] + e[0])
    dbp = np.rint(batch.series["dbp"][idx] + e[1])
    mean = np.rint(dbp + (sbp - dbp) / 3 + rng.normal(0, 1.5, len(s)))
    return {
        "patientunitstayid": stays["id"][s],
        "observationoffset": minutes,
        "noninvasivesystolic": sbp,
        "noninvasivediastolic": dbp,
        "noninvasivemean": np.where(rng.random(len(s)) < 0.1, np.nan, mean),
    }


def _nurse(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Hourly nurse-charted vitals as strings; temperature and GCS every 4 h, glucose every 6 h."""
    stay, hours, hour_no = sim.charting_rounds(rng, batch.los_h)
    idx = batch.index(stay, hours)
    ser = batch.series
    every4 = (hour_no >= 0) & (hour_no % 4 == rng.integers(0, 4, batch.n)[stay])
    u = rng.random((6, len(stay)))
    nibp = ~batch.arterial[stay] & (u[3] < 0.5)
    plan = [
        ("hr", u[0] < 0.7, ser["hr"]),
        ("rr", u[1] < 0.7, ser["rr"]),
        ("spo2", u[2] < 0.6, ser["spo2"]),
        ("sbp", nibp, ser["sbp"]),
        ("dbp", nibp, ser["dbp"]),
        ("mbp", nibp, ser["mbp"]),
        ("temp", every4 & (u[4] < 0.85), ser["temp"]),
        ("temp_f", every4 & (u[4] >= 0.85), ser["temp"] * 1.8 + 32),
        ("gcs", every4, ser["gcs"]),
        ("glucose", (hour_no >= 0) & (hour_no % 6 == 0) & (u[5] < 0.8), ser["glucose"]),
    ]
    parts = [(np.flatnonzero(m), j, series[idx[m]]) for j, (_, m, series) in enumerate(plan)]
    row = np.concatenate([p[0] for p in parts])
    kind = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    num = np.concatenate([p[2] for p in parts])
    order = np.lexsort((kind, hours[row], stay[row]))
    row, kind, num = row[order], kind[order], num[order]
    triples = [NURSE[name][0] for name, _, _ in plan]
    decimals = np.array([NURSE[name][1] for name, _, _ in plan])[kind]
    value = number_text(num, decimals)
    unable = (kind == 8) & (rng.random(len(row)) < 0.03)
    value = value.to_numpy(zero_copy_only=False).astype(object)
    value[unable] = GCS_UNABLE
    offset = np.rint(hours[row] * 60).astype(int)
    return {
        "patientunitstayid": stays["id"][stay[row]],
        "nursingchartoffset": offset,
        "nursingchartentryoffset": offset + rng.integers(0, 60, len(row)),
        "nursingchartcelltypecat": text(kind, [t[0] for t in triples]),
        "nursingchartcelltypevallabel": text(kind, [t[1] for t in triples]),
        "nursingchartcelltypevalname": text(kind, [t[2] for t in triples]),
        "nursingchartvalue": value,
    }


def _lab(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Lab panels every 6-24 h from 6 h before unit admission; '<0.1' bilirubin as text."""
    every = rng.uniform(6, 24, batch.n)
    count = np.floor((batch.los_h + 6) / every).astype(int) + 1
    stay = np.repeat(np.arange(batch.n), count)
    hours = -6 + rng.uniform(0, 2, batch.n)[stay] + sim.ragged_arange(count) * every[stay]
    hours = np.floor(np.minimum(hours, batch.los_h[stay]) * 60) / 60
    values = sim.lab_values(batch, rng, stay, hours)
    names = list(LABS)
    drawn = [
        np.flatnonzero(rng.random(len(stay)) < (0.5 if LABS[nm][1] == 7 else 0.9)) for nm in names
    ]
    draw = np.concatenate(drawn)
    lab = np.concatenate([np.full(len(d), j) for j, d in enumerate(drawn)])
    num = np.concatenate([values[nm][d] for nm, d in zip(names, drawn, strict=True)])
    order = np.lexsort((lab, hours[draw], stay[draw]))
    draw, lab, num = draw[order], lab[order], num[order]
    dec = np.array([LABS[nm][3] for nm in names])[lab]
    num = rounded(num, dec)
    below = (lab == names.index("bilirubin")) & (num < 0.15)
    result_text = number_text(num, dec).to_numpy(zero_copy_only=False).astype(object)
    result_text[below] = "<0.1"
    offset = np.rint(hours[draw] * 60).astype(int)
    units = [LABS[nm][2] for nm in names]
    return {
        "patientunitstayid": stays["id"][stay[draw]],
        "labresultoffset": offset,
        "labtypeid": np.array([LABS[nm][1] for nm in names])[lab],
        "labname": text(lab, [LABS[nm][0] for nm in names]),
        "labresult": np.where(below, np.nan, num),
        "labresulttext": result_text,
        "labmeasurenamesystem": text(lab, units),
        "labmeasurenameinterface": text(lab, units),
        "labresultrevisedoffset": offset + rng.integers(0, 120, len(draw)),
    }
