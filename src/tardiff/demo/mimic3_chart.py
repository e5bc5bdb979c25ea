"""MIMIC-III CHARTEVENTS: nurse-charted vitals, GCS, glucose and non-target items, dirty values.

Item ids come from :mod:`tardiff.variables`; CareVue or MetaVision ids are chosen by the stay's
DBSOURCE, so item pairs below are ``(CareVue, MetaVision)``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tardiff.demo import simulator as sim
from tardiff.demo.mimic3_stays import CV, MV, charttime
from tardiff.demo.params import MIMIC3 as P
from tardiff.demo.writer import number_text, pick, rounded, text
from tardiff.variables import BP_STRING_ITEMS, GCS_COMPONENTS, VARIABLES


def _ids(name: str) -> tuple[int, int]:
    var = VARIABLES[name]
    return var.carevue[0], var.metavision[0]


HR, SPO2 = _ids("hr"), _ids("spo2")
RESP, RESP_TOTAL = (618, 220210), (615, 224690)
ART = (51, 220050), (8368, 220051), (52, 220052)
NBP = (455, 220179), (8441, 220180), (456, 220181)
TEMP_F, TEMP_C, TEMP_C_CALC = (678, 223761), (676, 223762), 677
GCS_TOTAL = 198  # CareVue only
GLUCOSE = np.array([[807, 811, 1529], [225664, 220621, 226537]])  # [DBSOURCE, item]
_UNIT_ITEMS = {
    "BPM": (211, 618, 615, 8549, 5815),
    "bpm": (220045, 220046, 220047),
    "insp/min": (220210, 224690),
    "%": (646, 220277, 3420),
    "Deg. F": (678, 679),
    "Deg. C": (676, 677),
    "?F": (223761,),
    "?C": (223762,),
    "mg/dL": (807, 811, 1529, 225664, 220621, 226537),
    "None": (223835,),
    "L/min": (223834,),
    "kg": (762, 226512),
    "mmHg": (
        *VARIABLES["sbp"].mimic_items,
        *VARIABLES["dbp"].mimic_items,
        *VARIABLES["mbp"].mimic_items,
    ),
}
UNITS = {item: unit for unit, items in _UNIT_ITEMS.items() for item in items}

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
O2_DEVICES = ["None", "Nasal cannula", "Face tent", "Endotracheal tube"]


class _Chart:
    """The charting rounds of a batch and the chart rows collected per item group."""

    def __init__(self, batch: sim.Batch, stays: dict, rng: np.random.Generator):
        self.stay, self.hours, self.hour_no = sim.charting_rounds(rng, batch.los_h)
        self.n = len(self.stay)
        self.idx = batch.index(self.stay, self.hours)
        self.db = stays["db"][self.stay]
        self.neo = stays["neonate"][self.stay]
        self.parts: list[dict[str, np.ndarray]] = []
        self.vocab: list[str] = []

    def add(self, stay, hours, item, num, decimals, words=None, num2=None):
        """Rows of ``item`` (per row or one); text values if ``words`` indexes ``decimals``."""
        n = len(stay)
        codes = np.full(n, -1)
        if words is not None:
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

    def chart(self, mask, items, values, decimals, num2=None):
        """Rows at the rounds in ``mask`` of the (CareVue, MetaVision) ``items``."""
        self.add(
            self.stay[mask],
            self.hours[mask],
            np.asarray(items)[self.db[mask]],
            values[mask],
            decimals,
            num2=None if num2 is None else num2[mask],
        )

    def concat(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}


def chartevents(batch: sim.Batch, stays: dict, rng: np.random.Generator) -> dict:
    """CHARTEVENTS columns of ``batch`` (``stays`` from :func:`mimic3_stays.hierarchy`)."""
    c = _Chart(batch, stays, rng)
    _vitals(c, batch, rng)
    _blood_pressure(c, batch, rng)
    phase = _temperature(c, batch, rng)
    _gcs(c, batch, rng)
    _glucose(c, batch, phase, rng)
    _extra_items(c, batch, rng)
    return _assemble(c, stays, rng)


def _vitals(c: _Chart, batch: sim.Batch, rng: np.random.Generator) -> None:
    """Heart rate, SpO2 and respiratory rate (now and then under the total-rate item)."""
    ser, off = batch.series, P["neonate_offset"]
    c.chart(rng.random(c.n) < P["chart_hr"], HR, ser["hr"][c.idx] + off["hr"] * c.neo, 0)
    c.chart(rng.random(c.n) < P["chart_spo2"], SPO2, ser["spo2"][c.idx], 0)
    item = np.where(rng.random(c.n) < P["rr_item"], RESP[CV], RESP_TOTAL[CV])
    mv_item = np.where(rng.random(c.n) < P["rr_item"], RESP[MV], RESP_TOTAL[MV])
    item = np.where(c.db == MV, mv_item, item)
    m = rng.random(c.n) < P["chart_rr"]
    c.add(c.stay[m], c.hours[m], item[m], (ser["rr"][c.idx] + off["rr"] * c.neo)[m], 0)


def _blood_pressure(c: _Chart, batch: sim.Batch, rng: np.random.Generator) -> None:
    """Arterial BP of adults with a line, non-invasive BP mostly without; SBP rows carry DBP."""
    off = P["neonate_offset"]
    sbp = batch.series["sbp"][c.idx] + off["sbp"] * c.neo
    dbp = batch.series["dbp"][c.idx] + off["dbp"] * c.neo
    art = batch.arterial[c.stay] & ~c.neo
    arterial = art & (rng.random(c.n) < P["chart_art"])
    with_art = rng.random(c.n) < P["chart_nbp_with_art"]
    nbp = np.where(art, with_art, rng.random(c.n) < P["chart_nbp"])
    for mask, (i_s, i_d, i_m), sd in ((arterial, ART, 0.0), (nbp, NBP, P["nbp_sd"])):
        e = sd * rng.standard_normal((2, c.n))
        s_, d_ = sbp + e[0], dbp + e[1]
        m_ = d_ + (s_ - d_) / 3 + rng.normal(0, P["bp_mean_sd"], c.n)
        c.chart(mask, i_s, s_, 0, num2=d_)
        c.chart(mask, i_d, d_, 0)
        c.chart(mask, i_m, np.clip(m_, d_ + 1, s_ - 1), 0)


def _temperature(c: _Chart, batch: sim.Batch, rng: np.random.Generator) -> np.ndarray:
    """Temperature every 4 h in Fahrenheit, Celsius or both (``temp_units``); returns the
    per-stay phase of the 4-hourly rounds."""
    units = P["temp_units"]
    phase = rng.integers(0, 4, batch.n)
    at = (c.hour_no >= 0) & (c.hour_no % 4 == phase[c.stay]) & (rng.random(c.n) < P["chart_temp"])
    temp = batch.series["temp"][c.idx]
    u = rng.random(c.n)
    c.chart(at & (u < units["fahrenheit"]), TEMP_F, temp * 1.8 + 32, 1)
    cv = c.db == CV
    calc = cv & (u < units["carevue_calculated"])
    item = np.where(calc, TEMP_C_CALC, np.asarray(TEMP_C)[c.db])
    m = at & ((u >= units["fahrenheit"]) | calc | (~cv & (u >= units["metavision_celsius"])))
    c.add(c.stay[m], c.hours[m], item[m], temp[m], 1)
    return phase


def _gcs(c: _Chart, batch: sim.Batch, rng: np.random.Generator) -> None:
    """GCS every 1-4 h: CareVue total and components, MetaVision components; ETT if intubated."""
    every = pick(rng, P["gcs_every_hours"], batch.n).astype(int)
    at = (c.hour_no >= 0) & (c.hour_no % every[c.stay] == 0)
    gs, gh, gdb = c.stay[at], c.hours[at], c.db[at]
    total = np.rint(batch.series["gcs"][c.idx[at]]).astype(int)
    eye = np.clip(np.rint(total * 4 / 15), 1, 4).astype(int)
    motor = np.clip(np.rint(total * 6 / 15), 1, 6).astype(int)
    verbal = np.clip(total - eye - motor, 1, 5)
    ett = batch.intubated[gs]
    verbal[ett] = 1
    cv = gdb == CV
    c.add(gs[cv], gh[cv], GCS_TOTAL, (eye + motor + verbal)[cv], 0)
    for j, (part, score) in enumerate((("eye", eye), ("motor", motor), ("verbal", verbal))):
        words = GCS_WORDS[part]
        vocab = [f"{k + 1} {w}" for k, w in enumerate(words)] + words
        code = score - 1 + np.where(cv, 0, len(words))
        if part == "verbal":
            vocab += list(ETT)
            code = np.where(ett, 2 * len(words) + (~cv), code)
        items = np.array([GCS_COMPONENTS["carevue"][j], GCS_COMPONENTS["metavision"][j]])
        c.add(gs, gh, items[gdb], score, vocab, words=code)


def _glucose(c: _Chart, batch: sim.Batch, phase: np.ndarray, rng: np.random.Generator) -> None:
    """Glucose every 6 h (at the temperature phase), under one of three items."""
    rounds = (c.hour_no >= 0) & (c.hour_no % 6 == phase[c.stay])
    at = rounds & (rng.random(c.n) < P["chart_glucose"])
    item = GLUCOSE[c.db, rng.choice(3, c.n, p=P["glucose_item"])]
    c.add(c.stay[at], c.hours[at], item[at], batch.series["glucose"][c.idx][at], 0)


def _extra_items(c: _Chart, batch: sim.Batch, rng: np.random.Generator) -> None:
    """Rhythm and ectopy (text) every 2 h; O2 device or flow and HR alarm limits every 4 h."""
    q = P["extra_other_words"]
    for j, (i_cv, i_mv, label, words) in enumerate(EXTRA_ITEMS):
        at = (c.hour_no >= 0) & (c.hour_no % (2 + 2 * (j > 1)) == 0)
        stay, hours, db = c.stay[at], c.hours[at], c.db[at]
        items = np.array([i_cv, i_mv])[db]
        if words is not None:
            vocab = words if j else words + ["SR (Sinus Rhythm)", "AF (Atrial Fibrillation)"]
            k = len(words)
            code = rng.choice(k, at.sum(), p=np.r_[1 - q, np.full(k - 1, q / (k - 1))])
            if not j:  # MetaVision rhythm: its own words
                code = np.where(db == MV, k + (code > 0), code)
            c.add(stay, hours, items, np.nan, vocab, words=code)
        elif i_cv == 467:  # CareVue device (text), MetaVision O2 flow (numeric)
            cv_at, mv_at = at & (c.db == CV), at & (c.db == MV)
            dev = np.where(batch.intubated[c.stay[cv_at]], 3, rng.choice(3, cv_at.sum()))
            c.add(c.stay[cv_at], c.hours[cv_at], i_cv, np.nan, O2_DEVICES, words=dev)
            flow = rng.choice(P["o2_flow"], mv_at.sum())
            c.add(c.stay[mv_at], c.hours[mv_at], i_mv, flow, 0)
        else:
            c.add(stay, hours, items, P["hr_alarm"][label.split()[-1]], 0)


def _assemble(c: _Chart, stays: dict, rng: np.random.Generator) -> dict:
    """CHARTEVENTS columns of the chart rows with dirty values, sorted by stay, time and item."""
    cols, error = _dirty(c.concat(), stays, rng)
    order = np.lexsort((error, cols["item"], cols["hours"], cols["stay"]))
    r = {k: v[order] for k, v in cols.items()}
    error, stay, m = error[order], r["stay"], len(order)
    is_mv = stays["db"][stay] == MV
    value, valuenum, uom = _values(r, c.vocab)
    time = charttime(stays, stay, r["hours"])
    no_stay = rng.random(m) < P["no_icustay"]
    no_hadm = no_stay & (rng.random(m) < P["no_hadm"])
    return {
        "SUBJECT_ID": stays["subject"][stay],
        "HADM_ID": np.where(no_hadm, np.nan, stays["hadm"][stay]),
        "ICUSTAY_ID": np.where(no_stay, np.nan, stays["icustay"][stay]),
        "ITEMID": r["item"],
        "CHARTTIME": time,
        "STORETIME": time + rng.integers(*P["chart_store_minutes"], m) * 60,
        "CGID": rng.integers(*P["cgid"], m),
        "VALUE": value,
        "VALUENUM": valuenum,
        "VALUEUOM": uom,
        "WARNING": np.where(is_mv, (rng.random(m) < P["warning"]).astype(float), np.nan),
        "ERROR": np.where(is_mv, error, np.nan),
        "STOPPED": np.where(is_mv, None, "NotStopd"),
    }


def _dirty(r: dict, stays: dict, rng: np.random.Generator):
    """SpO2 as a fraction, Fahrenheit under Celsius items, typos, BP as text (``dec`` 3) and
    MetaVision ERROR rows with garbage values. Returns the rows and their ERROR flag."""
    n = len(r["stay"])
    item, num, dec = r["item"], r["num"], r["dec"]
    numeric = dec >= 0
    u = rng.random((6, n))  # one row spare: the draws fix the output bytes
    frac = np.isin(item, SPO2) & (u[0] < P["spo2_fraction"])
    num = np.where(frac, np.round(num) / 100.0, num)
    dec = np.where(frac, 2, dec)
    cf = np.isin(item, (*TEMP_C, TEMP_C_CALC)) & (u[1] < P["fahrenheit_as_celsius"])
    num = np.where(cf, num * 1.8 + 32, num)
    typo = numeric & ~frac & (u[2] < P["typo"])
    num = np.where(typo, np.where(np.isin(item, HR), P["typo_hr"], num * 10), num)
    bp = np.isin(item, BP_STRING_ITEMS) & (u[3] < P["bp_text"])
    dec = np.where(bp, 3, dec)
    err = (stays["db"][r["stay"]] == MV) & numeric & (u[4] < P["error_row"])
    rows = {**r, "num": num, "dec": dec}
    dup = {k: v[err] for k, v in rows.items()}
    dup["num"] = np.round(dup["num"] * rng.uniform(*P["error_scale"], err.sum()))
    dup["dec"] = np.zeros(err.sum(), np.int8)
    cols = {k: np.concatenate([v, dup[k]]) for k, v in rows.items()}
    return cols, np.concatenate([np.zeros(n), np.ones(err.sum())])


def _values(r: dict, vocab: list[str]):
    """VALUE (words, numbers or "SBP/DBP"), VALUENUM and VALUEUOM of the chart rows."""
    dec, num, m = r["dec"], r["num"], len(r["dec"])
    vocab = vocab + [""]
    words = text(np.where(r["code"] >= 0, r["code"], len(vocab) - 1), vocab)
    digits = number_text(num, np.maximum(dec, 0))
    bp_text = pc.binary_join_element_wise(
        number_text(num, np.zeros(m)), number_text(r["num2"], np.zeros(m)), "/"
    )
    choice = np.select([dec < 0, dec == 3], [0, 2], 1).astype(np.int8)
    value = pc.choose(pa.array(choice), words, digits, bp_text)
    valuenum = np.where(dec == 3, np.nan, np.where(dec >= 0, rounded(num, np.maximum(dec, 0)), num))
    items = np.unique(r["item"])
    units = np.array([UNITS.get(int(i)) for i in items], dtype=object)
    uom = np.where(dec == 3, None, units[np.searchsorted(items, r["item"])])
    return value, valuenum, uom
