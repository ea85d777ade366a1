"Property tests for the .rsc container: corrupted, truncated or foreign input always gives CodecError; decoding is deterministic."
import json, os, subprocess, sys, hashlib, textwrap
import numpy as np, pytest, torch, rasterio
from affine import Affine
from hypothesis import given, settings, strategies as st, HealthCheck
from rsnb.core import CodecError
from rsnb.geo import RasterMeta
from rsnb.compression.models import MeanScaleHyperprior
from rsnb.compression.format import register_codec, encode_array, decode_bytes, pack, unpack, MAGIC

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def sample():
    torch.manual_seed(0)
    register_codec('tiny-fuzz', MeanScaleHyperprior(8, 8).eval().update())
    rng = np.random.default_rng(0)
    a = (rng.random((4, 70, 130)) * 3000 + 100).astype(np.uint16); a[:, :5, :9] = 0
    meta = RasterMeta(crs=rasterio.crs.CRS.from_epsg(32621), transform=Affine(30, 0, 694005, 0, -30, -2766615), nodata=0,
                      dtype='uint16', count=4, height=70, width=130, band_names=('B2', 'B3', 'B4', 'B8'))
    data = encode_array(a, 'tiny-fuzz', rate=1, meta=meta, tile=64)
    ref, _, _ = decode_bytes(data)
    return data, ref

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

@FAST
@given(st.data())
def test_byte_flips(sample, data):
    d, _ = sample
    bad = bytearray(d)
    for i in data.draw(st.sets(st.integers(0, len(d) - 1), min_size=1, max_size=4)):  # distinct positions
        bad[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CodecError): decode_bytes(bytes(bad))

@FAST
@given(st.data())
def test_truncation_and_insertion(sample, data):
    d, _ = sample
    n = data.draw(st.integers(0, len(d) - 1))
    with pytest.raises(CodecError): decode_bytes(d[:n])
    ins = data.draw(st.binary(min_size=1, max_size=16)); i = data.draw(st.integers(0, len(d)))
    with pytest.raises(CodecError): decode_bytes(d[:i] + ins + d[i:])

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_foreign_bytes(b):
    with pytest.raises(CodecError): decode_bytes(b)
    with pytest.raises(CodecError): decode_bytes(MAGIC + b)

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=10)

@FAST
@given(st.data())
def test_lying_header(sample, data):
    "Headers re-packed with valid checksums: either a CodecError or a correct-size image, never another exception."
    d, ref = sample
    h, pl = unpack(d)
    key = data.draw(st.sampled_from(sorted(k for k in h if not k.startswith('payload'))))
    h[key] = data.draw(JSON)
    try: arr, meta, _ = decode_bytes(pack(h, pl))
    except CodecError: return
    assert arr.shape == tuple(h['shape'])

@FAST
@given(st.data())
def test_lying_sections(sample, data):
    d, _ = sample
    h, pl = unpack(d)
    i = data.draw(st.integers(0, len(h['sections']) - 1)); k = data.draw(st.sampled_from(sorted(h['sections'][i])))
    h['sections'][i][k] = data.draw(JSON | st.integers(-3, 5000))
    try: arr, _, _ = decode_bytes(pack(h, pl))
    except CodecError: return
    assert arr.shape == tuple(h['shape'])

def test_payload_swap(sample):
    "Same-length payload with a recomputed hash but shuffled tile bytes decodes or fails cleanly."
    d, _ = sample
    h, pl = unpack(d)
    bad = pl[::-1]
    try: decode_bytes(pack(h, bad))
    except CodecError: pass

def test_roundtrip_exact_container(sample):
    d, ref = sample
    h, pl = unpack(d)
    assert pack(h, pl) == d  # header re-serialisation is canonical
    arr, _, _ = decode_bytes(d)
    assert np.array_equal(arr, ref)

DET = textwrap.dedent('''
    import sys, hashlib, numpy as np, torch
    torch.set_num_threads(int(sys.argv[1]))
    from rsnb.compression.format import get_codec, decode_bytes
    get_codec(sys.argv[2])
    arr, _, _ = decode_bytes(open(sys.argv[3], 'rb').read())
    print(hashlib.sha256(arr.tobytes()).hexdigest())
''')

def test_deterministic_across_threads(tmp_path):
    "Same bytes → same pixels in separate processes with 1 and 2 torch threads."
    from rsnb.weights import save_model
    torch.manual_seed(3)
    m = MeanScaleHyperprior(16, 16).eval().update()
    save_model(m, tmp_path/'tiny-det', card=dict(model_id='tiny-det', kwargs=dict(N=16, M=16, in_ch=3, n_rates=3)))
    from rsnb.compression.format import get_codec
    get_codec(str(tmp_path/'tiny-det.pth'))
    a = (np.random.default_rng(1).random((3, 200, 260)) * 255).astype(np.uint8)
    (tmp_path/'x.rsc').write_bytes(encode_array(a, 'tiny-det', rate=2, tile=128))
    env = dict(os.environ, OMP_NUM_THREADS='2', MKL_NUM_THREADS='2')
    outs = {subprocess.run([sys.executable, '-c', DET, str(nt), str(tmp_path/'tiny-det.pth'), str(tmp_path/'x.rsc')],
                           capture_output=True, text=True, env=env, check=True).stdout.strip() for nt in (1, 2, 1)}
    assert len(outs) == 1, outs

def test_default_model_deterministic(tmp_path):
    "The shipped codec: a held-out Landsat-8 crop decodes to the same pixels with 1 and 2 threads, in separate processes."
    from rsnb.core import have_data, data_path
    from rsnb.compression.format import _weights_file, DEFAULT_MODEL
    from rsnb.geo import read_raster
    f = _weights_file(DEFAULT_MODEL)
    if f is None or not have_data('compression', 'landsat8_224077_rgb8'): pytest.skip('default codec weights or Landsat-8 crops not available')
    img = sorted(data_path('compression', 'landsat8_224077_rgb8').rglob('*_c6.png'))[0]
    a, _ = read_raster(img)
    (tmp_path/'x.rsc').write_bytes(encode_array(a, DEFAULT_MODEL, rate=1.5, tile=128))
    env = dict(os.environ, OMP_NUM_THREADS='2', MKL_NUM_THREADS='2')
    outs = {subprocess.run([sys.executable, '-c', DET, str(nt), DEFAULT_MODEL, str(tmp_path/'x.rsc')],
                           capture_output=True, text=True, env=env, check=True).stdout.strip() for nt in (1, 2)}
    assert len(outs) == 1, outs
