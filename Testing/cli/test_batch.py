"""``ivus-reconstruct batch``: a cohort on Dask equals single runs, survives faults, resumes.

Small phantoms (2 mm, 96 px, gating none) keep every case at a few seconds.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from IVUSReconstructLib import batch, cli  # noqa: E402
from IVUSReconstructLib.errors import IVUSInputError  # noqa: E402

GOOD = (("c1", "coronary", 1), ("c2", "coronary", 2), ("f3", "femoropopliteal", 3))


def _batch_cli(argv: list[str]) -> int:
    """Through ``ivus-reconstruct batch``."""
    return cli.main(["batch", *argv])


def _summary(path: Path) -> dict:
    doc = json.loads(path.read_text())
    doc.pop("timings_s", None)
    return doc


def _write_manifest(folder: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    path = folder / name
    cols = ["id", "pullback", "centerline", "gating", "start_mm"]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    return path


def _good_rows() -> list[dict]:
    return [
        {
            "id": cid,
            "pullback": f"cases/{cid}/pullback.dcm",
            "centerline": f"cases/{cid}/centerline.mrk.json",
            "gating": "none",
        }
        for cid, _, _ in GOOD
    ]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """Three phantoms (two presets, three seeds), a corrupt case, a missing-file case, and the
    summary.json of a single ``run`` of each good case."""
    root = tmp_path_factory.mktemp("cohort")
    for cid, preset, seed in GOOD:
        args = ["phantom", "--preset", preset, "--seed", str(seed), "--length-mm", "2", "--size-px", "96"]
        assert cli.main([*args, "--out", str(root / "cases" / cid)]) == 0
    bad = root / "cases" / "bad"
    bad.mkdir()
    (bad / "pullback.dcm").write_bytes(b"this is not a DICOM file" * 10)
    rows = _good_rows() + [
        {
            "id": "bad",
            "pullback": "cases/bad/pullback.dcm",
            "centerline": "cases/c1/centerline.mrk.json",
            "gating": "none",
        },
        {"id": "gone", "pullback": "cases/gone/pullback.dcm", "gating": "none"},
    ]
    manifest = _write_manifest(root, rows)
    single = {}
    for cid, _, _ in GOOD:
        out = root / "single" / cid
        pb, cl = root / "cases" / cid / "pullback.dcm", root / "cases" / cid / "centerline.mrk.json"
        assert cli.main(["run", str(pb), "--centerline", str(cl), "--gating", "none", "--out", str(out)]) == 0
        single[cid] = _summary(out / "summary.json")
    return {"root": root, "manifest": manifest, "single": single}


@pytest.fixture(scope="module")
def client():
    """A local cluster of two worker processes shared by the in-process tests."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _case_records(out: Path, ids) -> dict:
    return {cid: json.loads((out / "cases" / cid / "case.json").read_text()) for cid in ids}


def _assert_complete(out: Path, single: dict, batch_id: str | None = None) -> None:
    for cid, expected in single.items():
        assert _summary(out / "cases" / cid / "summary.json") == expected, cid
        record = json.loads((out / "cases" / cid / "case.json").read_text())
        assert all((out / "cases" / cid / f).exists() for f in record["outputs"])
        if batch_id is not None:
            assert record["batch_id"] == batch_id
    leftovers = [p.name for p in (out / "cases").iterdir() if ".partial-" in p.name or ".old-" in p.name]
    assert leftovers == []


@pytest.fixture(scope="module")
def first_batch(cohort, client, tmp_path_factory) -> dict:
    """The whole manifest (3 good, 1 corrupt, 1 missing case) through the command line, on the
    shared cluster by --scheduler (the local-cluster path runs in the SIGINT test)."""
    out = tmp_path_factory.mktemp("first") / "batch"
    address = client.scheduler.address
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = _batch_cli([str(cohort["manifest"]), "--out", str(out), "--scheduler", address])
    return {"out": out, "rc": rc, "err": err.getvalue()}


