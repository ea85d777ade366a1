"rsnb.data on synthetic rasters: layouts, shared augmentation geometry and the bad-input errors (no shared data needed)."
import warnings
import numpy as np, pytest, rasterio, torch
from rsnb.core import DataError, RasterError
from rsnb.data import (MSImage, MSMask, BandStats, RandDihedral, RandCrop, per_class_split, classification_dls,
                       segmentation_dls, change_dls, inpainting_dls, image_dls, load_raster, raster_cache)

def _write(path, arr, driver='GTiff', nodata=None):
    arr = np.asarray(arr); arr = arr[None] if arr.ndim == 2 else arr
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with rasterio.open(path, 'w', driver=driver, width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                           dtype=arr.dtype, nodata=nodata) as f: f.write(arr)
    return path

rng = np.random.default_rng(0)
def img(c=4, h=32, w=32, dtype=np.uint16): return rng.integers(0, 4000, (c, h, w)).astype(dtype)

def test_uint16_13band_roundtrip(tmp_path):
    a = img(13, 20, 24)
    x = MSImage.create(_write(tmp_path/'s2.tif', a))
    assert x.shape == (13, 20, 24) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(a.astype(np.float32)))

def test_cache_rereads_changed_file(tmp_path):
    f = _write(tmp_path/'a.tif', img(1, 8, 8))
    load_raster(f)
    b = img(1, 8, 8) + 1
    _write(f, b)
    assert np.array_equal(load_raster(f).arr, b)

def test_band_stats_nodata_and_dict():
    a = np.array([[[1, 3], [-999, 5]], [[2, 4], [-999, 6]]], np.int16)
    st = BandStats.compute([a], nodata=-999)
    np.testing.assert_allclose(st.mean, [3, 4]); np.testing.assert_allclose(st.std, [np.std([1, 3, 5])] * 2, rtol=1e-5)
    assert st.count == 3 and BandStats.from_dict(st.to_dict()) == st

def test_same_geometry_on_all_layers():
    h = w = 8
    base = torch.arange(h * w, dtype=torch.float32).view(1, h, w)
    for _ in range(50):
        t1, t2, lb = RandCrop(5)(RandDihedral()((MSImage(base), MSImage(base * 2), MSMask(base[0].long())), split_idx=0), split_idx=0)
        assert torch.equal(t1.as_subclass(torch.Tensor) * 2, t2.as_subclass(torch.Tensor))
        assert torch.equal(t1[0].as_subclass(torch.Tensor).long(), lb.as_subclass(torch.Tensor))

def test_per_class_split_fraction():
    labels = ['a'] * 80 + ['b'] * 40
    tr, va = per_class_split(labels, labels, 0.2, seed=3)
    assert sum(labels[i] == 'a' for i in tr) == 16 and sum(labels[i] == 'b' for i in tr) == 8
    assert not set(tr) & set(va) and len(tr) + len(va) == 120

def test_classification_layout(tmp_path):
    for c in ('x', 'y'):
        for i in range(4): _write(tmp_path/c/f'{c}{i}.tif', img(3, 16, 16))
    dls = classification_dls(tmp_path, train_frac=0.5, bs=2)
    xb, yb = dls.one_batch()
    assert xb.shape == (2, 3, 16, 16) and list(dls.vocab) == ['x', 'y'] and len(dls.train_ds) == 4

def _seg(root, mask_hw=(16, 16), val=1):
    for i in range(3):
        _write(root/'images'/f'a{i}.tif', img(3, 16, 16))
        _write(root/'masks'/f'a{i}.png', np.full(mask_hw, val, np.uint8), driver='PNG')
    return root

def test_segmentation_errors(tmp_path):
    assert len(segmentation_dls(_seg(tmp_path/'ok'), ['a', 'b'], size=8, bs=1, split=([0, 1], [2])).train_ds) == 2
    with pytest.raises(DataError, match='sizes differ'): segmentation_dls(_seg(tmp_path/'size', (16, 12)), ['a', 'b'])
    with pytest.raises(DataError, match=r'a0.png: mask value\(s\) \[9\] outside the class list'):
        segmentation_dls(_seg(tmp_path/'val', val=9), ['a', 'b'])
    (tmp_path/'empty'/'images').mkdir(parents=True); (tmp_path/'empty'/'masks').mkdir()
    with pytest.raises(DataError, match='no images found'): segmentation_dls(tmp_path/'empty', ['a'])

