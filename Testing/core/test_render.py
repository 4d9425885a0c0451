"""Tests of the offscreen vessel render and the longitudinal view."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkIOImage import vtkPNGReader

from IVUSReconstructLib import render
from IVUSReconstructLib.longitudinal import longitudinal_view
from IVUSReconstructLib.types import Centerline, FramePoses, VesselMesh

SIZE = (480, 300)
SMALL = render.RenderStyle(size_px=SIZE)


def _tube(centre, normals, radius, n_around, arrays, *, outward=True):
    """A tube of circles (radius per ring) around a polyline, with per-ring point arrays."""
    n = len(centre)
    u = np.cross(normals, [0.0, 0.0, 1.0])
    bad = np.linalg.norm(u, axis=1) < 1e-6
    u[bad] = np.cross(normals[bad], [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u, axis=1)[:, None]
    v = np.cross(normals, u)
    a = np.linspace(0, 2 * np.pi, n_around, endpoint=False)
    ring = np.cos(a)[None, :, None] * u[:, None] + np.sin(a)[None, :, None] * v[:, None]
    pts = (centre[:, None, :] + radius[:, None, None] * ring).reshape(-1, 3)
    i, j = np.arange(n - 1)[:, None], np.arange(n_around)[None, :]
    p00, p01 = i * n_around + j, i * n_around + (j + 1) % n_around
    p10, p11 = p00 + n_around, p01 + n_around
    if outward:
        tris = [np.stack([p00, p11, p10], -1), np.stack([p00, p01, p11], -1)]
    else:
        tris = [np.stack([p00, p10, p11], -1), np.stack([p00, p11, p01], -1)]
    tris = np.concatenate([t.reshape(-1, 3) for t in tris])
    poly = vtkPolyData()
    vpts = vtkPoints()
    vpts.SetData(numpy_to_vtk(pts, deep=True))
    poly.SetPoints(vpts)
    cells = np.hstack([np.full((len(tris), 1), 3), tris]).astype(np.int64).ravel()
    polys = vtkCellArray()
    polys.ImportLegacyFormat(numpy_to_vtkIdTypeArray(cells, deep=True))
    poly.SetPolys(polys)
    for name, values in arrays.items():
        array = numpy_to_vtk(np.repeat(np.asarray(values, float), n_around), deep=True)
        array.SetName(name)
        poly.GetPointData().AddArray(array)
    return poly


def _vessel(*, curved=True, n_frames=80, n_around=48, burden=None, outward=True):
    """Synthetic vessel: 60 mm centerline, EEM radius 2.2 mm, lumen stenosis at 34 mm."""
    s = np.linspace(0.0, 60.0, n_frames)
    if curved:
        t = s / 60.0
        centre = np.stack([0.9 * s, 12 * np.sin(np.pi * t), 6 * t**2], axis=1)
    else:
        centre = np.stack([np.zeros_like(s), s, np.zeros_like(s)], axis=1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centre, axis=0), axis=1))])
    tangent = np.gradient(centre, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1)[:, None]
    r_vessel = np.full(n_frames, 2.2)
    r_lumen = 1.7 - 0.95 * np.exp(-(((arc - 34.0) / 5.0) ** 2))
    if burden is None:
        burden = (1 - r_lumen**2 / r_vessel**2) * 100
    arrays = {
        "frame_index": np.arange(n_frames),
        "arc_length_mm": arc,
        "plaque_thickness_mm": r_vessel - r_lumen,
        "plaque_burden_percent": burden,
    }
    mesh = VesselMesh(
        lumen=_tube(centre, tangent, r_lumen, n_around, arrays, outward=outward),
        vessel=_tube(centre, tangent, r_vessel, n_around, arrays, outward=outward),
    )
    poses = FramePoses(
        frame_index=np.arange(n_frames),
        arc_length_mm=arc,
        origin_ras_mm=centre,
        axes_ras=np.zeros((n_frames, 3, 2)),
        normal_ras=tangent,
        offset_mm=np.zeros((n_frames, 2)),
    )
    area = np.pi * r_lumen**2
    mla = int(np.argmin(area))
    summary = {
        "mla": {"area_mm2": float(area[mla]), "frame": mla, "arc_length_mm": float(arc[mla])},
        "references": {
            side: {"frame": f, "arc_length_mm": float(arc[f]), "lumen_area_mm2": float(area[f])}
            for side, f in (("proximal", min(mla + 16, n_frames - 1)), ("distal", max(mla - 16, 0)))
        },
    }
    return mesh, Centerline(points_ras_mm=centre), poses, summary


@pytest.fixture(scope="module")
def scene():
    return _vessel()


@pytest.fixture(scope="module")
def overview(scene):
    mesh, centerline, poses, summary = scene
    return render.render_vessel(mesh, centerline=centerline, poses=poses, metrics=summary, style=SMALL)


def _not_background(image):
    return np.any(image < 245, axis=2)


def test_render_shape_dtype_and_determinism(scene, overview):
    mesh, centerline, poses, summary = scene
    again = render.render_vessel(mesh, centerline=centerline, poses=poses, metrics=summary, style=SMALL)
    assert overview.shape == (SIZE[1], SIZE[0], 3)
    assert overview.dtype == np.uint8
    assert np.array_equal(overview, again)


def test_vessel_fills_the_frame(overview):
    h, w, _ = overview.shape
    # The 3D scene area: left of the colour bar, between the title and the legend band.
    scene_area = _not_background(overview[int(0.12 * h) : int(0.9 * h), : int(0.8 * w)])
    cols = np.flatnonzero(scene_area.any(axis=0))
    assert cols.max() - cols.min() >= 0.85 * scene_area.shape[1]
    # The lumen's red is the most frequent colour of the vessel body.
    r, g, b = (overview[..., c].astype(int) for c in range(3))
    red = (r > 120) & (r > g + 50) & (r > b + 50)
    assert red.mean() > 0.04


def test_colour_bar_shows_the_colormap(overview):
    h, w, _ = overview.shape
    region = overview[:, int(0.84 * w) :].astype(float)
    lut = render.colormap_rgb(np.linspace(0, 100, 101)) * 255
    # The bar column: the one whose pixels sit closest to colormap colours.
    dist = np.min(np.linalg.norm(region[:, :, None, :] - lut[None, None], axis=3), axis=2)
    close = dist < 6.0
    col = int(np.argmax(close.sum(axis=0)))
    rows = np.flatnonzero(close[:, col])
    assert len(rows) > 0.4 * h
    top, bottom = region[rows.min() + 1, col], region[rows.max() - 1, col]
    # Top is 100 % (yellow), bottom 0 % (dark purple).
    assert np.linalg.norm(top - lut[-1]) < 12
    assert np.linalg.norm(bottom - lut[0]) < 12


def test_distal_left_burden_colours_along_a_straight_tube():
    burden = np.linspace(0.0, 100.0, 40)
    mesh, *_ = _vessel(curved=False, n_frames=40, burden=burden)
    image = render.render_vessel(mesh, style=render.RenderStyle(size_px=SIZE, elevation_deg=0.0))
    h, w, _ = image.shape
    row = image[h // 2 - 40 : h // 2 + 40].astype(float)
    lut = render.colormap_rgb(np.linspace(0, 100, 101)) * 255

    def burden_at(x):
        column = row[:, x]
        dist = np.linalg.norm(column[:, None] - lut[None], axis=2)
        best = dist.min(axis=1)
        return float(np.argmin(dist[np.argmin(best)]))

    scene_cols = np.flatnonzero(_not_background(image[h // 2 - 40 : h // 2 + 40]).any(axis=0))
    left, right = scene_cols.min() + 6, min(scene_cols.max(), int(0.8 * w)) - 6
    # Distal (burden 0) is drawn on the left, proximal (burden 100) on the right.
    assert burden_at(left) < 25
    assert burden_at(right) > 75


def test_marker_rings_drawn_only_with_metrics(scene):
    mesh, centerline, poses, summary = scene
    with_markers = render.render_vessel(mesh, metrics=summary, poses=poses, style=SMALL)
    without = render.render_vessel(mesh, style=SMALL)

    def mla_pixels(image):
        target = np.array(render._MLA_RGB) * 255
        return int((np.linalg.norm(image.astype(float) - target, axis=2) < 40).sum())

    assert mla_pixels(without) == 0
    assert mla_pixels(with_markers) > 40


def test_rings_without_poses_come_from_the_mesh(scene):
    mesh, _, poses, summary = scene
    centre, normal, radius = render._ring_geometry(summary["mla"]["frame"], mesh.vessel, None, 1.0)
    row = summary["mla"]["frame"]
    assert np.allclose(centre, poses.origin_ras_mm[row], atol=1e-6)
    assert abs(abs(normal @ poses.normal_ras[row]) - 1.0) < 1e-6
    assert radius == pytest.approx(2.2 * 1.12, rel=1e-3)


def test_mla_and_along_views_differ_and_are_framed(scene):
    mesh, centerline, poses, summary = scene
    mla = render.render_vessel(mesh, metrics=summary, poses=poses, style=replace(SMALL, view="mla"))
    along = render.render_vessel(mesh, metrics=summary, poses=poses, style=replace(SMALL, view="along"))
    for image in (mla, along):
        assert _not_background(image[:, : int(0.8 * SIZE[0])]).mean() > 0.08
    assert not np.array_equal(mla, along)
    with pytest.raises(ValueError, match="view must be one of"):
        render.RenderStyle(view="top")


def test_faces_outward_detects_winding():
    out_mesh, *_ = _vessel(n_frames=20, n_around=16, outward=True)
    in_mesh, *_ = _vessel(n_frames=20, n_around=16, outward=False)
    assert render._faces_outward(out_mesh.vessel) is True
    assert render._faces_outward(in_mesh.vessel) is False


def test_write_png_and_png_bytes_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    path = render.write_png(image, tmp_path / "x.png")
    reader = vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    data = vtk_to_numpy(reader.GetOutput().GetPointData().GetScalars()).reshape(37, 53, 3)[::-1]
    assert np.array_equal(data, image)
    blob = render.png_bytes(image)
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    assert blob == path.read_bytes()


def test_nice_length():
    assert render._nice_length_mm(7.3) == 5.0
    assert render._nice_length_mm(19.9) == 10.0
    assert render._nice_length_mm(0.31) == pytest.approx(0.2)


def test_longitudinal_view_samples_the_diameter():
    n, size = 6, 41
    cols = np.arange(size, dtype=np.uint16)
    frames = np.broadcast_to(cols[None, None, :] * 10, (n, size, size)).copy()
    frames += (np.arange(n, dtype=np.uint16) * 1000)[:, None, None]
    positions = np.arange(n) * 0.5
    out = longitudinal_view(
        frames, 0.0, pixel_spacing_mm=(0.1, 0.1), frame_positions_mm=positions, mm_per_px=0.1
    )
    # Rows: +x side first, 2 mm either side of the centre in 0.1 mm steps.
    assert out.shape == (41, 26)
    assert out[0, 0] == 400 and out[-1, 0] == 0 and out[20, 0] == 200
    # Columns: nearest frame every 0.1 mm (frames every 0.5 mm).
    assert out[20, 5] == 1200 and out[20, 25] == 5200
    # At 90 degrees the cut runs along rows, where these frames are constant.
    across = longitudinal_view(frames, 90.0, pixel_spacing_mm=(0.1, 0.1), frame_positions_mm=positions)
    assert np.all(across[:, 0] == 200)


# --- Phantom presets through the real stages -------------------------------------------------

PHANTOM_SIZE = (400, 250)
PHANTOM_STYLE = render.RenderStyle(size_px=PHANTOM_SIZE)


def _phantom_scene(preset):
    from IVUSReconstructLib import coregistration, mesh, metrics, phantom

    ph = phantom.make_phantom(preset, length_mm=8.0, size_px=96)
    truth = ph.truth.with_frames(ph.truth.frames[::2])
    idx = truth.indices
    arc = ph.true_arc_length_mm[idx]
    poses = coregistration.place_frames(ph.centerline, idx, arc, contours=truth)
    m = metrics.compute_metrics(truth, arc)
    return mesh.build_meshes(truth, poses, per_frame=m.per_frame, n_points=48), ph, truth, poses, m


@pytest.fixture(scope="module", params=["coronary", "femoropopliteal", "iliac-vein"])
def phantom_render(request):
    vm, ph, truth, poses, m = _phantom_scene(request.param)
    kwargs = dict(centerline=ph.centerline, poses=poses, metrics=m, contours=truth, style=PHANTOM_STYLE)
    return request.param, render.render_vessel(vm, **kwargs), render.render_vessel(vm, **kwargs)


def test_phantom_presets_fill_the_frame_with_a_colour_bar(phantom_render):
    preset, image, again = phantom_render
    assert np.array_equal(image, again), preset
    h, w, _ = image.shape
    scene_area = _not_background(image[int(0.12 * h) : int(0.9 * h), : int(0.8 * w)])
    cols = np.flatnonzero(scene_area.any(axis=0))
    rows = np.flatnonzero(_not_background(image[:, : int(0.8 * w)]).any(axis=1))
    # The vessel fills the free box (78 % of the width left of the colour bar, 58 % of the
    # height between the label bands) in one direction: long vessels across, short wide
    # segments (8 mm of a 12 mm vein) top to bottom.
    fill = max((cols.max() - cols.min()) / (0.78 * w), (rows.max() - rows.min()) / (0.58 * h))
    assert fill >= 0.9, (preset, fill)
    # Distal-to-proximal runs across: a side view, not a view down the lumen.
    assert (cols.max() - cols.min()) / w > 0.3, preset
    # Colour bar: a column right of the scene whose pixels follow the colormap over > 40 % of
    # the height.
    lut = render.colormap_rgb(np.linspace(0, 100, 101)) * 255
    region = image[:, int(0.84 * w) :].astype(float)
    dist = np.min(np.linalg.norm(region[:, :, None, :] - lut[None, None], axis=3), axis=2)
    assert (dist < 6.0).sum(axis=0).max() > 0.4 * h, preset


def _count_rgb(image, rgb, tol=30):
    return int((np.linalg.norm(image.astype(float) - np.array(rgb) * 255, axis=2) < tol).sum())


def test_calcium_patches_and_lesion_bracket_on_the_coronary_phantom():
    vm, ph, truth, poses, m = _phantom_scene("coronary")
    assert any(fc.calcium for fc in truth.frames)
    patch = render.calcium_surface(vm.lumen, truth, poses)
    assert patch is not None and patch.GetNumberOfCells() > 20
    with_ca = render.render_vessel(vm, poses=poses, contours=truth, style=PHANTOM_STYLE)
    without = render.render_vessel(vm, poses=poses, style=PHANTOM_STYLE)

    # Bone-white (bright, slightly yellow, shaded) pixels; the legend swatch alone is ~50.
    def bone(image):
        r, g, b = (image[..., c].astype(int) for c in range(3))
        return int(((b > 100) & (r - b >= 4) & (r - b <= 45) & (abs(r - g) <= 15) & (r < 250)).sum())

    assert bone(with_ca) > bone(without) + 150
    lesion = {"start_mm": 2.0, "end_mm": 6.0}
    marked = render.render_vessel(vm, poses=poses, lesions=[lesion], style=PHANTOM_STYLE)
    plain = render.render_vessel(vm, poses=poses, lesions=[], style=PHANTOM_STYLE)
    assert _count_rgb(plain, render._LESION_RGB, 40) == 0
    amber = np.argwhere(
        np.linalg.norm(marked.astype(float) - np.array(render._LESION_RGB) * 255, axis=2) < 40
    )
    assert len(amber) > 50
    # The bracket spans about half of the 8 mm vessel (4 mm), which fills ~75 % of the width.
    span = amber[:, 1].max() - amber[:, 1].min()
    assert 0.25 * PHANTOM_SIZE[0] < span < 0.5 * PHANTOM_SIZE[0]


def test_display_surface_thins_rings_and_keeps_the_ends():
    mesh, *_ = _vessel(curved=False, n_frames=80, n_around=48)
    thin = render.display_surface(mesh.vessel, max_rings=20, max_ring_points=16)
    frames = vtk_to_numpy(thin.GetPointData().GetArray("frame_index"))
    assert thin.GetNumberOfPoints() == 21 * 16  # every 4th of 80 rings + the last; every 3rd point
    assert frames[0] == 0 and frames[-1] == 79
    assert render._faces_outward(thin) is render._faces_outward(mesh.vessel)
    assert render.display_surface(mesh.vessel, max_rings=100, max_ring_points=48) is mesh.vessel
