"""Deterministic gzip CSV streams and an atomic output folder for the demo tables."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

COMPRESSLEVEL = 2


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


@contextlib.contextmanager
def atomic_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``out_dir``; it replaces ``out_dir`` if the block ends."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "data")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def table(schema: list[tuple[str, pa.DataType]], data: dict) -> pa.Table:
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
