"The shipped land-cover segmenter (segmentation_lite0_fpn_dubai): a complete card, float16 weights that load, the size budget, and rsnb-segment by name, offline, on a held-out Dubai image."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest, rasterio, torch
from rasterio.transform import from_origin
import rsnb
from rsnb.weights import load_model, resolve_model, shipped_models
from rsnb.segmentation.cli import build_segmenter

NAME = 'segmentation_lite0_fpn_dubai'
WDIR = Path(rsnb.__file__).parent/'weights'

def _card(): return json.loads((WDIR/f'{NAME}.json').read_text())

def test_card_complete():
    assert NAME in shipped_models()
    c = _card()
    assert (c['task'], c['arch'], c['backbone'], c['in_chans'], c['n_classes']) == ('segmentation', 'fpn', 'tf_efficientnet_lite0', 3, 6)
    assert c['classes'] == ['building', 'land', 'road', 'vegetation', 'water', 'unlabeled']
    assert len(c['palette']) == 6 and all(len(p) == 3 and all(0 <= v <= 255 for v in p) for p in c['palette'])
    assert c['bands'] == ['red', 'green', 'blue'] and c['input_range'] == [0, 255]
    assert set(c['norm']) == {'scale', 'mean', 'std'}   # the keys segment_raster passes to normalize
    t = c['training']
    assert 'tiles 1-4' in t['data'] and 'tiles 5-6' in t['split'] and t['steps'] > 0 and t['seconds'] > 0
    for mode in ('whole', 'slide'):
        v = c['validation'][mode]
        assert 0 < v['miou_6'] <= 100 and 0 < v['oa'] <= 100 and set(v['iou']) == set(c['classes'])
    assert c['pretrained']['name'] == 'efficientnet_lite0_imagenet'

def test_float16_file_loads_as_float32():
    sd = torch.load(WDIR/f'{NAME}.pth', map_location='cpu', weights_only=True)
    assert {v.dtype for v in sd.values() if v.is_floating_point()} == {torch.float16}
    m, card = load_model(resolve_model(NAME, 'segmentation'), build=build_segmenter)
    assert {p.dtype for p in m.parameters()} == {torch.float32}
    assert torch.equal(m.state_dict()['head.seg_head.0.weight'], sd['head.seg_head.0.weight'].float())

def test_shipped_weights_under_budget():
    total = sum(p.stat().st_size for p in WDIR.glob('*.pth'))
    assert total < 60e6, f'shipped weights {total/1e6:.1f} MB, budget 60 MB'
    assert (WDIR/f'{NAME}.pth').stat().st_size < 8e6

def test_cli_by_name_on_heldout_image(tmp_path):
    "rsnb-segment NAME on a 256×320 crop of a held-out tile (4 classes, none above 44 %): georeferencing and palette kept, more accurate than its majority class."
    from rsnb.segmentation.datasets import dubai_items, split_by_tile, load_pair, DUBAI
    _, va = split_by_tile(dubai_items())
    img, mask = load_pair(*va[3], DUBAI)   # tile5_004
    img, mask = img[:, 128:384, 640:960], mask[128:384, 640:960]
    prof = dict(driver='GTiff', width=320, height=256, count=3, dtype='uint8', crs='EPSG:32640', transform=from_origin(500000, 2780000, 1, 1))
    with rasterio.open(tmp_path/'in.tif', 'w', **prof) as ds: ds.write(img)
    code = ("from rsnb.segmentation.cli import main; import sys; "
            f"sys.exit(main([{NAME!r}, {str(tmp_path/'in.tif')!r}, {str(tmp_path/'out.tif')!r}, '--tile', '256', '--overlap', '64', '--quiet', '--device', 'cpu']))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path/'out.tif') as ds:
        assert (ds.crs.to_epsg(), ds.transform, ds.count, ds.dtypes[0]) == (32640, prof['transform'], 1, 'uint8')
        pred = ds.read(1)
        assert [ds.colormap(1)[i][:3] for i in range(6)] == [tuple(c) for c in _card()['palette']]
    ok = mask != 255
    acc = (pred[ok] == mask[ok]).mean()
    assert acc > np.bincount(mask[ok]).max() / ok.sum(), acc   # beats the best constant map

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('RSNB_SLOW'), reason='slow (18 images, about 2 CPU minutes): set RSNB_SLOW=1')
def test_card_figures_reproduce():
    "The card's whole-image validation figures are those of the shipped file (tiles 5-6, 18 images)."
    from rsnb.segmentation.datasets import dubai_items, split_by_tile, DUBAI
    from rsnb.segmentation.train import evaluate
    _, va = split_by_tile(dubai_items())
    m, c = load_model(resolve_model(NAME, 'segmentation'), build=build_segmenter)
    r = evaluate(m.eval(), va, DUBAI, 'whole', norm=c['norm'], progress=False)
    assert abs(100*r['miou_benchmark'] - c['validation']['whole']['miou_6']) < 0.01
