"Property tests of rsnb.metrics against scikit-learn / scikit-image / hand computations on random inputs."
import math
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
import sklearn.metrics as skm
import skimage.metrics as skim
from rsnb.core import RsnbError
from rsnb import metrics as M

@settings(max_examples=30, deadline=None)
@given(st.integers(2, 8), st.integers(1, 400), st.integers(0, 2**31-1))
def test_confusion_kappa_oa_match_sklearn(n, size, seed):
    rng = np.random.default_rng(seed)
    t, p = rng.integers(0, n, size), rng.integers(0, n, size)
    cm = M.confusion_matrix(p, t, n)
    assert (cm == skm.confusion_matrix(t, p, labels=range(n))).all()
    assert math.isclose(M.overall_accuracy(cm), skm.accuracy_score(t, p))
    k = M.kappa(cm)
    if not math.isnan(k): assert math.isclose(k, skm.cohen_kappa_score(t, p, labels=range(n)), abs_tol=1e-9)

@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(0, 2**31-1))
def test_iou_conventions(n, seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, n, 300); p = np.where(rng.random(300) < 0.6, t, rng.integers(0, n, 300))
    cm = M.confusion_matrix(p, t, n)
    present = (cm.sum(0) + cm.sum(1)) > 0
    ref = skm.jaccard_score(t, p, labels=range(n), average=None, zero_division=0)
    assert np.allclose(M.iou(cm, 'zero'), ref)
    assert math.isclose(M.miou(cm), ref[present].mean())
    assert math.isclose(M.miou(cm, 'one'), (ref.sum() + (~present).sum())/n)

def test_accumulated_not_per_batch():
    rng = np.random.default_rng(0)
    acc = M.ConfusionMatrix(3)
    ts = [rng.integers(0, 3, s) for s in (10, 1000)]; ps = [rng.integers(0, 3, s) for s in (10, 1000)]
    for p, t in zip(ps, ts): acc.update(p, t)
    assert math.isclose(acc.report()['oa'], skm.accuracy_score(np.concatenate(ts), np.concatenate(ps)))

@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5), st.integers(11, 40), st.integers(0, 2**31-1))
def test_psnr_matches_skimage(c, hw, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 256, (c, hw, hw)).astype(np.uint8)
    x = np.clip(y + rng.normal(0, 5, y.shape), 0, 255).astype(np.uint8)
    if (x == y).all(): return
    assert math.isclose(M.psnr(x, y, 255), skim.peak_signal_noise_ratio(y, x, data_range=255), rel_tol=1e-9)

def test_psnr_per_band_range_invariance():
    rng = np.random.default_rng(1)
    y = rng.random((4, 32, 32)); x = y + rng.normal(0, 0.01, y.shape)
    s = np.array([1, 10, 100, 1000.])[:, None, None]
    assert math.isclose(M.psnr(x*s, y*s, s.ravel()), M.psnr(x, y, 1.0), rel_tol=1e-9)

def test_sam_scale_invariant():
    rng = np.random.default_rng(2)
    y = rng.random((6, 8, 8)) + 0.1
    assert M.sam(3*y, y) < 1e-4
    x = rng.random((6, 8, 8)) + 0.1
    assert math.isclose(M.sam(x, y), M.sam(5*x, 0.5*y), rel_tol=1e-9)

@pytest.mark.parametrize('bad', [
    lambda: M.psnr(np.zeros((3, 8, 8)), np.zeros((3, 8, 9)), 255),
    lambda: M.ssim(np.full((3, 16, 16), np.nan), np.zeros((3, 16, 16)), 1.0),
    lambda: M.masked_mae(np.zeros((3, 8, 8)), np.zeros((3, 8, 8)), np.zeros((8, 8), bool)),
    lambda: M.confusion_matrix(np.zeros(4), np.zeros(4, int), 2),
    lambda: M.bd_rate([1, 2, 3], [30, 31, 32], [1, 2, 3, 4], [30, 31, 32, 33]),
    lambda: M.iou(np.eye(2), absent='maybe'),
])
def test_bad_inputs_raise_rsnberror(bad):
    with pytest.raises(RsnbError): bad()

def test_bd_rate_scaling_is_exact():
    r = np.array([0.2, 0.4, 0.8, 1.6, 3.2]); d = np.array([26., 29, 32, 35, 37.5])
    for f in (0.5, 0.9, 1.3):
        assert math.isclose(M.bd_rate(r, d, f*r, d), (f-1)*100, abs_tol=1e-9)
