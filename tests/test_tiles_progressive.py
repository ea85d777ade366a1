"""`rsnb.tiles._Strip` finishes and writes blended pixels column by column: on random rasters, nodata layouts and window
grids the output is the input (identity model) where valid and nodata elsewhere, every 256×256 output block is written
exactly once (batches of equal size or tapered), the pipelined and sequential paths write the same bytes, and a striped input gives the same pixels."""
import numpy as np, pytest, rasterio
from hypothesis import example, given, settings, strategies as st, HealthCheck
from rasterio.transform import from_origin
from rsnb.geo import RasterMeta, RasterWriter, write_raster, read_raster, valid_mask
from rsnb.tiles import predict_raster, to_classes, _tiled

def _raster(path, h, w, holes, seed, tiled=True):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1000, (2, h, w)).astype(np.uint16)
    for r0, r1, c0, c1 in holes: a[:, int(r0 * h):int(r1 * h), int(c0 * w):int(c1 * w)] = 0
    meta = RasterMeta(crs='EPSG:32633', transform=from_origin(500000, 4000000, 10, 10), nodata=0, dtype='uint16', count=2, height=h, width=w)
    write_raster(path, a, meta)
    if not tiled:
        striped = path.with_name('striped_' + path.name)
        rasterio.shutil.copy(path, striped, driver='GTiff', tiled=False, compress='deflate'); return a, striped
    return a, path

_edge = st.sampled_from([0.0, 1.0]) | st.floats(0, 1)           # holes reaching the raster's edges are the interesting ones
_hole = st.tuples(*[_edge] * 4).map(lambda t: (min(t[0], t[1]), max(t[0], t[1]), min(t[2], t[3]), max(t[2], t[3])))

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(20, 620), w=st.integers(20, 620), tile_ov=st.sampled_from([(48, 0), (64, 8), (100, 0), (128, 16), (96, 40), (300, 20)]),
       batch=st.integers(1, 5), holes=st.lists(_hole, max_size=3), classes=st.booleans(), seed=st.integers(0, 99), taper=st.booleans())
@example(h=600, w=600, tile_ov=(100, 0), batch=2, holes=[(0.0, 1.0, 0.7, 1.0)], classes=False, seed=0, taper=False)   # windows skipped at every row's end: a band's nodata remainder across a block row
@example(h=600, w=600, tile_ov=(100, 0), batch=4, holes=[(0.0, 1.0, 0.7, 1.0)], classes=True, seed=0, taper=True)     # the same, batches tapered (1, 2, 4, …)
def test_progressive_strip(tmp_path, h, w, tile_ov, batch, holes, classes, seed, taper):
    tile, ov = tile_ov
    a, src = _raster(tmp_path/'s.tif', h, w, holes, seed)
    ok = valid_mask(a, 0)
    model = (lambda x: x[:, :2]) if classes else (lambda x: x)
    kw = dict(tile=tile, overlap=ov, batch_size=batch, progress=False, finalize=to_classes if classes else None, taper=taper)
    writes, write0 = [], RasterWriter.write
    def logged(self, arr, row=0, col=0): writes.append((row, col) + np.shape(arr)[-2:]); return write0(self, arr, row, col)
    RasterWriter.write = logged
    try:
        if not ok.any():
            with pytest.raises(Exception, match='all pixels are nodata'): predict_raster(model, src, tmp_path/'seq.tif', pipeline=False, **kw)
            return
        predict_raster(model, src, tmp_path/'seq.tif', pipeline=False, **kw)
    finally: RasterWriter.write = write0
    times = np.zeros((-(-h // 256), -(-w // 256)), int)
    for r, c, bh, bw in writes:
        assert r % 256 == 0 and c % 256 == 0 and (bh % 256 == 0 or r + bh == h) and (bw % 256 == 0 or c + bw == w)
        times[r // 256:-(-(r + bh) // 256), c // 256:-(-(c + bw) // 256)] += 1
    assert (times == 1).all(), times
    o, _ = read_raster(tmp_path/'seq.tif')
    if classes:
        assert (o[0][~ok] == 255).all() and (o[0][ok] == (a[1] > a[0])[ok]).all()
    else:
        assert np.isnan(o[:, ~ok]).all() and np.allclose(o[:, ok], a[:, ok], rtol=1e-4)
    predict_raster(model, src, tmp_path/'pipe.tif', pipeline=True, **kw)
    assert (tmp_path/'pipe.tif').read_bytes() == (tmp_path/'seq.tif').read_bytes()

def test_striped_input_same_pixels(tmp_path):
    a, tiled = _raster(tmp_path/'t.tif', 530, 610, [(0.2, 0.5, 0.6, 1.0)], 3)
    _, striped = _raster(tmp_path/'t.tif', 530, 610, [(0.2, 0.5, 0.6, 1.0)], 3, tiled=False)
    with rasterio.open(tiled) as t, rasterio.open(striped) as s: assert (_tiled(t), _tiled(s)) == (True, False)
    outs = [read_raster(predict_raster(lambda x: x, p, tmp_path/f'o{k}.tif', tile=128, overlap=16, batch_size=3, progress=False))[0]
            for k, p in enumerate((tiled, striped))]
    assert np.array_equal(outs[0], outs[1], equal_nan=True)
