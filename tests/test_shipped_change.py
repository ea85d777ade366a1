"The shipped change detector change_siam_lite0_sztaki: a complete card, float16 weights that load into `SiamLiteDiff`, and a validation pair scored as the card says; rsnb-change by name once `siam_lite0` is in CHANGE_MODELS."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest, rasterio, torch
from rasterio.transform import from_origin
import rsnb
from rsnb.weights import load_model, resolve_model, shipped_models
from rsnb.change.baselines import SiamLiteDiff

NAME = 'change_siam_lite0_sztaki'
WDIR = Path(rsnb.__file__).parent/'weights'

def _card(): return json.loads((WDIR/f'{NAME}.json').read_text())
def _load(): return load_model(resolve_model(NAME, 'change'), build=lambda c: SiamLiteDiff(c['n_in'], 1, c['width']))

def test_card_complete():
    assert NAME in shipped_models()
    c = _card()
    assert (c['task'], c['arch'], c['n_in'], c['width'], c['threshold']) == ('change', 'siam_lite0', 3, 16, 0.5)
    assert c['stats']['mean'] == [127.5] * 3 and c['stats']['std'] == [127.5] * 3   # Lite0's (x/255 - 0.5)/0.5
    assert c['bands'] == ['red', 'green', 'blue'] and c['input_range'] == [0, 255] and c['classes'] == ['no change', 'change']
    assert c['epochs_run'] > c['best_epoch'] >= 0 and c['train_seconds'] > 0 and 'SZTAKI' in c['training']
    v, d = c['val_whole_images'], c['shipped_dpcd_val_whole_images']
    assert 0 < v['f1'] <= 1 and v['f1'] > d['f1']   # shipped because it beats DPCD on the same validation pairs
    assert c['pretrained']['name'] == 'efficientnet_lite0_imagenet'

def test_float16_file_loads_as_float32():
    sd = torch.load(WDIR/f'{NAME}.pth', map_location='cpu', weights_only=True)
    assert {v.dtype for v in sd.values() if v.is_floating_point()} == {torch.float16}
    m, _ = _load()
    assert {p.dtype for p in m.parameters()} == {torch.float32}
    assert (WDIR/f'{NAME}.pth').stat().st_size < 10e6

def test_validation_pair_scores():
    "One validation pair (the one with most change), whole image: the model finds change where the label has it."
    from rsnb.change.datasets import change_data
    from rsnb.change.train import predict_change
    from rsnb.data import BandStats
    from rsnb.geo import read_raster
    m, c = _load(); st = BandStats.from_dict(c['stats'])
    root = change_data('sztaki_airchange')/'val'
    labs = sorted((root/'label').glob('*.png'), key=lambda p: -(read_raster(p)[0] > 0).mean())
    p = labs[0].name
    t1, t2 = (torch.from_numpy(read_raster(root/d/p)[0].astype(np.float32)) for d in ('t1', 't2'))
    y = read_raster(root/'label'/p)[0][0] > 0
    prob = predict_change(m, st.normalize(t1), st.normalize(t2))[0].numpy()
    pred = prob > c['threshold']
    tp = (pred & y).sum(); f1 = 2 * tp / max(pred.sum() + y.sum(), 1)
    assert prob[y].mean() > prob[~y].mean() and f1 > y.mean(), (f1, y.mean())   # better than calling every pixel changed

def test_cli_by_name(tmp_path):
    from rsnb.change.train import CHANGE_MODELS
    if 'siam_lite0' not in CHANGE_MODELS: pytest.skip("siam_lite0 is not registered in rsnb.change.train.CHANGE_MODELS yet (nbs/33_change.train.ipynb)")
    from rsnb.change.datasets import change_data
    from rsnb.geo import read_raster
    root = change_data('sztaki_airchange')/'val'
    p = sorted((root/'t1').glob('*.png'))[0].name
    prof = dict(driver='GTiff', width=256, height=256, count=3, dtype='uint8', crs='EPSG:23700', transform=from_origin(650000, 240000, 1.5, 1.5))
    for d in ('t1', 't2'):
        with rasterio.open(tmp_path/f'{d}.tif', 'w', **prof) as ds: ds.write(read_raster(root/d/p)[0])
    code = ("from rsnb.change.cli import main; import sys; "
            f"sys.exit(main([{NAME!r}, {str(tmp_path/'t1.tif')!r}, {str(tmp_path/'t2.tif')!r}, {str(tmp_path/'out.tif')!r}, '--quiet', '--device', 'cpu']))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path/'out.tif') as ds:
        assert (ds.crs.to_epsg(), ds.transform, ds.dtypes[0]) == (23700, prof['transform'], 'uint8') and ds.read(1).max() <= 1
