"""Segmentation accuracy on phantoms drawn with the realism options (plain script).

Usage: python Testing/benchmarks/bench_segmentation_realism.py [--seeds 21 22] [--size 256]
Prints mean Jaccard and Hausdorff (lumen/vessel) of ``segment_pullback`` against the truth for
the coronary phantom drawn with each appearance: the default, the realistic look of each
frequency range, and the realistic look with each failure mode of real frames added (echolucent
plaque, wedged catheter, console overlays, catheter off the image centre). The issue-4 bars are Jaccard >= 0.92 and Hausdorff
<= 0.3 mm. Frames: every 4th of an 8 mm pullback (the lesion and the calcium arc included).
"""

from __future__ import annotations

import argparse

import numpy as np

from IVUSReconstructLib.evaluation import evaluate_contours
from IVUSReconstructLib.phantom import Appearance, make_phantom, realistic_appearance
from IVUSReconstructLib.segmentation import segment_pullback


def looks() -> list[tuple[str, str, Appearance | None]]:
    out: list[tuple[str, str, Appearance | None]] = []
    for speckle in ("rotational", "phased"):
        out.append((speckle, "default", None))
        out.append((speckle, "realistic", realistic_appearance(speckle)))
    rot = "rotational"
    out.append((rot, "realistic+echolucent 150", realistic_appearance(rot, echolucent_arc_deg=150.0)))
    out.append((rot, "realistic+wedged", realistic_appearance(rot, wedged_catheter=True)))
    out.append((rot, "realistic+console", realistic_appearance(rot, console=True)))
    out.append(
        (
            rot,
            "realistic+console off-centre (6, -9) px",
            realistic_appearance(rot, console=True, console_offset_px=(6, -9)),
        )
    )
    out.append(
        (
            rot,
            "realistic+all three",
            realistic_appearance(rot, echolucent_arc_deg=150.0, wedged_catheter=True, console=True),
        )
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[21])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--length-mm", type=float, default=8.0)
    args = ap.parse_args()
    print("| seed | speckle | appearance | lumen J | vessel J | lumen HD mm | vessel HD mm |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        for speckle, name, look in looks():
            ph = make_phantom(
                "coronary",
                seed=seed,
                length_mm=args.length_mm,
                size_px=args.size,
                speckle=speckle,
                appearance=look,
            )
            frames = np.arange(1, ph.pullback.n_frames - 1, 4)
            s = evaluate_contours(segment_pullback(ph.pullback, frames), ph.truth, pixel_size_mm=0.02)[
                "summary"
            ]
            print(
                f"| {seed} | {speckle} | {name} | {s['lumen']['jaccard']['mean']:.3f} | "
                f"{s['vessel']['jaccard']['mean']:.3f} | {s['lumen']['hausdorff_mm']['mean']:.2f} | "
                f"{s['vessel']['hausdorff_mm']['mean']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
