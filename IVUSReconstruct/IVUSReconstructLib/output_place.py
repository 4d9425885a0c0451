"""Output folders that appear complete or not at all, whatever happens to the process.

A run writes into ``.<name>.partial-<key>`` beside the output folder and moves it into place only
when everything is written. Next to that folder lies its claim, ``.<name>.partial-<key>.ivus-claim``,
an empty file the run holds an exclusive ``flock`` on for as long as it lives:

- the kernel drops the lock when the process dies, however it dies (SIGKILL, out of memory, power
  cut on a local disk), so a claim nobody holds marks a partial folder this tool left behind; the
  next run for the same output removes those, and only those (a folder without a claim, or whose
  claim is held, is never touched);
- a claim somebody holds is a live run: two runs for one output folder see each other's claims,
  and the one that claimed later (the ``<key>`` starts with the claim time) is refused;
- the finished folder is swapped with the old output in one ``renameat2(RENAME_EXCHANGE)`` where
  the system has it, so a reader sees the old or the new output, never neither.

Failures of the output place itself (no permission, read-only file system, disk full) become
:class:`IVUSInputError` naming the folder, and nothing is left behind.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import IVUSInputError, input_error

try:  # POSIX; on Windows the claim is a plain file (no stale detection, no lock)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CLAIM_SUFFIX",
    "Claim",
    "atomic_folder",
    "check_free_space",
    "claim",
    "claim_for_run",
    "output_error",
    "prepare_out_dir",
    "release_run_claims",
    "remove_stale_partials",
]

CLAIM_SUFFIX = ".ivus-claim"
# errors of the output place a user fixes (space, permission), not bugs
_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_ACCESS_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
# below this much free space after a failed write, the failure is taken as a full disk (native
# writers report a full disk as their own error types)
_NEARLY_FULL_BYTES = 1 << 20


@dataclass
class Claim:
    """A live run's hold on an output folder: its partial folder and its locked claim file."""

    out: Path
    tmp: Path
    marker: Path
    fd: int


# claims taken at the start of a command (``claim_for_run``), used by ``atomic_folder`` later
_RUN_CLAIMS: dict[Path, Claim] = {}


def prepare_out_dir(out_dir: Path) -> None:
    """Refuse to replace a folder that is not an earlier output of this tool."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise input_error(out_dir, "output folder", "is a file", "give a folder path")
        entries = list(out_dir.iterdir())
        if entries and not (out_dir / "summary.json").exists():
            raise input_error(
                out_dir,
                "output folder",
                "is a non-empty folder that is not an IVUSReconstruct output",
                "choose a new folder",
            )


def output_error(exc: OSError, out_dir: Path) -> IVUSInputError | None:
    """The user-facing error for a full disk or a forbidden output place (None for other errors)."""
    if exc.errno in _SPACE_ERRNOS:
        return _no_space(out_dir)
    if exc.errno in _ACCESS_ERRNOS:
        where = Path(exc.filename) if exc.filename else out_dir.parent
        if where.name.startswith(f".{out_dir.name}."):  # our partial folder or claim: name the place
            where = where.parent
        return IVUSInputError(
            f"{out_dir}: the output cannot be written ({os.strerror(exc.errno).lower()} in {where}); "
            "choose an output folder you can write to"
        )
    return None


def _no_space(out_dir: Path) -> IVUSInputError:
    free = _free_bytes(out_dir)
    shown = "" if free is None else f" ({free / 1e6:.1f} MB free)"
    return IVUSInputError(
        f"{out_dir}: no space left on the device of the output folder{shown}; nothing was written: "
        "free some space or choose another output folder"
    )


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def check_free_space(out_dir: Path, need_bytes: int) -> None:
    """Refuse before writing when the output's file system has less than ``need_bytes`` free."""
    free = _free_bytes(out_dir)
    if need_bytes > 0 and free is not None and free < need_bytes:
        raise IVUSInputError(
            f"{out_dir}: no space left on the device of the output folder ({free / 1e6:.1f} MB free, "
            f"about {need_bytes / 1e6:.1f} MB needed); nothing was written: free some space or choose "
            "another output folder"
        )


# --------------------------------------------------------------------------------------------
# claims


def _lock(fd: int) -> bool:
    """Take the exclusive lock without waiting; False when another process holds it."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _stem(marker: Path) -> str:
    return marker.name[: -len(CLAIM_SUFFIX)]


def _remove_claimed(marker: Path) -> None:
    """Remove a claim's partial folder (and a half-swapped ``-old`` one), then the claim."""
    stem = _stem(marker)
    for path in (marker.with_name(stem), marker.with_name(stem + "-old")):
        shutil.rmtree(path, ignore_errors=True)
    marker.unlink(missing_ok=True)


