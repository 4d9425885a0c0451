"""Keyframes on the command line and in batch manifests: borders kept exactly, provenance in
every output, and refusals that name the file, the frame and the fix."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from IVUSReconstructLib.cli import main
from IVUSReconstructLib.geometry import mm_to_px, polygon_area
from IVUSReconstructLib.io.contours import read_contours

KEYS = (10, 40)


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kf") / "ph"
    args = ["phantom", "--preset", "coronary", "--seed", "3", "--length-mm", "2", "--size-px", "128"]
    assert main([*args, "--out", str(out)]) == 0
    return out


def _truth_doc(phantom_dir: Path) -> dict:
    return json.loads((phantom_dir / "truth_contours.json").read_text())


def _keyframes(phantom_dir: Path, path: Path, keys=KEYS, edit=None) -> Path:
    doc = _truth_doc(phantom_dir)
    doc["frames"] = [f for f in doc["frames"] if f["index"] in keys]
    for f in doc["frames"]:
        if edit is not None:
            edit(f)
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def truth(phantom_dir):
    return {f.index: f for f in read_contours(phantom_dir / "truth_contours.json").frames}


@pytest.fixture(scope="module")
def run_dir(phantom_dir, tmp_path_factory) -> Path:
    keys = _keyframes(phantom_dir, tmp_path_factory.mktemp("keys") / "edits.json")
    out = tmp_path_factory.mktemp("run") / "out"
    args = [
        "run",
        str(phantom_dir / "pullback.dcm"),
        "--centerline",
        str(phantom_dir / "centerline.mrk.json"),
    ]
    assert main([*args, "--keyframes", str(keys), "--gating", "none", "--out", str(out)]) == 0
    return out


def test_segment_keeps_the_keyframes_and_propagates_the_others(phantom_dir, truth, tmp_path, capsys):
    keys = _keyframes(phantom_dir, tmp_path / "edits.json")
    out = tmp_path / "pred.json"
    pb = str(phantom_dir / "pullback.dcm")
    assert main(["segment", pb, "--frames", "0-59", "--keyframes", str(keys), "--out", str(out)]) == 0
    assert f"60 frames segmented (2 keyframes kept, the others propagated from them) -> {out}" in (
        capsys.readouterr().out
    )
    got = read_contours(out)
    assert [f.index for f in got.frames if f.source == "edited"] == list(KEYS)
    assert sum(f.source == "propagated" for f in got.frames) == 58
    for f in got.frames:
        if f.index in KEYS:
            # 5 decimals in both files
            assert np.abs(f.lumen - truth[f.index].lumen).max() <= 1e-5
            assert np.abs(f.vessel - truth[f.index].vessel).max() <= 1e-5
    # evaluate measures the propagation on the frames between, without the reference's own borders
    report = tmp_path / "eval.json"
    truth_file = str(phantom_dir / "truth_contours.json")
    assert main(["evaluate", "--pred", str(out), "--truth", truth_file, "--out", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["summary"]["lumen"]["n_frames"] == 60
    assert doc["summary_without_keyframes"]["lumen"]["n_frames"] == 58
    jaccard = dict(zip(doc["per_frame"]["lumen"]["frame"], doc["per_frame"]["lumen"]["jaccard"], strict=True))
    others = [v for k, v in jaccard.items() if k not in KEYS]
    assert doc["summary_without_keyframes"]["lumen"]["jaccard"]["mean"] == pytest.approx(
        np.mean(others), abs=1e-12
    )
    assert "without the keyframes (frames whose source is edited):" in capsys.readouterr().out


def test_run_records_the_keyframes_in_summary_frames_csv_and_report(run_dir, truth):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["inputs"]["files"]["keyframes"] == "edits.json"
    assert summary["inputs"]["keyframes"] == {
        "file": "edits.json",
        "frames": list(KEYS),
        "lumen_frames": list(KEYS),
        "vessel_frames": list(KEYS),
    }
    n = summary["inputs"]["analysed_frames"]["value"]
    assert summary["segmentation"]["sources"] == {"edited": 2, "propagated": n - 2, "automatic": 0}
    with (run_dir / "frames.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["frame"]) for r in rows if r["source"] == "edited"] == list(KEYS)
    assert {r["source"] for r in rows} == {"edited", "propagated"}
    for r in rows:
        if int(r["frame"]) in KEYS:
            # the reader's lumen is measured as drawn (6 significant digits in frames.csv)
            assert float(r["lumen_area_mm2"]) == pytest.approx(
                polygon_area(truth[int(r["frame"])].lumen), rel=1e-5
            )
    report = (run_dir / "report.html").read_text()
    # the L-mode's legend, the keyframe gallery's caption and one title per keyframe
    assert report.count("Keyframe (edited)") == 1
    assert (
        "Keyframes: the borders a reader drew (kept exactly), lumen (red) and vessel (blue); frames 10, 40"
        in report
    )
    assert report.count("keyframe (edited)") >= len(KEYS)


def test_batch_manifest_keyframes_column_is_relative_to_the_manifest(phantom_dir, tmp_path):
    from IVUSReconstructLib.batch import read_manifest, run_case

    _keyframes(phantom_dir, tmp_path / "edits.json")
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"id,pullback,keyframes,gating\nc1,{phantom_dir / 'pullback.dcm'},edits.json,none\n")
    (case,) = read_manifest(manifest)
    assert case.paths["keyframes"] == str(tmp_path / "edits.json")
    outcome = run_case(case, str(tmp_path / "batch"))
    assert outcome["status"] == "ok", outcome
    summary = json.loads((tmp_path / "batch" / "cases" / "c1" / "summary.json").read_text())
    assert summary["inputs"]["keyframes"]["frames"] == list(KEYS)
    assert summary["segmentation"]["sources"]["edited"] == 2


# ----------------------------------------------------------------------------- refusals


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("ivus-reconstruct: error:")]
    assert len(lines) == 1
    return lines[0].removeprefix("ivus-reconstruct: error: ")


def _segment(phantom_dir, keys, out) -> list[str]:
    return [
        "segment",
        str(phantom_dir / "pullback.dcm"),
        "--frames",
        "0-5",
        "--keyframes",
        str(keys),
        "--out",
        str(out),
    ]


def test_keyframe_outside_the_pullback_is_refused(phantom_dir, tmp_path, capsys):
    def renumber(f):
        f["index"] = f["index"] + 500

    keys = _keyframes(phantom_dir, tmp_path / "late.json", keys=(10,), edit=renumber)
    out = tmp_path / "pred.json"
    assert _error(capsys, _segment(phantom_dir, keys, out)) == (
        f"{keys}: frame 510 is outside the pullback's frames 0-119; give keyframes of this pullback (0-based frame numbers)"
    )
    assert not out.exists()


def test_keyframe_outside_the_image_is_refused(phantom_dir, tmp_path, capsys):
    def shift(f):
        # 6 mm to the right: off a 128 px frame of 0.078 mm pixels (5 mm each side of the catheter)
        for border in ("lumen", "vessel"):
            f[border] = [[x + 6.0, y] for x, y in f[border]]

    keys = _keyframes(phantom_dir, tmp_path / "shifted.json", keys=(10,), edit=shift)
    doc = json.loads(keys.read_text())
    sp, centre = doc["pixel_spacing_mm"], doc["catheter_center_px"]
    px = mm_to_px(np.asarray(doc["frames"][0]["lumen"]), sp, centre)
    first = px[np.flatnonzero((px[:, 1] > 127.5) | (px[:, 0] > 127.5) | (px < -0.5).any(axis=1))[0]]
    out = tmp_path / "pred.json"
    assert _error(capsys, _segment(phantom_dir, keys, out)) == (
        f"{keys}: frame 10 lumen reaches pixel (row {first[0]:.0f}, col {first[1]:.0f}), outside the 128 x 128 "
        "image; give borders drawn on this pullback's frames (in mm about its catheter centre, or with the "
        "file's own pixel_spacing_mm and catheter_center_px)"
    )
    assert not out.exists()


def test_lumen_outside_its_vessel_is_refused(phantom_dir, tmp_path, capsys):
    def swap(f):
        f["lumen"], f["vessel"] = f["vessel"], f["lumen"]

    keys = _keyframes(phantom_dir, tmp_path / "swapped.json", keys=(40,), edit=swap)
    out = tmp_path / "pred.json"
    assert _error(capsys, _segment(phantom_dir, keys, out)) == (
        f"{keys}: frame 40 lumen lies 100% outside its vessel border (at most 20% allowed); check that "
        "lumen and vessel are not swapped and belong to the same frame"
    )
    assert not out.exists()


def test_keyframes_with_contours_of_every_frame_are_refused(phantom_dir, tmp_path, capsys):
    keys = _keyframes(phantom_dir, tmp_path / "edits.json")
    out = tmp_path / "out"
    argv = ["run", str(phantom_dir / "pullback.dcm"), "--contours", str(phantom_dir / "truth_contours.json")]
    assert _error(capsys, [*argv, "--keyframes", str(keys), "--out", str(out)]) == (
        f"{keys}: keyframes guide the segmentation, and contours for every frame skip it; give keyframes (a few "
        "corrected frames) or contours (every frame), not both"
    )
    assert not out.exists()
