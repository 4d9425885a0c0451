"""Automatic borders on public real IVUS frames: the figures of the real-image borders issue.

The frames carry no licence and are never part of this repository: fetch them yourself and point
``IVUS_REAL_FRAMES`` (or ``--root``) at a folder holding

- ``IVUS-100.v1i.tensorflow/{train,valid,test}/`` (``NattapongSt/IVUS``): 100 Volcano 20 MHz frames
  of the 2011 challenge set B, 384 x 384 px at 0.026 mm, 20 gated positions x 5 neighbouring
  frames (``frame_01_GGGG_AAA``), one loose lumen bounding box each (``_annotations.csv``);
- ``ivus_collector/patient1/{preLAD,preRCA}/`` (``lgy1425/ivus_collector``): consecutive clinical
  frames of a high-frequency rotational console, 480 x 480 screen exports with 1 mm dots every
  44 px;
- ``other/Sample Real Images/`` (``Sanchit987/IVUS-images-project``): ten frames of a third,
  high-frequency rotational console as RGB secondary-capture DICOMs without a pixel spacing
  (0.02 mm assumed: a 10 mm field over about 500 px).

Set B: each gated position's five neighbouring frames form one short pullback (so blood
decorrelation is available); the lumen's bounding box is compared with the annotated box (IoU).
Pullbacks: every ``--step``-th frame of the usable range (as ``run`` finds it) is segmented with
its neighbours; the
figures are the share of frames whose lumen lies inside the vessel and the median relative change
of lumen and vessel area between neighbouring analysed frames. ``--overlays DIR`` writes PNG
mosaics of the borders to look at.

    python Testing/benchmarks/bench_realframes.py --setb --pullbacks --overlays /tmp/real
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from IVUSReconstructLib.geometry import polygon_area
from IVUSReconstructLib.io import dicom
from IVUSReconstructLib.io.images import read_pullback
from IVUSReconstructLib.pullback_structure import find_pullback_structure
from IVUSReconstructLib.segmentation import segment_pullback
from IVUSReconstructLib.types import Pullback

SETB = "IVUS-100.v1i.tensorflow"
SETB_SPACING_MM = 0.026
PULLBACKS = {"LAD": "ivus_collector/patient1/preLAD", "RCA": "ivus_collector/patient1/preRCA"}
# 1 mm calibration dots every 44 px on these exports
PULLBACK_SPACING_MM = 1.0 / 44.0
THIRD = "other/Sample Real Images"
THIRD_SPACING_MM = 0.02


def _root(arg: str | None) -> Path | None:
    root = arg or os.environ.get("IVUS_REAL_FRAMES")
    return Path(root) if root and Path(root).is_dir() else None


def setb_boxes(root: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Set-B frames by gated position: [(path, box (xmin, ymin, xmax, ymax) px)] in frame order."""
    by_position: dict[str, list[tuple[str, str, np.ndarray]]] = {}
    for split in ("train", "valid", "test"):
        folder = root / SETB / split
        with open(folder / "_annotations.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                _, _, position, neighbour = row["filename"].split("_")[:4]
                box = np.array([float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
                by_position.setdefault(position, []).append((neighbour, str(folder / row["filename"]), box))
    return {p: [(path, box) for _, path, box in sorted(v)] for p, v in sorted(by_position.items())}


def _read_stack(paths: list[str], spacing_mm: float) -> Pullback:
    """The frames as one pullback, read by the project's own folder reader (FOV, catheter)."""
    with tempfile.TemporaryDirectory() as tmp:
        for k, p in enumerate(paths):
            os.symlink(p, Path(tmp) / f"{k:05d}{Path(p).suffix}")
        pb = read_pullback(tmp, pixel_spacing_mm=spacing_mm, frame_rate_hz=30.0, pullback_speed_mm_s=0.5)
        return Pullback(**{**pb.__dict__, "frames": np.array(pb.frames)})


def to_px(points_mm: np.ndarray, pb: Pullback) -> np.ndarray:
    """Frame-plane mm (x along columns) to pixel (col, row) for drawing."""
    cr, cc = pb.catheter_center_px
    sr, sc = pb.pixel_spacing_mm
    return np.column_stack([cc + points_mm[:, 0] / sc, cr + points_mm[:, 1] / sr])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _overlay(frame: np.ndarray, pb: Pullback, fc, label: str, box: np.ndarray | None = None) -> Image.Image:
    im = Image.fromarray(np.asarray(frame, dtype=np.uint8)).convert("RGB")
    d = ImageDraw.Draw(im)
    for poly, colour in ((fc.lumen, (255, 210, 0)), (fc.vessel, (0, 200, 255))):
        if poly is not None and len(poly):
            xy = [tuple(p) for p in to_px(np.asarray(poly), pb)]
            d.line(xy + [xy[0]], fill=colour, width=2)
    if box is not None:
        d.rectangle([float(v) for v in box], outline=(255, 60, 60), width=1)
    cr, cc = pb.catheter_center_px
    d.ellipse([cc - 2, cr - 2, cc + 2, cr + 2], fill=(255, 0, 255))
    d.text((4, 4), label, fill=(255, 255, 255))
    return im


def _mosaic(images: list[Image.Image], path: Path, columns: int = 5) -> None:
    w, h = images[0].size
    rows = -(-len(images) // columns)
    out = Image.new("RGB", (columns * w, rows * h))
    for k, im in enumerate(images):
        out.paste(im, ((k % columns) * w, (k // columns) * h))
    out.save(path)


def run_setb(root: Path, overlays: Path | None) -> dict[str, float]:
    ious, ratios, seconds, images = [], [], 0.0, []
    for position, items in setb_boxes(root).items():
        pb = _read_stack([p for p, _ in items], SETB_SPACING_MM)
        t0 = time.perf_counter()
        cs = segment_pullback(pb)
        seconds += time.perf_counter() - t0
        for k, fc in enumerate(cs.frames):
            pts = to_px(np.asarray(fc.lumen), pb)
            pred = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
            iou = box_iou(pred, items[k][1])
            ious.append(iou)
            # an EEM lying on the lumen (no wall between them) shows as a vessel area within 10 %
            ratios.append(polygon_area(fc.vessel) / max(polygon_area(fc.lumen), 1e-6))
            if overlays is not None and k == 2:
                images.append(_overlay(pb.frames[k], pb, fc, f"B {position} IoU {iou:.2f}", items[k][1]))
    if overlays is not None and images:
        _mosaic(images, overlays / "setb.png")
    ious_a = np.array(ious)
    return {
        "frames": float(ious_a.size),
        "box_iou_mean": float(ious_a.mean()),
        "box_iou_ge_0.8": float((ious_a >= 0.8).mean()),
        "vessel_over_lumen_p10": float(np.percentile(ratios, 10)),
        "vessel_over_lumen_median": float(np.median(ratios)),
        "vessel_over_lumen_p90": float(np.percentile(ratios, 90)),
        "vessel_over_lumen_lt_1.1": float((np.array(ratios) < 1.1).mean()),
        "frames_per_s": float(ious_a.size / seconds),
    }


def run_pullback(root: Path, name: str, step: int, overlays: Path | None) -> dict[str, float]:
    folder = root / PULLBACKS[name]
    pb = read_pullback(folder, pixel_spacing_mm=PULLBACK_SPACING_MM, frame_rate_hz=30.0, pullback_speed_mm_s=0.5)
    # the usable frames as `run` finds them (guiding catheter, motionless ends, another pass cut)
    structure = find_pullback_structure(pb)
    frames = np.arange(structure.first_frame, structure.last_frame + 1, step)
    t0 = time.perf_counter()
    cs = segment_pullback(pb, frames)
    seconds = time.perf_counter() - t0
    lumen = np.array([polygon_area(np.asarray(f.lumen)) for f in cs.frames])
    vessel = np.array([polygon_area(np.asarray(f.vessel)) for f in cs.frames])
    inside = np.array([_inside(np.asarray(f.lumen), np.asarray(f.vessel)) for f in cs.frames])

    def change(a: np.ndarray) -> float:
        return float(np.median(np.abs(np.diff(a)) / np.maximum(a[:-1], 1e-6)))

    if overlays is not None:
        pick = np.linspace(0, len(frames) - 1, 20).astype(int)
        _mosaic(
            [
                _overlay(
                    pb.frames[frames[k]], pb, cs.frames[k],
                    f"{name} {frames[k]} L {lumen[k]:.1f} V {vessel[k]:.1f}",
                )
                for k in pick
            ],
            overlays / f"{name.lower()}.png",
        )
    return {
        "frames": float(len(frames)),
        "lumen_inside_vessel": float(inside.mean()),
        "median_lumen_change": change(lumen),
        "median_vessel_change": change(vessel),
        "flagged_share": float(np.mean([f.confidence < 0.5 for f in cs.frames])),
        "lumen_mm2_median": float(np.median(lumen)),
        "lumen_mm2_max": float(lumen.max()),
        "vessel_mm2_median": float(np.median(vessel)),
        # plaque burden 40-60 % in diseased coronaries: vessel/lumen area about 1.6-2.5
        "vessel_over_lumen_p10": float(np.percentile(vessel / np.maximum(lumen, 1e-6), 10)),
        "vessel_over_lumen_median": float(np.median(vessel / np.maximum(lumen, 1e-6))),
        "vessel_over_lumen_p90": float(np.percentile(vessel / np.maximum(lumen, 1e-6), 90)),
        "frames_per_s": float(len(frames) / seconds),
    }


def run_frames(root: Path, name: str, frames: list[int], overlays: Path | None) -> dict[int, tuple[float, float]]:
    """Borders of chosen frames of a pullback (with their raw neighbours): areas, and one
    full-size overlay per frame (``NAME-FRAME.png``) to look at."""
    folder = root / PULLBACKS[name]
    pb = read_pullback(folder, pixel_spacing_mm=PULLBACK_SPACING_MM, frame_rate_hz=30.0, pullback_speed_mm_s=0.5)
    cs = segment_pullback(pb, sorted(frames))
    out = {}
    for fc in cs.frames:
        lumen, vessel = polygon_area(np.asarray(fc.lumen)), polygon_area(np.asarray(fc.vessel))
        out[fc.index] = (round(float(lumen), 2), round(float(vessel), 2))
        if overlays is not None:
            label = f"{name} {fc.index} L {lumen:.1f} V {vessel:.1f}"
            _overlay(pb.frames[fc.index], pb, fc, label).save(overlays / f"{name.lower()}-{fc.index}.png")
    return out


def figure(root: Path, path: Path) -> None:
    """Automatic borders on three consoles side by side (set B, the LAD export, the DICOMs)."""
    tiles: list[Image.Image] = []
    items = setb_boxes(root)
    for position in ("0002", "0009", "0016"):
        pb = _read_stack([p for p, _ in items[position]], SETB_SPACING_MM)
        cs = segment_pullback(pb, [2])
        tiles.append(_overlay(pb.frames[2], pb, cs.frames[0], f"20 MHz phased array (set B {position})"))
    pb = read_pullback(root / PULLBACKS["LAD"], pixel_spacing_mm=PULLBACK_SPACING_MM, frame_rate_hz=30.0,
                       pullback_speed_mm_s=0.5)
    cs = segment_pullback(pb, [240, 560, 1050])
    tiles += [_overlay(pb.frames[f.index], pb, f, f"rotational screen export (LAD {f.index})") for f in cs.frames]
    pb = dicom.read_pullback(root / THIRD, pixel_spacing_mm=(THIRD_SPACING_MM,) * 2, require_timing=False)
    cs = segment_pullback(pb, [0, 4, 8])
    tiles += [_overlay(pb.frames[f.index], pb, f, f"rotational DICOM (frame {f.index})") for f in cs.frames]
    size = (320, 320)
    _mosaic([t.resize(size) for t in tiles], path, columns=3)


def _inside(lumen: np.ndarray, vessel: np.ndarray) -> bool:
    """Every lumen point within the vessel polygon (both star-shaped about the catheter)."""
    from IVUSReconstructLib.geometry import ray_radii

    c = np.zeros(2)
    return bool(np.all(ray_radii(lumen, c, 180) <= ray_radii(vessel, c, 180) + 1e-6))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="folder of fetched frames (default: $IVUS_REAL_FRAMES)")
    ap.add_argument("--setb", action="store_true")
    ap.add_argument("--pullbacks", nargs="*", choices=sorted(PULLBACKS), default=None)
    ap.add_argument("--step", type=int, default=5, help="analyse every STEP-th frame of a pullback")
    ap.add_argument("--overlays", type=Path)
    ap.add_argument(
        "--frames",
        nargs="+",
        metavar="NAME:I,J,...",
        help="segment only these frames of a pullback (e.g. LAD:855,1200 RCA:690); one overlay each",
    )
    ap.add_argument("--figure", type=Path, help="write the three-console figure (PNG) here")
    a = ap.parse_args(argv)
    root = _root(a.root)
    if root is None:
        print("no real frames: set IVUS_REAL_FRAMES or --root (see the docstring)")
        return 0
    if a.overlays:
        a.overlays.mkdir(parents=True, exist_ok=True)
    if a.setb:
        print("set B", {k: round(v, 3) for k, v in run_setb(root, a.overlays).items()}, flush=True)
    if a.figure:
        figure(root, a.figure)
    for spec in a.frames or []:
        name, _, picks = spec.partition(":")
        result = run_frames(root, name, [int(v) for v in picks.split(",") if v], a.overlays)
        print(name, "frame: (lumen mm2, vessel mm2)", result, flush=True)
    for name in (sorted(PULLBACKS) if a.pullbacks == [] else a.pullbacks or []):
        print(name, {k: round(v, 3) for k, v in run_pullback(root, name, a.step, a.overlays).items()}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
