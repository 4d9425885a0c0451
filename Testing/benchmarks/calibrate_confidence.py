"""Calibrate the per-frame segmentation confidence against border error on phantoms.

Collects, for every analysed frame of phantoms of each preset and speckle regime (plain, with
still 20 MHz blood, with a side branch), the confidence features the segmentation computes and
the frame's true lumen and vessel Jaccard; fits a logistic model of P(min Jaccard >= 0.85) on the
tuning seeds; and reports, on other seeds, the share of frames with Jaccard < 0.8 that are
flagged (confidence < 0.5) and of frames with Jaccard > 0.9 that are not.

    python Testing/benchmarks/calibrate_confidence.py collect --seeds 3 5 9 --out /tmp/conf_tune.npz
    python Testing/benchmarks/calibrate_confidence.py collect --seeds 31 37 --out /tmp/conf_check.npz
    python Testing/benchmarks/calibrate_confidence.py fit /tmp/conf_tune.npz --check /tmp/conf_check.npz \
        --figure Resources/Screenshots/confidence_calibration.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import optimize

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))

from IVUSReconstructLib.evaluation import compare_polygons  # noqa: E402
from IVUSReconstructLib.geometry import ray_radii  # noqa: E402
from IVUSReconstructLib.phantom import make_phantom, realistic_appearance  # noqa: E402
from IVUSReconstructLib.segmentation import SegmentationOptions, segment_pullback  # noqa: E402
from IVUSReconstructLib.segmentation.confidence import FEATURES, confidence_features  # noqa: E402

VARIANTS = ("default", "realistic", "echolucent", "wedged", "still", "branch")


def border_radii(cs, n_angles: int = 180) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lumen and vessel radii (F, n_angles) mm about the catheter, and the confidences (F,)."""
    lum = np.array([ray_radii(np.asarray(f.lumen), np.zeros(2), n_angles) for f in cs.frames])
    ves = np.array([ray_radii(np.asarray(f.vessel), np.zeros(2), n_angles) for f in cs.frames])
    return lum, ves, np.array([f.confidence for f in cs.frames])


def collect(seeds: list[int], length_mm: float, step: int, size_px: int) -> dict[str, np.ndarray]:
    from test_segmentation_real import still_blood

    lumen, vessel, conf, pullback, jl, jv, tag = [], [], [], [], [], [], []
    for preset in ("coronary", "femoropopliteal", "iliac-vein"):
        for speckle in ("rotational", "phased"):
            for seed in seeds:
                for variant in VARIANTS:
                    if (variant == "branch" and preset == "iliac-vein") or (
                        variant in ("echolucent", "wedged") and speckle == "phased"
                    ):
                        continue
                    look = {
                        "realistic": realistic_appearance(speckle),
                        "echolucent": realistic_appearance(speckle, echolucent_arc_deg=150.0),
                        "wedged": realistic_appearance(speckle, wedged_catheter=True),
                    }.get(variant)
                    ph = make_phantom(
                        preset,
                        seed=seed,
                        length_mm=length_mm,
                        size_px=size_px,
                        speckle=speckle,
                        side_branch=variant == "branch",
                        appearance=look,
                    )
                    pb = still_blood(ph) if variant == "still" else ph.pullback
                    frames = np.arange(0, pb.n_frames, step)
                    # the raw edge-strength confidence is a feature of the calibration
                    cs = segment_pullback(pb, frames, options=SegmentationOptions(calibrated_confidence=False))
                    lum, ves, c = border_radii(cs)
                    lumen.append(lum)
                    vessel.append(ves)
                    conf.append(c)
                    pullback += [len(conf) - 1] * len(c)
                    truth = {f.index: f for f in ph.truth.frames}
                    for f in cs.frames:
                        t = truth[f.index]
                        jl.append(compare_polygons(np.asarray(f.lumen), np.asarray(t.lumen))["jaccard"])
                        jv.append(compare_polygons(np.asarray(f.vessel), np.asarray(t.vessel))["jaccard"])
                        tag.append(f"{preset}/{speckle}/{seed}/{variant}/{f.index}")
                    print(preset, speckle, seed, variant, len(jl), flush=True)
    return {
        "lumen_mm": np.concatenate(lumen),
        "vessel_mm": np.concatenate(vessel),
        "confidence": np.concatenate(conf),
        "pullback": np.array(pullback),
        "j_lumen": np.array(jl),
        "j_vessel": np.array(jv),
        "tag": np.array(tag),
    }