def _cd(root, n=3, skip=None):
    for s in ('train', 'val'):
        for i in range(n):
            for k in ('t1', 't2', 'label'):
                if (s, k, i) == skip: continue
                a = (rng.integers(0, 2, (16, 16)) * 255).astype(np.uint8) if k == 'label' else img(4, 16, 16)
                _write(root/s/k/f'p{i}.{"png" if k == "label" else "tif"}', a, driver='PNG' if k == 'label' else 'GTiff')
    return root

def test_change_labels_and_missing(tmp_path):
    dls = change_dls(_cd(tmp_path/'ok'), bs=2)
    t1, t2, lb = dls.one_batch()
    assert t1.shape == (2, 4, 16, 16) and set(lb.unique().tolist()) <= {0, 1}
    with pytest.raises(DataError, match=r'train/t1/p1.tif: no t2 file'): change_dls(_cd(tmp_path/'miss', skip=('train', 't2', 1)))
    with pytest.raises(DataError, match=r'val/t1/p0.tif: no label file'): change_dls(_cd(tmp_path/'miss2', skip=('val', 'label', 0)))

def test_inpainting_gaps(tmp_path):
    for i in range(4):
        a = img(3, 16, 16).astype(np.int16); a[:, :2] = -999
        m = np.zeros((16, 16), np.uint8); m[:, 5 + i] = 1
        _write(tmp_path/'images'/f't{i}.tif', a, nodata=-999); _write(tmp_path/'masks'/f't{i}_mask.tif', m)
    dls = inpainting_dls(tmp_path, split=([0, 1, 2], [3]), bs=3, aug=False)
    x, g, y, k = [o.as_subclass(torch.Tensor) for o in dls.one_batch()]
    assert (k[:, :2] == 0).all() and (g[:, :2] == 1).all()          # nodata rows are missing, never scored
    assert (x * g[:, None]).abs().sum() == 0
    with pytest.raises(DataError, match='no gap mask file'):
        (tmp_path/'masks'/'t3_mask.tif').unlink(); inpainting_dls(tmp_path)

def test_band_out_of_range_and_not_raster(tmp_path):
    f = _write(tmp_path/'a.tif', img(2, 8, 8))
    with pytest.raises(RasterError, match='out of range'): MSImage.create(f, bands=[3])
    (tmp_path/'b.tif').write_text('not a tiff')
    with pytest.raises(RasterError, match='b.tif'): MSImage.create(tmp_path/'b.tif')
    with pytest.raises(DataError, match='no images'): image_dls(tmp_path/'nothing', crop=4) if (tmp_path/'nothing').mkdir() is None else None

def test_image_pair_and_scene_layout(tmp_path):
    from rsnb.data import ImagePair
    a, b = _write(tmp_path/'a.tif', img(4, 16, 16)), _write(tmp_path/'b.tif', img(4, 16, 12))
    with pytest.raises(DataError, match='a.tif: .* but .*b.tif'): ImagePair.create(a, b)
    for s, cities in (('train', ('c1', 'c2')), ('val', ('c3',))):
        for c in cities:
            _write(tmp_path/'cd'/s/c/'t1.tif', img(4, 40, 36)); _write(tmp_path/'cd'/s/c/'t2.tif', img(4, 40, 36))
            _write(tmp_path/'cd'/s/c/'label.png', (rng.integers(0, 2, (40, 36)) * 255).astype(np.uint8), driver='PNG')
    dls = change_dls(tmp_path/'cd', crop=16, crops_per_image=3, bs=2)
    assert len(dls.train_ds) == 6 and len(dls.valid_ds) == 9            # 3×3 tiles of 16 px cover 40×36
    t1, t2, lb = dls.one_batch()
    assert t1.shape == (2, 4, 16, 16) and lb.shape == (2, 16, 16)
    (tmp_path/'cd'/'train'/'c2'/'t2.tif').unlink()
    with pytest.raises(DataError, match=r'c2: no t2 file'): change_dls(tmp_path/'cd', crop=16)

def test_window_read_matches_cached(tmp_path):
    from rsnb.data import LoadImage
    a = img(3, 30, 40)
    f = _write(tmp_path/'w.tif', a)
    rec = dict(image=f, window=(5, 7, 10, 12))
    x0, x1 = LoadImage('image', cache=False)(rec), LoadImage('image', cache=True)(rec)
    assert torch.equal(x0.as_subclass(torch.Tensor), x1.as_subclass(torch.Tensor))
    assert np.array_equal(x0.numpy(), a[:, 5:15, 7:19].astype(np.float32))
