"""The Python package against references nobody here wrote: the committed fixtures' expected
values (written by scipy, pickle, wfdb, pyedflib, MNE-BIDS, pybv), NeuroKit2 and scikit-learn.

A corpus for the fold tests is made with the `cardiaffect` binary named by CARDIAFFECT_BIN
(CI builds it before running these); without it those tests are skipped, saying so.
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import cardiaffect as ca

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "fixtures"
EXPECTED = json.loads((FIX / "expected.json").read_text())["fixtures"]


def plain_cases():
    return [f for f in EXPECTED if not ({"events", "baseline"} & set(f["options"]))]


@pytest.mark.parametrize("case", plain_cases(), ids=lambda f: f"{f['path']}{f['options'] or ''}")
def test_readers_match_what_the_writing_tools_wrote(case):
    o = case["options"]
    recs = ca.read(FIX / case["path"], format=case["format"], lead=o.get("lead"), fs=o.get("fs"))
    assert len(recs) == len(case["recordings"])
    for r, e in zip(recs, case["recordings"]):
        assert (r.subject, r.trial, r.lead) == (e["subject"], e["trial"], e["lead"])
        if e.get("segment"):
            assert r.segment == e["segment"]
        assert r.fs == pytest.approx(e["fs"])
        assert r.signal.dtype == np.float64 and r.signal.ndim == 1
        assert len(r.signal) == e["samples"]
        n = len(e["first_samples"])
        want = np.array([np.nan if v is None else v for v in e["first_samples"]], dtype=float)
        np.testing.assert_allclose(r.signal[:n], want, rtol=1e-6, atol=1e-9)
        assert int(np.isnan(r.signal).sum()) == e["nan"]
        assert np.nansum(r.signal) == pytest.approx(e["sum"], rel=1e-5, abs=1e-6)
        for k, v in e.get("labels", {}).items():
            if isinstance(v, (int, float)):
                got = r.labels[k]
                assert got is None if v != v else got == pytest.approx(v), k
    assert len(recs.skipped) == len(case["skipped"])


def test_doubles_come_back_as_views_of_the_file_that_writes_never_reach(tmp_path):
    src = FIX / "amigos"
    views = [r for r in ca.read(src) if type(r.signal.base).__name__ == "MappedFile"]
    assert views, "no uncompressed AMIGOS fixture read as a view"
    path = pathlib.Path(views[0].source)
    before = path.read_bytes()
    x = views[0].signal
    want = x.copy()
    x += 1.0  # private mapping: this process only
    assert path.read_bytes() == before
    again = next(r for r in ca.read(src) if r.source == views[0].source and r.trial == views[0].trial)
    np.testing.assert_array_equal(again.signal, want)


def test_other_channels_load_on_demand():
    r = ca.read(FIX / "dreamer" / "DREAMER.mat")[0]
    assert "ECG 2" in r.channels
    x, fs = r.load_channel("ECG 2")
    assert fs == r.fs and len(x) == len(r.signal) and x.dtype == np.float64
    with pytest.raises(ValueError, match="no channel"):
        r.load_channel("nope")
    scales = r.label_scales["arousal"]
    assert (scales["min"], scales["max"]) == (1.0, 5.0)


def test_bad_input_is_an_exception_that_says_what_was_expected(tmp_path):
    with pytest.raises(ca.ReadError) as e:
        ca.read(tmp_path / "missing.edf")
    assert e.value.file.endswith("missing.edf") and isinstance(e.value, OSError)
    bad = tmp_path / "bad.edf"
    bad.write_bytes(b"0       " + b"x" * 50)
    with pytest.raises(ca.ReadError, match="bad.edf"):
        ca.read(bad, format="edf")
    # Settings are named as this package's keywords, not as the command line's flags.
    with pytest.raises(ca.ReadError) as e:
        ca.read(FIX / "npy" / "ecg_f32.npy")
    assert e.value.field == "fs" and "pass fs HZ" in str(e.value), str(e.value)
    assert "--" not in str(e.value) and "\u2039" not in str(e.value)
    with pytest.raises(ValueError, match="unknown format"):
        ca.read(FIX / "npy" / "ecg_f32.npy", format="matlab")
    with pytest.raises(ValueError, match="fs"):
        ca.read(FIX / "npy" / "ecg_f32.npy", fs=float("nan"))
    with pytest.raises(ValueError, match="1-D numpy array"):
        ca.ecg_peaks(np.zeros((2, 100)), 128.0)
    with pytest.raises(ValueError, match="1-D numpy array"):
        ca.ecg_peaks([0.0, 1.0, 0.0], 128.0)
    with pytest.raises(ValueError, match="sampling_rate"):
        ca.ecg_clean(np.zeros(100), float("inf"))


def bundled_ecg():
    r = ca.read(ROOT / "data" / "biosignalsnotebooks" / "ecg_5min.hea")[0]
    return r.signal, r.fs


def test_ecg_peaks_equal_neurokit2s():
    nk = pytest.importorskip("neurokit2")
    x, fs = bundled_ecg()
    clean = nk.ecg_clean(x, sampling_rate=fs, method="neurokit")
    _, info = nk.ecg_peaks(clean, sampling_rate=fs, method="neurokit")
    theirs = np.asarray(info["ECG_R_Peaks"])
    ours = ca.ecg_peaks(clean, sampling_rate=fs)
    assert len(theirs) > 200
    # f32 inside: a peak may move by a sample where two samples are nearly equal.
    assert abs(len(ours) - len(theirs)) <= 2
    matched = sum(np.min(np.abs(theirs - p)) <= 1 for p in ours)
    assert matched >= len(theirs) - 2


def test_signal_functions_keep_length_and_rate():
    x, fs = bundled_ecg()
    y = ca.ecg_clean(x, sampling_rate=fs)
    assert y.shape == x.shape and np.isfinite(y).all()
    z = ca.resample(y, fs, 128.0)
    assert len(z) == pytest.approx(len(y) * 128.0 / fs, abs=2)
    h = ca.hrv_time(ca.ecg_peaks(y, sampling_rate=fs), sampling_rate=fs)
    assert 40 < h["mean_hr_bpm"] < 140 and h["rmssd_ms"] > 0
    assert ca.hrv_time(np.array([10], dtype=np.int64), sampling_rate=fs) is None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    exe = os.environ.get("CARDIAFFECT_BIN")
    if not exe:
        pytest.skip("CARDIAFFECT_BIN is not set: no binary to write a corpus with")
    d = tmp_path_factory.mktemp("c")
    env = dict(os.environ, CARDIAFFECT_CACHE=str(d / "cache"))
    run = lambda *a: subprocess.run([exe, *a], check=True, capture_output=True, env=env)
    run("synth", "--affect", "--subjects", "5", "--trials", "4", "--trial-seconds", "40",
        "--out", str(d / "raw"))
    run("prepare", "--out", str(d / "corpus"), "--source", f"auto:{d / 'raw'}")
    return d / "corpus"


def test_folds_never_share_a_subject(corpus):
    import csv

    rows = list(csv.DictReader(open(corpus / "windows.csv")))
    subject = [r["subject"] for r in rows]
    fs = ca.folds(corpus, task="arousal", n_folds=5, seed=1)
    assert len(fs) == 5
    tested = np.concatenate([t for _, t in fs])
    assert len(tested) == len(set(tested.tolist()))
    for train, test in fs:
        assert not ({subject[i] for i in train} & {subject[i] for i in test})
    # The same seed gives the same folds; another seed, others.
    again = ca.folds(corpus, task="arousal", n_folds=5, seed=1)
    assert all((a[1] == b[1]).all() for a, b in zip(fs, again))
    with pytest.raises(ValueError, match="protocol"):
        ca.folds(corpus, protocol="random")


def test_scikit_learn_cross_validates_on_the_folds(corpus):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    w = np.load(corpus / "windows.npy")
    fs_hz = 128.0
    feats = []
    for x in w:
        p = ca.ecg_peaks(x.astype(np.float64), sampling_rate=fs_hz)
        h = ca.hrv_time(p, sampling_rate=fs_hz) or {}
        feats.append([h.get("mean_hr_bpm", np.nan), h.get("rmssd_ms", np.nan)])
    X = np.nan_to_num(np.array(feats))
    import csv

    rows = list(csv.DictReader(open(corpus / "windows.csv")))
    y = np.array([float(r["arousal"]) > 5 for r in rows], dtype=int)
    cv = ca.folds(corpus, task="arousal", n_folds=5, seed=1)
    scores = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=cv)
    assert len(scores) == 5 and all(0.0 <= s <= 1.0 for s in scores)


def test_a_corpus_reads_as_numpy_and_labels_name_their_rule(corpus, tmp_path):
    c = ca.Corpus(corpus)
    w = c.windows
    assert w.shape == (len(c), c.window_len) and w.dtype == np.float32
    assert not w.flags.writeable  # a read-only memory map: nothing copied
    np.testing.assert_array_equal(w[:3], np.load(corpus / "windows.npy")[:3])
    m = c.meta
    assert len(m["subject"]) == len(c) and "arousal" in c.label_columns
    lab = c.labels("arousal")
    assert set(np.unique(lab["y"])) <= {-1, 0, 1} and len(lab["classes"]) == 2
    assert "arousal" in lab["rule"] and sum(lab["counts"]) == int((lab["y"] >= 0).sum())
    strict = c.labels("arousal", threshold=8.5)
    assert "given" in strict["rule"] and strict["counts"] != lab["counts"]
    with pytest.raises(ValueError, match="threshold"):
        c.labels("quadrant", threshold=3.0)
    a = ca.folds(c, task="arousal", n_folds=5, seed=1)
    b = ca.folds(corpus, task="arousal", n_folds=5, seed=1)
    assert all((x[1] == y[1]).all() for x, y in zip(a, b))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ca.ReadError, match="manifest.json"):
        ca.Corpus(tmp_path / "empty")


def test_the_bundled_model_embeds_windows_one_by_one(corpus):
    m = ca.Model.load("bundled")
    c = ca.Corpus(corpus)
    assert m.window_len == c.window_len and m.fs == c.fs and m.classes is None
    w = np.asarray(c.windows[:6])
    e = m.embed(w)
    assert e.shape[0] == 6 and e.dtype == np.float32 and np.isfinite(e).all()
    # Each window is z-scored and embedded on its own: batching and scale change nothing.
    np.testing.assert_allclose(m.embed(w[2:3])[0], e[2], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.embed(3.0 * w.astype(np.float64) + 1.0), e, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="no classes"):
        m.predict_proba(w)
    with pytest.raises(ValueError, match="rows of 1280 samples"):
        m.embed(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="2-D numpy array"):
        m.embed(np.zeros(1280))
    with pytest.raises(OSError, match="config.json"):
        ca.Model.load(str(corpus))


@pytest.fixture(scope="module")
def finetuned(corpus, tmp_path_factory):
    d = tmp_path_factory.mktemp("ft")
    cli("finetune", "--corpus", str(corpus), "--pretrained", "bundled", "--task", "arousal",
        "--methods", "pretrained", "--steps", "2", "--folds", "2", "--out", str(d / "run"),
        cache=d / "cache")
    return d / "run"


def cli(*args, cache):
    return subprocess.run([os.environ["CARDIAFFECT_BIN"], *args], check=True, capture_output=True,
                          text=True, env=dict(os.environ, CARDIAFFECT_CACHE=str(cache)))


def test_a_fine_tuned_model_gives_probabilities(corpus, finetuned):
    m = ca.Model.load(str(finetuned))
    assert m.classes is not None and len(m.classes) == 2
    p = m.predict_proba(np.asarray(ca.Corpus(corpus).windows[:10]))
    assert p.shape == (10, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-9)


def test_embed_equals_the_clis(corpus, tmp_path):
    cli("embed", "--model", "bundled", "--corpus", str(corpus), "--out", str(tmp_path / "e.npy"),
        cache=tmp_path / "cache")
    want = np.load(tmp_path / "e.npy")
    m = ca.Model.load("bundled")
    got = m.embed(np.asarray(ca.Corpus(corpus).windows))
    assert got.shape == want.shape == (len(ca.Corpus(corpus)), m.config["d_model"])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_predict_gives_the_timeline_the_cli_writes(finetuned, tmp_path):
    cache = tmp_path / "cache"
    cli("predict", "--model", str(finetuned), "bundled:biosignalsnotebooks/ecg_5min",
        "--out", str(tmp_path / "t.csv"), cache=cache)
    want = np.genfromtxt(tmp_path / "t.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    (hea,) = cache.glob("bundled-*/biosignalsnotebooks/ecg_5min.hea")
    (rec,) = ca.read(hea)
    m = ca.Model.load(str(finetuned))
    t = m.predict(rec.signal, rec.fs)
    cols = ["start_s", "end_s", "quality", "hr_bpm"] + [f"p_{c}".replace(" ", "_") for c in m.classes]
    assert list(t.keys()) == cols
    assert len(t["start_s"]) == len(want) > 20
    np.testing.assert_allclose(t["start_s"], want["start_s"], atol=5e-4)
    np.testing.assert_allclose(t["end_s"], want["end_s"], atol=5e-4)
    assert list(t["quality"]) == list(want["quality"])
    np.testing.assert_allclose(t["hr_bpm"], want["hr_bpm"], atol=0.05 + 1e-9)
    for c in cols[4:]:
        np.testing.assert_allclose(t[c], want[c], atol=5e-5 + 1e-9)
    # A shorter hop gives more windows; wrong inputs say what was expected.
    assert len(m.predict(rec.signal, rec.fs, hop=1.0)["start_s"]) > len(want)
    with pytest.raises(ValueError, match="1-D numpy array"):
        m.predict(np.zeros((2, 1000)), rec.fs)
    with pytest.raises(ValueError, match="fs"):
        m.predict(rec.signal, float("inf"))
    with pytest.raises(ValueError, match="no classes"):
        ca.Model.load("bundled").predict(rec.signal, rec.fs)


def read_safetensors(path):
    """safetensors read with numpy alone: an 8-byte header length, a JSON header, the data."""
    b = pathlib.Path(path).read_bytes()
    n = int.from_bytes(b[:8], "little")
    header = json.loads(b[8:8 + n])
    data = b[8 + n:]
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4")
            .reshape(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def test_state_dict_is_what_export_writes_in_pytorchs_layout(finetuned, tmp_path):
    cli("export", "--model", str(finetuned), "--out", str(tmp_path / "x"), cache=tmp_path / "cache")
    want = read_safetensors(tmp_path / "x" / "model.safetensors")
    m = ca.Model.load(str(finetuned))
    got = m.state_dict()
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    d = m.config["d_model"]
    assert got["transformer.layers.0.pwff.linear_inner.weight"].shape == (m.config["d_ff"], d)
    assert json.loads((tmp_path / "x" / "config.json").read_text()) == m.config


def test_prepare_writes_the_corpus_the_cli_writes(corpus, tmp_path):
    raw = corpus.parent / "raw"
    c = ca.prepare(str(raw), tmp_path / "c")
    ref = ca.Corpus(corpus)
    assert len(c) == len(ref) and c.window_len == ref.window_len and c.fs == ref.fs
    np.testing.assert_array_equal(np.asarray(c.windows), np.asarray(ref.windows))
    assert c.label_columns == ref.label_columns
    # Again: everything is reused and nothing changes.
    again = ca.prepare([f"auto:{raw}"], tmp_path / "c")
    np.testing.assert_array_equal(np.asarray(again.windows), np.asarray(ref.windows))
    with pytest.raises(ValueError, match="window"):
        ca.prepare(str(raw), tmp_path / "bad", window=0.01)
    with pytest.raises(ValueError, match="sources"):
        ca.prepare(3, tmp_path / "bad")
    with pytest.raises(ca.ReadError, match="no such file"):
        ca.prepare([str(tmp_path / "nope")], tmp_path / "bad")
    with pytest.raises(ValueError, match="dtype"):
        ca.prepare(str(raw), tmp_path / "bad", dtype="int8")


def test_a_corpus_written_by_another_version_is_refused_saying_so(corpus, tmp_path):
    import re
    import shutil
    d = tmp_path / "old"
    shutil.copytree(corpus, d)
    m = d / "manifest.json"
    m.write_text(re.sub(r'"format_version": \d+', '"format_version": 99', m.read_text()))
    with pytest.raises(ca.ReadError, match="version 99") as e:
        ca.Corpus(d)
    assert "prepare" in str(e.value) and e.value.file == str(d)
