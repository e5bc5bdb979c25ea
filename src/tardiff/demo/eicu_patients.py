"""eICU patients, hospital stays and unit stays: the ``patient`` table.

A death ends the hospital stay and the patient; offsets are minutes from unit admission, as in
eICU.
"""

from __future__ import annotations

import numpy as np

from tardiff.demo import simulator as sim
from tardiff.demo.params import EICU as P
from tardiff.demo.writer import pick


def patients(batch: sim.Batch, rng: np.random.Generator, counters: dict):
    """Unit stays grouped into hospital stays and patients, with offsets, ids and demographics.

    Returns per-stay arrays (id, length in minutes, cohort flag) and the patient table's columns.
    """
    h = _group(batch.label, rng)
    h |= _offsets(batch, rng, h)
    h |= _identities(rng, counters, h)
    patient, status = _patient_columns(rng, h)
    age = h["age"][h["pat_of"]]
    adult = np.array([a == "> 89" or (a != "" and int(a) >= 18) for a in age])
    stays = {
        "id": patient["patientunitstayid"],
        "los_min": h["los_min"],
        "cohort": adult & (h["visit"] == 1) & (status[h["hosp_of"]] != ""),
    }
    return stays, patient


def _group(y: np.ndarray, rng: np.random.Generator) -> dict:
    """Hospital stay, patient and unit visit number of each unit stay.

    A survivor's next unit stay is sometimes a second visit in the same hospital stay; a death
    ends the hospital stay and the patient.
    """
    n = len(y)
    hosp_of, pat_of, visit = np.zeros(n, int), np.zeros(n, int), np.ones(n, int)
    i, n_hosp, n_pat = 0, 0, 0
    while i < n:
        for _ in range(int(pick(rng, P["hospital_stays_per_patient"], None))):
            if i >= n:
                break
            hosp_of[i], pat_of[i] = n_hosp, n_pat
            i += 1
            if not y[i - 1] and i < n and not y[i] and rng.random() < P["second_visit"]:
                hosp_of[i], pat_of[i], visit[i] = n_hosp, n_pat, 2
                i += 1
            n_hosp += 1
            if y[i - 1]:
                break
        n_pat += 1
    return {"hosp_of": hosp_of, "pat_of": pat_of, "visit": visit, "n_hosp": n_hosp, "n_pat": n_pat}


def _offsets(batch: sim.Batch, rng: np.random.Generator, h: dict) -> dict:
    """Unit admission and hospital discharge in minutes after hospital admission; deaths."""
    n, n_hosp, hosp_of = batch.n, h["n_hosp"], h["hosp_of"]
    los_min = np.round(batch.los_h * 60).astype(int)
    before = rng.integers(*P["before_unit_minutes"], n_hosp)
    gap = rng.integers(*P["between_units_minutes"], n)
    admit_off = np.zeros(n, int)
    for hs in range(n_hosp):
        t = before[hs]
        for st in np.flatnonzero(hosp_of == hs):
            admit_off[st] = t
            t += los_min[st] + gap[st]
    last = np.zeros(n_hosp, int)
    last[hosp_of] = np.arange(n)  # stays are in order, so the last write wins
    died = batch.label[last]
    in_unit = died & (rng.random(n_hosp) < P["death_in_unit"])
    tail = np.where(
        died,
        np.where(in_unit, 0, rng.integers(*P["death_after_minutes"], n_hosp)),
        rng.integers(*P["discharge_after_minutes"], n_hosp),
    )
    return {
        "los_min": los_min,
        "admit_off": admit_off,
        "died": died,
        "hosp_end": admit_off[last] + los_min[last] + tail,
        "unit_died": in_unit[hosp_of] & (np.arange(n) == last[hosp_of]),
    }


