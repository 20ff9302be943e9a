"""Writing result files atomically (a temporary name in the same directory, then os.replace), so a
reader never sees a half-written file, and plain-value conversion for JSON and table cells."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["atomic_write", "write_json", "write_parquet", "write_figure", "plain", "cell"]


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call write(tmp) on a fresh temporary path next to `path`, then rename it to `path`; returns `path`."""
    path = Path(path)
    tmp = str(path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(plain(obj), f, indent=2, allow_nan=False)
            f.write("\n")

    return atomic_write(path, write)


def write_parquet(path: str | Path, df: pd.DataFrame) -> Path:
    """Save `df` without its index; a text column that also holds numbers (jobs of a sweep that set a key
    differently) is stored as text."""
    mixed = [c for c in df.columns if df[c].dtype == object and len({type(v) for v in df[c].dropna()}) > 1]
    if mixed:
        df = df.assign(**{c: df[c].map(lambda v: v if v is None or pd.isna(v) else str(v)) for c in mixed})
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_figure(path: str | Path, fig) -> Path:
    """Save a matplotlib Figure (format from the suffix of `path`)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120))


def plain(obj: Any) -> Any:
    """`obj` with NumPy scalars and arrays turned into Python values and NaN/inf into None (JSON-ready)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def cell(value: Any) -> Any:
    """A value fit for one table cell: scalars as they are, anything else (lists, tuples) as its text."""
    value = plain(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
