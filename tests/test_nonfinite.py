"""NaN, +Inf and −Inf pixels are nodata in every tool.

Two float32 rasters from the same crop of the Landsat-8 scene: `bad.tif` with NaN, +Inf and −Inf planted (in single
bands and in all bands of a pixel), and `marked.tif` with the same band values set to a declared nodata value of −9999
instead — nodata the ordinary way. For every command: the planted pixels are nodata in the output (filled, for
inpainting), every other pixel equals the output for `marked.tif`, and no output is all NaN. A raster without one
valid pixel is an error naming the file, and nothing is written."""
import numpy as np
import pytest
import torch
from rsnb.geo import read_raster, write_raster
from dataclasses import replace
from raster_tools import landsat_crop, save_models, run, commands

torch.set_num_threads(1)
NAN, INF = float('nan'), float('inf')
PLANT1 = [((0,), 10, 12, NAN), ((1,), 40, 70, INF), ((2,), 95, 127, -INF), ((0, 1, 2), 60, 30, INF), ((0, 1, 2), 0, 0, NAN)]
PLANT2 = [((0,), 20, 100, -INF), ((2,), 70, 40, NAN)]

def _plant(a, plants, value=None):
    a = a.copy()
    for bands, r, c, v in plants: a[list(bands), r, c] = v if value is None else value
    return a

def _where(plants, shape):
    m = np.zeros(shape, bool)
    for _, r, c, _ in plants: m[r, c] = True
    return m

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp('nonfinite')
    a, meta = landsat_crop(600, 800); b, _ = landsat_crop(700, 800)
    f = {}
    for name, arr, plants in (('t1', a, PLANT1), ('t2', b, PLANT2)):
        f[f'{name}_bad'] = write_raster(d/f'{name}_bad.tif', _plant(arr, plants), meta)
        f[f'{name}_marked'] = write_raster(d/f'{name}_marked.tif', _plant(arr, plants, -9999.), replace(meta, nodata=-9999.))
    allbad = np.full_like(a, NAN); allbad[0, ::2] = INF; allbad[1, :, ::3] = -INF
    f['allbad'] = write_raster(d/'allbad.tif', allbad, meta)
    return d, f, save_models(d, a, b), a, _where(PLANT1, a.shape[1:]), _where(PLANT2, a.shape[1:])

def _pair(env, tool, pos, opts=(), tag=''):
    "Run `tool` on the planted and on the marked raster (`{v}` in `pos`); (planted output, marked output, their metadata)."
    d, f, m, *_ = env
    outs = []
    for v in ('bad', 'marked'):
        out = d/f"{tool}_{v}_{tag}.tif"
        rc, err = run(commands()[tool], *[x.format(v=v) if isinstance(x, str) else x for x in pos], out, *opts)
        assert rc == 0, err
        outs.append(read_raster(out))
    return outs[0][0], outs[1][0], outs[0][1], outs[1][1]

def _v(p): return str(p).replace('_bad.tif', '_{v}.tif')

def test_planted_pixels_are_invalid(env):
    d, f, _, a, p1, _ = env
    from rsnb.geo import valid_mask
    bad, bm = read_raster(f['t1_bad']); marked, mm = read_raster(f['t1_marked'])
    assert (valid_mask(bad, bm.nodata) == ~p1).all() and (valid_mask(marked, mm.nodata) == ~p1).all() and p1.sum() == 5

@pytest.mark.parametrize('probs', [False, True])
def test_classify(env, probs):
    d, f, m, a, p1, _ = env
    cb, cm, meta, _ = _pair(env, 'classify', [m['classify'], _v(f['t1_bad'])], ['--tile', '32', '--overlap', '8'] + (['--probabilities'] if probs else []), tag=probs)
    if probs:
        assert np.isnan(meta.nodata) and np.isnan(cb[:, p1]).all() and np.isfinite(cb[:, ~p1]).all()
        assert np.allclose(cb[:, ~p1].sum(0), 1, atol=1e-5) and np.array_equal(cb[:, ~p1], cm[:, ~p1])
    else: assert meta.nodata == 255 and (cb[0][p1] == 255).all() and (cb[0][~p1] < 4).all() and np.array_equal(cb, cm)

