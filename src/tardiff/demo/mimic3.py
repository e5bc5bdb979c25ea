"""Raw MIMIC-III v1.4 tables from the simulator, in the distributed schema with its dirty values.

PATIENTS, ADMISSIONS, ICUSTAYS, CHARTEVENTS, LABEVENTS, OUTPUTEVENTS, D_ITEMS and D_LABITEMS as
``<TABLE>.csv.gz`` (``ehr-sources.md`` §1): the hierarchy in :mod:`tardiff.demo.mimic3_stays`,
chart rows in :mod:`tardiff.demo.mimic3_chart`, rates in :data:`tardiff.demo.params.MIMIC3`.
Item ids come from :mod:`tardiff.variables` and ``resources/mimic3_itemids.csv``.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tardiff.demo import simulator as sim
from tardiff.demo.mimic3_chart import chartevents
from tardiff.demo.mimic3_stays import CV, HOUR, MV, Ids, charttime, hierarchy
from tardiff.demo.params import MIMIC3 as P
from tardiff.demo.writer import number_text, rounded, schemas, stack, text, write_tables

SCHEMAS = schemas("mimic3")
TABLES = list(SCHEMAS)

# D_ITEMS rows of the non-target chart items: (ITEMID, LABEL, DBSOURCE, CATEGORY, unit, type).
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
URINE = {CV: (40055, 40069, 43175), MV: (226559, 226560)}  # Foley first
GU_IRRIGANT = 227488


def write(out: Path, n_stays: int, seed: int) -> dict:
    """Write the MIMIC-III tables of ``n_stays`` simulated ICU stays into ``out``."""
    if n_stays > 99_999:
        raise ValueError("mimic3 demo: n_stays must be at most 99,999 (ICUSTAY_ID range)")
    ids = Ids(stride=max(1, min(3, 99_998 // max(n_stays, 1))))

    def tables(batch: sim.Batch, rng: np.random.Generator):
        stays, data = hierarchy(batch, rng, ids)
        data["CHARTEVENTS"] = chartevents(batch, stays, rng)
        data["LABEVENTS"] = _labevents(batch, stays, rng)
        data["OUTPUTEVENTS"] = _outputevents(batch, stays, rng)
        return stays["adult"], data

    return write_tables(out, "mimic3", n_stays, seed, tables, first=_dictionaries())


def _labevents(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Lab panels every 6-24 h from INTIME − 6 h, a pre-ICU draw, a few outpatient (no HADM)."""
    stay, hours, no_hadm = _lab_times(batch, stays, rng)
    values = sim.lab_values(batch, rng, stay, hours)
    panels = {"chem": np.ones(len(stay), bool)}
    panels |= {name: rng.random(len(stay)) < p for name, p in P["panels"].items()}
    drawn = {lab: panels[panel] for panel, labs in PANELS.items() for lab in labs}
    draw, lab, num = stack(values, drawn)
    item_id, units, decimals, low, high = (
        np.array(f) for f in zip(*LAB_ITEMS.values(), strict=True)
    )
    order = np.lexsort((item_id[lab], hours[draw], stay[draw]))
    draw, lab, num = draw[order], lab[order], num[order]
    item, dec, n = item_id[lab], decimals[lab], len(draw)
    num = rounded(num, dec)
    below = (item == LAB_ITEMS["bilirubin"][0]) & (num < P["bilirubin_below"])
    error = rng.random(n) < P["lab_error"]
    value = pc.choose(
        pa.array(np.select([error, below], [1, 2], 0).astype(np.int8)),
        number_text(num, dec),
        pa.array(["ERROR"] * n),
        pa.array(["<0.1"] * n),
    )
    valuenum = np.where(error | below, np.nan, num)
    s = stay[draw]
    return {
        "SUBJECT_ID": stays["subject"][s],
        "HADM_ID": np.where(no_hadm[draw], np.nan, stays["hadm"][s]),
        "ITEMID": item,
        "CHARTTIME": charttime(stays, s, hours[draw]),
        "VALUE": value,
        "VALUENUM": valuenum,
        "VALUEUOM": text(lab, list(units)),
        "FLAG": np.where(
            ~np.isnan(valuenum) & ((num < low[lab]) | (num > high[lab])), "abnormal", None
        ),
    }


