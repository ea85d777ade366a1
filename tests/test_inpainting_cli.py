"rsnb-inpaint: georeferencing, dtype, nodata and observed pixels kept; bad inputs refused."
import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS
from rsnb.geo import RasterMeta, write_raster, read_raster
from rsnb.inpainting.cli import main, inpaint_raster
from rsnb.inpainting.model import ECEAGenerator
from rsnb.inpainting.slcoff import Scaler, slc_off_mask
from rsnb.inpainting.train import save_ecea

torch.set_num_threads(1)
H, W = 97, 133

def _meta(count=3, dtype='int16', nodata=-999.):
    return RasterMeta(CRS.from_epsg(3577), Affine(25, 0, 930000, 0, -25, -3550000), nodata, dtype, count, H, W, ('B3', 'B4', 'B5', 'X')[:count])

@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('inp'); rng = np.random.default_rng(0)
    a = rng.normal(2500, 300, (3, H, W)).astype(np.int16)
    gaps = slc_off_mask(H, W, x0=-3500.)
    a[:, gaps] = -999
    write_raster(d/'in.tif', a, _meta())
    torch.manual_seed(0)
    g = ECEAGenerator(3, img_size=32, dims=(8, 16), depths=(1, 1), heads=(1, 1), ps_hidden=8, ps_res=1, mid_res=1)
    save_ecea(g, d/'g', Scaler('reflectance', [0.]*3, [0.6]*3), band_names=('B3', 'B4', 'B5'))
    gp = ECEAGenerator(3, img_size=32, dims=(8, 16), depths=(1, 1), heads=(1, 1), ps_hidden=8, ps_res=1, mid_res=1, prefilled=True)
    save_ecea(gp, d/'gp', Scaler('reflectance', [0.]*3, [0.6]*3), band_names=('B3', 'B4', 'B5'))
    return d, a, gaps

@pytest.mark.parametrize('model', ['g', 'gp'])
def test_keeps_georeferencing_and_valid_pixels(files, model):
    d, a, gaps = files
    assert main([str(d/'in.tif'), str(d/f'out_{model}.tif'), '--model', str(d/f'{model}.pth'), '--quiet']) == 0
    o, om = read_raster(d/f'out_{model}.tif'); _, im = read_raster(d/'in.tif')
    assert (om.crs, om.transform, om.nodata, om.dtype, om.band_names) == (im.crs, im.transform, im.nodata, im.dtype, im.band_names)
    assert np.array_equal(o[:, ~gaps], a[:, ~gaps])
    assert (o[:, gaps] != -999).all()
    assert not any(p.name.startswith('.') for p in d.iterdir())

def test_float_input_with_usgs_mask(files):
    d, a, gaps = files
    f = np.where(a == -999, 0.25, a*1e-4).astype(np.float32)
    write_raster(d/'f.tif', f, _meta(dtype='float32', nodata=None))
    write_raster(d/'gm.tif', (~gaps).astype(np.uint8), RasterMeta(CRS.from_epsg(3577), _meta().transform, None, 'uint8', 1, H, W))
    st = inpaint_raster(d/'f.tif', d/'fo.tif', mask=d/'gm.tif', mask_valid=True, method='fillnodata', progress=False)
    o, om = read_raster(d/'fo.tif')
    assert om.dtype == 'float32' and np.array_equal(o[:, ~gaps], f[:, ~gaps]) and st['missing'] == gaps.sum()
    assert np.isfinite(o).all() and np.abs(o[:, gaps] - 0.25).min() > 0   # the 0.25 placeholders were replaced

@pytest.mark.parametrize('case,msg', [('nogap', 'no missing pixels'), ('allgap', 'no valid pixel'),
                                      ('mask', 'mask is 50×50'), ('bands', 'trained on 3'), ('same', 'in.tif')])
def test_bad_inputs(files, case, msg, capsys):
    d, a, gaps = files
    args = [str(d/'in.tif'), str(d/'bad.tif')]
    if case == 'nogap': write_raster(d/'ng.tif', np.abs(a), _meta()); args[0] = str(d/'ng.tif')
    if case == 'allgap': write_raster(d/'ag.tif', np.full_like(a, -999), _meta()); args[0] = str(d/'ag.tif')
    if case == 'mask':
        write_raster(d/'m50.tif', np.zeros((1, 50, 50), np.uint8), RasterMeta(None, Affine.identity(), None, 'uint8', 1, 50, 50))
        args += ['--mask', str(d/'m50.tif')]
    if case == 'bands': write_raster(d/'b4.tif', np.concatenate([a, a[:1]]), _meta(count=4)); args[0] = str(d/'b4.tif')
    if case == 'same': args[1] = args[0]
    assert main(args + ['--model', str(d/'g.pth'), '--quiet']) == (2 if case == 'same' else 1)  # command line: 2, contents: 1
    err = capsys.readouterr().err
    assert msg in err and len(err.splitlines()) == 1 and 'Traceback' not in err
    assert not (d/'bad.tif').exists()
