"""Shared pieces of the end-to-end parity checks (`tests/test_e2e_*.py`, `nbs/98_parity.ipynb`).

Each family's `check_<family>(work)` (in its test module) runs rsnb's route a user takes on the files an original's
own evaluation saw, and returns the comparison figures; the tests assert on them, the certificates page shows them.
The fixtures (`tests/fixtures/e2e/<family>/`) were written once by `tools/parity/e2e_<family>.py` from the original."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT/'tests'/'fixtures'/'e2e'
BIN = Path(sys.executable).parent
SHARED = Path(os.environ.get('RSNB_SHARED_DATA', ROOT.parent/'shared'/'data'))

def fixture(family:str):
    "(fixture.json as a dict, outputs.npz as a dict of arrays) of one family."
    d = E2E/family
    with np.load(d/'outputs.npz') as z: arrays = {k: z[k] for k in z.files}
    return json.loads((d/'fixture.json').read_text()), arrays

def shared(*parts) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        import pytest
        pytest.skip(f'{p}: sample data not on this machine (../shared/data)')
    return p

def cli(prog:str, *args, env=None, timeout=600):
    "Run one of rsnb's console scripts; the CompletedProcess (text)."
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', **(env or {})}
    return subprocess.run([str(BIN/prog), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)

def ok(r) -> str:
    "The stdout of a console script that must have succeeded (else its last stderr lines as the failure)."
    assert r.returncode == 0, f'exit {r.returncode}: ' + ' | '.join(r.stderr.strip().splitlines()[-3:])
    return r.stdout

def diff(ours, ref) -> dict:
    "max |diff|, max |diff| / max |ref| (the scale) and the scale of two float arrays of one shape."
    o, r = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert o.shape == r.shape, (o.shape, r.shape)
    d = float(np.abs(o - r).max()) if o.size else 0.
    scale = float(np.abs(r).max()) if r.size else 0.
    return dict(max_abs_diff=d, rel_diff=d/max(scale, 1e-30), scale=scale)

def map_diff(ours, ref, tie_mask=None) -> dict:
    "Pixels (or labels) that differ, and how many of them are near-ties of the original (allowed to flip)."
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    bad = ours != ref
    ties = np.zeros_like(bad) if tie_mask is None else np.asarray(tie_mask, bool)
    return dict(n=int(bad.size), differ=int(bad.sum()), differ_not_tie=int((bad & ~ties).sum()), near_ties=int(ties.sum()))

def tie_mask(shape, coords) -> np.ndarray:
    m = np.zeros(shape, bool)
    if len(coords): m[tuple(np.asarray(coords).T)] = True
    return m

def pct(x) -> str: return f'{100*x:.2f}'
