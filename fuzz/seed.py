#!/usr/bin/env python3
"""Write libFuzzer seed folders (fuzz/corpus/<target>/) from the committed fixtures.

Each target's input layout is described at the top of its fuzz_targets/<target>.rs; this script
packs fixture files into those layouts so the fuzzers start from real, valid files. Standard
library only. Usage: python3 fuzz/seed.py [CORPUS_DIR ...]; corpus folders written by
`cardiaffect prepare` seed the corpus target (the fixtures hold none).
"""
import hashlib
import json
import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
OUT = ROOT / "fuzz" / "corpus"


def put(target, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def files(*globs):
    for g in globs:
        yield from sorted(p for p in FIX.glob(g) if p.is_file())


# Whole files for the single-file parsers; large ones are cut so the fuzzer stays fast.
CAP = 64 * 1024
for p in files("**/*.mat"):
    put("mat", p.read_bytes()[:CAP])
for p in files("**/*.pkl"):
    put("pickle", p.read_bytes()[:CAP])
for p in files("**/*.edf", "**/*.bdf"):
    put("edf", p.read_bytes()[:CAP])

# WFDB: header text \0 signal bytes.
for hea in files("**/*.hea"):
    text = hea.read_text(errors="replace")
    first = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    dat = b""
    if len(first) > 1:
        name = first[1].split()[0]
        f = hea.parent / name
        if f.is_file():
            dat = f.read_bytes()[:CAP]
    put("wfdb", text.encode() + b"\0" + dat)

# BrainVision: vhdr \0 vmrk \0 data bytes.
for vhdr in files("**/*.vhdr"):
    head = vhdr.read_bytes()
    vmrk = vhdr.with_suffix(".vmrk")
    eeg = vhdr.with_suffix(".eeg")
    marks = vmrk.read_bytes() if vmrk.is_file() else b""
    data = eeg.read_bytes()[:CAP] if eeg.is_file() else b""
    put("brainvision", head.replace(b"\0", b"") + b"\0" + marks.replace(b"\0", b"") + b"\0" + data)

# Events: one mode byte (delimiter, declared scales, baseline, start) then the table's text.
for p in files("**/*_events.tsv", "events/*.csv", "events/*.tsv"):
    text = p.read_bytes()
    tab = 0 if p.suffix == ".tsv" else 1
    for k in (200, 14, 255):
        put("events", bytes([(k & ~1) | tab]) + text)

# Stream: one mode byte then text samples (even mode) or float32 bytes (odd mode).
for p in files("csv/*.csv", "**/*.txt"):
    body = p.read_bytes()[:CAP]
    put("stream", bytes([0b0100_1001]) + body)
for mode in (0, 4, 8 | 1, 32 | 24):
    samples = [((i * 37) % 200 - 100) / 100.0 for i in range(2048)]
    if mode & 1 == 0:
        put("stream", bytes([mode]) + struct.pack(f"<{len(samples)}f", *samples))
    else:
        put("stream", bytes([mode]) + "\n".join(f"{s:.3f}" for s in samples).encode())

# Corpus: u32 len(manifest), u32 len(npy), manifest, npy, csv; from any committed corpus.
for d in [m.parent for m in files("**/manifest.json")] + [pathlib.Path(a) for a in sys.argv[1:]]:
    manifest = d / "manifest.json"
    npy, csv = d / "windows.npy", d / "windows.csv"
    if manifest.is_file() and npy.is_file() and csv.is_file():
        m, w = manifest.read_bytes(), npy.read_bytes()
        put("corpus", struct.pack("<II", len(m), len(w)) + m + w + csv.read_bytes())
if not (OUT / "corpus").is_dir():
    # A minimal hand-made corpus when no fixture holds one: the reader's errors are the seeds.
    m = json.dumps({"format_version": 2, "window_len": 4}).encode()
    w = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), }"
    w = w.ljust(10 + 118, b" ") + b"\n" + struct.pack("<4f", 0, 1, 0, -1)
    put("corpus", struct.pack("<II", len(m), len(w)) + m + w + b"subject,trial\ns1,t1\n")

for d in sorted(OUT.iterdir()):
    print(f"{d.name}: {len(list(d.iterdir()))} seeds")
