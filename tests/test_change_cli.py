"rsnb-change: a georeferenced change map from two rasters; unaligned or missing inputs are refused."
import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS
from rsnb.geo import RasterMeta, write_raster, read_raster, read_meta
from rsnb.data import BandStats
from rsnb.change.cli import main, save_change_model, load_change_model
from rsnb.change.train import change_model

torch.set_num_threads(1)

def _meta(h=70, w=90, crs=32633, bands=4):
    return RasterMeta(CRS.from_epsg(crs), Affine(10, 0, 500000, 0, -10, 5000000), None, 'uint16', bands, h, w, ('B02', 'B03', 'B04', 'B08')[:bands])

@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp('scene'); rng = np.random.default_rng(0)
    a = rng.integers(500, 3000, (4, 70, 90)).astype(np.uint16); b = a.copy(); b[:, 20:40, 30:60] += 2000
    t1, t2 = write_raster(d/'t1.tif', a, _meta()), write_raster(d/'t2.tif', b, _meta())
    torch.manual_seed(0)
    m = change_model('dpcd', 4, 8)
    stats = BandStats.compute([a, b], names=['B02', 'B03', 'B04', 'B08'])
    save_change_model(m, d/'model', 'dpcd', stats, width=8)
    return d, t1, t2

def test_round_trip_model(scene):
    d, *_ = scene
    m, card = load_change_model(d/'model')
    assert card['arch'] == 'dpcd' and card['n_in'] == 4 and not m.training

def test_change_map_keeps_georeferencing(scene):
    d, t1, t2 = scene
    assert main([str(d/'model'), str(t1), str(t2), str(d/'out.tif'), '--tile', '64', '--overlap', '16', '--quiet']) == 0
    arr, meta = read_raster(d/'out.tif'); m1 = read_meta(t1)
    assert (meta.crs, meta.transform, meta.height, meta.width) == (m1.crs, m1.transform, 70, 90)
    assert arr.dtype == np.uint8 and set(np.unique(arr)) <= {0, 1}
    assert main([str(d/'model'), str(t1), str(t2), str(d/'prob.tif'), '--tile', '64', '--prob', '--quiet']) == 0
    p, _ = read_raster(d/'prob.tif')
    assert p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1

def test_refuses_bad_inputs(scene, tmp_path, capsys):
    d, t1, t2 = scene
    a, _ = read_raster(t2)
    other_crs = write_raster(tmp_path/'crs.tif', a, _meta(crs=32632))
    other_size = write_raster(tmp_path/'size.tif', a[:, :60], _meta(h=60))
    three = write_raster(tmp_path/'three.tif', a[:3], _meta(bands=3))
    # contents that do not fit: exit 1; a wrong command line (missing file, output = input): exit 2
    assert main([str(d/'model'), str(t1), str(other_crs), str(tmp_path/'o.tif'), '--quiet']) == 1
    err = capsys.readouterr().err
    assert 'CRS' in err and 'pass --reproject' in err and 'reproject=True' not in err.split('(')[0]
    assert main([str(d/'model'), str(t1), str(other_size), str(tmp_path/'o.tif'), '--quiet']) == 1
    assert 'size' in capsys.readouterr().err
    assert main([str(d/'model'), str(t1), str(tmp_path/'missing.tif'), str(tmp_path/'o.tif'), '--quiet']) == 2
    assert 'not found' in capsys.readouterr().err
    assert main([str(d/'model'), str(three), str(three), str(tmp_path/'o.tif'), '--quiet']) == 1
    assert 'bands' in capsys.readouterr().err
    assert main([str(d/'model'), str(t1), str(t2), str(t2), '--quiet']) == 2
    assert not (tmp_path/'o.tif').exists()

def test_reproject_resamples_t2(scene, tmp_path):
    d, t1, t2 = scene
    a, _ = read_raster(t2)
    shifted = write_raster(tmp_path/'shift.tif', a, RasterMeta(CRS.from_epsg(32633), Affine(10, 0, 500020, 0, -10, 5000000), None, 'uint16', 4, 70, 90))
    assert main([str(d/'model'), str(t1), str(shifted), str(tmp_path/'o.tif'), '--quiet']) == 1
    assert main([str(d/'model'), str(t1), str(shifted), str(tmp_path/'o.tif'), '--reproject', '--tile', '64', '--quiet']) == 0
    assert read_meta(tmp_path/'o.tif').transform == read_meta(t1).transform

def test_dtype_mismatch_and_range(scene, tmp_path, capsys):
    "A uint8 t2 with a uint16 t1 is refused (it would flag most pixels as changed), unless --force."
    d, t1, t2 = scene
    a, _ = read_raster(t2)
    t2_8 = write_raster(tmp_path/'u8.tif', (a // 16).astype(np.uint8), RasterMeta(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5000000), None, 'uint8', 4, 70, 90))
    assert main([str(d/'model'), str(t1), str(t2_8), str(tmp_path/'o.tif'), '--quiet']) == 1
    assert 'pixel type uint8' in capsys.readouterr().err and not (tmp_path/'o.tif').exists()
    big = write_raster(tmp_path/'big.tif', (a.astype(np.uint32)*20).clip(0, 65535).astype(np.uint16), _meta())
    assert main([str(d/'model'), str(t1), str(big), str(tmp_path/'o.tif'), '--quiet']) == 1
    assert 'values far outside' in capsys.readouterr().err
    assert main([str(d/'model'), str(t1), str(big), str(tmp_path/'o.tif'), '--quiet', '--force', '--tile', '64']) == 0
    assert 'warning:' in capsys.readouterr().err
