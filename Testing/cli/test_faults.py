"""Faults a run must survive: SIGKILL at random points, a full disk, a read-only or forbidden output
place, two runs on one output folder, stale partial folders of dead runs.

Each test checks that nothing is lost (inputs hashed before and after; an earlier output is kept
whole) and nothing is half-written (the output folder is absent or complete; no partial folder or
claim is left once a run has finished).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from IVUSReconstructLib import output_place, pipeline
from IVUSReconstructLib.cli import main
from IVUSReconstructLib.output_place import CLAIM_SUFFIX

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "IVUSReconstruct")}


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """A short phantom, its truth contours (no segmentation: the runs spend their time writing)."""
    root = tmp_path_factory.mktemp("faults")
    args = ["phantom", "--preset", "coronary", "--length-mm", "2", "--size-px", "64", "--seed", "3"]
    assert main([*args, "--out", str(root / "in")]) == 0
    folder = root / "in"
    run = [
        str(folder / "pullback.dcm"),
        "--centerline",
        str(folder / "centerline.mrk.json"),
        "--contours",
        str(folder / "truth_contours.json"),
    ]
    ref = root / "ref"
    assert main(["run", *run, "--out", str(ref)]) == 0
    summary = json.loads((ref / "summary.json").read_text())
    return {"folder": folder, "run": run, "files": sorted(p.name for p in ref.iterdir()), "summary": summary}


def _volumes(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["volumes_mm3"]


def _assert_absent_or_complete(out: Path, inputs: dict) -> None:
    if out.exists():
        assert sorted(p.name for p in out.iterdir()) == inputs["files"]
        assert _volumes(out) == inputs["summary"]["volumes_mm3"]


def _siblings(out: Path) -> list[str]:
    return sorted(
        p.name for p in out.parent.iterdir() if p.name != out.name and p.name.startswith(f".{out.name}.")
    )


def _cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "IVUSReconstructLib.cli", *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


# --------------------------------------------------------------------------- SIGKILL


@pytest.mark.slow
def test_sigkill_at_20_random_points_leaves_no_output_or_a_complete_one(inputs, tmp_path):
    before = _digest(inputs["folder"])
    out = tmp_path / "out"
    t0 = time.perf_counter()
    proc = _cli(["run", *inputs["run"], "--out", str(out)])
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    duration = time.perf_counter() - t0  # only to spread the kills over a run, not asserted
    rng = random.Random(19)
    outcomes = {"absent": 0, "complete": 0, "mid_run": 0}
    for _ in range(20):
        proc = _cli(["run", *inputs["run"], "--out", str(out)])
        time.sleep(rng.uniform(0.0, 1.1 * duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        _assert_absent_or_complete(out, inputs)
        outcomes["complete" if out.exists() else "absent"] += 1
        # a kill that left a marked partial folder landed while the run was writing
        outcomes["mid_run"] += any(".partial-" in name for name in _siblings(out))
        # what a killed run leaves is only its own, marked partial folder and claim
        for name in _siblings(out):
            assert ".partial-" in name, name
            stem = name[: -len(CLAIM_SUFFIX)] if name.endswith(CLAIM_SUFFIX) else name.removesuffix("-old")
            assert (out.parent / (stem + CLAIM_SUFFIX)).exists(), name
        if rng.random() < 0.3:  # sometimes start over, so that kills also hit first runs
            import shutil

            shutil.rmtree(out, ignore_errors=True)
    # "complete" alone could not fail (the reference run made the output): the kills must also
    # have hit runs in the middle of writing
    assert outcomes["mid_run"] > 0, outcomes
    # the next run clears what the killed ones left
    assert main(["run", *inputs["run"], "--out", str(out)]) == 0
    _assert_absent_or_complete(out, inputs)
    assert _siblings(out) == []
    assert _digest(inputs["folder"]) == before


# --------------------------------------------------------------------------- disk full


def test_injected_enospc_while_writing(inputs, tmp_path, monkeypatch, capsys):
    """A full disk mid-write (after the meshes, while writing a table): exit 2, nothing left, the
    earlier output kept whole."""
    out = tmp_path / "out"
    assert main(["run", *inputs["run"], "--out", str(out)]) == 0
    kept = _digest(out)
    capsys.readouterr()

    def full(path, header, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pipeline, "_write_csv", full)
    assert main(["run", *inputs["run"], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ivus-reconstruct: error: {out.absolute()}: no space left on the device")
    assert err.count("\n") == 1
    assert _siblings(out) == [] and _digest(out) == kept


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir()
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return proc.returncode == 0


@pytest.fixture
def tiny_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=1200k"):
        pytest.skip("mounting a tmpfs needs root")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_refused_before_writing(inputs, tiny_disk, capsys):
    before = _digest(inputs["folder"])
    out = tiny_disk / "out"
    assert main(["run", *inputs["run"], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device of the output folder (1.2 MB free, about" in err
    assert err.count("\n") == 1
    assert list(tiny_disk.iterdir()) == [] and _digest(inputs["folder"]) == before


def test_disk_filling_up_while_writing(inputs, tiny_disk, capsys, monkeypatch):
    """Without the up-front check the disk fills while the meshes are written (the native VTK
    writer used to abort the process there): exit 2, nothing left."""
    monkeypatch.setattr(pipeline, "output_bytes_estimate", lambda result: 0)
    out = tiny_disk / "out"
    assert main(["run", *inputs["run"], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: no space left on the device of the output folder" in err and err.count("\n") == 1
    assert list(tiny_disk.iterdir()) == []


# --------------------------------------------------------------------------- permissions


def test_read_only_output_place(inputs, tmp_path, capsys):
    ro = tmp_path / "ro"
    if not _mount_tmpfs(ro, "ro,size=64k"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        out = ro / "sub" / "out"
        assert main(["run", *inputs["run"], "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"ivus-reconstruct: error: {out}: the output cannot be written (read-only file system in "
            f"{ro / 'sub'}); choose an output folder you can write to\n"
        )
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_forbidden_output_place(inputs, tmp_path, capsys, monkeypatch):
    """No permission (injected: the tests may run as root, who has every permission)."""
    real_open = os.open

    def forbidden(path, flags, mode=0o777, **kwargs):
        if str(path).endswith(CLAIM_SUFFIX):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(output_place.os, "open", forbidden)
    out = tmp_path / "locked" / "out"
    assert main(["run", *inputs["run"], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ivus-reconstruct: error: {out}: the output cannot be written (permission denied in "
        f"{out.parent}); choose an output folder you can write to\n"
    )
    assert not out.exists() and _siblings(out) == []


# --------------------------------------------------------------------------- concurrency, stale


def test_second_run_on_the_same_folder_is_refused(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    first = output_place.claim(out)  # a live run (this process holds its claim)
    try:
        assert main(["run", *inputs["run"], "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(
            f"ivus-reconstruct: error: {out}: another ivus-reconstruct run (process {os.getpid()}"
        )
        assert err.rstrip().endswith("wait for it to finish or choose another output folder")
        assert first.tmp.is_dir() and not out.exists()
    finally:
        output_place.release(first)
    assert _siblings(out) == []


@pytest.mark.slow  # over 9 s (pytest --durations, 2 shared cores)
def test_two_concurrent_runs_one_wins(inputs, tmp_path):
    before = _digest(inputs["folder"])
    out = tmp_path / "out"
    a = _cli(["run", *inputs["run"], "--out", str(out)])
    deadline = time.time() + 60
    while not _siblings(out) and time.time() < deadline:
        time.sleep(0.02)
    b = _cli(["run", *inputs["run"], "--out", str(out)])
    rb = b.wait(timeout=300)
    ra = a.wait(timeout=300)
    assert (ra, rb) == (0, 2), (a.stderr.read(), b.stderr.read())
    assert "another ivus-reconstruct run" in b.stderr.read()
    _assert_absent_or_complete(out, inputs)
    assert out.exists() and _siblings(out) == [] and _digest(inputs["folder"]) == before


def test_stale_partials_of_dead_runs_are_removed_and_only_those(inputs, tmp_path):
    out = tmp_path / "out"
    dead = output_place.claim(out)
    (dead.tmp / "lumen.vtp").write_text("half")
    os.close(dead.fd)  # the process "dies": its lock goes, its files stay
    foreign = tmp_path / ".out.partial-by-hand"  # looks like ours but has no claim
    foreign.mkdir()
    other = output_place.claim(tmp_path / "other")  # another output's live run
    try:
        assert main(["run", *inputs["run"], "--out", str(out)]) == 0
        assert not dead.tmp.exists() and not dead.marker.exists()
        assert foreign.is_dir() and other.tmp.is_dir() and other.marker.exists()
        assert _siblings(out) == [".out.partial-by-hand"]
    finally:
        output_place.release(other)


def test_input_error_after_the_claim_leaves_nothing(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    bad = tmp_path / "c.json"
    bad.write_text('{"format": "ivus-contours", "version": 99, "frames": []}')
    run = [*inputs["run"][:3], "--contours", str(bad)]
    assert main(["run", *run, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ivus-reconstruct: error: {bad}: version is 99, not a version this release reads (1); "
        "write it with this release (or a newer IVUSReconstruct for a newer file)\n"
    )
    assert list(tmp_path.iterdir()) == [bad]
