"rsnb.data.change_dls on the change-detection benchmarks' own folder layouts and SGSLN's training tiles (generated folders, no shared data)."
import warnings
import numpy as np, pytest, rasterio
from rsnb.core import DataError
from rsnb.data import change_dls, CHANGE_LAYOUTS

rng = np.random.default_rng(0)

def _write(path, arr, driver):
    arr = arr[None] if arr.ndim == 2 else arr
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with rasterio.open(path, 'w', driver=driver, width=arr.shape[2], height=arr.shape[1], count=arr.shape[0], dtype=arr.dtype) as f:
            f.write(arr)

def _split(root, split, a, b, l, names, size=16, lab_ext='png'):
    "One split folder `root/split/{a,b,l}/<name>.*`; t1 as PNG, t2 as GeoTIFF (pairs are matched by stem, not extension)."
    for n in names:
        _write(root/split/a/f'{n}.png', rng.integers(0, 255, (3, size, size)).astype(np.uint8), 'PNG')
        _write(root/split/b/f'{n}.tif', rng.integers(0, 255, (3, size, size)).astype(np.uint8), 'GTiff')
        lab = np.zeros((size, size), np.uint8); lab[: size // 4] = 255
        _write(root/split/l/f'{n}.{lab_ext}', lab, 'PNG' if lab_ext == 'png' else 'GTiff')
    return root

@pytest.mark.parametrize('a,b,l', CHANGE_LAYOUTS)
def test_each_layout(tmp_path, a, b, l):
    root = tmp_path/'ds'
    _split(root, 'train', a, b, l, ('x0', 'x1', 'x2'), lab_ext='tif' if l == 'OUT' else 'png')
    _split(root, 'val', a, b, l, ('v0',))
    dls = change_dls(root, bs=3, aug=False)
    recs = dls.train_ds.items
    assert [r['name'] for r in recs] == ['x0', 'x1', 'x2']
    assert all((r['t1'].parent.name, r['t2'].parent.name, r['label'].parent.name) == (a, b, l) for r in recs)
    assert all(r['t1'].stem == r['t2'].stem == r['label'].stem for r in recs)
    t1, t2, y = dls.one_batch()
    assert t1.shape == t2.shape == (3, 3, 16, 16) and y.shape == (3, 16, 16)
    assert y.float().mean().item() == 0.25                               # 255 → 1 on the first quarter of the rows
    assert len(change_dls(root, valid='val', bs=1).valid_ds) == 1

def test_levir_official_splits(tmp_path):
    root = tmp_path/'LEVIR-CD'
    for s, names in (('train', ('train_1', 'train_2')), ('val', ('val_1',)), ('test', ('test_1', 'test_2', 'test_3'))):
        _split(root, s, 'A', 'B', 'label', names)
    assert len(change_dls(root, bs=2).train_ds) == 2
    assert [r['name'] for r in change_dls(root, valid='test', bs=1).valid_ds.items] == ['test_1', 'test_2', 'test_3']

def test_missing_partner_named(tmp_path):
    root = _split(tmp_path/'s', 'train', 'time1', 'time2', 'label', ('a', 'b'))
    (root/'train'/'time2'/'b.tif').unlink()
    with pytest.raises(DataError, match=r"train/time1/b.png: no time2 file 'b\.\*'"): change_dls(root)
    root = _split(tmp_path/'l', 'train', 'A', 'B', 'label', ('a', 'b'))
    (root/'train'/'label'/'a.png').rename(root/'train'/'label'/'zz.png')
    with pytest.raises(DataError, match=r"train/A/a.png: no label file"): change_dls(root)
    root = _split(tmp_path/'m', 'train', 'A', 'B', 'label', ('a',))
    import shutil; shutil.rmtree(root/'train'/'B')
    with pytest.raises(DataError, match=r"train/B: B folder not found"): change_dls(root)

def test_unknown_layout_lists_accepted(tmp_path):
    root = _split(tmp_path/'x', 'train', 'before', 'after', 'gt', ('a',))
    with pytest.raises(DataError) as e: change_dls(root)
    msg = str(e.value)
    assert f"{root/'train'}: not a change-detection split folder (found after/, before/, gt/)" in msg
    for a, b, l in CHANGE_LAYOUTS: assert '{' + f'{a},{b},{l}' + '}/' in msg
    assert 'one folder per scene' in msg

def test_tile_train_covers_1024(tmp_path):
    "A 1024 px miniature of LEVIR-CD: with 256 px tiles an epoch has 16 samples per image covering it once."
    root = _split(tmp_path/'big', 'train', 'A', 'B', 'label', ('p0', 'p1', 'p2'), size=1024)
    _split(root, 'val', 'A', 'B', 'label', ('v0',), size=1024)
    dls = change_dls(root, crop=256, tile_train=True, bs=16)
    assert len(dls.train_ds) == 3 * 16 and len(dls.train) == 3 and len(dls.valid_ds) == 16
    for n in ('p0', 'p1', 'p2'):
        cover = np.zeros((1024, 1024), int)
        for r in dls.train_ds.items:
            if r['name'] == n:
                r0, c0, th, tw = r['window']; cover[r0:r0 + th, c0:c0 + tw] += 1
        assert cover.min() == cover.max() == 1
    seen = sum(b[0].shape[0] for b in dls.train)                          # one epoch of the loader: every tile once
    assert seen == 48
    assert len(change_dls(root, crop=256, tile_train=True, crops_per_image=2, bs=16).train_ds) == 96
    assert len(change_dls(root, crop=256, bs=2).train_ds) == 3           # random crops: 1/16 of the pixels per epoch
    with pytest.raises(DataError, match=r"3 training samples, fewer than one batch of 16"): change_dls(root, crop=256, bs=16)

def test_sgsln_full_params_tile():
    from rsnb.repro import load_params
    p = load_params('sgsln', 'full')
    assert p['tile_train'] is True and p['crop'] == 256 and p['bs'] == 16
