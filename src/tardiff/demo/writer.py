"""The demo writers' batch loop, deterministic gzip CSV streams and Arrow column helpers."""

from __future__ import annotations

import csv
import functools
import gzip
import io
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import yaml

from tardiff.demo import simulator as sim

COMPRESSLEVEL = 2
TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "timestamp": pa.timestamp("s"),
}
#: Seed-sequence key of each source's table generator (the simulator's are 1 and 2).
TABLE_STREAM = {"mimic3": 11, "eicu": 12}

Schema = list[tuple[str, pa.DataType]]
#: ``tables(batch, rng)``: the cohort mask of the batch's stays and ``{table: columns}``.
BatchTables = Callable[[sim.Batch, np.random.Generator], tuple[np.ndarray, dict[str, dict]]]


@functools.cache
def _schema_file() -> dict:
    with resources.files("tardiff").joinpath("resources/demo_schemas.yaml").open() as fh:
        return yaml.safe_load(fh)


def schemas(source: str) -> dict[str, Schema]:
    """``{table: [(column, Arrow type)]}`` of ``source``, from ``resources/demo_schemas.yaml``."""
    return {
        name: [(col, TYPES[typ]) for col, typ in cols.items()]
        for name, cols in _schema_file()[source].items()
    }


def write_tables(
    out: Path,
    source: str,
    n_stays: int,
    seed: int,
    tables: BatchTables,
    first: dict[str, dict] | None = None,
) -> dict:
    """Stream the tables of ``n_stays`` simulated stays of ``source`` into ``out/<table>.csv.gz``.

    ``first`` holds tables written before the batches (dictionaries). Each simulated batch gets its
    own seeded generator for ``tables``. The first column of a schema is a running row number
    unless the columns give it. Returns rows per table, cohort size and label prevalence in the
    cohort.
    """
    schema = schemas(source)
    streams = {
        name: CsvGz(out / f"{name}.csv.gz", [c for c, _ in cols], source)
        for name, cols in schema.items()
    }
    cohort = deaths = 0
    try:
        _append(streams, schema, first or {})
        for batch in sim.simulate(source, n_stays, seed):
            rng = np.random.default_rng([seed, TABLE_STREAM[source], batch.first // sim.BATCH])
            keep, data = tables(batch, rng)
            _append(streams, schema, data)
            cohort += int(keep.sum())
            deaths += int(batch.label[keep].sum())
    finally:
        for stream in streams.values():
            stream.close()
    return {
        "rows": {name: s.rows for name, s in streams.items()},
        "adult_stays": cohort,
        "prevalence": deaths / max(cohort, 1),
    }


def _append(streams: dict[str, CsvGz], schema: dict[str, Schema], data: dict[str, dict]) -> None:
    """Append ``{table: columns}``; a missing first column is numbered on from the stream's rows."""
    for name, cols in data.items():
        key, done = schema[name][0][0], streams[name].rows
        if key not in cols:
            cols[key] = np.arange(done + 1, done + 1 + len(next(iter(cols.values()))))
        streams[name].write(table(schema[name], cols))


def pick(rng: np.random.Generator, dist: dict | list, n: int | None):
    """``n`` draws (``None``: one) from ``dist``, ``{option: probability}`` or a list of equally
    likely options."""
    options, p = (list(dist), list(dist.values())) if isinstance(dist, dict) else (dist, None)
    return np.asarray(options, dtype=object)[rng.choice(len(options), n, p=p)]


def stack(values: dict[str, np.ndarray], masks: dict[str, np.ndarray]):
    """Rows of several measures, measure by measure: ``masks[name]`` selects the positions in
    ``values[name]`` that are recorded. Returns position, measure index (in ``masks``) and value.
    """
    rows = [np.flatnonzero(mask) for mask in masks.values()]
    pos = np.concatenate(rows)
    kind = np.concatenate([np.full(len(r), j) for j, r in enumerate(rows)])
    num = np.concatenate([values[name][r] for name, r in zip(masks, rows, strict=True)])
    return pos, kind, num


class CsvGz:
    """A ``.csv.gz`` stream with a fixed header; Arrow tables are appended in order.

    ``style="mimic3"``: header names in double quotes, every string quoted, numbers and timestamps
    bare. ``style="eicu"``: bare header, strings quoted only when they contain a comma or quote.
    NULL is an empty field. The gzip header has no name and mtime 0, so equal rows give equal bytes.
    """

    def __init__(self, path: Path, columns: list[str], style: str):
        self.columns = columns
        self.style = style
        self.rows = 0
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=COMPRESSLEVEL
        )
        names = [f'"{c}"' for c in columns] if style == "mimic3" else columns
        self._gz.write((",".join(names) + "\n").encode())

    def write(self, table: pa.Table) -> None:
        """Append the rows of ``table`` (its columns must be exactly ``self.columns``)."""
        if table.column_names != self.columns:
            raise ValueError(f"columns {table.column_names} differ from header {self.columns}")
        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        if self.style == "mimic3":
            opts = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        elif not _needs_quotes(table):
            opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
        else:
            self._gz.write(_minimal_quoted(table))
            return
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, opts)
        self._gz.write(buf.getbuffer())

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


