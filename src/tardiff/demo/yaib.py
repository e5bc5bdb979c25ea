"""A YAIB / ricu cohort folder from the simulator: ``dyn.parquet``, ``outc.parquet``,
``sta.parquet``, as YAIB's preprocessing leaves them (what :mod:`tardiff.extract.yaib` reads).

- The MIMIC-shaped process of :mod:`tardiff.demo.simulator` (source ``mimic3``: same stays,
  labels and prevalence as the ``mimic3`` demo of the same seed).
- ``dyn``: one row per stay and hour from 0 h to 24 h while the stay lasts (YAIB's 24 h cohorts
  have 25 rows), ``time`` a timedelta, the hour's mean of the 5-minute values under ricu's concept
  names (:data:`CONCEPTS`, units as ricu's: °C, mg/dL, %). Gaps are NaN: temperature every 4 h,
  glucose every 6 h, and each other value missing in :data:`MISSING` of the hours.
- ``outc``: the mortality label per stay (``label``, 0/1); ``sta``: age (years, 18–90) and sex
  (``Female``/``Male``).
- Stay ids are 1-based population indices; the same seed gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tardiff.demo import simulator as sim

#: simulator series -> ricu concept name, in dyn.parquet's column order
CONCEPTS = {
    "hr": "hr", "sbp": "sbp", "dbp": "dbp", "mbp": "map", "rr": "resp", "temp": "temp",
    "spo2": "o2sat", "glucose": "glu",
}  # fmt: skip
#: concepts charted every k hours (from hour 0)
EVERY_HOURS = {"temp": 4, "glu": 6}
#: share of hours in which each other concept is missing
MISSING = 0.05
HOURS = 25  # rows at 0 h ... 24 h
_STREAM = 13  # seed-sequence key of the YAIB tables (the MIMIC-III / eICU writers use 11, 12)


def write(out: Path, n_stays: int, seed: int) -> dict:
    """Write the three tables of ``n_stays`` simulated stays into ``out``; rows per table and
    label prevalence."""
    dyn, outc, sta = [], [], []
    for batch in sim.simulate("mimic3", n_stays, seed):
        rng = np.random.default_rng([seed, _STREAM, batch.first // sim.BATCH])
        ids = np.arange(batch.first, batch.first + batch.n) + 1
        dyn.append(_dynamic(batch, ids, rng))
        outc.append(pd.DataFrame({"stay_id": ids, "label": batch.label.astype(np.int64)}))
        sta.append(_static(ids, rng))
    tables = {"dyn": pd.concat(dyn), "outc": pd.concat(outc), "sta": pd.concat(sta)}
    for name, frame in tables.items():
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out / f"{name}.parquet")
    labels = tables["outc"]["label"]
    return {"rows": {k: len(v) for k, v in tables.items()}, "prevalence": float(labels.mean())}


def _dynamic(batch: sim.Batch, ids: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The batch's hourly rows (hours the stay covers entirely)."""
    hourly = sim.grid(batch, hours=HOURS, resolution_minutes=60, names=tuple(CONCEPTS))
    stay, hour = np.nonzero(~np.isnan(hourly[:, :, 0]))
    values = np.round(hourly[stay, hour], 1)
    for j, concept in enumerate(CONCEPTS.values()):
        every = EVERY_HOURS.get(concept)
        gap = hour % every != 0 if every else rng.random(len(hour)) < MISSING
        values[gap, j] = np.nan
    frame = pd.DataFrame(values, columns=list(CONCEPTS.values()))
    frame.insert(0, "time", pd.to_timedelta(hour, unit="h"))
    frame.insert(0, "stay_id", ids[stay])
    return frame


def _static(ids: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    age = np.round(np.clip(rng.normal(64.0, 16.0, len(ids)), 18.0, 90.0))
    sex = np.where(rng.random(len(ids)) < 0.44, "Female", "Male")
    return pd.DataFrame({"stay_id": ids, "age": age, "sex": sex})
