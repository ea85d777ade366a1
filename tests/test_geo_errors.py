"Raster-level bad inputs: each raises a RasterError (an RsnbError) whose message names the file."
import numpy as np, pytest
from rsnb.core import RsnbError, RasterError, have_data, data_path
from rsnb.geo import read_raster, read_meta, write_raster, check_aligned, require_valid, read_gap_mask
from rsnb.tiles import predict_raster

pytestmark = pytest.mark.skipif(not have_data('scenes'), reason='rsnb sample data (RSNB_DATA) not available')

@pytest.fixture(scope='module')
def scene(): return data_path('scenes', 'LC08_L1TP_224077_20200518_B4B3B2.tif')

def test_not_a_raster(tmp_path):
    p = tmp_path/'readme.tif'; p.write_text('hello')
    with pytest.raises(RasterError, match='readme.tif: not a raster'): read_raster(p)

def test_missing(tmp_path):
    with pytest.raises(RasterError, match='nope.tif: no such file'): read_meta(tmp_path/'nope.tif')

def test_folder(tmp_path):
    with pytest.raises(RasterError, match='is a folder'): read_raster(tmp_path)

@pytest.mark.parametrize('frac', [0.02, 0.5, 0.9])
def test_truncated(tmp_path, scene, frac):
    # whichever stage notices (open or read), the error is a RasterError naming the file
    for name, cog in (('gtiff', False), ('cog', True)):
        full = tmp_path/f'{name}.tif'
        img, meta = read_raster(scene, window=((0, 512), (0, 512)))
        write_raster(full, img, meta, cog=cog)
        t = tmp_path/f'{name}_trunc.tif'; b = full.read_bytes(); t.write_bytes(b[:int(len(b) * frac)])
        with pytest.raises(RasterError, match=f'{name}_trunc.tif'): read_raster(t)

def test_band_out_of_range(scene):
    with pytest.raises(RasterError, match='band index 0 out of range'): read_raster(scene, bands=0)
    with pytest.raises(RasterError, match='band index 9 out of range'): read_raster(scene, bands=[1, 9])

@pytest.mark.parametrize('win', [((0, 10), (2000, 2010)), ((-1, 5), (0, 5)), ((1515, 1516), (0, 1)), ((5, 5), (0, 4))])
def test_window_outside(scene, win):
    with pytest.raises(RasterError, match='LC08.*window'): read_raster(scene, window=win)

def test_pair_mismatch():
    oscd = data_path('change_detection', 'oscd_ms10m')
    with pytest.raises(RasterError, match='not aligned: size'): check_aligned(oscd/'train/bercy/t1.tif', oscd/'train/paris/t1.tif')
    with pytest.raises(RasterError, match='not aligned: 4 vs 3 bands; CRS EPSG:4326 vs EPSG:32621'):
        check_aligned(oscd/'train/bercy/t1.tif', data_path('scenes', 'LC08_L1TP_224077_20200518_B4B3B2.tif'))

def test_all_nodata(tmp_path):
    empty = data_path('inpainting', 'landsat7_slcoff', 'images', 'LS7_ETM_095_082_20100201_r0_c5.tif')
    a, m = read_raster(empty)
    with pytest.raises(RasterError, match='r0_c5.tif: all 65536 pixels are nodata'): require_valid(a, m)
    with pytest.raises(RasterError, match='r0_c5.tif: all pixels are nodata'):
        predict_raster(lambda x: x, empty, tmp_path/'out.tif', progress=False)
    assert not (tmp_path/'out.tif').exists()

def test_never_overwrite_input(scene):
    img, meta = read_raster(scene, window=((0, 16), (0, 16)))
    with pytest.raises(RsnbError, match='output path is the input'): write_raster(scene, img, meta)

def test_gap_mask_errors(tmp_path):
    usgs = data_path('inpainting', 'usgs_gapmask_sample')
    with pytest.raises(RasterError, match='no such product folder'): read_gap_mask(tmp_path/'x', 3)
    on = next(usgs.glob('*SLC-on'))
    with pytest.raises(RasterError, match='has no gap_mask/ folder'): read_gap_mask(on, 3)
