"""`segment` on a folder of exported frames: chosen frames need no frame rate."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from IVUSReconstructLib.cli import main
from IVUSReconstructLib.phantom import make_phantom


def test_segment_chosen_frames_of_an_image_folder_without_frame_rate(tmp_path: Path, capsys) -> None:
    frames = make_phantom("coronary", length_mm=0.3, size_px=128, seed=4).pullback.frames
    folder = tmp_path / "export"
    folder.mkdir()
    for k, frame in enumerate(frames[:6]):
        Image.fromarray(frame).save(folder / f"{k + 1:03d}.png")
    out = tmp_path / "contours.json"
    assert (
        main(["segment", str(folder), "--frames", "all", "--pixel-spacing", "0.039", "--out", str(out)]) == 0
    )
    doc = json.loads(out.read_text())
    assert [f["index"] for f in doc["frames"]] == [0, 1, 2, 3, 4, 5]
    assert "6 frames segmented" in capsys.readouterr().out
