"""Georeferencing is kept or refused, never dropped.

A crop of the Landsat-8 scene (TOA reflectance, float32, a few NaN pixels so that inpainting has gaps) written three
ways with rasterio: georeferenced by five GCPs computed from the scene's transform (in its UTM CRS), by a linear RPC
model, and as a VRT whose georeferencing is a geolocation array (per-pixel longitude/latitude rasters), which no
rsnb output can hold. Every command that writes a raster must give an output with the input's GCPs, GCP CRS and
RPCs; the geolocation raster is refused with one line (exit 1, nothing written), and `--force` writes it without.
The `.rsc` container holds GCPs and RPCs from format version 2 on; version-1 files written before still decode."""
import hashlib, struct
import numpy as np
import pytest
import rasterio
import torch
from pathlib import Path
from rasterio.control import GroundControlPoint as GCP
from rasterio.rpc import RPC
from rsnb.geo import read_raster, read_meta, write_raster, georef_diff, valid_mask
from dataclasses import replace
from raster_tools import landsat_crop, save_models, run, commands, H, W

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent/'fixtures'/'rsc'

def _gcps(meta, shift=0.):
    pts = [(0, 0), (0, W), (H, 0), (H, W), (H // 2, W // 2)]
    return [GCP(r, c, *(meta.transform * (c + shift, r)), z=0., id=str(i + 1)) for i, (r, c) in enumerate(pts)]

def _rpc():
    z, den = [0.] * 20, [1.] + [0.] * 19
    return RPC(height_off=0., height_scale=1., lat_off=-25.1, lat_scale=.013, long_off=-57.9, long_scale=.019, line_off=H / 2, line_scale=H / 2,
               samp_off=W / 2, samp_scale=W / 2, line_num_coeff=[0., 0., -1.] + z[3:], line_den_coeff=den,
               samp_num_coeff=[0., 1.] + z[2:], samp_den_coeff=den, err_bias=2.5, err_rand=0.75)

def _write(path, a, **geo):
    with rasterio.open(path, 'w', driver='GTiff', height=H, width=W, count=3, dtype='float32', **geo) as ds: ds.write(a)
    return path

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp('georef')
    a, meta = landsat_crop(600, 800); b, _ = landsat_crop(700, 800)
    a[:, 30:33, 40:50] = np.nan; b[1, 5, 5] = np.nan                       # gaps for inpainting
    f = dict(gcp=_write(d/'gcp.tif', a, gcps=_gcps(meta), crs=meta.crs), rpc=_write(d/'rpc.tif', a, rpcs=_rpc()),
             gcp2=_write(d/'gcp2.tif', b, gcps=_gcps(meta), crs=meta.crs), rpc2=_write(d/'rpc2.tif', b, rpcs=_rpc()),
             gcp_other=_write(d/'gcp_other.tif', b, gcps=_gcps(meta, shift=3.), crs=meta.crs),
             plain=write_raster(d/'plain.tif', a, meta))
    lon, lat = np.meshgrid(np.linspace(-57.92, -57.88, W), np.linspace(-25.08, -25.12, H))
    for n, v in (('lon', lon), ('lat', lat)):
        with rasterio.open(d/f'{n}.tif', 'w', driver='GTiff', height=H, width=W, count=1, dtype='float64') as ds: ds.write(v[None])
    mdi = ''.join(f'<MDI key="{k}">{v}</MDI>' for k, v in dict(SRS='EPSG:4326', X_DATASET=d/'lon.tif', X_BAND=1, Y_DATASET=d/'lat.tif', Y_BAND=1,
                                                              PIXEL_OFFSET=0, LINE_OFFSET=0, PIXEL_STEP=1, LINE_STEP=1).items())
    bands = ''.join(f'<VRTRasterBand dataType="Float32" band="{i}"><SimpleSource><SourceFilename relativeToVRT="1">plain.tif</SourceFilename>'
                    f'<SourceBand>{i}</SourceBand></SimpleSource></VRTRasterBand>' for i in (1, 2, 3))
    (d/'geoloc.vrt').write_text(f'<VRTDataset rasterXSize="{W}" rasterYSize="{H}"><Metadata domain="GEOLOCATION">{mdi}</Metadata>{bands}</VRTDataset>')
    f['geoloc'] = d/'geoloc.vrt'
    return d, f, save_models(d, a, b)

def _jobs(m, src, src2, out):
    "(command, positional arguments, options) of every command that writes a raster from `src`."
    return dict(classify=('classify', [m['classify'], src, out], ['--tile', '32', '--overlap', '8']),
                segment=('segment', [m['segment'], src, out], ['--tile', '64', '--overlap', '16']),
                change=('change', [m['change'], src, src2, out], ['--tile', '64', '--overlap', '16']),
                change_prob=('change', [m['change'], src, src2, out], ['--tile', '64', '--prob']),
                inpaint_fillnodata=('inpaint', [src, out], ['--method', 'fillnodata']),
                inpaint_ecea=('inpaint', [src, out], ['--model', m['ecea']]))

def _same(i, o):
    "The output's GCPs, GCP CRS and RPCs are the input's (and `georef_diff` finds nothing else)."
    assert [(g.row, g.col, g.x, g.y, g.z) for g in o.gcps] == [(g.row, g.col, g.x, g.y, g.z) for g in i.gcps]
    assert o.gcps_crs == i.gcps_crs and o.crs == i.crs
    assert (o.rpcs is None) == (i.rpcs is None) and (i.rpcs is None or o.rpcs.to_dict() == i.rpcs.to_dict())
    assert georef_diff(i, o) == []

@pytest.mark.parametrize('kind', ['gcp', 'rpc'])
@pytest.mark.parametrize('job', ['classify', 'segment', 'change', 'change_prob', 'inpaint_fillnodata', 'inpaint_ecea'])
def test_tools_keep_gcps_and_rpcs(env, kind, job):
    d, f, m = env
    out = d/f'{job}_{kind}.tif'
    tool, pos, opts = _jobs(m, f[kind], f[kind + '2'], out)[job]
    rc, err = run(commands()[tool], *pos, *opts)
    assert rc == 0, err
    i, o = read_meta(f[kind]), read_meta(out)
    assert (len(i.gcps), i.rpcs is None) == ((5, True) if kind == 'gcp' else (0, False))   # the input is what it should be
    _same(i, o)

@pytest.mark.parametrize('kind', ['gcp', 'rpc'])
def test_compress_keeps_gcps_and_rpcs(env, kind):
    d, f, _ = env
    cmd = commands()
    assert run(cmd['compress'], f[kind], d/f'{kind}.rsc', '--tile', '64')[0] == 0
    assert struct.unpack('<H', (d/f'{kind}.rsc').read_bytes()[8:10])[0] == 2
    rc, err = run(cmd['decompress'], d/f'{kind}.rsc', d/f'{kind}_back.tif'); assert rc == 0, err
    _same(read_meta(f[kind]), read_meta(d/f'{kind}_back.tif'))

def test_change_refuses_other_gcps(env):
    d, f, m = env
    rc, err = run(commands()['change'], m['change'], f['gcp'], f['gcp_other'], d/'x.tif', '--reproject')
    assert rc == 1 and len(err) == 1 and 'GCPs differ' in err[0] and 'gdalwarp' in err[0] and not (d/'x.tif').exists()

@pytest.mark.parametrize('job', ['classify', 'segment', 'change', 'inpaint_fillnodata', 'compress'])
def test_geolocation_refused_unless_force(env, job):
    d, f, m = env
    out = d/f'geoloc_{job}.tif'
    if job == 'compress': tool, pos, opts = 'compress', [f['geoloc'], out.with_suffix('.rsc')], ['--tile', '64']
    else: tool, pos, opts = _jobs(m, f['geoloc'], f['geoloc'], out)[job]
    rc, err = run(commands()[tool], *pos, *opts)
    assert rc == 1 and len(err) == 1 and 'geoloc.vrt: georeferenced by a geolocation array' in err[0] and '--force' in err[0], err
    assert not out.exists() and not out.with_suffix('.rsc').exists()
    rc, err = run(commands()[tool], *pos, *opts, '--force')
    assert rc == 0, err
    assert sum('geolocation array' in e and 'writing the outputs without it' in e for e in err) <= 1   # warned (once per file and process)
    if job == 'compress':
        assert run(commands()['decompress'], out.with_suffix('.rsc'), out)[0] == 0
    o = read_meta(out)
    assert (o.crs, o.gcps, o.rpcs, o.transform.is_identity) == (None, (), None, True)

def test_rsc_version1_still_decodes(env, tmp_path):
    "Files written by format version 1 decode to the pixels that version's reader gave, with their georeferencing."
    from rsnb.core import data_path
    from rsnb.compression.format import encode_array
    want = {'lc08_r1400_c300_96x128_v1.rsc': '1454d9a77c11d3ab944318753112ee55e1d7b7c4c2f61fbb8abdc69182f956b7',
            'lc08_r1400_c300_96x128_float_nan_v1.rsc': 'bbc66c9a82961b6e9a933148d304f11399a6748ee8995cbfb7df4bf15a213a47'}
    dn, m = read_raster(data_path('scenes', 'LC08_L1TP_224077_20200518_B4B3B2.tif'), window=((1400, 1496), (300, 428)))
    refl = np.where(valid_mask(dn, 0)[None], dn * 2e-5 - 0.1, np.nan).astype(np.float32)
    for (name, sha), (arr, meta) in zip(want.items(), ((dn, m), (refl, replace(m, dtype='float32', nodata=None)))):
        old = (FIXTURES/name).read_bytes()
        assert struct.unpack('<H', old[8:10])[0] == 1
        assert encode_array(arr, 'compression_msh_default', rate=1, meta=meta, tile=64) == old   # today's writer: the same v1 bytes
        rc, err = run(commands()['decompress'], FIXTURES/name, tmp_path/f'{name}.tif'); assert rc == 0, err
        back, bm = read_raster(tmp_path/f'{name}.tif')
        assert hashlib.sha256(np.ascontiguousarray(back).tobytes()).hexdigest() == sha
        assert (bm.crs, bm.transform, bm.gcps, bm.rpcs) == (m.crs, m.transform, (), None)
        ok = valid_mask(arr, meta.nodata)
        assert ok.mean() < 0.2 and (back[:, ~ok] == 0).all() if meta.nodata == 0 else np.isnan(back[:, ~ok]).all()
