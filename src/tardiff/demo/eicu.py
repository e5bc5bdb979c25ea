"""Raw eICU-CRD v2.0 tables from the simulator, in the distributed schema.

patient, vitalPeriodic, vitalAperiodic, nurseCharting and lab as ``<name>.csv.gz``
(``ehr-sources.md`` §2): lowercase bare headers, times as integer minutes from unit admission.
The patient table comes from :mod:`tardiff.demo.eicu_patients`, rates from
:data:`tardiff.demo.params.EICU`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tardiff.demo import simulator as sim
from tardiff.demo.eicu_patients import patients
from tardiff.demo.params import EICU as P
from tardiff.demo.writer import number_text, rounded, schemas, stack, text, write_tables

SCHEMAS = schemas("eicu")
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
BLOOD_GAS = 7  # labtypeid


def write(out: Path, n_stays: int, seed: int) -> dict:
    """Write the eICU tables of ``n_stays`` simulated unit stays into ``out``."""
    counters = {"stay": 0, "hosp": 0, "patient": 0}

    def tables(batch: sim.Batch, rng: np.random.Generator):
        stays, patient = patients(batch, rng, counters)
        data = {
            "patient": patient,
            "vitalPeriodic": _periodic(batch, stays, rng),
            "vitalAperiodic": _aperiodic(batch, stays, rng),
            "nurseCharting": _nurse(batch, stays, rng),
            "lab": _lab(batch, stays, rng),
        }
        return stays["cohort"], data

    return write_tables(out, "eicu", n_stays, seed, tables)


def _periodic(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """5-minute monitor medians with late starts, dropouts and missing values; ~8 % of stays
    are not interfaced at all."""
    n, missing = batch.n, P["missing"]
    interfaced = rng.random(n) < P["interfaced"]
    steps = np.diff(batch.start)
    flat = np.arange(batch.start[-1])
    sid = np.repeat(np.arange(n), steps)
    k = sim.ragged_arange(steps)
    drop = np.zeros(len(flat) + 1)
    count = rng.poisson(P["dropouts_per_day"] * batch.los_h / 24)
    ep = np.repeat(np.arange(n), count)
    i0 = batch.start[ep] + (rng.random(len(ep)) * steps[ep]).astype(int)
    i1 = np.minimum(i0 + rng.integers(*P["dropout_steps"], len(ep)), batch.start[1:][ep])
    np.add.at(drop, i0, 1)
    np.add.at(drop, i1, -1)
    offset = k * 5 + rng.integers(0, 5, n)[sid]
    late = k >= rng.integers(0, P["late_start_steps"], n)[sid]
    keep = interfaced[sid] & late & (np.cumsum(drop)[:-1] == 0)
    keep &= offset <= stays["los_min"][sid]
    idx, s = flat[keep], sid[keep]
    m = len(idx)

    def value(name, p_missing, decimals=0, stay_mask=None):
        v = rounded(batch.series[name][idx], np.full(m, decimals))
        miss = rng.random(m) < p_missing
        if stay_mask is not None:
            miss |= ~stay_mask[s]
        return np.where(miss, np.nan, v)

    hr = value("hr", missing["hr"])
    artifact = rng.random(m) < P["hr_artifact"]
    hr = np.where(artifact, rng.choice([0.0, 300.0], m), hr)
    has_st = rng.random(n) < P["st_monitored"]
    art = batch.arterial
    st = np.round(rng.normal(0, P["st_sd"], (3, m)), 1) + 0.0  # no "-0"
    return {
        "patientunitstayid": stays["id"][s],
        "observationoffset": offset[keep],
        "temperature": value("temp", missing["temp"], 1, rng.random(n) < P["temp_probe"]),
        "sao2": value("spo2", missing["spo2"]),
        "heartrate": hr,
        "respiration": value("rr", missing["rr"], 0, rng.random(n) < P["rr_monitored"]),
        "cvp": np.where(
            (rng.random(n) < P["cvp"])[s], np.round(rng.normal(*P["cvp_mmhg"], m)), np.nan
        ),
        "systemicsystolic": value("sbp", missing["bp"], 0, art),
        "systemicdiastolic": value("dbp", missing["bp"], 0, art),
        "systemicmean": value("mbp", missing["bp"], 0, art),
        "st1": np.where(has_st[s], st[0], np.nan),
        "st2": np.where(has_st[s], st[1], np.nan),
        "st3": np.where(has_st[s], st[2], np.nan),
    }


def _aperiodic(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Non-invasive BP every 15-60 min (every 1-4 h with an arterial line)."""
    (lo_art, hi_art), (lo_nibp, hi_nibp) = P["nibp_minutes_with_art"], P["nibp_minutes"]
    lo = np.where(batch.arterial, lo_art, lo_nibp)
    hi = np.where(batch.arterial, hi_art, hi_nibp)
    count = np.floor(batch.los_h * 60 / lo).astype(int) + 1
    sid = np.repeat(np.arange(batch.n), count)
    gaps = rng.uniform(lo[sid], hi[sid])
    t = np.cumsum(gaps)
    first = np.cumsum(count) - count
    start = rng.uniform(*P["nibp_start_minutes"], batch.n)[sid]
    t = t - np.repeat(t[first] - gaps[first], count) - start
    keep = (t >= 0) & (t <= stays["los_min"][sid])
    s, minutes = sid[keep], np.floor(t[keep]).astype(int)
    idx = batch.index(s, minutes / 60)
    e = rng.normal(0, P["nibp_sd"], (2, len(s)))
    sbp = np.rint(batch.series["sbp"][idx] + e[0])
    dbp = np.rint(batch.series["dbp"][idx] + e[1])
    mean = np.rint(dbp + (sbp - dbp) / 3 + rng.normal(0, P["nibp_mean_sd"], len(s)))
    return {
        "patientunitstayid": stays["id"][s],
        "observationoffset": minutes,
        "noninvasivesystolic": sbp,
        "noninvasivediastolic": dbp,
        "noninvasivemean": np.where(rng.random(len(s)) < P["nibp_mean_missing"], np.nan, mean),
    }