def _identities(rng: np.random.Generator, counters: dict, h: dict) -> dict:
    """Age and hospital per patient; unit stay, hospital stay and patient ids."""
    n, n_hosp, n_pat = len(h["hosp_of"]), h["n_hosp"], h["n_pat"]
    age_p = np.clip(rng.normal(*P["age"], n_pat), *P["age_range"]).astype(int)
    age = np.where(age_p >= 90, "> 89", age_p.astype(str)).astype(object)
    age[rng.random(n_pat) < P["age_missing"]] = ""
    hospital = rng.choice(np.arange(60, 460, 7), n_pat)
    stay_ids = 141000 + (counters["stay"] + np.arange(n)) * 3 + rng.integers(0, 3, n)
    hosp_ids = 128000 + (counters["hosp"] + np.arange(n_hosp)) * 2 + rng.integers(0, 2, n_hosp)
    pids = np.array(
        [
            f"{hs % 1000:03d}-{10000 + counters['patient'] + p}"
            for p, hs in enumerate(rng.integers(1, 30, n_pat))
        ],
        dtype=object,
    )
    counters["stay"] += n
    counters["hosp"] += n_hosp
    counters["patient"] += n_pat
    return {
        "age": age,
        "hospital": hospital,
        "stay_ids": stay_ids,
        "hosp_ids": hosp_ids,
        "pids": pids,
    }


def _patient_columns(rng: np.random.Generator, h: dict):
    """The patient table's columns and the discharge status per hospital stay ("" if missing)."""
    n, n_hosp, n_pat = len(h["hosp_of"]), h["n_hosp"], h["n_pat"]
    hs, pat, visit, died = h["hosp_of"], h["pat_of"], h["visit"], h["died"]
    los_min, admit_off, hosp_end = h["los_min"], h["admit_off"], h["hosp_end"]
    status = np.where(died, "Expired", "Alive").astype(object)
    status[rng.random(n_hosp) < P["status_missing"]] = ""
    clock0 = rng.integers(0, 1440, n_hosp)[hs]
    unit_clock = clock0 + admit_off
    weight = np.round(rng.normal(*P["weight"], n).clip(*P["weight_range"]), 1)
    return {
        "patientunitstayid": h["stay_ids"],
        "patienthealthsystemstayid": h["hosp_ids"][hs],
        "gender": pick(rng, P["gender"], n_pat)[pat],
        "age": h["age"][pat],
        "ethnicity": pick(rng, P["ethnicity"], n_pat)[pat],
        "hospitalid": h["hospital"][pat],
        "wardid": h["hospital"][pat] * 3 + rng.integers(0, 3, n),
        "apacheadmissiondx": pick(rng, P["diagnosis"], n),
        "admissionheight": np.where(
            rng.random(n) < P["height_missing"], np.nan, np.round(rng.normal(*P["height"], n), 1)
        ),
        "hospitaladmittime24": _clock(clock0),
        "hospitaladmitoffset": -admit_off,
        "hospitaladmitsource": pick(rng, P["hospital_admit_source"], n_hosp)[hs],
        "hospitaldischargeyear": rng.choice(P["discharge_year"], n_hosp)[hs],
        "hospitaldischargetime24": _clock(clock0 + hosp_end[hs]),
        "hospitaldischargeoffset": hosp_end[hs] - admit_off,
        "hospitaldischargelocation": np.where(
            died, "Death", pick(rng, P["hospital_discharge_location"], n_hosp)
        )[hs],
        "hospitaldischargestatus": status[hs],
        "unittype": pick(rng, P["unit_type"], n),
        "unitadmittime24": _clock(unit_clock),
        "unitadmitsource": np.where(visit == 2, "Floor", pick(rng, P["unit_admit_source"], n)),
        "unitvisitnumber": visit,
        "unitstaytype": np.where(
            visit == 2,
            "readmit",
            np.where(rng.random(n) < P["stepdown"], "stepdown/other", "admit"),
        ),
        "admissionweight": np.where(rng.random(n) < P["admission_weight_missing"], np.nan, weight),
        "dischargeweight": np.where(
            rng.random(n) < P["discharge_weight_missing"],
            np.nan,
            np.round(weight + rng.normal(0, P["weight_change_sd"], n), 1),
        ),
        "unitdischargetime24": _clock(unit_clock + los_min),
        "unitdischargeoffset": los_min,
        "unitdischargelocation": np.where(
            h["unit_died"], "Death", pick(rng, P["unit_discharge_location"], n)
        ),
        "unitdischargestatus": np.where(h["unit_died"], "Expired", "Alive"),
        "uniquepid": h["pids"][pat],
    }, status


def _clock(minutes: np.ndarray) -> np.ndarray:
    """Minutes (any integer) → 'HH:MM:SS' of the day."""
    m = np.mod(minutes, 1440).astype(int)
    return np.array(
        [f"{h:02d}:{mm:02d}:00" for h, mm in zip(m // 60, m % 60, strict=True)], dtype=object
    )
