"""Automatic borders against the phantom's truth, one frame per preset (plain script).

Usage: python Testing/benchmarks/figure_segmentation.py [--seed 19] [--out segmentation.png] [--side-branch]
Writes a three-panel PNG (coronary with calcium, femoropopliteal, compressed iliac vein):
truth in green, automatic lumen in red, automatic EEM in orange, calcium in cyan. Each panel is
the analysed frame nearest the MLA, or with ``--side-branch`` the one nearest the ostium's centre.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

from IVUSReconstructLib.geometry import mm_to_px, polygon_area
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.segmentation import segment_pullback

PANEL_PX = 400


def _panel(preset: str, seed: int, side_branch: bool) -> np.ndarray:
    ph = make_phantom(preset, seed=seed, side_branch=side_branch)
    pb = ph.pullback
    frames = ph.ed_frames if len(ph.ed_frames) else np.arange(pb.n_frames)
    if side_branch:
        index = int(frames[np.argmin(np.abs(ph.true_arc_length_mm[frames] - ph.side_branch_mm))])
    else:
        areas = np.array([polygon_area(f.lumen) for f in ph.truth.frames])
        index = int(frames[np.argmin(areas[frames])])  # the analysed frame nearest the MLA
    auto = segment_pullback(pb, [index]).frames[0]
    truth = ph.truth.frames[index]
    image = Image.fromarray(np.asarray(pb.frames[index])).convert("RGB").resize((PANEL_PX, PANEL_PX))
    draw = ImageDraw.Draw(image)
    scale = PANEL_PX / pb.shape_px[0]
    lines = [(truth.lumen, (0, 230, 0)), (truth.vessel, (0, 230, 0)), (auto.lumen, (255, 40, 40))]
    lines += [(auto.vessel, (255, 160, 0))] + [(c, (0, 200, 255)) for c in auto.calcium]
    for polygon, colour in lines:
        px = mm_to_px(polygon, pb.pixel_spacing_mm, pb.catheter_center_px) * scale
        draw.line([(c, r) for r, c in np.vstack([px, px[:1]])], fill=colour, width=2)
    draw.text((6, PANEL_PX - 16), f"{preset}, frame {index}", fill=(255, 255, 0))
    return np.asarray(image)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--out", default="segmentation.png")
    ap.add_argument("--side-branch", action="store_true")
    args = ap.parse_args()
    panels = [_panel(p, args.seed, args.side_branch) for p in ("coronary", "femoropopliteal", "iliac-vein")]
    Image.fromarray(np.hstack(panels)).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
