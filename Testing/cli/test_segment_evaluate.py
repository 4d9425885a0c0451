"""`segment` and `evaluate` on the command line."""

from __future__ import annotations

import json

import pytest

from IVUSReconstructLib.cli import main
from IVUSReconstructLib.io.contours import read_contours


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "ph"
    assert (
        main(
            [
                "phantom",
                "--preset",
                "coronary",
                "--seed",
                "3",
                "--length-mm",
                "3",
                "--size-px",
                "160",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_segment_chosen_frames(phantom_dir, tmp_path):
    out = tmp_path / "pred.json"
    assert main(["segment", str(phantom_dir / "pullback.dcm"), "--frames", "0-20,40", "--out", str(out)]) == 0
    contours = read_contours(out)
    assert contours.indices.tolist() == [*range(21), 40]
    assert all(f.vessel is not None and f.confidence is not None for f in contours.frames)


def test_evaluate_truth_against_itself_is_perfect(phantom_dir, tmp_path, capsys):
    truth = phantom_dir / "truth_contours.json"
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--pred", str(truth), "--truth", str(truth), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    lumen = doc["summary"]["lumen"]
    assert lumen["jaccard"]["mean"] == pytest.approx(1.0, abs=1e-9)
    assert lumen["hausdorff_mm"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert "jaccard" in capsys.readouterr().out


def test_evaluate_segmentation_against_truth(phantom_dir, tmp_path):
    pred = tmp_path / "pred.json"
    assert (
        main(["segment", str(phantom_dir / "pullback.dcm"), "--frames", "0-60:10", "--out", str(pred)]) == 2
    )
    assert (
        main(
            [
                "segment",
                str(phantom_dir / "pullback.dcm"),
                "--frames",
                "0,10,20,30,40,50,60",
                "--out",
                str(pred),
            ]
        )
        == 0
    )
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(pred),
                "--truth",
                str(phantom_dir / "truth_contours.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["summary"]["lumen"]["n_frames"] == 7
    # a real overlap, far from chance and from perfect agreement with itself
    assert 0.7 < doc["summary"]["lumen"]["jaccard"]["mean"] < 1.0
    assert 0.7 < doc["summary"]["vessel"]["jaccard"]["mean"] < 1.0
