"""MIMIC-III subjects, admissions and ICU stays: the PATIENTS, ADMISSIONS and ICUSTAYS tables.

A stay that dies ends its subject and opens its own admission, so every ICU stay's hospital
outcome is its simulated label. Times are epoch seconds (dates shifted past 2100, as in MIMIC).
"""

from __future__ import annotations

import numpy as np

from tardiff.demo import simulator as sim
from tardiff.demo.params import MIMIC3 as P
from tardiff.demo.writer import pick

HOUR = 3600
DAY = 86400
CV, MV = 0, 1  # DBSOURCE index: carevue, metavision


class Ids:
    """Monotone ids with random gaps: SUBJECT_ID < 100000, HADM 1xxxxx, ICUSTAY 2xxxxx."""

    def __init__(self, stride: int):
        self.stride = stride
        self.next = {"subject": 0, "hadm": 0, "icustay": 0}

    def take(self, kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
        base = {"subject": 1, "hadm": 100_001, "icustay": 200_001}[kind]
        idx = self.next[kind] + np.arange(n)
        self.next[kind] += n
        return base + idx * self.stride + rng.integers(0, self.stride, n)


def charttime(stays: dict, stay: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Epoch seconds, in whole minutes, ``hours`` after the INTIME of ``stay``."""
    return np.floor((stays["intime"][stay] + hours * HOUR) / 60) * 60


def hierarchy(batch: sim.Batch, rng: np.random.Generator, ids: Ids):
    """Subjects, admissions and ICU stays of ``batch`` with their dates and demographics.

    Returns per-stay arrays (ids, DBSOURCE index, INTIME, ADMITTIME, neonate and adult flags) and
    the PATIENTS, ADMISSIONS and ICUSTAYS columns.
    """
    subj_of, adm_of, neo = _group(batch.label, rng)
    adm_subj = np.zeros(adm_of[-1] + 1, int)  # admissions are numbered in stay order
    adm_subj[adm_of] = subj_of
    subj = _subjects(rng, neo)
    adm, intime, outtime = _timeline(rng, batch, adm_of, adm_subj, neo[adm_subj], subj["first"])
    patients = _patients(rng, ids, subj, adm, adm_subj)
    admissions = _admissions(rng, ids, adm, neo[adm_subj])
    admissions["SUBJECT_ID"] = patients["SUBJECT_ID"][adm_subj]
    neo_s = neo[subj_of]
    db = np.where(subj["carevue"][subj_of], CV, MV)
    icustays = _icustays(rng, ids, neo_s, db, intime, outtime)
    icustays["SUBJECT_ID"] = patients["SUBJECT_ID"][subj_of]
    icustays["HADM_ID"] = admissions["HADM_ID"][adm_of]
    stay_age = (intime - subj["dob"][subj_of]) / (365.25 * DAY)
    stays = {
        "subject": icustays["SUBJECT_ID"],
        "hadm": icustays["HADM_ID"],
        "icustay": icustays["ICUSTAY_ID"],
        "db": db,
        "intime": intime,
        "admit": adm["admit"][adm_of],
        "neonate": neo_s,
        "adult": ~neo_s & (stay_age >= 18),
    }
    return stays, {"PATIENTS": patients, "ADMISSIONS": admissions, "ICUSTAYS": icustays}


def _group(y: np.ndarray, rng: np.random.Generator):
    """Subject and admission of each stay, and the neonate flag of each subject.

    Neonates have one stay, adults one to three; a survivor's next stay may stay in its
    admission, a death opens its own and ends the subject.
    """
    n = len(y)
    subj_of, adm_of, neo = np.zeros(n, int), np.zeros(n, int), []
    i, n_adm = 0, 0
    while i < n:
        neonate = rng.random() < P["neonate"]
        k = 1 if neonate else int(pick(rng, P["stays_per_subject"], None))
        for j in range(k):
            if i >= n:
                break
            if j == 0 or y[i] or rng.random() > P["same_admission"]:
                n_adm += 1
            subj_of[i], adm_of[i] = len(neo), n_adm - 1
            i += 1
            if y[i - 1]:
                break
        neo.append(neonate)
    return subj_of, adm_of, np.array(neo)


def _subjects(rng: np.random.Generator, neo: np.ndarray) -> dict:
    """Sex, DBSOURCE, first admission and date of birth (ages over 89 shifted) per subject."""
    n = len(neo)
    male = rng.random(n) < P["male"]
    age = np.where(neo, 0.0, np.clip(rng.normal(*P["age"], n), *P["age_range"]))
    minor = ~neo & (rng.random(n) < P["minor"])
    age[minor] = rng.uniform(*P["minor_age"], minor.sum())
    carevue = np.where(
        neo, rng.random(n) < P["carevue_neonate"], rng.random(n) < P["carevue_adult"]
    )
    year0 = np.datetime64("2100-01-01", "s").astype(np.int64)
    first = year0 + rng.uniform(0, P["first_admit_years"] * 365.25 * DAY, n)
    old, shifted = P["shifted_age"]
    dob = first - np.where(age >= old, shifted, age) * 365.25 * DAY - rng.uniform(0, 365 * DAY, n)
    return {"male": male, "carevue": carevue, "first": first, "dob": dob // DAY * DAY}


def _timeline(
    rng: np.random.Generator,
    batch: sim.Batch,
    adm_of: np.ndarray,
    adm_subj: np.ndarray,
    neo: np.ndarray,
    first: np.ndarray,
):
    """Admissions and their ICU stays in time order per subject.

    Returns the admissions' emergency flag, ADMITTIME, DISCHTIME, DEATHTIME and death flag, and
    INTIME and OUTTIME per stay.
    """
    n_adm, n = len(adm_subj), len(adm_of)
    emergency = ~neo & (rng.random(n_adm) < P["emergency"])
    admit, disch, death = np.zeros(n_adm), np.zeros(n_adm), np.full(n_adm, np.nan)
    intime, outtime = np.zeros(n), np.zeros(n)
    clock = first.copy()
    gaps = rng.uniform(*P["readmit_gap_days"], n_adm) * DAY
    lead_e = rng.uniform(*P["lead_hours_emergency"], n_adm)
    lead = np.where(emergency, lead_e, rng.uniform(*P["lead_hours_elective"], n_adm)) * HOUR
    ward = rng.uniform(*P["ward_hours"], n) * HOUR
    after = rng.uniform(*P["discharge_days"], n_adm) * DAY
    in_icu = rng.random(n_adm) < P["death_in_icu"]
    after_death = rng.uniform(*P["death_after_hours"], n_adm) * HOUR
    for a in range(n_adm):
        subj = adm_subj[a]
        admit[a] = np.floor(clock[subj] / 60) * 60
        t = admit[a] + lead[a]
        for st in np.flatnonzero(adm_of == a):
            intime[st] = np.floor(t)
            outtime[st] = intime[st] + np.round(batch.los_h[st] * HOUR)
            t = outtime[st] + ward[st]
        last = np.flatnonzero(adm_of == a)[-1]
        if batch.label[last]:
            death[a] = outtime[last] if in_icu[a] else np.floor(outtime[last] + after_death[a])
            disch[a] = death[a]
        else:
            disch[a] = np.floor(outtime[last] + after[a])
        clock[subj] = disch[a] + gaps[a]
    adm = {"emergency": emergency, "admit": admit, "disch": disch, "death": death}
    adm["died"] = ~np.isnan(death)
    return adm, intime, outtime


def _patients(
    rng: np.random.Generator, ids: Ids, subj: dict, adm: dict, adm_subj: np.ndarray
) -> dict:
    """PATIENTS: DOD from a death in hospital or, for some survivors, a later one."""
    n, died = len(subj["dob"]), adm["died"]
    died_subj = np.zeros(n, bool)
    died_subj[adm_subj[died]] = True
    last_disch = np.zeros(n)
    np.maximum.at(last_disch, adm_subj, adm["disch"])
    later = ~died_subj & (rng.random(n) < P["later_death"])
    dod_hosp = np.full(n, np.nan)
    dod_hosp[adm_subj[died]] = adm["death"][died] // DAY * DAY
    later_dod = (last_disch + rng.uniform(*P["later_death_days"], n) * DAY) // DAY * DAY
    dod = np.where(later, later_dod, dod_hosp)
    dod_ssn = np.where(later | (rng.random(n) < P["dod_ssn"]), dod, np.nan)
    return {
        "SUBJECT_ID": ids.take("subject", n, rng),
        "GENDER": np.where(subj["male"], "M", "F").astype(object),
        "DOB": subj["dob"],
        "DOD": dod,
        "DOD_HOSP": dod_hosp,
        "DOD_SSN": dod_ssn,
        "EXPIRE_FLAG": (~np.isnan(dod)).astype(int),
    }


def _admissions(rng: np.random.Generator, ids: Ids, adm: dict, neo: np.ndarray) -> dict:
    """ADMISSIONS: type, locations, ED times, diagnosis and demographics (neonates: NEWBORN)."""
    n, emergency, admit = len(neo), adm["emergency"], adm["admit"]
    hadm_id = ids.take("hadm", n, rng)
    urgency = np.where(emergency, pick(rng, P["admission_type"], n), "ELECTIVE")
    location = np.where(
        emergency, pick(rng, P["admission_location"], n), "PHYS REFERRAL/NORMAL DELI"
    )
    discharge = np.where(adm["died"], "DEAD/EXPIRED", pick(rng, P["discharge_location"], n))
    ed = emergency & (location == "EMERGENCY ROOM ADMIT")
    ed_reg = rng.uniform(*P["ed_registration_hours"], n) * HOUR // 60 * 60
    edreg = np.where(ed, admit - ed_reg, np.nan)
    edout = np.where(ed, admit + rng.uniform(*P["ed_out_minutes"], n) // 1 * 60, np.nan)
    return {
        "HADM_ID": hadm_id,
        "ADMITTIME": admit,
        "DISCHTIME": adm["disch"],
        "DEATHTIME": adm["death"],
        "ADMISSION_TYPE": np.where(neo, "NEWBORN", urgency),
        "ADMISSION_LOCATION": location,
        "DISCHARGE_LOCATION": discharge,
        "EDREGTIME": edreg,
        "EDOUTTIME": edout,
        "DIAGNOSIS": np.where(neo, "NEWBORN", pick(rng, P["diagnosis"], n)),
        "INSURANCE": np.where(neo, "Private", pick(rng, P["insurance"], n)),
        "LANGUAGE": np.where(neo, None, pick(rng, P["language"], n)),
        "RELIGION": pick(rng, P["religion"], n),
        "MARITAL_STATUS": np.where(neo, None, pick(rng, P["marital_status"], n)),
        "ETHNICITY": pick(rng, P["ethnicity"], n),
        "HOSPITAL_EXPIRE_FLAG": adm["died"].astype(int),
        "HAS_CHARTEVENTS_DATA": np.ones(n, int),
    }


def _icustays(
    rng: np.random.Generator,
    ids: Ids,
    neo: np.ndarray,
    db: np.ndarray,
    intime: np.ndarray,
    outtime: np.ndarray,
) -> dict:
    """ICUSTAYS: care units (neonates NICU; some adults end in the MICU), wards and times."""
    n = len(neo)
    unit = np.where(neo, "NICU", pick(rng, P["careunit"], n))
    last_unit = np.where(~neo & (rng.random(n) < P["last_careunit_micu"]), "MICU", unit)
    return {
        "ICUSTAY_ID": ids.take("icustay", n, rng),
        "DBSOURCE": np.array(["carevue", "metavision"], dtype=object)[db],
        "FIRST_CAREUNIT": unit,
        "LAST_CAREUNIT": last_unit,
        "FIRST_WARDID": rng.choice(P["wards"], n),
        "LAST_WARDID": rng.choice(P["wards"], n),
        "INTIME": intime,
        "OUTTIME": outtime,
        "LOS": np.round((outtime - intime) / DAY, 4),
    }
