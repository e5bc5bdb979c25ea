"""Embedded demo: schemas, quoting, ids, determinism, dirty values, prevalence, atomicity, the
YAIB layout."""

from __future__ import annotations

import csv
import gzip
import re

import numpy as np
import pandas as pd
import pytest

from tardiff.demo import eicu, external_seed, mimic3, write_demo, yaib
from tardiff.demo import simulator as sim

N = 150

# Column lists of ehr-sources.md, written out as the oracle.
MIMIC_COLUMNS = {
    "PATIENTS": "ROW_ID, SUBJECT_ID, GENDER, DOB, DOD, DOD_HOSP, DOD_SSN, EXPIRE_FLAG",
    "ADMISSIONS": "ROW_ID, SUBJECT_ID, HADM_ID, ADMITTIME, DISCHTIME, DEATHTIME, ADMISSION_TYPE, "
    "ADMISSION_LOCATION, DISCHARGE_LOCATION, INSURANCE, LANGUAGE, RELIGION, MARITAL_STATUS, "
    "ETHNICITY, EDREGTIME, EDOUTTIME, DIAGNOSIS, HOSPITAL_EXPIRE_FLAG, HAS_CHARTEVENTS_DATA",
    "ICUSTAYS": "ROW_ID, SUBJECT_ID, HADM_ID, ICUSTAY_ID, DBSOURCE, FIRST_CAREUNIT, LAST_CAREUNIT, "
    "FIRST_WARDID, LAST_WARDID, INTIME, OUTTIME, LOS",
    "CHARTEVENTS": "ROW_ID, SUBJECT_ID, HADM_ID, ICUSTAY_ID, ITEMID, CHARTTIME, STORETIME, CGID, "
    "VALUE, VALUENUM, VALUEUOM, WARNING, ERROR, RESULTSTATUS, STOPPED",
    "LABEVENTS": "ROW_ID, SUBJECT_ID, HADM_ID, ITEMID, CHARTTIME, VALUE, VALUENUM, VALUEUOM, FLAG",
    "OUTPUTEVENTS": "ROW_ID, SUBJECT_ID, HADM_ID, ICUSTAY_ID, CHARTTIME, ITEMID, VALUE, VALUEUOM, "
    "STORETIME, CGID, STOPPED, NEWBOTTLE, ISERROR",
    "D_ITEMS": "ROW_ID, ITEMID, LABEL, ABBREVIATION, DBSOURCE, LINKSTO, CATEGORY, UNITNAME, "
    "PARAM_TYPE, CONCEPTID",
    "D_LABITEMS": "ROW_ID, ITEMID, LABEL, FLUID, CATEGORY, LOINC_CODE",
}
EICU_COLUMNS = {
    "patient": "patientunitstayid, patienthealthsystemstayid, gender, age, ethnicity, hospitalid, "
    "wardid, apacheadmissiondx, admissionheight, hospitaladmittime24, hospitaladmitoffset, "
    "hospitaladmitsource, hospitaldischargeyear, hospitaldischargetime24, "
    "hospitaldischargeoffset, hospitaldischargelocation, hospitaldischargestatus, unittype, "
    "unitadmittime24, unitadmitsource, unitvisitnumber, unitstaytype, admissionweight, "
    "dischargeweight, unitdischargetime24, unitdischargeoffset, unitdischargelocation, "
    "unitdischargestatus, uniquepid",
    "vitalPeriodic": "vitalperiodicid, patientunitstayid, observationoffset, temperature, sao2, "
    "heartrate, respiration, cvp, etco2, systemicsystolic, systemicdiastolic, systemicmean, "
    "pasystolic, padiastolic, pamean, st1, st2, st3, icp",
    "vitalAperiodic": "vitalaperiodicid, patientunitstayid, observationoffset, "
    "noninvasivesystolic, noninvasivediastolic, noninvasivemean, paop, cardiacoutput, "
    "cardiacinput, svr, svri, pvr, pvri",
    "lab": "labid, patientunitstayid, labresultoffset, labtypeid, labname, labresult, "
    "labresulttext, labmeasurenamesystem, labmeasurenameinterface, labresultrevisedoffset",
    "nurseCharting": "nursingchartid, patientunitstayid, nursingchartoffset, "
    "nursingchartentryoffset, nursingchartcelltypecat, nursingchartcelltypevallabel, "
    "nursingchartcelltypevalname, nursingchartvalue",
}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    summaries = {src: write_demo(src, root / src, N, seed=3) for src in ("mimic3", "eicu")}
    return root, summaries


