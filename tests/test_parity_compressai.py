"CompressAI zoo parity with torch only: fixture weights written as zoo `.pth.tar`, converted strictly, compared with CompressAI's outputs."
import json
import numpy as np, pytest, torch
from rehearsal_data import compressai_state_dict
from rsnb.convert import ConversionError
from rsnb.compression.zoo import (ZOO, convert_compressai, write_fixture_checkpoint, fixture_config, fixture_dir, parity,
                                  check_manifest, zoo_url)

MAN = json.loads((fixture_dir()/'manifest.json').read_text())

@pytest.mark.parametrize('old', [False, True])
@pytest.mark.parametrize('arch', list(ZOO))
def test_outputs_match_compressai(tmp_path, arch, old):
    m, card = convert_compressai(write_fixture_checkpoint(arch, tmp_path/f'{arch}.pth.tar', old_names=old), fixture_config(arch))
    assert card['task'] == 'compression' and card['arch'] == ZOO[arch]['arch']
    assert sum(p.numel() for p in m.parameters()) == MAN['small'][arch]['n_params']
    res = parity(m, arch)
    assert set(res) >= {'y', 'y_hat', 'x_hat', 'lik_y'}
    for out, r in res.items(): assert r['max_abs'] <= 1e-5, (arch, out, r)  # measured: 0.0 everywhere

def test_full_size_manifests():
    n = 0
    for arch, qs in MAN['full'].items():
        for q, e in qs.items():
            assert check_manifest(e['shapes'], arch, int(q)) == e['n_params']
            assert e['url'] == zoo_url(arch, int(q)); n += 1
    assert n == 30

def test_full_size_checkpoint_converts(tmp_path):
    "A zoo-shaped bmshj2018-hyperprior q3 file (random values) loads strictly at full size."
    sd = compressai_state_dict('bmshj2018-hyperprior', 3)
    torch.save(sd, tmp_path/'bmshj2018-hyperprior-3-6d87be32.pth.tar')
    m, card = convert_compressai(tmp_path/'bmshj2018-hyperprior-3-6d87be32.pth.tar', dict(arch='bmshj2018-hyperprior', quality=3))
    assert card['model_id'] == 'bmshj2018-hyperprior-q3' and sum(p.numel() for p in m.parameters()) == 5_075_843

def test_bad_inputs(tmp_path):
    f = write_fixture_checkpoint('mbt2018-mean', tmp_path/'m.pth.tar')
    with pytest.raises(ConversionError, match=r"m\.pth\.tar: --config quality=5, but its widths N=16, M=24 are no zoo quality's"):
        convert_compressai(f, dict(arch='mbt2018-mean', quality=5))        # another quality (the widths, read from the file, say so)
    with pytest.raises(ConversionError, match=r"m\.pth\.tar: --config arch=bmshj2018-hyperprior, but its tensors are a mbt2018-mean codec's"):
        convert_compressai(f, fixture_config('bmshj2018-hyperprior'))      # another architecture
    sd = torch.load(f, weights_only=True)
    torch.save({k: v for k, v in sd.items() if k != 'h_a.2.weight'}, tmp_path/'missing.pth.tar')
    with pytest.raises(ConversionError, match=r"missing\.pth\.tar: rsnb parameter 'h_a\.2\.weight' is not filled"):
        convert_compressai(tmp_path/'missing.pth.tar', fixture_config('mbt2018-mean'))
    torch.save({**sd, 'gain': torch.ones(3, 24)}, tmp_path/'extra.pth.tar')
    with pytest.raises(ConversionError, match=r"extra\.pth\.tar: tensor 'gain'"):
        convert_compressai(tmp_path/'extra.pth.tar', fixture_config('mbt2018-mean'))
    (tmp_path/'trunc.pth.tar').write_bytes(f.read_bytes()[:3000])
    with pytest.raises(ConversionError, match=r'trunc\.pth\.tar: not a readable torch checkpoint'):
        convert_compressai(tmp_path/'trunc.pth.tar', fixture_config('mbt2018-mean'))
    with pytest.raises(ConversionError, match='unknown CompressAI architecture'):
        convert_compressai(f, dict(arch='mbt2018', quality=1))

def test_rsc_roundtrip_keeps_georeferencing(tmp_path):
    "A converted codec writes a real .rsc (rsnb's range coder: bytes differ from CompressAI's by design) that decodes to a GeoTIFF."
    import rasterio
    from affine import Affine
    from rsnb.geo import RasterMeta, write_raster, read_raster
    from rsnb.compression.format import register_codec, compress_raster, decompress_raster
    m, card = convert_compressai(write_fixture_checkpoint('bmshj2018-hyperprior', tmp_path/'h.pth.tar'), fixture_config('bmshj2018-hyperprior'))
    register_codec(card['model_id'], m)
    a = (np.random.default_rng(0).random((3, 70, 150)) * 255).astype(np.uint8)
    meta = RasterMeta(crs=rasterio.crs.CRS.from_epsg(32632), transform=Affine(30, 0, 300000, 0, -30, 5000000), nodata=None,
                      dtype='uint8', count=3, height=70, width=150)
    write_raster(tmp_path/'in.tif', a, meta)
    compress_raster(tmp_path/'in.tif', tmp_path/'x.rsc', card['model_id'], rate=0, tile=64)
    back, bm = read_raster(decompress_raster(tmp_path/'x.rsc', tmp_path/'back.tif'))
    assert back.shape == a.shape and back.dtype == a.dtype and bm.crs == meta.crs and bm.transform == meta.transform
    from rsnb.compression.format import unpack, decode_bytes
    data = (tmp_path/'x.rsc').read_bytes(); h, _ = unpack(data)
    assert h['model']['id'] == card['model_id'] and h['model']['arch'] == 'ScaleHyperprior'
    assert np.array_equal(decode_bytes(data)[0], back)  # the GeoTIFF holds exactly the decoded pixels