@pytest.mark.slow
def test_cohort_equals_single_runs_and_reports_failures(cohort, first_batch):
    out, err = first_batch["out"], first_batch["err"]
    assert first_batch["rc"] == 2, err  # only input errors among the failures
    _assert_complete(out, cohort["single"])
    assert "remaining 0" in err and "cases/min" in err

    rows = {r["id"]: r for r in csv.DictReader((out / "cohort.csv").open())}
    assert list(rows) == ["c1", "c2", "f3", "bad", "gone"]
    assert [rows[c]["status"] for c in rows] == ["ok", "ok", "ok", "failed", "failed"]
    assert rows["bad"]["exit_category"] == "2" and "pullback.dcm" in rows["bad"]["error"]
    assert rows["gone"]["exit_category"] == "2" and "does not exist" in rows["gone"]["error"]
    err_doc = json.loads((out / "cases" / "gone.error.json").read_text())
    assert err_doc["exit_category"] == 2 and "gone" in err_doc["message"]
    for cid, s in cohort["single"].items():
        assert float(rows[cid]["lumen_volume_mm3"]) == pytest.approx(s["volumes_mm3"]["lumen"], rel=1e-5)
        assert float(rows[cid]["pav_percent"]) == pytest.approx(s["pav_percent"], rel=1e-5)
        assert int(rows[cid]["n_frames"]) == s["n_frames"]

    # cohort statistics and TAVnorm with the cohort's median frame count (METRICS.md)
    doc = json.loads((out / "cohort.json").read_text())
    n_frames = [s["n_frames"] for s in cohort["single"].values()]
    median_frames = int(round(np.median(n_frames)))
    assert doc["median_n_frames"] == median_frames and doc["n_ok"] == 3 and doc["n_failed"] == 2
    lumen = [s["volumes_mm3"]["lumen"] for s in cohort["single"].values()]
    st = doc["statistics"]["lumen_volume_mm3"]
    assert st["median"] == pytest.approx(np.median(lumen), rel=1e-6)
    assert st["iqr"] == pytest.approx(np.subtract(*np.percentile(lumen, [75, 25])), rel=1e-6)
    for cid in cohort["single"]:
        frames = list(csv.DictReader((out / "cases" / cid / "frames.csv").open()))
        pa = [float(f["vessel_area_mm2"]) - float(f["lumen_area_mm2"]) for f in frames]
        assert float(rows[cid]["tav_norm_mm3"]) == pytest.approx(np.mean(pa) * median_frames, rel=1e-4)
    page = (out / "index.html").read_text()
    assert page.count('href="cases/') == 3 and "does not exist" in page


@pytest.mark.slow
def test_rerun_skips_unchanged_cases_and_force_recomputes(cohort, first_batch, client, tmp_path):
    root = cohort["root"]
    out = tmp_path / "batch"
    shutil.copytree(first_batch["out"], out)
    cases = batch.read_manifest(_write_manifest(root, _good_rows(), "good.csv"))
    before = _case_records(out, ["c1", "c2", "f3"])

    again = batch.run_batch(cases, out, client=client)
    assert again.computed == 0 and all(o.reused for o in again.outcomes.values())
    assert _case_records(out, ["c1", "c2", "f3"]) == before
    assert json.loads((out / "cohort.json").read_text())["n_ok"] == 3

    # a changed option changes the hash of that case only
    rows = _good_rows()
    rows[1]["start_mm"] = "0.5"
    changed = batch.read_manifest(_write_manifest(root, rows, "changed.csv"))
    third = batch.run_batch(changed, out, client=client)
    assert {c for c, o in third.outcomes.items() if not o.reused} == {"c2"}
    assert _summary(out / "cases" / "c2" / "summary.json")["inputs"]["arc_length"]["start_mm"] == 0.5

    forced = batch.run_batch(cases[:1], out, client=client, force=True)
    assert forced.computed == 1
    assert _case_records(out, ["c1"])["c1"]["batch_id"] == forced.batch_id
    _assert_complete(out, {"c1": cohort["single"]["c1"]}, forced.batch_id)


