"""Outputs a GIS reads without help (issue 25 item 4): class maps carry the card's colour table, the class list
(`CLASSES` metadata) and GDAL category names; they are COGs whose overviews use mode resampling (only valid class ids);
probability maps are float32 with a nodata value. Checked by re-opening the files with rasterio, and the category
names through GDAL itself (the libgdal rasterio ships, `GDALGetRasterCategoryNames`)."""
import ctypes, glob, json, os
import numpy as np, pytest, rasterio
from rasterio.transform import from_origin
from rsnb.weights import package_weights

N = 520   # > 2 blocks of 256: the COG gets an overview

def _gdal_category_names(path):
    libs = glob.glob(os.path.join(os.path.dirname(rasterio.__file__), '..', 'rasterio.libs', 'libgdal*'))
    if not libs: pytest.skip("rasterio's libgdal not found")
    lib = ctypes.CDLL(libs[0]); lib.GDALAllRegister()
    lib.GDALOpen.restype = ctypes.c_void_p; lib.GDALOpen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.GDALGetRasterBand.restype = ctypes.c_void_p; lib.GDALGetRasterBand.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.GDALGetRasterCategoryNames.restype = ctypes.POINTER(ctypes.c_char_p); lib.GDALGetRasterCategoryNames.argtypes = [ctypes.c_void_p]
    lib.GDALClose.argtypes = [ctypes.c_void_p]
    lib.GDALGetGeoTransform.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)]
    h = lib.GDALOpen(str(path).encode(), 0); assert h
    try:   # as gdalinfo and QGIS do, read the georeferencing first: GDAL 3.10's GeoTIFF band loads its .aux.xml only then
        lib.GDALGetGeoTransform(h, (ctypes.c_double * 6)())
        p = lib.GDALGetRasterCategoryNames(lib.GDALGetRasterBand(h, 1)); out = []
        while p and p[len(out)] is not None: out.append(p[len(out)].decode())
        return out
    finally: lib.GDALClose(h)

def _card(name): return json.loads(package_weights(name + '.json').read_text())