def remove_stale_partials(parent: Path, name: str | None = None) -> list[Path]:
    """Remove partial folders of runs that died, for output ``name`` (all outputs when None).

    Only folders with a claim file that no live process holds are removed.

    Returns
    -------
    list of Path
        The partial folders removed.
    """
    pattern = f".{name}.partial-*{CLAIM_SUFFIX}" if name else f".*.partial-*{CLAIM_SUFFIX}"
    removed = []
    for marker in sorted(Path(parent).glob(pattern)):
        try:
            fd = os.open(marker, os.O_RDWR)
        except OSError:
            continue
        try:
            if _lock(fd):
                _remove_claimed(marker)
                removed.append(marker.with_name(_stem(marker)))
        finally:
            os.close(fd)
    return removed


def claim(out_dir: Path) -> Claim:
    """Claim ``out_dir`` for this process: lock a claim, make the partial folder, clear stale ones.

    Raises
    ------
    IVUSInputError
        The folder is not an output of this tool, another live run claimed it first, or the
        place cannot be written (permission, read-only, full).
    """
    out = Path(out_dir).absolute()
    prepare_out_dir(out)
    parent = out.parent
    key = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    stem = f".{out.name}.partial-{key}"
    marker = parent / (stem + CLAIM_SUFFIX)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        # the claim first: a process killed before its folder exists leaves only a claim
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    except OSError as exc:
        raise (output_error(exc, out) or exc) from None
    _lock(fd)
    this = Claim(out, parent / stem, marker, fd)
    try:
        this.tmp.mkdir()
        remove_stale_partials(parent, out.name)
        earlier = sorted(
            m for m in parent.glob(f".{out.name}.partial-*{CLAIM_SUFFIX}") if m.name < marker.name
        )
        if earlier:
            pid = _stem(earlier[0]).rsplit("-", 2)[-2]
            raise IVUSInputError(
                f"{out}: another ivus-reconstruct run (process {pid} on {socket.gethostname()} or a "
                "host sharing this folder) is writing this output folder; wait for it to finish or "
                "choose another output folder"
            )
    except BaseException as exc:
        release(this)
        if isinstance(exc, OSError) and output_error(exc, out) is not None:
            raise output_error(exc, out) from None
        raise
    return this


def release(c: Claim) -> None:
    """Give up a claim: remove its partial folder and the claim file (nothing is left behind)."""
    shutil.rmtree(c.tmp, ignore_errors=True)
    c.marker.unlink(missing_ok=True)
    try:
        os.close(c.fd)
    except OSError:
        pass
    _RUN_CLAIMS.pop(c.out, None)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def commit(c: Claim) -> None:
    """Move the finished partial folder into place, replacing an earlier output."""
    if c.out.exists():
        if _exchange(c.tmp, c.out):
            shutil.rmtree(c.tmp, ignore_errors=True)  # now the old output
        else:
            old = c.tmp.with_name(c.tmp.name + "-old")
            c.out.rename(old)
            c.tmp.rename(c.out)
            shutil.rmtree(old, ignore_errors=True)
    else:
        c.tmp.rename(c.out)
    release(c)


def claim_for_run(out_dir: Path) -> Claim:
    """Claim ``out_dir`` at the start of a command, held until ``atomic_folder`` commits it or
    :func:`release_run_claims` gives it up (the command line calls it on every exit)."""
    c = claim(out_dir)
    _RUN_CLAIMS[c.out] = c
    return c


def release_run_claims() -> None:
    """Give up every claim of this process that was not committed."""
    for c in list(_RUN_CLAIMS.values()):
        release(c)


def atomic_folder(out_dir: Path, fill: Callable[[Path], Any], *, need_bytes: int = 0) -> Any:
    """Run ``fill(tmp)`` on the claimed partial folder of ``out_dir``, then move it into place.

    On any error the partial folder and its claim are removed and ``out_dir`` is left as it was.

    Parameters
    ----------
    out_dir : Path
    fill : callable(Path)
    need_bytes : int
        Expected size of the output: refused before writing when the disk has less free.

    Raises
    ------
    IVUSInputError
        Besides the errors of ``fill``: a full disk or a forbidden place, naming the folder.
    """
    out = Path(out_dir).absolute()
    c = _RUN_CLAIMS.get(out) or claim(out)
    try:
        check_free_space(out, need_bytes)
        value = fill(c.tmp)
        commit(c)
        return value
    except OSError as exc:
        release(c)
        translated = output_error(exc, out)
        if translated is not None:
            raise translated from None
        raise
    except IVUSInputError:
        release(c)
        raise
    except BaseException:
        free = _free_bytes(out.parent)  # before the partial folder's space is given back
        release(c)
        if free is not None and free < _NEARLY_FULL_BYTES:
            raise _no_space(out) from None
        raise
