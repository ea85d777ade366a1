"""GDAL's block cache while rsnb streams a raster (issue 27): `rasterio.Env(GDAL_CACHEMAX=n)` sets the cache to `n`
*bytes*, so `predict_raster(cache_mb=32)` used to run with a 32-byte cache (every block decoded again each time it was
needed). `gdal_cache` gives MiB; the cache GDAL reports while predicting is the one asked for. `raster_sample` reads the
pixels GDAL's nearest-neighbour decimation picks, block by block, so its cost no longer depends on the cache."""
import ctypes, glob, os
from pathlib import Path
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rsnb.core import have_data, data_path
from rsnb.geo import RasterMeta, gdal_cache, write_raster
from rsnb.tiles import predict_raster
from rsnb.cli import raster_sample

def _libgdal():
    "GDAL as rasterio loaded it (the wheel's bundled copy), or None."
    libs = glob.glob(os.path.join(os.path.dirname(rasterio.__file__), os.pardir, 'rasterio.libs', 'libgdal*'))
    if not libs: return None
    lib = ctypes.CDLL(libs[0]); lib.GDALGetCacheMax64.restype = ctypes.c_int64
    return lib

needs_lib = pytest.mark.skipif(_libgdal() is None, reason='no bundled libgdal to ask for its cache size (rasterio not from the PyPI wheel)')

@needs_lib
def test_env_sets_mib():
    lib = _libgdal()
    with rasterio.Env(**gdal_cache(32)): got = lib.GDALGetCacheMax64()
    assert got == 32 * 2**20
    with rasterio.Env(GDAL_CACHEMAX=32): raw = lib.GDALGetCacheMax64()
    assert raw == 32                                  # why `gdal_cache` exists: rasterio's unit is the byte

@needs_lib
def test_predict_raster_cache(tmp_path):
    "While `predict_raster` runs (in the model call), GDAL's cache is `cache_mb` MiB."
    lib, seen = _libgdal(), []
    m = RasterMeta(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5000000), None, 'uint8', 3, 300, 300)
    src = write_raster(tmp_path/'in.tif', np.random.default_rng(0).integers(0, 255, (3, 300, 300), dtype=np.uint8), m)
    def fn(x): seen.append(lib.GDALGetCacheMax64()); return x[:, :1]
    predict_raster(fn, src, tmp_path/'out.tif', tile=128, overlap=16, cache_mb=24, progress=False)
    assert seen and set(seen) == {24 * 2**20}

def _cases(tmp):
    "Rasters of several layouts: tiled, striped, odd sizes, band-interleaved, 1-px-wide, with nodata; and data files."
    rng = np.random.default_rng(1); out = []
    for k, (c, h, w, kw) in enumerate([(3, 1037, 781, {}), (2, 523, 1999, dict(blocksize=64)), (1, 50, 3001, {}), (5, 700, 1, {})]):
        m = RasterMeta(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5000000), 0, 'uint16', c, h, w)
        out.append(write_raster(tmp/f'r{k}.tif', rng.integers(0, 4000, (c, h, w), dtype=np.uint16), m, **kw))
    p = tmp/'striped.tif'
    with rasterio.open(p, 'w', driver='GTiff', width=907, height=611, count=2, dtype='int16', compress='deflate') as ds:
        ds.write(rng.integers(-500, 500, (2, 611, 907), dtype=np.int16))
    out.append(p)
    if have_data('scenes'): out.append(data_path('scenes', 'LC08_L1TP_224077_20200518_B4B3B2.tif'))
    if have_data('segmentation', 'dubai'): out.append(sorted(data_path('segmentation', 'dubai', 'images').glob('*.jpg'))[0])
    return out