def _lines(path, n=50):
    with gzip.open(path, "rt") as fh:
        return [next(fh) for _ in range(n)]


def _read(path):
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def test_headers_equal_the_schema(demo):
    root, _ = demo
    for name, cols in MIMIC_COLUMNS.items():
        header = _lines(root / "mimic3" / f"{name}.csv.gz", 1)[0].rstrip("\n")
        assert header == ",".join(f'"{c}"' for c in cols.split(", ")), name
    for name, cols in EICU_COLUMNS.items():
        header = _lines(root / "eicu" / f"{name}.csv.gz", 1)[0].rstrip("\n")
        assert header == ",".join(cols.split(", ")), name
    assert sorted(p.name for p in (root / "mimic3").iterdir()) == sorted(
        f"{t}.csv.gz" for t in MIMIC_COLUMNS
    )
    assert sorted(p.name for p in (root / "eicu").iterdir()) == sorted(
        f"{t}.csv.gz" for t in EICU_COLUMNS
    )


def test_mimic_quoting_and_timestamps(demo):
    root, _ = demo
    rows = list(csv.reader(_lines(root / "mimic3" / "ICUSTAYS.csv.gz")[1:]))
    raw = _lines(root / "mimic3" / "ICUSTAYS.csv.gz")[1]
    assert re.match(r'^\d+,\d+,\d+,\d+,"(carevue|metavision)","[A-Z]+","[A-Z]+",\d+,\d+,', raw)
    assert all(TIMESTAMP.match(r[9]) and TIMESTAMP.match(r[10]) for r in rows)
    chart = _lines(root / "mimic3" / "CHARTEVENTS.csv.gz", 400)[1:]
    for line in chart:
        fields = next(csv.reader([line]))
        assert TIMESTAMP.match(fields[5])
        assert re.search(r',"[^"]*",[^,"]*,("[^"]*")?,', line)  # VALUE quoted, VALUENUM bare


def test_eicu_quotes_only_strings_with_commas(demo):
    root, _ = demo
    with gzip.open(root / "eicu" / "patient.csv.gz", "rt") as fh:
        text = fh.read()
    quoted = re.findall(r'"([^"]*)"', text)
    assert quoted and all("," in q for q in quoted)
    pat = _read(root / "eicu" / "patient.csv.gz")
    commas = pat["apacheadmissiondx"].str.contains(",", regex=False).sum()
    assert len(quoted) == commas
    for name in ("vitalPeriodic", "nurseCharting", "lab", "vitalAperiodic"):
        assert '"' not in "".join(_lines(root / "eicu" / f"{name}.csv.gz", 200)), name


def test_mimic_ids_dates_and_labels(demo):
    root, summaries = demo
    d = root / "mimic3"
    icu, adm, pat = (_read(d / f"{t}.csv.gz") for t in ("ICUSTAYS", "ADMISSIONS", "PATIENTS"))
    assert len(icu) == N and summaries["mimic3"]["rows"]["ICUSTAYS"] == N
    assert icu.ICUSTAY_ID.between(200001, 299999).all() and icu.ICUSTAY_ID.is_unique
    assert adm.HADM_ID.between(100001, 199999).all() and adm.HADM_ID.is_unique
    assert (pat.SUBJECT_ID < 100000).all() and pat.SUBJECT_ID.is_unique
    assert icu.SUBJECT_ID.nunique() < N  # some subjects with several stays
    assert set(icu.DBSOURCE) == {"carevue", "metavision"}
    assert 0.5 < (icu.DBSOURCE == "carevue").mean() < 0.85
    intime, outtime = pd.to_datetime(icu.INTIME), pd.to_datetime(icu.OUTTIME)
    assert intime.dt.year.between(2100, 2200).all()
    los = (outtime - intime).dt.total_seconds() / 86400
    assert np.allclose(los, icu.LOS.astype(float), atol=1e-4)
    assert 0.2 < (icu.LOS.astype(float) > 3).mean() < 0.55
    dead = adm.HOSPITAL_EXPIRE_FLAG == 1
    assert dead.any() and (adm.DEATHTIME.notna() == dead).all()
    assert (adm.DEATHTIME[dead] == adm.DISCHTIME[dead]).all()
    assert (icu.FIRST_CAREUNIT == "NICU").any()
    merged = icu.merge(pat, on="SUBJECT_ID")
    age = (pd.to_datetime(merged.INTIME) - pd.to_datetime(merged.DOB)).dt.days / 365.25
    assert (age > 250).any() and (age[merged.FIRST_CAREUNIT == "NICU"] < 1).all()


