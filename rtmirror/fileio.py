"""Writing files so that nothing is ever half-written: the one atomic-write helper.

`atomic_write(path)` opens a temporary file beside `path`, and on success flushes, fsyncs and
renames it over `path` (os.replace: readers see the old file or the new one, never a mix). On an
exception the temporary file is removed and `path` is untouched. A replaced file keeps its
permission bits; a new file gets the usual umask mode (0644 under umask 022), not mkstemp's 0600.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kw):
    """with atomic_write("out.json") as f: f.write(...)  -- mode "w" (text) or "wb"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    try:
        keep = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        keep = _umask_mode()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError:
        raise PermissionError(f"{path}: cannot write in {path.parent} (permission denied)") from None
    try:
        with os.fdopen(fd, mode, **open_kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, keep)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json_atomic(path: str | Path, obj, **dump_kw) -> None:
    """JSON (no NaN: allow_nan=False unless asked) with a trailing newline."""
    dump_kw.setdefault("allow_nan", False)
    write_text_atomic(path, json.dumps(obj, **dump_kw) + "\n")


def save_npy_atomic(path: str | Path, array) -> None:
    import numpy as np

    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def write_if_changed(path: str | Path, data: bytes) -> bool:
    """Write only when the bytes differ from the file's (report media: regenerating a report that
    did not change leaves git history alone). Returns whether it wrote."""
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return False
    write_bytes_atomic(path, data)
    return True


class UserError(ValueError):
    """Bad input or a bad combination of paths: one line for the user, no traceback."""


def check_outputs(inputs: dict[str, str | Path | None], outputs: dict[str, str | Path | None]) -> None:
    """Refuse an output path that is an input or another output (the same file through any
    spelling or symlink): `rtmirror file take.wav -o take.wav` must not replace the recording."""
    def key(p):
        p = Path(p)
        return os.path.realpath(p)

    seen = {key(p): flag for flag, p in inputs.items() if p is not None}
    for flag, p in outputs.items():
        if p is None:
            continue
        k = key(p)
        if k in seen:
            raise UserError(f"{flag} {p} is the same file as {seen[k]}: choose another output path")
        seen[k] = flag
        check_writable(flag, p)


def check_writable(flag: str, path: str | Path) -> None:
    """Refuse, before any work, an output that cannot be written: its folder missing or not
    writable, or a folder in its place (the atomic write would fail only at the end)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UserError(f"{flag} {p} is a folder: give a file name")
    if not parent.is_dir():
        raise UserError(f"{flag} {p}: the folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {p}: the folder {parent} is not writable; choose another output path")