@pytest.fixture(scope='module')
def rgb(tmp_path_factory):
    d = tmp_path_factory.mktemp('gis'); rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:N, :N]
    a = np.stack([(xx * 255 // N), (yy * 255 // N), ((xx + yy) % 97) * 2]).astype('uint8') + rng.integers(0, 20, (3, N, N), dtype='uint8')
    prof = dict(driver='GTiff', width=N, height=N, count=3, dtype='uint8', crs='EPSG:32640', transform=from_origin(500000, 2800000, 2, 2))
    with rasterio.open(d/'rgb.tif', 'w', **prof) as ds: ds.write(a)
    b = a.copy(); b[:, 100:300, 200:400] = 255 - b[:, 100:300, 200:400]
    with rasterio.open(d/'rgb2.tif', 'w', **prof) as ds: ds.write(b)
    return d

def _check_class_map(path, names, palette):
    with rasterio.open(path) as ds:
        assert ds.tags(ns='IMAGE_STRUCTURE').get('LAYOUT') == 'COG' and ds.profile['tiled']
        cm = ds.colormap(1)
        assert [cm[i][:3] for i in range(len(palette))] == [tuple(c[:3]) for c in palette]
        assert json.loads(ds.tags()['CLASSES']) == names and json.loads(ds.tags(1)['CLASSES']) == names
        assert ds.overviews(1), 'no overviews'
        full = ds.read(1); ov = ds.read(1, out_shape=(ds.height // ds.overviews(1)[0], ds.width // ds.overviews(1)[0]))
    valid = set(range(len(names))) | {255}
    assert set(np.unique(full).tolist()) <= valid and set(np.unique(ov).tolist()) <= valid   # mode never invents a value
    assert _gdal_category_names(path) == names

def test_segment_class_map(rgb, tmp_path):
    from rsnb.segmentation.cli import main
    out = tmp_path/'seg.tif'
    assert main(['segmentation_lite0_fpn_dubai', str(rgb/'rgb.tif'), str(out), '--tile', '256', '--overlap', '0', '-q']) == 0
    card = _card('segmentation_lite0_fpn_dubai')
    _check_class_map(out, card['classes'], card['palette'])

def test_classify_class_map_and_probabilities(rgb, tmp_path):
    from rsnb.classification.cli import main
    card = _card('scene_lite0_aid30')
    out, prob = tmp_path/'cls.tif', tmp_path/'prob.tif'
    assert main(['scene_lite0_aid30', str(rgb/'rgb.tif'), str(out), '--tile', '260', '--overlap', '0', '-q']) == 0
    from rsnb.data import class_colors
    pal = card.get('palette') or [[int(round(v*255)) for v in c] for c in class_colors(card['n_classes'])]
    _check_class_map(out, list(card['classes']), pal)
    assert main(['scene_lite0_aid30', str(rgb/'rgb.tif'), str(prob), '--tile', '260', '--overlap', '0', '--probabilities', '-q']) == 0
    with rasterio.open(prob) as ds:
        assert ds.dtypes[0] == 'float32' and ds.nodata is not None and np.isnan(ds.nodata)
        assert ds.overviews(1) and ds.tags(ns='IMAGE_STRUCTURE').get('LAYOUT') == 'COG'
        assert 'CLASSES' not in ds.tags()
    assert not os.path.exists(str(prob) + '.aux.xml')

def test_change_maps(rgb, tmp_path):
    from rsnb.change.cli import main
    card = _card('change_siam_lite0_sztaki')
    out, prob = tmp_path/'chg.tif', tmp_path/'chgp.tif'
    assert main(['change_siam_lite0_sztaki', str(rgb/'rgb.tif'), str(rgb/'rgb2.tif'), str(out), '-q', '--force']) == 0
    with rasterio.open(out) as ds:
        assert ds.overviews(1) and json.loads(ds.tags()['CLASSES']) == card['classes']
    assert _gdal_category_names(out) == card['classes']
    assert main(['change_siam_lite0_sztaki', str(rgb/'rgb.tif'), str(rgb/'rgb2.tif'), str(prob), '--prob', '-q', '--force']) == 0
    with rasterio.open(prob) as ds:
        assert ds.dtypes[0] == 'float32' and np.isnan(ds.nodata) and ds.overviews(1)

def test_no_cog(rgb, tmp_path):
    from rsnb.segmentation.cli import main
    out = tmp_path/'plain.tif'
    assert main(['segmentation_lite0_fpn_dubai', str(rgb/'rgb.tif'), str(out), '--tile', '256', '--overlap', '0', '--no-cog', '-q']) == 0
    with rasterio.open(out) as ds: assert ds.tags(ns='IMAGE_STRUCTURE').get('LAYOUT') != 'COG' and ds.colormap(1)
    assert _gdal_category_names(out) == _card('segmentation_lite0_fpn_dubai')['classes']

def test_inpaint_filled_mask(tmp_path):
    "The filled mask is 1 exactly where the input was missing and the output has a value; both files are COGs with overviews."
    from rsnb.inpainting.cli import main, filled_mask_path
    rng = np.random.default_rng(1)
    a = (rng.random((2, 300, 320)) * 1000 + 500).astype('uint16')
    miss = np.zeros((300, 320), bool); miss[:, 30:34] = True; miss[100:103, :] = True; miss[200:, 250:] = True
    a[:, miss] = 0
    src, out = tmp_path/'slc.tif', tmp_path/'filled.tif'
    with rasterio.open(src, 'w', driver='GTiff', width=320, height=300, count=2, dtype='uint16', nodata=0,
                       crs='EPSG:32640', transform=from_origin(500000, 2800000, 30, 30)) as ds: ds.write(a)
    assert main([str(src), str(out), '--method', 'fillnodata', '-q']) == 0
    fm = filled_mask_path(out)
    assert fm == tmp_path/'filled.filled.tif'
    with rasterio.open(fm) as ds, rasterio.open(out) as o:
        f = ds.read(1); has_value = (o.read() != 0).all(0)
        assert ds.dtypes[0] == 'uint8' and ds.crs == o.crs and ds.transform == o.transform
        assert json.loads(ds.tags()['CLASSES']) == ['observed', 'filled'] and ds.colormap(1)[1][:3] == (255, 0, 255)
        for d in (ds, o): assert d.overviews(1) and d.tags(ns='IMAGE_STRUCTURE').get('LAYOUT') == 'COG'
        assert set(np.unique(ds.read(1, out_shape=(150, 160))).tolist()) <= {0, 1}
    np.testing.assert_array_equal(f == 1, miss & has_value)
    assert (f == 1).sum() == miss.sum()   # FillNodata reaches every gap here: the mask is the input's missing pixels
    np.testing.assert_array_equal(f[~miss], 0)
    assert _gdal_category_names(fm) == ['observed', 'filled']

def test_segment_vector(rgb, tmp_path):
    import pyogrio.raw
    from rsnb.segmentation.cli import main
    out, vec = tmp_path/'seg.tif', tmp_path/'seg.gpkg'
    assert main(['segmentation_lite0_fpn_dubai', str(rgb/'rgb.tif'), str(out), '--tile', '256', '--overlap', '0', '--vector', str(vec), '-q']) == 0
    meta, _, geom, fields = pyogrio.raw.read(vec)
    assert list(meta['fields']) == ['class', 'class_id', 'area', 'mean_prob'] and meta['crs'] == 'EPSG:32640'
    names = _card('segmentation_lite0_fpn_dubai')['classes']
    with rasterio.open(out) as ds: cls = ds.read(1); px = abs(ds.transform.a * ds.transform.e)
    for c in np.unique(cls[cls != 255]):
        assert fields[2][fields[1] == c].sum() == pytest.approx((cls == c).sum() * px)
        assert set(fields[0][fields[1] == c]) == {names[c]}
    assert ((fields[3] > 0) & (fields[3] <= 1)).all()

@pytest.mark.parametrize('case', ['missing-folder', 'exists'])
def test_segment_vector_bad_path(rgb, tmp_path, capsys, case):
    from rsnb.segmentation.cli import main
    vec = tmp_path/'no'/'v.gpkg' if case == 'missing-folder' else tmp_path/'v.gpkg'
    if case == 'exists': vec.write_text('x')
    out = tmp_path/'seg.tif'
    assert main(['segmentation_lite0_fpn_dubai', str(rgb/'rgb.tif'), str(out), '--vector', str(vec), '-q']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'v.gpkg' in err[0] and '--vector' in err[0], err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == (['v.gpkg'] if case == 'exists' else [])

@pytest.mark.parametrize('prob', [False, True])
def test_change_vector(rgb, tmp_path, prob):
    import pyogrio.raw
    from rsnb.change.cli import main
    out, vec = tmp_path/'chg.tif', tmp_path/'chg.gpkg'
    ref = tmp_path/'ref.tif'   # the same pair without --vector: the maps must be identical
    common = ['change_siam_lite0_sztaki', str(rgb/'rgb.tif'), str(rgb/'rgb2.tif')]
    extra = ['-q', '--force'] + (['--prob'] if prob else [])
    assert main(common + [str(out), '--vector', str(vec)] + extra) == 0
    assert main(common + [str(ref)] + extra) == 0
    with rasterio.open(out) as ds, rasterio.open(ref) as rs:
        a, b = ds.read(1), rs.read(1); px = abs(ds.transform.a * ds.transform.e)
        assert ds.overviews(1) and ds.dtypes[0] == ('float32' if prob else 'uint8')
        np.testing.assert_allclose(a, b, atol=1e-6)
    if prob: a = (a > _card('change_siam_lite0_sztaki').get('threshold', 0.5)).astype('uint8')
    meta, _, geom, fields = pyogrio.raw.read(vec)
    assert list(meta['fields']) == ['class', 'class_id', 'area', 'mean_prob'] and meta['crs'] == 'EPSG:32640'
    assert set(fields[0]) <= {'change'} and len(fields[0]) > 0
    assert fields[2].sum() == pytest.approx((a == 1).sum() * px)
    assert (fields[3] > _card('change_siam_lite0_sztaki').get('threshold', 0.5)).all()   # every changed pixel is above the threshold

def test_change_vector_bad_path(rgb, tmp_path, capsys):
    from rsnb.change.cli import main
    out = tmp_path/'chg.tif'
    assert main(['change_siam_lite0_sztaki', str(rgb/'rgb.tif'), str(rgb/'rgb2.tif'), str(out), '--vector', str(tmp_path/'no'/'c.gpkg'), '-q']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and '--vector' in err[0] and 'c.gpkg' in err[0], err
    assert list(tmp_path.iterdir()) == []

def test_inpaint_many_resume_needs_mask(tmp_path, capsys):
    "Over many scenes, an output whose filled mask is missing is written again; a complete one is kept."
    from rsnb.inpainting.cli import main
    src, out = tmp_path/'in', tmp_path/'out'; src.mkdir()
    rng = np.random.default_rng(2)
    for n in ('s0', 's1'):
        a = (rng.random((1, 40, 48)) * 1000 + 500).astype('uint16'); a[:, :, 20:23] = 0
        with rasterio.open(src/f'{n}.tif', 'w', driver='GTiff', width=48, height=40, count=1, dtype='uint16', nodata=0,
                           crs='EPSG:32640', transform=from_origin(500000, 2800000, 30, 30)) as ds: ds.write(a)
    argv = [str(src), str(out), '--method', 'fillnodata', '-q']
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith('.aux.xml')) == ['s0.filled.tif', 's0.tif', 's1.filled.tif', 's1.tif']
    (out/'s1.filled.tif').unlink(); kept = (out/'s0.tif').read_bytes()
    capsys.readouterr()
    assert main(argv) == 0
    o, e = capsys.readouterr()
    assert o.strip().splitlines()[-1] == '2 scenes: 1 written, 1 skipped (already written), 0 failed', o
    assert 's1.tif: its filled-pixel mask s1.filled.tif is missing; writing it again' in e, e
    assert (out/'s1.filled.tif').exists() and (out/'s0.tif').read_bytes() == kept
