"""Atomic file writes: a crash never leaves a half-written checkpoint or report.

The files get the permissions an ordinary `open(path, "w")` would give them: a new file
0666 minus the process umask (0644 under the usual 022), a replaced file keeps the mode
it had.
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import stat


def _create_temp(path: pathlib.Path) -> tuple[int, str]:
    """A new, empty, uniquely named file beside `path`, created with mode 0666 so the kernel
    applies the umask (and any default ACL) exactly as for a normal file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _keep_mode(fd: int, path: pathlib.Path) -> None:
    """A file being replaced keeps its permission bits (as writing it in place would)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    try:
        os.fchmod(fd, mode)
    except (OSError, AttributeError):
        pass


def atomic_write_bytes(path, data: bytes) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            _keep_mode(f.fileno(), path)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save(path, save_fn) -> None:
    """Call `save_fn(tmp_path)` (a writer that wants a file name) then rename into place.

    The temporary name keeps the final suffix so writers that pick a format by
    extension (Keras `.h5`, `.keras`) still do.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        save_fn(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
