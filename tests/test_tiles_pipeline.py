"`rsnb.tiles.predict_raster` with reader and writer threads: same bytes as the sequential path, errors from every stage."
import threading, time
import numpy as np, pytest, torch
from rasterio.transform import from_origin
from rsnb.core import RsnbError, RasterError, ModelError
from rsnb.geo import RasterMeta, write_raster, read_raster
import rsnb.tiles as tiles
from rsnb.tiles import predict_raster, to_classes, to_change, TileError, DeviceError, pick_device

def _scene(path, h=700, w=530, c=3, seed=0, nodata_rows=None):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1000, (c, h, w)).astype(np.uint16)
    if nodata_rows: a[:, nodata_rows[0]:nodata_rows[1]] = 0
    meta = RasterMeta(crs='EPSG:32633', transform=from_origin(500000, 4000000, 10, 10), nodata=0, dtype='uint16', count=c, height=h, width=w)
    return write_raster(path, a, meta)

@pytest.fixture
def scene(tmp_path): return _scene(tmp_path/'s.tif', nodata_rows=(150, 420))

def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()

def _no_threads_left(_=None):
    for _ in range(100):
        if all(not isinstance(t, tiles._Stage) for t in threading.enumerate()): return True
        time.sleep(0.02)
    return False

@pytest.mark.parametrize('kw', [dict(finalize=to_classes), dict(), dict(cog=True, finalize=to_classes),
                                dict(batch_size=3, queue_size=1), dict(skip_nodata=False, mask_output=False)])
def test_same_bytes(tmp_path, scene, kw):
    net = _net()
    f = lambda x: net(x / 1000)
    a = predict_raster(f, scene, tmp_path/'seq.tif', tile=128, overlap=16, progress=False, pipeline=False, **kw)
    sa = dict(predict_raster.last_stats)
    b = predict_raster(f, scene, tmp_path/'pipe.tif', tile=128, overlap=16, progress=False, pipeline=True, **kw)
    assert predict_raster.last_stats == sa and 0 < sa['run'] < sa['windows'] or kw.get('skip_nodata') is False
    ra, rb = read_raster(a)[0], read_raster(b)[0]
    np.testing.assert_array_equal(ra, rb)
    assert a.read_bytes() == b.read_bytes()

def test_same_bytes_pair_and_mask(tmp_path):
    t1, t2 = _scene(tmp_path/'t1.tif', seed=1), _scene(tmp_path/'t2.tif', seed=2)
    diff = lambda x, y: ((y - x).abs().mean(1, keepdim=True) / 1000).clamp(0, 1)
    outs = [predict_raster(diff, (t1, t2), tmp_path/f'c{p}.tif', tile=96, overlap=8, finalize=to_change(0.3), progress=False, pipeline=p)
            for p in (False, True)]
    assert outs[0].read_bytes() == outs[1].read_bytes()
    fill = lambda x, m: x * m
    outs = [predict_raster(fill, t1, tmp_path/f'm{p}.tif', tile=96, overlap=8, with_mask=True, progress=False, pipeline=p) for p in (False, True)]
    assert outs[0].read_bytes() == outs[1].read_bytes()

def test_model_error_stops_pipeline(tmp_path, scene):
    calls = []
    def bad(x):
        calls.append(1)
        if len(calls) == 3: raise RuntimeError('boom in the model')
        return x[:, :1]
    with pytest.raises(RuntimeError, match='boom in the model'):
        predict_raster(bad, scene, tmp_path/'o.tif', tile=64, overlap=8, progress=False)
    assert not (tmp_path/'o.tif').exists() and _no_threads_left(None)
    with pytest.raises(ModelError, match='s.tif: model_fn returned shape'):
        predict_raster(lambda x: x[:, :, ::2], scene, tmp_path/'o.tif', tile=64, progress=False)
    assert not (tmp_path/'o.tif').exists() and _no_threads_left(None)

def test_writer_error(tmp_path, scene):
    def fin(p):
        if fin.n == 2: raise ValueError('finalize failed')
        fin.n += 1; return to_classes(p)
    fin.n = 0
    with pytest.raises(ValueError, match='finalize failed'):
        predict_raster(lambda x: x, scene, tmp_path/'o.tif', tile=64, overlap=8, finalize=fin, progress=False)
    assert not (tmp_path/'o.tif').exists() and _no_threads_left(None)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.o.tif')]   # no temporary file left

def test_reader_error(tmp_path, scene, monkeypatch):
    real = tiles._windows
    def broken(*a, **k):
        for i, w in enumerate(real(*a, **k)):
            if i == 20: raise RasterError(f'{scene}: read failed at window 20')
            yield w
    monkeypatch.setattr(tiles, '_windows', broken)
    with pytest.raises(RasterError, match='read failed at window 20'):
        predict_raster(lambda x: x, scene, tmp_path/'o.tif', tile=64, overlap=8, progress=False)
    assert not (tmp_path/'o.tif').exists() and _no_threads_left(None)

def test_all_nodata(tmp_path):
    p = _scene(tmp_path/'e.tif', nodata_rows=(0, 700))
    with pytest.raises(RasterError, match='e.tif: all pixels are nodata'):
        predict_raster(lambda x: x, p, tmp_path/'o.tif', tile=64, progress=False)
    assert not (tmp_path/'o.tif').exists()

def test_overlaps_io_and_model(tmp_path, scene, monkeypatch):
    """With a model that sleeps (GIL released), the pipelined run reads windows while the model sleeps; the sequential
    run never does. Checked on the event order (reads stamped inside the model's calls), not on wall time, so a loaded
    machine cannot fail it (the timing figures are `benchmarks/tiled_predict_overhead.py`'s)."""
    real, reads, calls = tiles._windows, [], []
    def stamped(*a, **k):
        for w in real(*a, **k): reads.append(time.perf_counter()); yield w
    monkeypatch.setattr(tiles, '_windows', stamped)
    def slow(x): t = time.perf_counter(); time.sleep(0.1); calls.append((t, time.perf_counter())); return x[:, :1]
    def during(p):
        reads.clear(); calls.clear()
        predict_raster(slow, scene, tmp_path/f'{p}.tif', tile=64, overlap=8, progress=False, pipeline=p)
        return sum(any(a < r < b for a, b in calls) for r in reads), len(reads)
    (seq, n), (pip, m) = during(False), during(True)
    assert n == m > 8 and len(calls) > 1
    assert seq == 0, seq                     # one thing at a time
    assert pip >= m // 2, (pip, m)          # most windows are read while the model works (122 of 130 here)
    assert (tmp_path/'False.tif').read_bytes() == (tmp_path/'True.tif').read_bytes()

@pytest.mark.parametrize('kw,msg', [(dict(tile=64, overlap=64), r'overlap must be in \[0, tile\)'), (dict(tile=0), 'tile must be at least 1'),
                                    (dict(overlap=-1), 'overlap must be at least 0'), (dict(batch_size=0), 'batch_size must be at least 1'),
                                    (dict(tile=64.5), 'tile must be an integer'), (dict(queue_size=0), 'queue_size must be at least 1')])
def test_bad_options(tmp_path, scene, kw, msg):
    with pytest.raises(TileError, match=msg): predict_raster(lambda x: x, scene, tmp_path/'o.tif', progress=False, **kw)
    assert issubclass(TileError, RsnbError)

def test_devices():
    assert pick_device('cpu') == torch.device('cpu')
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match='CUDA is not available'): pick_device('cuda:0')
    with pytest.raises(DeviceError, match='not a torch device name'): pick_device('tpu9')