def features_of(data) -> np.ndarray:
    """Features of every frame of a collection, pullback by pullback."""
    out = []
    for p in np.unique(data["pullback"]):
        m = data["pullback"] == p
        out.append(confidence_features(data["lumen_mm"][m], data["vessel_mm"][m], data["confidence"][m]))
    return np.concatenate(out)


def _load(paths: list[Path]) -> dict[str, np.ndarray]:
    """Collections merged, their pullback numbers kept apart."""
    parts = [dict(np.load(p)) for p in paths]
    offset = 0
    for part in parts:
        part["pullback"] = part["pullback"] + offset
        offset = int(part["pullback"].max()) + 1
    return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def fit(features: np.ndarray, good: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Weights (1 + n_features,) of a ridge-penalised logistic regression, bias first."""
    x = np.column_stack([np.ones(len(features)), features])
    # the bad frames are few: each class counts equally
    weight = np.where(good > 0.5, 0.5 / max(good.mean(), 1e-6), 0.5 / max(1 - good.mean(), 1e-6))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        p = np.clip(_logistic(x @ w), 1e-9, 1 - 1e-9)
        err = -np.mean(weight * (good * np.log(p) + (1 - good) * np.log(1 - p)))
        err += ridge * np.sum(w[1:] ** 2) / len(x)
        grad = x.T @ (weight * (p - good)) / len(x)
        grad[1:] += 2 * ridge * w[1:] / len(x)
        return float(err), grad

    return optimize.minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x


def report(name: str, conf: np.ndarray, j: np.ndarray) -> dict[str, float]:
    bad, good = j < 0.8, j > 0.9
    out = {
        "frames": float(len(j)),
        "bad": float(bad.sum()),
        "bad_flagged": float((conf[bad] < 0.5).mean()) if bad.any() else float("nan"),
        "good_not_flagged": float((conf[good] >= 0.5).mean()) if good.any() else float("nan"),
        "flagged_share": float((conf < 0.5).mean()),
    }
    print(name, {k: round(v, 3) for k, v in out.items()})
    return out


def figure(conf: np.ndarray, j: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=120)
    ax.scatter(j, conf, s=6, alpha=0.5)
    ax.axhline(0.5, color="k", lw=0.8, ls="--", label="flag below 0.5")
    ax.axvspan(0, 0.8, color="r", alpha=0.08, label="Jaccard < 0.8 (should be flagged)")
    ax.axvspan(0.9, 1.0, color="g", alpha=0.08, label="Jaccard > 0.9 (should not be)")
    ax.set_xlabel("frame's worse Jaccard (lumen, vessel) against truth")
    ax.set_ylabel("segmentation confidence")
    ax.set_xlim(min(0.5, float(j.min())), 1.0)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Confidence against border error (phantoms, check seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--seeds", type=int, nargs="+", required=True)
    c.add_argument("--length-mm", type=float, default=4.0)
    c.add_argument("--step", type=int, default=6)
    c.add_argument("--size", type=int, default=256)
    c.add_argument("--out", type=Path, required=True)
    f = sub.add_parser("fit")
    f.add_argument("tune", type=Path, nargs="+")
    f.add_argument("--check", type=Path, nargs="+")
    f.add_argument("--figure", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "collect":
        np.savez(a.out, **collect(a.seeds, a.length_mm, a.step, a.size))
        return 0
    tune = _load(a.tune)
    j = np.minimum(tune["j_lumen"], tune["j_vessel"])
    tune_x = features_of(tune)
    w = fit(tune_x, (j >= 0.85).astype(float))
    print("weights (bias, " + ", ".join(FEATURES) + "):", np.round(w, 3).tolist())
    report("tune", _logistic(w[0] + tune_x @ w[1:]), j)
    if a.check:
        check = _load(a.check)
        jc = np.minimum(check["j_lumen"], check["j_vessel"])
        conf = _logistic(w[0] + features_of(check) @ w[1:])
        report("check", conf, jc)
        if a.figure:
            figure(conf, jc, a.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