@pytest.mark.slow
def test_killed_worker_still_completes_every_case_once(cohort, client, tmp_path):
    root = cohort["root"]
    rows = [dict(r, id=f"{r['id']}-k") for r in _good_rows()[1:]]
    cases = batch.read_manifest(_write_manifest(root, rows, "kill.csv"))
    pids = client.run(os.getpid)
    out = tmp_path / "batch"
    box: dict = {}
    runner = threading.Thread(target=lambda: box.update(result=batch.run_batch(cases, out, client=client)))
    runner.start()
    victim = None
    start = time.time()
    while victim is None and time.time() < start + 60:
        executing = {w: ts for w, ts in client.processing().items() if ts}
        # kill mid-case: a worker that has been on a case for a moment, before any case finished
        if executing and time.time() > start + 0.8:
            addr = sorted(executing)[0]
            victim = (addr, pids[addr], list(executing[addr]))
            os.kill(pids[addr], signal.SIGKILL)
        time.sleep(0.05)
    runner.join(120)
    assert victim is not None
    result = box["result"]
    assert victim[1] not in client.run(os.getpid).values()  # the nanny replaced the killed process
    assert all(o.status == "ok" for o in result.outcomes.values()), result.outcomes
    assert len(result.outcomes) == 2 and result.computed == 2
    _assert_complete(out, {}, None)
    for r in rows:
        cid = r["id"]
        record = json.loads((out / "cases" / cid / "case.json").read_text())
        assert record["batch_id"] == result.batch_id and record["pid"] != victim[1]
        assert _summary(out / "cases" / cid / "summary.json") == cohort["single"][cid.split("-")[0]]


@pytest.mark.slow  # over 9 s (pytest --durations, 2 shared cores)
def test_case_whose_worker_is_always_killed_fails_with_the_reason_and_reruns_alone(cohort, client, tmp_path):
    """A case that kills its worker every time (as the out-of-memory killer would): it is reported
    failed with the reason after the scheduler's retries, the other case completes, and a rerun
    computes only the failed case."""

    class KillOnCase(distributed.WorkerPlugin):  # local: pickled by value for the workers
        name = "ivus-test-kill-on-case"

        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and "-oom-" in str(key):
                os.kill(os.getpid(), signal.SIGKILL)

    rows = [dict(_good_rows()[0], id="c1-ok"), dict(_good_rows()[1], id="c2-oom")]
    manifest = _write_manifest(cohort["root"], rows, "oom.csv")
    cases = batch.read_manifest(manifest)
    out = tmp_path / "batch"
    client.register_plugin(KillOnCase())
    try:
        first = batch.run_batch(cases, out, client=client)
    finally:
        client.unregister_worker_plugin(KillOnCase.name)
    ok, oom = first.outcomes["c1-ok"], first.outcomes["c2-oom"]
    assert ok.status == "ok" and oom.status == "failed" and oom.exit_category == 1
    assert oom.error_type == "KilledWorker"
    assert oom.message == (
        "its worker process died 4 times while running this case (killed from outside, most often by the "
        "out-of-memory killer); the other cases are unaffected: rerun the batch to retry only this case, "
        "with fewer --workers if memory is short"
    )
    error = json.loads((out / "cases" / "c2-oom.error.json").read_text())
    assert error["message"] == oom.message
    assert not (out / "cases" / "c2-oom").exists()
    status = {r["id"]: r["status"] for r in csv.DictReader((out / "cohort.csv").open())}
    assert status == {"c1-ok": "ok", "c2-oom": "failed"}
    before = _case_records(out, ["c1-ok"])

    rerun = batch.run_batch(cases, out, client=client)
    assert {c for c, o in rerun.outcomes.items() if not o.reused} == {"c2-oom"}
    assert all(o.status == "ok" for o in rerun.outcomes.values())
    assert _case_records(out, ["c1-ok"]) == before
    assert not (out / "cases" / "c2-oom.error.json").exists()
    _assert_complete(out, {"c1-ok": cohort["single"]["c1"], "c2-oom": cohort["single"]["c2"]})