def _lab_times(batch: sim.Batch, stays: dict, rng: np.random.Generator):
    """Draw times: the lab rounds, a pre-ICU draw within the admission, a few outpatient draws.

    Returns stay index, hours after INTIME (whole minutes) and the outpatient flag per draw.
    """
    los = batch.los_h
    stay, hours = sim.lab_rounds(rng, los)
    hours = np.minimum(hours + rng.uniform(*P["lab_jitter_hours"], len(stay)), los[stay])
    pre = -rng.uniform(*P["pre_icu_draw_hours"], batch.n)
    pre_ok = stays["intime"] + pre * HOUR >= stays["admit"]
    outpatient = rng.random(batch.n) < P["outpatient"]
    out_h = -rng.uniform(*P["outpatient_days"], batch.n) * 24
    stay = np.concatenate([stay, np.flatnonzero(pre_ok), np.flatnonzero(outpatient)])
    hours = np.concatenate([hours, pre[pre_ok], out_h[outpatient]])
    no_hadm = np.r_[np.zeros(len(stay) - outpatient.sum(), bool), np.ones(outpatient.sum(), bool)]
    return stay, np.floor(hours * 60) / 60, no_hadm


def _outputevents(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """Urine output about every 1.5 h (mL since the previous row), Foley mostly."""
    los, every, step = batch.los_h, P["urine_every_hours"], P["urine_round_ml"]
    count = np.floor(los / every).astype(int) + 1
    stay = np.repeat(np.arange(batch.n), count)
    offset = rng.uniform(*P["urine_offset_hours"], len(stay))
    hours = np.floor(np.minimum(sim.ragged_arange(count) * every + offset, los[stay]) * 60) / 60
    volume = batch.series["urine"][batch.index(stay, hours)] * every
    volume *= rng.lognormal(0, P["urine_sd"], len(stay))
    volume = np.maximum(0, np.round(volume / step) * step)
    db = stays["db"][stay]
    u = rng.random(len(stay))
    first, second = P["urine_item"]
    item = np.where(
        db == CV,
        np.select([u < first, u < second], list(URINE[CV][:2]), URINE[CV][2]),
        np.where(u < first, *URINE[MV]),
    )
    irrigant = (db == MV) & (rng.random(batch.n)[stay] < P["irrigant_stay"])
    item = np.where(irrigant & (u < P["irrigant_row"]), GU_IRRIGANT, item)
    time = charttime(stays, stay, hours)
    no_stay = rng.random(len(stay)) < P["no_icustay"]
    return {
        "SUBJECT_ID": stays["subject"][stay],
        "HADM_ID": stays["hadm"][stay],
        "ICUSTAY_ID": np.where(no_stay, np.nan, stays["icustay"][stay]),
        "CHARTTIME": time,
        "ITEMID": item,
        "VALUE": volume,
        "VALUEUOM": np.where(db == CV, "ml", "mL"),
        "STORETIME": time + rng.integers(*P["output_store_minutes"], len(stay)) * 60,
        "CGID": rng.integers(*P["cgid"], len(stay)),
        "ISERROR": np.where((db == MV) & (rng.random(len(stay)) < P["output_error"]), 1.0, np.nan),
    }


def _dictionaries() -> dict[str, dict]:
    """D_ITEMS (chart and output items, plus the non-target extras) and D_LABITEMS columns."""
    with resources.files("tardiff").joinpath("resources/mimic3_itemids.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    items = {int(r["ITEMID"]): r for r in rows if r["LINKSTO"] in {"chartevents", "outputevents"}}
    fields = ("MIMIC LABEL", "DBSOURCE", "CATEGORY", "UNITNAME", "PARAM_TYPE")
    for item, *values in EXTRA_D_ITEMS:
        items[item] = {"LINKSTO": "chartevents", **dict(zip(fields, values, strict=True))}
    d_items = _columns(
        items, ["LABEL", "DBSOURCE", "LINKSTO", "CATEGORY", "UNITNAME", "PARAM_TYPE"]
    )
    mv = d_items["DBSOURCE"] == "metavision"
    d_items["ABBREVIATION"] = np.where(mv, d_items["LABEL"], None)
    labs = {int(r["ITEMID"]): r for r in rows if r["LINKSTO"] == "labevents"}
    d_labitems = _columns(labs, ["LABEL", "FLUID", "CATEGORY", "LOINC_CODE"])
    return {"D_ITEMS": d_items, "D_LABITEMS": d_labitems}


def _columns(entries: dict[int, dict], columns: list[str]) -> dict[str, np.ndarray]:
    """Dictionary columns of ``entries`` (CSV rows by ITEMID) sorted by ITEMID; "" is NULL."""
    keys = sorted(entries)
    cols = {"ITEMID": np.array(keys, dtype=np.int64)}
    for col in columns:
        field = "MIMIC LABEL" if col == "LABEL" else col
        cols[col] = np.array([entries[k][field] or None for k in keys], dtype=object)
    return cols
