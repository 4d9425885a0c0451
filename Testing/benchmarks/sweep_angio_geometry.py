"""Which wrong angiographic geometries the unmatched-share limit catches.

A plain script (not collected by pytest)::

    PYTHONPATH=IVUSReconstruct:Testing python Testing/benchmarks/sweep_angio_geometry.py [--noise-px 0.5]

On the phantom coronary of Testing/core/test_angio.py (a ~64 mm tortuous vessel projected on two
views, 0.5 px trace noise), for six view pairs 60-90 degrees apart it reconstructs with the true
geometry, then with one view's primary or secondary angle off by +-10, 20 or 30 degrees, and with
one view's image flipped (rows, columns, both) or transposed. Each wrong geometry is either
refused (IVUSInputError) or accepted; for accepted ones the script prints how much shorter than
the true vessel the curve came out. The aim: every wrong geometry that would give a curve more
than 5% too short is refused, and every true geometry is accepted. Wrong angles that give a
curve too long match every point (the two views are consistent with another 3D curve): they are
listed, not caught.

Prints one line per case and a summary: accepted / refused, and the accepted wrong geometries
whose curve is more than 5% too short (should be none).
"""

from __future__ import annotations

import argparse

import numpy as np
from core.test_angio import SIZE_PX, TRUTH, _geometry, _noisy_curves

from IVUSReconstructLib import angio
from IVUSReconstructLib.errors import IVUSInputError

PAIRS = [
    ((-30.0, 0.0), (30.0, 0.0)),
    ((0.0, 30.0), (60.0, -10.0)),
    ((-30.0, 20.0), (60.0, 20.0)),
    ((0.0, 0.0), (90.0, 0.0)),
    ((-30.0, 0.0), (50.0, 0.0)),
    ((-30.0, 20.0), (45.0, 20.0)),
]
FLIPS = {
    "rows flipped": lambda c: np.column_stack([SIZE_PX - 1 - c[:, 0], c[:, 1]]),
    "columns flipped": lambda c: np.column_stack([c[:, 0], SIZE_PX - 1 - c[:, 1]]),
    "both flipped": lambda c: SIZE_PX - 1 - c,
    "transposed": lambda c: c[:, ::-1],
}


def cases(noise_px: float):
    """(label, wrong?, curve1, geometry1, curve2, geometry2) for every case of the sweep."""
    for v1, v2 in PAIRS:
        g1, g2 = _geometry(*v1), _geometry(*v2)
        c1, c2 = _noisy_curves(g1, g2, noise_px=noise_px)
        pair = f"{v1[0]:+.0f}/{v1[1]:+.0f} -> {v2[0]:+.0f}/{v2[1]:+.0f}"
        yield f"{pair}: true geometry", False, c1, g1, c2, g2
        for view in (1, 2):
            for axis, name in ((0, "primary"), (1, "secondary")):
                for delta in (10, 20, 30, -10, -20, -30):
                    angles = list(v1 if view == 1 else v2)
                    angles[axis] += delta
                    wrong = _geometry(*angles)
                    label = f"{pair}: view {view} {name} angle {delta:+d} deg"
                    if view == 1:
                        yield label, True, c1, wrong, c2, g2
                    else:
                        yield label, True, c1, g1, c2, wrong
        for name, flip in FLIPS.items():
            yield f"{pair}: view 2 image {name}", True, c1, g1, flip(c2), g2
            yield f"{pair}: view 1 image {name}", True, flip(c1), g1, c2, g2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise-px", type=float, default=0.5)
    args = parser.parse_args()
    true_length = float(np.linalg.norm(np.diff(TRUTH, axis=0), axis=1).sum())
    counts = {"true accepted": 0, "true refused": 0, "wrong refused": 0, "wrong accepted": 0}
    escaped, longer = [], []
    for label, wrong, c1, g1, c2, g2 in cases(args.noise_px):
        try:
            result = angio.reconstruct_centerline(c1, g1, c2, g2, reverse_mismatched=True)
        except IVUSInputError as exc:
            counts[f"{'wrong' if wrong else 'true'} refused"] += 1
            print(f"{label}: refused ({str(exc).split(';')[0].split(': ', 1)[1][:70]})")
            continue
        counts[f"{'wrong' if wrong else 'true'} accepted"] += 1
        short = 100.0 * (1.0 - result.centerline.length_mm / true_length)
        print(f"{label}: accepted, curve {short:+.1f}% shorter, median residual "
              f"{np.median(result.residual_px):.2f} px")  # fmt: skip
        if wrong and short > 5.0:
            escaped.append((label, short))
        if wrong and short < -5.0:
            longer.append((label, -short))
    print()
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    print(f"wrong geometries accepted with a curve more than 5% too short: {len(escaped)}")
    for label, short in escaped:
        print(f"  {label}: {short:.1f}% short")
    # every point matched and the whole of both curves covered: the two views are consistent with
    # another 3D curve, which two projections of one curve cannot tell from the true one
    print(f"wrong geometries accepted with a curve more than 5% too long: {len(longer)}")
    for label, extra in longer:
        print(f"  {label}: {extra:.1f}% long")


if __name__ == "__main__":
    main()