def test_sample_is_gdal_nearest(tmp_path):
    "The same pixels as GDAL's decimated nearest-neighbour read, for several sizes; sampled with a 1-byte cache (as a busy run had)."
    for p in _cases(tmp_path):
        for max_px in (512, 100, 37, 1):
            with rasterio.Env(GDAL_CACHEMAX=1): got, _ = raster_sample(p, max_px=max_px)
            with rasterio.Env(**gdal_cache(256)), rasterio.open(p) as ds:
                f = max(1, -(-max(ds.height, ds.width) // max_px))
                a = ds.read(out_shape=(ds.count, max(1, ds.height // f), max(1, ds.width // f)), resampling=Resampling.nearest)
                nod = ds.nodata
            ok = np.ones(a.shape[1:], bool) if nod is None else ~(a == nod).any(0)
            assert len(got) == a.shape[0], p
            for g, b in zip(got, a): np.testing.assert_array_equal(g, b[ok].astype(np.float64), err_msg=f'{p} max_px={max_px}')

def test_sample_bands_and_overviews(tmp_path):
    "Bands picked in the order given; a raster with overviews is sampled from them, as GDAL's read does."
    rng = np.random.default_rng(2)
    m = RasterMeta(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5000000), None, 'uint8', 3, 1200, 1100)
    p = write_raster(tmp_path/'cog.tif', rng.integers(0, 255, (3, 1200, 1100), dtype=np.uint8), m, cog=True)
    with rasterio.open(p) as ds: assert ds.overviews(1)
    got, _ = raster_sample(p, bands=[3, 1], max_px=300)
    with rasterio.open(p) as ds: a = ds.read([3, 1], out_shape=(2, 300, 275), resampling=Resampling.nearest)
    for g, b in zip(got, a): np.testing.assert_array_equal(g, b.ravel().astype(np.float64))

# GDAL lists a file's folder on every open, looking for sidecars: in an output folder of 20,000 files that cost ~9 ms a
# scene (20 scenes of 1024 px: 0.78 -> 1.05 s io-only). rsnb creates and re-reads its own outputs without the listing
# (`rsnb.geo._OWN`); inputs are still opened with it, since their sidecars (.aux.xml, world files, .ovr) can carry
# georeferencing and nodata.
@needs_lib
def test_own_outputs_opened_without_folder_listing(tmp_path, monkeypatch):
    from rsnb.cli import staged_output, verify_geotiff
    from rsnb.tiles import to_classes
    lib = _libgdal(); lib.CPLGetConfigOption.restype = ctypes.c_char_p; lib.CPLGetConfigOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    src = tmp_path/'in'/'scene.png'; src.parent.mkdir()
    rng = np.random.default_rng(0)
    with rasterio.open(src, 'w', driver='PNG', height=300, width=280, count=3, dtype='uint8') as ds: ds.write(rng.integers(1, 255, (3, 300, 280), dtype=np.uint8))
    src.with_suffix('.pgw').write_text('10\n0\n0\n-10\n500005\n4000005\n')     # a world file: georeferencing in a sidecar
    out = tmp_path/'out'; out.mkdir()
    seen, open0 = [], rasterio.open
    def spy(path, *a, **k):
        seen.append((Path(str(path)).parent.name, (a[0] if a else k.get('mode', 'r')), lib.CPLGetConfigOption(b'GDAL_DISABLE_READDIR_ON_OPEN', None)))
        return open0(path, *a, **k)
    monkeypatch.setattr(rasterio, 'open', spy)
    with staged_output(out/'classes.tif', lambda t: verify_geotiff(t, src, 1, 'uint8')) as t:
        predict_raster(lambda x: x[:, :2], src, t, tile=128, overlap=16, finalize=to_classes, progress=False, cog=True)
    monkeypatch.setattr(rasterio, 'open', open0)
    ins, outs = [s for s in seen if s[0] == 'in'], [s for s in seen if s[0] == 'out']
    assert ins and all(s[2] is None for s in ins)                        # inputs: sidecars looked for
    assert {s[1] for s in outs} >= {'w', 'r'} and all(s[2] == b'EMPTY_DIR' for s in outs), outs
    with rasterio.open(out/'classes.tif') as ds: assert ds.transform == Affine(10, 0, 500000, 0, -10, 4000010)   # the world file (pixel centres) was read