def test_mimic_dirty_values(demo):
    root, _ = demo
    ce = _read(root / "mimic3" / "CHARTEVENTS.csv.gz")
    bp = ce.VALUE.str.fullmatch(r"\d+/\d+")
    assert bp.any() and ce.VALUENUM[bp].isna().all()
    assert ce.ITEMID[bp].isin([51, 442, 455, 6701, 220050, 220179]).all()
    spo2 = ce[ce.ITEMID.isin([646, 220277])]
    assert (spo2.VALUENUM <= 1).any()
    celsius = ce[ce.ITEMID.isin([676, 677, 223762])]
    assert (celsius.VALUENUM >= 79).any() and (celsius.VALUENUM < 45).any()
    assert ce.ICUSTAY_ID.isna().any() and ce.HADM_ID.isna().any()
    assert (ce.ERROR == 1).any() and ce.ERROR.isna().any()
    assert (ce[ce.ITEMID.isin([211, 220045])].VALUENUM >= 999).any()
    gcs = ce[ce.ITEMID.isin([184, 454, 723])]
    assert gcs.VALUE.str.contains("Spontaneously").any() and gcs.VALUENUM.notna().all()
    assert (ce.VALUE == "1.0 ET/Trach").any()
    assert ce.ITEMID.isin([212, 220048, 220046]).any()  # non-target items
    assert {198, 220739, 223900, 223901, 678, 223761}.issubset(set(ce.ITEMID))
    labs = _read(root / "mimic3" / "LABEVENTS.csv.gz")
    assert "ICUSTAY_ID" not in labs.columns
    assert {"ERROR", "<0.1"}.issubset(set(labs.VALUE)) and labs.HADM_ID.isna().any()
    assert labs.VALUENUM[labs.VALUE.isin(["ERROR", "<0.1"])].isna().all()
    d_items = _read(root / "mimic3" / "D_ITEMS.csv.gz")
    assert set(ce.ITEMID).issubset(set(d_items.ITEMID))
    out = _read(root / "mimic3" / "OUTPUTEVENTS.csv.gz")
    assert set(out.ITEMID).issubset(set(d_items.ITEMID))


def test_eicu_semantics(demo):
    root, _ = demo
    d = root / "eicu"
    pat = _read(d / "patient.csv.gz")
    assert len(pat) == N and pat.patientunitstayid.is_unique
    assert set(pat.hospitaldischargestatus.dropna()) == {"Alive", "Expired"}
    assert set(pat.unitvisitnumber) == {1, 2}
    assert pat.age.isin(["> 89"]).any()
    assert pat.age.dropna().map(lambda a: a == "> 89" or 0 <= int(a) <= 89).all()
    assert (pat.hospitaladmitoffset <= 0).all()
    assert (pat.hospitaldischargeoffset >= pat.unitdischargeoffset).all()
    assert pat.uniquepid.str.fullmatch(r"\d{3}-\d+").all()
    vp = _read(d / "vitalPeriodic.csv.gz")
    assert vp.heartrate.notna().mean() > 0.9 and vp.temperature.isna().mean() > 0.8
    per_stay = vp.groupby("patientunitstayid").observationoffset
    assert (per_stay.diff().dropna() % 5 == 0).all()
    assert vp.systemicsystolic.notna().any() and vp.systemicsystolic.isna().mean() > 0.3
    stays = pat.set_index("patientunitstayid").unitdischargeoffset
    assert (vp.observationoffset <= vp.patientunitstayid.map(stays)).all()
    nc = _read(d / "nurseCharting.csv.gz")
    triples = set(
        zip(
            nc.nursingchartcelltypecat,
            nc.nursingchartcelltypevallabel,
            nc.nursingchartcelltypevalname,
            strict=True,
        )
    )
    assert ("Vital Signs", "Heart Rate", "Heart Rate") in triples
    assert ("Vital Signs", "Temperature", "Temperature (C)") in triples
    lab = _read(d / "lab.csv.gz")
    assert (lab.labresultoffset < 0).any() and (lab.labresulttext == "<0.1").any()