@pytest.mark.slow
def test_sigint_then_rerun_finishes_only_missing_cases(cohort, client, tmp_path):
    manifest = _write_manifest(cohort["root"], _good_rows()[:2], "two.csv")
    out = tmp_path / "batch"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "IVUSReconstructLib.cli",
            "batch",
            str(manifest),
            "--out",
            str(out),
            "--workers",
            "1",
        ],
        stderr=subprocess.PIPE,
        text=True,
        # a shell without job control starts background jobs with SIGINT ignored, and a child
        # inherits that: Ctrl-C is what this test sends, whoever started the test run
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 90
    records = [out / "cases" / cid / "case.json" for cid in ("c1", "c2")]
    # the scheduler may start either case first: interrupt once one of them is finished
    while not any(r.exists() for r in records) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    done = {p.name for p in (out / "cases").iterdir() if (p / "case.json").exists()}
    assert len(done) == 1
    rows = {r["id"]: r["status"] for r in csv.DictReader((out / "cohort.csv").open())}
    assert [rows[c] for c in sorted(done)] == ["ok"] and sorted(rows.values()).count("pending") == 1
    before = _case_records(out, done)

    rerun = batch.run_batch(batch.read_manifest(manifest), out, client=client)
    assert {c for c, o in rerun.outcomes.items() if not o.reused} == {"c1", "c2"} - done
    assert _case_records(out, done) == before
    _assert_complete(out, {c: cohort["single"][c] for c in ("c1", "c2")})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_existing_cluster_through_scheduler_address(cohort, tmp_path, capsys):
    dask_cli = Path(sys.executable).with_name("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, DASK_LOGGING__DISTRIBUTED="error")
    procs = [
        subprocess.Popen(
            [str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stderr=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    ]
    try:
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [str(dask_cli), "worker", address, "--nthreads", "1", "--no-dashboard"],
                    env=env,
                    stderr=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
            )
        with distributed.Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
            worker_pids = set(c.run(os.getpid).values())
        manifest = _write_manifest(cohort["root"], _good_rows()[1:], "last2.csv")
        out = tmp_path / "batch"
        assert _batch_cli([str(manifest), "--out", str(out), "--scheduler", address]) == 0
        assert f"Dask scheduler {address}" in capsys.readouterr().err
        expected = {c: cohort["single"][c] for c in ("c2", "f3")}
        _assert_complete(out, expected)
        writers = {json.loads((out / "cases" / c / "case.json").read_text())["pid"] for c in expected}
        assert writers <= worker_pids  # the cases ran in the separate worker processes
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_manifest_errors_name_the_file_and_the_fix(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("id,pullback,speed\na,x.dcm,1\n")
    with pytest.raises(IVUSInputError, match=r"m\.csv: column 'speed' is unknown; use id, pullback"):
        batch.read_manifest(path)
    path.write_text("id,pullback\na,x.dcm\na,y.dcm\n")
    with pytest.raises(IVUSInputError, match=r"row 3: id 'a' is a duplicate"):
        batch.read_manifest(path)
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {"gating": "none", "pullback_speed": 0.5},
                "cases": [{"id": "a", "pullback": "p/x.dcm"}],
            }
        )
    )
    (case,) = batch.read_manifest(path)
    assert case.paths["pullback"] == str(tmp_path / "p" / "x.dcm")
    options = batch.case_options(case)
    assert options.gating == "none" and options.pullback_speed_mm_s == 0.5
    bad = batch.CaseSpec("a", (("pullback", "x"),), (("pixel_spacing", "20"),), "m.csv", 2)
    with pytest.raises(IVUSInputError) as info:
        batch.case_options(bad)
    assert str(info.value) == (
        "m.csv: case 'a': column pixel_spacing is 20 mm, outside the plausible 0.001-1 mm (IVUS frames "
        "have 0.01-0.05 mm per pixel); fill the pixel_spacing column in mm (e.g. 0.02), not in um or cm"
    )


def test_manifest_that_is_not_utf8_is_an_input_error(tmp_path):
    from IVUSReconstructLib.batch import read_manifest
    from IVUSReconstructLib.errors import IVUSInputError

    manifest = tmp_path / "cohort.csv"
    manifest.write_bytes(b"id,pullback\nc1,\xff\xfe.dcm\n")
    with pytest.raises(IVUSInputError, match="MANIFEST cannot be read as UTF-8 text"):
        read_manifest(manifest)