def test_segment(env):
    d, f, m, a, p1, _ = env
    sb, sm, meta, _ = _pair(env, 'segment', [m['segment'], _v(f['t1_bad'])], ['--tile', '64', '--overlap', '16'])
    assert meta.nodata == 255 and (sb[0][p1] == 255).all()
    assert (sb[0][~p1] < 3).all() and np.array_equal(sb, sm)

@pytest.mark.parametrize('prob', [False, True])
def test_change(env, prob):
    d, f, m, a, p1, p2 = env
    cb, cm, meta, _ = _pair(env, 'change', [m['change'], _v(f['t1_bad']), _v(f['t2_bad'])], ['--tile', '64', '--overlap', '16'] + (['--prob'] if prob else []), tag=prob)
    p = p1 | p2
    if prob:
        assert np.isnan(meta.nodata) and np.isnan(cb[0][p]).all() and np.isnan(cm[0][p]).all()
        assert np.isfinite(cb[0][~p]).all() and ((0 <= cb[0][~p]) & (cb[0][~p] <= 1)).all()
    else: assert meta.nodata == 255 and (cb[0][p] == 255).all() and (cb[0][~p] <= 1).all()
    assert np.array_equal(cb[0][~p], cm[0][~p])

def test_compress_decompress(env):
    d, f, m, a, p1, _ = env
    cmd = commands()
    back = {}
    for v in ('bad', 'marked'):
        assert run(cmd['compress'], f[f't1_{v}'], d/f'{v}.rsc', '--tile', '64')[0] == 0
        rc, err = run(cmd['decompress'], d/f'{v}.rsc', d/f'{v}_back.tif'); assert rc == 0, err
        back[v] = read_raster(d/f'{v}_back.tif')
    (xb, mb), (xm, mm) = back['bad'], back['marked']
    assert np.isnan(mb.nodata) and np.isnan(xb[:, p1]).all() and mm.nodata == -9999 and (xm[:, p1] == -9999).all()
    assert np.isfinite(xb[:, ~p1]).all() and np.array_equal(xb[:, ~p1], xm[:, ~p1])
    assert np.abs(xb[:, ~p1] - a[:, ~p1]).mean() < 0.01          # a reconstruction of the crop, not noise

@pytest.mark.parametrize('method', ['fillnodata', 'ecea'])
def test_inpaint(env, method):
    d, f, m, a, p1, _ = env
    args = ['--method', method] + (['--model', m['ecea']] if method == 'ecea' else [])
    ib, im, mb, mm = _pair(env, 'inpaint', [_v(f['t1_bad'])], args, tag=method)
    assert np.isfinite(ib).all() and np.array_equal(ib, im)       # the planted pixels are filled, the same way
    assert np.array_equal(ib[:, ~p1], a[:, ~p1]) and (ib[:, p1] != -9999).all()

@pytest.mark.parametrize('tool', ['classify', 'segment', 'change', 'compress', 'inpaint-fillnodata', 'inpaint-ecea'])
def test_no_valid_pixel(env, tool):
    d, f, m, *_ = env
    out = d/f'none_{tool}.tif'
    args = dict(classify=[m['classify'], f['allbad'], out, '--tile', '32'], segment=[m['segment'], f['allbad'], out],
                change=[m['change'], f['allbad'], f['t2_bad'], out], compress=[f['allbad'], out.with_suffix('.rsc')],
                **{'inpaint-fillnodata': [f['allbad'], out, '--method', 'fillnodata'],
                   'inpaint-ecea': [f['allbad'], out, '--model', m['ecea']]})[tool]
    rc, err = run(commands()[tool.split('-')[0]], *args)
    assert rc == 1 and len(err) == 1 and 'allbad.tif' in err[0] and 'Traceback' not in err[0], err
    assert not out.exists() and not out.with_suffix('.rsc').exists()