def _needs_quotes(table: pa.Table) -> bool:
    for col in table.columns:
        if pa.types.is_string(col.type) and pc.any(pc.match_substring_regex(col, '[,"\n]')).as_py():
            return True
    return False


def _minimal_quoted(table: pa.Table) -> bytes:
    """CSV text of ``table`` with Python's minimal quoting (values formatted by Arrow)."""
    cols = [pc.fill_null(pc.cast(c, pa.string()), "").to_pylist() for c in table.columns]
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n").writerows(
        zip(*cols, strict=True)
    )
    return out.getvalue().encode()


def column(values, typ: pa.DataType) -> pa.Array:
    """Arrow array of ``typ``: NaN in float input is NULL; timestamps come as epoch seconds."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.cast(typ)
    values = np.asarray(values)
    if pa.types.is_string(typ):
        return pa.array(values, type=typ)
    if values.dtype.kind == "f" and not pa.types.is_floating(typ):
        mask = np.isnan(values)
        ints = np.where(mask, 0, values).astype(np.int64)
        arr = pa.array(ints, mask=mask if mask.any() else None)
    else:
        arr = pa.array(values, from_pandas=True)
    return arr.cast(typ)


def table(schema: Schema, data: dict) -> pa.Table:
    """Table with the columns of ``schema`` in order; missing columns are all NULL."""
    n = len(next(iter(data.values())))
    arrays = []
    for name, typ in schema:
        arrays.append(column(data[name], typ) if name in data else pa.nulls(n, typ))
    return pa.table(arrays, names=[name for name, _ in schema])


def text(codes: np.ndarray, vocab: list[str]) -> pa.Array:
    """String array from integer ``codes`` into ``vocab`` (code −1 is NULL)."""
    codes = np.asarray(codes)
    mask = codes < 0
    idx = pa.array(np.where(mask, 0, codes).astype(np.int32), mask=mask if mask.any() else None)
    return pa.DictionaryArray.from_arrays(idx, pa.array(vocab, pa.string())).cast(pa.string())


def number_text(values: np.ndarray, decimals: np.ndarray) -> pa.Array:
    """Numbers as text: integer where ``decimals`` is 0, else rounded to 1 or 2 decimals."""
    values = np.nan_to_num(values)
    as_int = pc.cast(pa.array(np.rint(values).astype(np.int64)), pa.string())
    one = pc.cast(pa.array(np.round(values, 1)), pa.string())
    two = pc.cast(pa.array(np.round(values, 2)), pa.string())
    return pc.choose(pa.array(np.clip(decimals, 0, 2).astype(np.int8)), as_int, one, two)


def rounded(values: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    """``values`` rounded as :func:`number_text` prints them."""
    return np.where(
        decimals == 0,
        np.rint(values),
        np.where(decimals == 1, np.round(values, 1), np.round(values, 2)),
    )