def test_same_seed_same_bytes(demo, tmp_path):
    root, _ = demo
    for src, first in (("mimic3", "ICUSTAYS.csv.gz"), ("eicu", "patient.csv.gz")):
        write_demo(src, tmp_path / src, N, seed=3)
        write_demo(src, tmp_path / "other", N, seed=4)
        for f in (root / src).iterdir():
            assert (tmp_path / src / f.name).read_bytes() == f.read_bytes(), f.name
        assert (tmp_path / "other" / first).read_bytes() != (root / src / first).read_bytes()


def test_population_is_independent_of_size():
    small = next(sim.simulate("mimic3", 40, seed=1))
    large = next(sim.simulate("mimic3", 900, seed=1))
    assert np.array_equal(small.acuity, large.acuity[:40])


@pytest.mark.parametrize("source", ["mimic3", "eicu"])
def test_prevalence_on_target(source):
    labels = np.concatenate([b.label for b in sim.simulate(source, 4000, seed=7)])
    assert abs(labels.mean() - sim.TARGET_PREVALENCE[source]) < 0.02


def test_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args):
        raise RuntimeError("killed")

    out = tmp_path / "raw"
    monkeypatch.setattr(mimic3, "_labevents", boom)
    with pytest.raises(RuntimeError, match="killed"):
        write_demo("mimic3", out, 20, seed=0)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_demo("eicu", out, 20, seed=0)
    monkeypatch.setattr(eicu, "_lab", boom)
    with pytest.raises(RuntimeError):
        write_demo("eicu", out, 30, seed=1)
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]  # the previous set stays intact
    assert len(_read(out / "patient.csv.gz")) == 20


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="source"):
        write_demo("mimic4", tmp_path / "x", 10, seed=0)
    with pytest.raises(ValueError, match="n_stays"):
        write_demo("mimic3", tmp_path / "x", 0, seed=0)


def test_the_external_population_has_a_seed_of_its_own():
    seeds = [external_seed(s) for s in range(5)]
    assert all(e != s for s, e in enumerate(seeds)) and len(set(seeds)) == 5
    main = next(sim.simulate("eicu", 50, seed=0))
    external = next(sim.simulate("eicu", 50, seed=external_seed(0)))
    assert not np.allclose(main.logit, external.logit)  # another draw of the same process


def test_yaib_folder_in_yaib_layout(tmp_path):
    summary = write_demo("yaib", tmp_path / "a", N, seed=3)
    dyn = pd.read_parquet(tmp_path / "a" / "dyn.parquet")
    outc = pd.read_parquet(tmp_path / "a" / "outc.parquet")
    sta = pd.read_parquet(tmp_path / "a" / "sta.parquet")
    assert summary["rows"] == {"dyn": len(dyn), "outc": N, "sta": N}
    assert list(dyn.columns) == ["stay_id", "time", *yaib.CONCEPTS.values()]
    assert pd.api.types.is_timedelta64_dtype(dyn["time"])
    hours = dyn["time"] / pd.Timedelta(hours=1)
    assert hours.min() == 0 and hours.max() == 24 and (hours % 1 == 0).all()
    assert not dyn.duplicated(["stay_id", "time"]).any()
    # temperature every 4 h, glucose every 6 h, heart rate in about 95 % of the hours
    assert dyn.loc[hours % 4 != 0, "temp"].isna().all()
    assert dyn.loc[hours % 4 == 0, "temp"].notna().all()
    assert dyn.loc[hours % 6 != 0, "glu"].isna().all()
    assert 0.9 < dyn["hr"].notna().mean() < 1.0
    assert dyn["o2sat"].dropna().between(55, 100).all()
    assert dyn["temp"].dropna().between(32, 42).all()
    # the MIMIC-shaped process: the mimic3 demo's stays and labels of the same seed
    labels = np.concatenate([b.label for b in sim.simulate("mimic3", N, seed=3)])
    assert outc["stay_id"].tolist() == list(range(1, N + 1))
    assert outc["label"].tolist() == labels.astype(int).tolist()
    assert summary["prevalence"] == pytest.approx(labels.mean())
    assert sta["age"].between(18, 90).all() and set(sta["sex"]) == {"Female", "Male"}
    write_demo("yaib", tmp_path / "b", N, seed=3)
    for name in ("dyn", "outc", "sta"):
        file = f"{name}.parquet"
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
