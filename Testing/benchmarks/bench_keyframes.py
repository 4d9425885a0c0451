"""Keyframe propagation on phantoms: quality per preset, appearance and seed, and its cost in time
(plain script, not collected by pytest).

Usage: python Testing/benchmarks/bench_keyframes.py [--seeds 61 62 63] [--size 512]
       [--presets coronary femoropopliteal iliac-vein] [--looks default realistic echolucent wedged]
       [--every 10] [--overlays DIR]

Each phantom has its preset's stenosis and calcium, the guidewire's shadow and a side branch, and is
drawn with one appearance: ``default`` (the historical images), ``realistic`` (tuned to real
frames), ``echolucent`` (realistic with a 150-degree lipid pool) or ``wedged`` (realistic with the
catheter wedged against the wall). The analysed frames are the end-diastolic ones (a vein without a
cardiac rhythm: one frame a second). The truth of every ``--every``-th analysed frame is given as
keyframes; the other analysed frames (between keyframes and beyond the last) are scored, mean
Jaccard lumen/vessel, fully automatic and with the keyframes, per case, per preset and per
preset and look (all seeds). Time: the keyframe run over the
automatic run of the same frames in the same process (the automatic one is segmented twice, the
first as a warm-up). With ``--overlays DIR`` the worst propagated frame of each case is written as
a PNG (truth green, automatic red, with keyframes yellow).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from IVUSReconstructLib.evaluation import evaluate_contours
from IVUSReconstructLib.phantom import Appearance, make_phantom, realistic_appearance
from IVUSReconstructLib.segmentation import segment_pullback
from IVUSReconstructLib.types import ContourSet

LENGTH_MM = {"coronary": 20.0, "femoropopliteal": 40.0, "iliac-vein": 40.0}


def look(name: str, speckle: str) -> Appearance | None:
    if name == "default":
        return None
    changes = {"echolucent": {"echolucent_arc_deg": 150.0}, "wedged": {"wedged_catheter": True}}
    return realistic_appearance(speckle, **changes.get(name, {}))


def analysed_frames(ph) -> np.ndarray:
    if len(ph.ed_frames):
        return np.asarray(ph.ed_frames, int)
    rate = 1.0 / float(np.median(np.diff(ph.pullback.frame_times_s)))
    return np.arange(0, ph.pullback.n_frames, max(1, int(round(rate))))


def subset(cs: ContourSet, indices) -> ContourSet:
    keep = set(int(i) for i in indices)
    return ContourSet(
        frames=tuple(f for f in cs.frames if f.index in keep),
        pixel_spacing_mm=cs.pixel_spacing_mm,
        catheter_center_px=cs.catheter_center_px,
    )


def per_frame(cs: ContourSet, truth: ContourSet, indices) -> dict[int, tuple[float, float]]:
    rows = evaluate_contours(subset(cs, indices), truth, pixel_size_mm=0.02)["per_frame"]
    lumen = dict(zip(rows["lumen"]["frame"], rows["lumen"]["jaccard"], strict=True))
    vessel = dict(zip(rows["vessel"]["frame"], rows["vessel"]["jaccard"], strict=True))
    return {int(i): (lumen[i], vessel[i]) for i in lumen}


def overlay(path: Path, ph, index: int, runs: dict[str, ContourSet]) -> None:
    from PIL import Image, ImageDraw

    pb = ph.pullback
    img = Image.fromarray(np.asarray(pb.frames[index])).convert("RGB")
    draw = ImageDraw.Draw(img)
    (sr, sc), (cr, cc) = pb.pixel_spacing_mm, pb.catheter_center_px
    colours = {"truth": (0, 255, 0), "automatic": (255, 0, 0), "keyframes": (255, 255, 0)}
    for name, cs in runs.items():
        frame = {f.index: f for f in cs.frames}.get(index)
        if frame is None:
            continue
        for border in (frame.lumen, frame.vessel):
            if border is None:
                continue
            pts = [(cc + x / sc, cr + y / sr) for x, y in np.asarray(border)]
            draw.line(pts + pts[:1], fill=colours[name], width=1)
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[61, 62, 63])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--presets", nargs="+", default=["coronary", "femoropopliteal", "iliac-vein"])
    ap.add_argument("--looks", nargs="+", default=["default", "realistic", "echolucent", "wedged"])
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument(
        "--speckle", choices=["rotational", "phased"], default="rotational", help="40-60 MHz or 20 MHz look"
    )
    ap.add_argument("--length-scale", type=float, default=1.0, help="times the default pullback lengths")
    ap.add_argument("--overlays", type=Path, default=None)
    args = ap.parse_args()
    if args.overlays:
        args.overlays.mkdir(parents=True, exist_ok=True)
    print(
        "| preset | look | seed | frames | keys | auto J lumen/vessel | keyframes J lumen/vessel "
        "| worst frame delta | time ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    totals: dict[str, list[np.ndarray]] = {}
    looks: dict[tuple[str, str], list[np.ndarray]] = {}
    t_auto_all = t_key_all = 0.0
    for preset in args.presets:
        for name in args.looks:
            for seed in args.seeds:
                ph = make_phantom(
                    preset,
                    seed=seed,
                    length_mm=LENGTH_MM[preset] * args.length_scale,
                    size_px=args.size,
                    side_branch=True,
                    speckle=args.speckle,
                    appearance=look(name, args.speckle),
                )
                frames = analysed_frames(ph)
                keys = frames[:: args.every]
                between = np.setdiff1d(frames, keys)
                segment_pullback(ph.pullback, frames[:4])  # warm-up
                t0 = time.perf_counter()
                auto = segment_pullback(ph.pullback, frames)
                t_auto = time.perf_counter() - t0
                t0 = time.perf_counter()
                kf = segment_pullback(ph.pullback, frames, keyframes=subset(ph.truth, keys))
                t_key = time.perf_counter() - t0
                t_auto_all += t_auto
                t_key_all += t_key
                a = per_frame(auto, ph.truth, between)
                k = per_frame(kf, ph.truth, between)
                ja = np.array([a[i] for i in between])
                jk = np.array([k[i] for i in between])
                totals.setdefault(preset, []).append(np.hstack([ja, jk]))
                looks.setdefault((preset, name), []).append(np.hstack([ja, jk]))
                delta = (jk - ja).min(axis=1)
                worst = int(between[int(np.argmin(jk.min(axis=1)))])
                print(
                    f"| {preset} | {name} | {seed} | {len(between)} | {len(keys)} | "
                    f"{ja[:, 0].mean():.3f}/{ja[:, 1].mean():.3f} | {jk[:, 0].mean():.3f}/{jk[:, 1].mean():.3f} | "
                    f"{delta.min():+.3f} (frame {int(between[int(np.argmin(delta))])}) | {t_key / t_auto:.2f} |",
                    flush=True,
                )
                if args.overlays:
                    runs = {"truth": ph.truth, "automatic": auto, "keyframes": kf}
                    for idx in {worst, int(between[int(np.argmin(delta))])}:
                        overlay(args.overlays / f"{preset}_{name}_{seed}_f{idx}.png", ph, idx, runs)
    print()
    print("| preset | frames | auto J lumen/vessel | keyframes J lumen/vessel |")
    print("|---|---|---|---|")
    for preset, rows in totals.items():
        m = np.vstack(rows).mean(axis=0)
        print(f"| {preset} | {len(np.vstack(rows))} | {m[0]:.3f}/{m[1]:.3f} | {m[2]:.3f}/{m[3]:.3f} |")
    print()
    print("| preset | look | frames | auto J lumen/vessel | keyframes J lumen/vessel | keyframes - auto |")
    print("|---|---|---|---|---|---|")
    for (preset, name), rows in looks.items():
        m = np.vstack(rows).mean(axis=0)
        print(
            f"| {preset} | {name} | {len(np.vstack(rows))} | {m[0]:.3f}/{m[1]:.3f} | {m[2]:.3f}/{m[3]:.3f} "
            f"| {m[2] - m[0]:+.3f}/{m[3] - m[1]:+.3f} |"
        )
    print(f"\nsegmentation time with keyframes / automatic, all cases: {t_key_all / t_auto_all:.2f}")


if __name__ == "__main__":
    main()