def _nurse(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Hourly nurse-charted vitals as strings; temperature and GCS every 4 h, glucose every 6 h."""
    stay, hours, hour_no = sim.charting_rounds(rng, batch.los_h)
    idx = batch.index(stay, hours)
    values = {name: batch.series[name][idx] for name in NURSE if name in batch.series}
    values["temp_f"] = values["temp"] * 1.8 + 32
    every4 = (hour_no >= 0) & (hour_no % 4 == rng.integers(0, 4, batch.n)[stay])
    u = rng.random((6, len(stay)))
    nibp = ~batch.arterial[stay] & (u[3] < P["chart_nibp"])
    charted = {
        "hr": u[0] < P["chart_hr"],
        "rr": u[1] < P["chart_rr"],
        "spo2": u[2] < P["chart_spo2"],
        "sbp": nibp,
        "dbp": nibp,
        "mbp": nibp,
        "temp": every4 & (u[4] < P["temp_celsius"]),
        "temp_f": every4 & (u[4] >= P["temp_celsius"]),
        "gcs": every4,
        "glucose": (hour_no >= 0) & (hour_no % 6 == 0) & (u[5] < P["chart_glucose"]),
    }
    row, kind, num = stack(values, charted)
    order = np.lexsort((kind, hours[row], stay[row]))
    row, kind, num = row[order], kind[order], num[order]
    triples = [NURSE[name][0] for name in charted]
    value = number_text(num, np.array([NURSE[name][1] for name in charted])[kind])
    unable = (kind == list(charted).index("gcs")) & (rng.random(len(row)) < P["gcs_unable"])
    value = value.to_numpy(zero_copy_only=False).astype(object)
    value[unable] = GCS_UNABLE
    offset = np.rint(hours[row] * 60).astype(int)
    return {
        "patientunitstayid": stays["id"][stay[row]],
        "nursingchartoffset": offset,
        "nursingchartentryoffset": offset + rng.integers(*P["entry_delay_minutes"], len(row)),
        "nursingchartcelltypecat": text(kind, [t[0] for t in triples]),
        "nursingchartcelltypevallabel": text(kind, [t[1] for t in triples]),
        "nursingchartcelltypevalname": text(kind, [t[2] for t in triples]),
        "nursingchartvalue": value,
    }


def _lab(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Lab panels every 6-24 h from 6 h before unit admission; '<0.1' bilirubin as text."""
    stay, hours = sim.lab_rounds(rng, batch.los_h)
    hours = np.floor(np.minimum(hours, batch.los_h[stay]) * 60) / 60
    values = sim.lab_values(batch, rng, stay, hours)
    names, types, units, decimals = (list(f) for f in zip(*LABS.values(), strict=True))
    p = [P["blood_gas"] if t == BLOOD_GAS else P["other_lab"] for t in types]
    drawn = {lab: rng.random(len(stay)) < p_lab for lab, p_lab in zip(LABS, p, strict=True)}
    draw, lab, num = stack(values, drawn)
    order = np.lexsort((lab, hours[draw], stay[draw]))
    draw, lab, num = draw[order], lab[order], num[order]
    dec = np.array(decimals)[lab]
    num = rounded(num, dec)
    below = (lab == list(LABS).index("bilirubin")) & (num < P["bilirubin_below"])
    result_text = number_text(num, dec).to_numpy(zero_copy_only=False).astype(object)
    result_text[below] = "<0.1"
    offset = np.rint(hours[draw] * 60).astype(int)
    return {
        "patientunitstayid": stays["id"][stay[draw]],
        "labresultoffset": offset,
        "labtypeid": np.array(types)[lab],
        "labname": text(lab, names),
        "labresult": np.where(below, np.nan, num),
        "labresulttext": result_text,
        "labmeasurenamesystem": text(lab, units),
        "labmeasurenameinterface": text(lab, units),
        "labresultrevisedoffset": offset + rng.integers(*P["revised_minutes"], len(draw)),
    }
