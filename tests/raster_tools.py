"""Shared by `test_nonfinite.py` and `test_georef.py`: small real rasters (crops of the Landsat-8 sample scene as
top-of-atmosphere reflectance, float32), tiny untrained models of every task saved as the CLIs load them, and one
runner that calls a command's `main` and returns (exit status, stderr lines).

The models are untrained: the tests check properties of the plumbing (which pixels are nodata, that an output equals
another, that georeferencing is kept), which hold for any weights."""
import contextlib, io
from pathlib import Path
import numpy as np
import pytest
import torch
from rsnb.core import have_data, data_path
from rsnb.geo import read_raster, write_raster, to_reflectance, RasterMeta
from dataclasses import replace

SCENE = ('scenes', 'LC08_L1TP_224077_20200518_B4B3B2.tif')
H, W = 96, 128

def landsat_crop(row=600, col=800, h=H, w=W):
    "(float32 3×h×w TOA reflectance of a window of the Landsat-8 scene, its RasterMeta as float32 without nodata)."
    if not have_data(*SCENE): pytest.skip('rsnb sample data (RSNB_DATA) not available')
    dn, m = read_raster(data_path(*SCENE), window=((row, row + h), (col, col + w)))
    assert (dn > 0).all(), 'the crop must lie inside the footprint'
    return to_reflectance(dn, 'landsat8_l1_toa'), replace(m, dtype='float32', nodata=None, path=None)

def run(main, *args):
    "(exit status, stderr lines) of a command's `main([...])` with `--quiet --device cpu` (bit-for-bit repeatable); stdout is swallowed."
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main([str(a) for a in args] + ['--quiet', '--device', 'cpu'])
    return rc, err.getvalue().splitlines()

def save_models(d:Path, a:np.ndarray, b:np.ndarray):
    "Tiny untrained models of every task, saved in `d` with cards whose normalisation fits the reflectance crops `a`, `b`."
    from rsnb.weights import save_model
    from rsnb.data import BandStats
    from rsnb.classification.model import SceneClassifier
    from rsnb.segmentation.models import seg_model
    from rsnb.change.cli import save_change_model
    from rsnb.change.train import change_model
    from rsnb.inpainting.model import ECEAGenerator
    from rsnb.inpainting.slcoff import Scaler
    from rsnb.inpainting.train import save_ecea
    torch.manual_seed(0)
    st = BandStats.compute([a, b], names=['red', 'green', 'blue'])
    m = {}
    m['classify'] = save_model(SceneClassifier(4, arch='resnet18').eval(), d/'cls', dict(
        task='scene_classification', arch='resnet18', faithful=False, se=True, n_classes=4, classes=list('abcd'), in_chans=3,
        bands=['red', 'green', 'blue'], input_size=None, normalization=st.to_dict()))
    m['segment'] = save_model(seg_model('fcn', 'resnet18', 3, 3, output_stride=16).eval(), d/'seg', dict(
        arch='fcn', impl='paddleseg', backbone='resnet18', n_classes=3, in_chans=3, output_stride=16, classes=list('abc'),
        palette=[[200, 0, 0], [0, 200, 0], [0, 0, 200]], norm=dict(scale=1., mean=st.mean, std=st.std)))
    m['change'] = save_change_model(change_model('dpcd', 3, 8), d/'chg', 'dpcd', st, width=8)
    G = ECEAGenerator(3, img_size=32, dims=(8, 16), depths=(1, 1), heads=(1, 1), ps_hidden=8, ps_res=1, mid_res=1)
    m['ecea'] = save_ecea(G, d/'ecea', Scaler('reflectance', [0.]*3, [0.3]*3, scale=1., offset=0.), band_names=('red', 'green', 'blue'))
    return {k: Path(v) for k, v in m.items()}

def commands():
    "{tool: main} of the commands under test."
    from rsnb.classification.cli import main as classify
    from rsnb.segmentation.cli import main as segment
    from rsnb.change.cli import main as change
    from rsnb.compression.cli import compress_main, decompress_main
    from rsnb.inpainting.cli import main as inpaint
    return dict(classify=classify, segment=segment, change=change, compress=compress_main, decompress=decompress_main, inpaint=inpaint)
