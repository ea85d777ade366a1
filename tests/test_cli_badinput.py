"""Bad inputs to every rsnb command: each gets its exit status (2 command line, 1 contents), one line on stderr naming
the file or option, no traceback, no output left behind and every input unchanged. Legitimately accepted inputs are
listed separately (exit 0, a verified output). The commands run in-process through `main(argv)`; a few run as real
console processes at the end."""
import hashlib, json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS
from rsnb.geo import RasterMeta, write_raster, read_meta
from rsnb.weights import save_model
from rsnb.classification.cli import main as classify
from rsnb.segmentation.cli import main as segment
from rsnb.change.cli import main as change, save_change_model
from rsnb.compression.cli import compress_main as compress, decompress_main as decompress
from rsnb.inpainting.cli import main as inpaint

torch.set_num_threads(1)
TOOLS = dict(classify=(classify, 'rsnb-classify'), segment=(segment, 'rsnb-segment'), change=(change, 'rsnb-change'),
             compress=(compress, 'rsnb-compress'), decompress=(decompress, 'rsnb-decompress'), inpaint=(inpaint, 'rsnb-inpaint'))
GPU = torch.cuda.is_available()

def _meta(c=3, h=64, w=64, dtype='uint8', nodata=None, crs=32633, x0=500000):
    return RasterMeta(CRS.from_epsg(crs), Affine(10, 0, x0, 0, -10, 5000000), nodata, dtype, c, h, w)

FULL = {}   # SHA-256 of every input when made (`test_inputs_unchanged`)

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    "Inputs in `inp/` (hashed before/after every case), outputs go to `out/`."
    d = tmp_path_factory.mktemp('bad'); i = d/'inp'; o = d/'out'; i.mkdir(); o.mkdir()
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 255, (3, 64, 64), dtype=np.uint8)
    write_raster(i/'rgb.tif', u8, _meta())
    write_raster(i/'rgb4.tif', np.concatenate([u8, u8[:1]]), _meta(4))
    write_raster(i/'one.tif', u8[:1], _meta(1))
    write_raster(i/'u16.tif', (u8.astype(np.uint16) * 40 + 1000), _meta(dtype='uint16'))
    write_raster(i/'u16small.tif', u8.astype(np.uint16), _meta(dtype='uint16'))        # 16-bit type, 8-bit values
    write_raster(i/'utm32.tif', u8, _meta(crs=32632))
    write_raster(i/'shift.tif', u8, _meta(x0=500320))   # half a scene east: overlaps t1 by 32 columns
    write_raster(i/'small.tif', u8[:, :32, :32], _meta(h=32, w=32))
    f = (rng.random((3, 64, 64)) * 200).astype(np.float32)
    fn = f.copy(); fn[:, 10:20, 5:30] = np.nan; fn[1, 40, 40] = np.inf
    write_raster(i/'float.tif', f, _meta(dtype='float32'))
    write_raster(i/'nan_some.tif', fn, _meta(dtype='float32'))
    write_raster(i/'nan_all.tif', np.full((3, 64, 64), np.nan, np.float32), _meta(dtype='float32'))
    write_raster(i/'nodata_all.tif', np.zeros((3, 64, 64), np.uint8), _meta(nodata=0))
    gappy = rng.normal(2500, 300, (3, 64, 64)).astype(np.int16); gappy[:, ::7] = -999
    write_raster(i/'gappy.tif', gappy, _meta(dtype='int16', nodata=-999))
    write_raster(i/'gappy_big.tif', np.where(gappy == -999, -999, 30000).astype(np.int16), _meta(dtype='int16', nodata=-999))
    write_raster(i/'nogap.tif', np.abs(gappy), _meta(dtype='int16', nodata=-999))
    write_raster(i/'mask.tif', (gappy[0] == -999).astype(np.uint8)[None], _meta(1))
    write_raster(i/'mask_small.tif', np.zeros((1, 32, 32), np.uint8), _meta(1, 32, 32))
    (i/'garbage.tif').write_bytes(b'this is not a raster at all' * 10)
    (i/'empty.tif').write_bytes(b'')
    (i/'truncated.tif').write_bytes((i/'rgb.tif').read_bytes()[:300])
    (i/'notes.txt').write_text('hello')
    (i/'folder').mkdir()
    # models
    from rsnb.classification.model import SceneClassifier
    from rsnb.segmentation.models import seg_model
    from rsnb.change.train import change_model
    from rsnb.data import BandStats
    from rsnb.compression.models import MeanScaleHyperprior
    from rsnb.inpainting.model import ECEAGenerator
    from rsnb.inpainting.slcoff import Scaler
    from rsnb.inpainting.train import save_ecea
    torch.manual_seed(0)
    st = dict(mean=[120.]*3, std=[60.]*3)
    save_model(SceneClassifier(3, arch='resnet18').eval(), i/'cls', dict(task='scene_classification', arch='resnet18', n_classes=3,
               classes=list('abc'), in_chans=3, bands=['r', 'g', 'b'], input_size=None, normalization=st))
    save_model(seg_model('fcn', 'resnet18', 3, 3, output_stride=16).eval(), i/'seg', dict(task='segmentation', arch='fcn', backbone='resnet18', impl='paddleseg',
               n_classes=3, in_chans=3, output_stride=16, palette=[[1, 2, 3]]*3, norm=dict(scale=255., mean=.5, std=.5)))
    save_change_model(change_model('dpcd', 3, 8), i/'chg', 'dpcd', BandStats.compute([u8.astype(np.float32)], names=['r', 'g', 'b']), width=8)
    save_model(MeanScaleHyperprior(8, 8).eval().update(), i/'codec', dict(task='compression', model_id='bad-tiny', arch='MeanScaleHyperprior', kwargs=dict(N=8, M=8)))
    G = ECEAGenerator(3, img_size=32, dims=(8, 16), depths=(1, 1), heads=(1, 1), ps_hidden=8, ps_res=1, mid_res=1)
    save_ecea(G, i/'ecea', Scaler('reflectance', [0.]*3, [0.6]*3), band_names=('B3', 'B4', 'B5'))
    (i/'corrupt.pth').write_bytes(b'\x00' * 100); (i/'corrupt.json').write_text((i/'cls.json').read_text())
    (i/'cardonly.json').write_text((i/'cls.json').read_text())
    (i/'segsmp.pth').write_bytes((i/'seg.pth').read_bytes())   # PaddleSeg-layout weights under a card that builds the smp layout
    (i/'segsmp.json').write_text(json.dumps({k: v for k, v in json.loads((i/'seg.json').read_text()).items() if k not in ('impl', 'sha256')}))
    (i/'badjson.pth').write_bytes((i/'cls.pth').read_bytes()); (i/'badjson.json').write_text('{not json')
    assert compress([str(i/'rgb.tif'), str(i/'good.rsc'), '--model', str(i/'codec.pth'), '-q']) == 0
    (i/'trunc.rsc').write_bytes((i/'good.rsc').read_bytes()[:-7])
    b = bytearray((i/'good.rsc').read_bytes()); b[-3] ^= 0xFF; (i/'flip.rsc').write_bytes(bytes(b))
    (o/'exists.tif').write_bytes(b'old output'); (o/'exists.rsc').write_bytes(b'old output')
    (o/'adir').mkdir()
    FULL.update(_full_hashes(i))
    return d

def _full_hashes(d):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(d).rglob('*')) if p.is_file()}

def _hashes(d):
    """Per case: every input's size, modification time (ns) and inode (any write changes them) and the SHA-256 of the small
    ones; hashing every model file twice a case took 90 % of this module's time. `test_inputs_unchanged` compares the full
    SHA-256 of every input at the end with the one taken when the inputs were made."""
    out = {}
    for p in sorted(Path(d).rglob('*')):
        if not p.is_file(): continue
        st = p.stat()
        out[p] = (st.st_size, st.st_mtime_ns, st.st_ino, hashlib.sha256(p.read_bytes()).hexdigest() if st.st_size <= 1 << 16 else None)
    return out

I, O = '{I}', '{O}'
def _fmt(args, d): return [a.replace(I, str(d/'inp')).replace(O, str(d/'out')) for a in args]

# (tool, argv, expected status, text the one-line message must contain)
CM = {'classify': ['{I}/cls.pth'], 'segment': ['{I}/seg.pth'], 'change': ['{I}/chg.pth']}
def _pos(tool, src, dst):
    "Positional arguments of `tool` for input `src` and output `dst`."
    if tool in CM: return CM[tool] + ([src, '{I}/rgb.tif'] if tool == 'change' else [src]) + [dst]
    if tool == 'compress': return [src, dst, '--model', '{I}/codec.pth']
    if tool == 'decompress': return [src, dst, '--model', '{I}/codec.pth']
    return [src, dst, '--model', '{I}/ecea.pth']

def _good(tool): return {'decompress': '{I}/good.rsc', 'inpaint': '{I}/gappy.tif'}.get(tool, '{I}/rgb.tif')
def _ext(tool): return '.rsc' if tool == 'compress' else '.tif'

CASES = []
def case(tool, argv, code, text, cid): CASES.append(pytest.param(tool, argv, code, text, id=f'{tool}-{cid}'))

for t in TOOLS:
    g, e = _good(t), _ext(t)
    # inputs
    case(t, _pos(t, '{I}/missing.tif', f'{O}/o{e}'), 2, 'missing.tif: ', 'missing-input')
    case(t, _pos(t, '{I}/folder', f'{O}/o{e}'), 2, 'folder: ', 'input-is-folder')
    case(t, _pos(t, '{I}/garbage.tif', f'{O}/o{e}'), 1, 'garbage.tif', 'garbage-input')
    case(t, _pos(t, '{I}/empty.tif', f'{O}/o{e}'), 1, 'empty.tif', 'empty-input')
    case(t, _pos(t, '{I}/truncated.tif', f'{O}/o{e}'), 1, 'truncated.tif', 'truncated-input')
    case(t, _pos(t, '{I}/notes.txt', f'{O}/o{e}'), 2, 'notes.txt', 'text-input')   # a .txt is a list of scenes: its line 'hello' names no file
    # outputs
    case(t, _pos(t, g, f'{O}/exists{e}'), 2, 'pass --overwrite', 'output-exists')
    case(t, _pos(t, g, f'{O}/adir'), 2, 'adir: output path is a folder', 'output-is-folder')
    case(t, _pos(t, g, f'{O}/nope/o{e}'), 2, 'nope: output folder does not exist', 'output-folder-missing')
    case(t, _pos(t, g, f'/proc/o{e}'), 2, '/proc: output folder is not writable', 'output-folder-readonly')
    case(t, _pos(t, g, f'{O}/exists{e}/x{e}'), 2, 'exists', 'output-parent-is-file')
    case(t, _pos(t, g, g), 2, 'is an input file', 'output-is-input')
    # device and options common to all
    if not GPU: case(t, _pos(t, g, f'{O}/o{e}') + ['--device', 'cuda'], 2, '--device cuda: no CUDA GPU', 'cuda-without-gpu')
    case(t, _pos(t, g, f'{O}/o{e}') + ['--device', 'tpu9'], 2, "unknown device 'tpu9'", 'bogus-device')
    case(t, _pos(t, g, f'{O}/o{e}') + ['--no-such-option'], 2, 'unrecognized arguments', 'unknown-option')
    case(t, ['{I}/rgb.tif'], 2, 'required', 'too-few-arguments')

for t in ('classify', 'segment', 'change'):
    g = _good(t); p = _pos(t, g, f'{O}/o.tif')
    for opt, val, text in [('--tile', '0', 'expected an integer ≥ 1'), ('--tile', '-64', 'expected an integer ≥ 1'), ('--tile', 'big', "'big'"),
                           ('--overlap', '-1', 'expected an integer ≥ 0'), ('--batch-size', '0', 'expected an integer ≥ 1'),
                           ('--batch-size', '2.5', "'2.5'")]:
        case(t, p + [opt, val], 2, text, f'{opt[2:]}-{val}')
    case(t, p + ['--tile', '64', '--overlap', '64'], 2, '--overlap 64: must be smaller than --tile 64', 'overlap-eq-tile')
    case(t, p + ['--tile', '64', '--overlap', '100'], 2, 'must be smaller than --tile 64', 'overlap-gt-tile')
    # models
    def pm(m): return [m] + p[1:]
    case(t, pm('{I}/nomodel.pth'), 2, 'nomodel.pth: not found', 'missing-model-file')
    case(t, pm('no_such_model_name'), 2, 'no_such_model_name: no such model', 'unknown-model-name')
    case(t, pm('{I}/corrupt.pth'), 1, 'corrupt.pth', 'corrupt-model')
    case(t, pm('{I}/cardonly.pth'), 1, 'cardonly.pth', 'card-without-weights')
    case(t, pm('{I}/badjson.pth'), 1, 'badjson.json', 'card-not-json')
    if t == 'segment': case(t, pm('{I}/segsmp.pth'), 1, 'segsmp.pth: weights do not fit the model built from its card', 'weights-other-layout')   # was a silently random model
    other = {'classify': '{I}/chg.pth', 'segment': '{I}/cls.pth', 'change': '{I}/seg.pth'}[t]
    case(t, pm(other), 1, other[4:], 'wrong-task-model')
    case(t, pm('{I}/codec.pth'), 1, 'codec', 'codec-as-model')
    case(t, pm('{I}/ecea.pth'), 1, 'ecea', 'ecea-as-model')
    # data against the card
    case(t, _pos(t, '{I}/one.tif', f'{O}/o.tif'), 1, 'one.tif', 'one-band-input')
    case(t, _pos(t, '{I}/u16.tif', f'{O}/o.tif'), 1, 'pixel type' if t == 'change' else 'u16.tif: values far outside', 'uint16-into-8bit-model')
    case(t, _pos(t, '{I}/nan_all.tif', f'{O}/o.tif'), 1, 'pixel type' if t == 'change' else 'nan_all.tif: no valid pixel', 'all-nan')
    case(t, _pos(t, '{I}/nodata_all.tif', f'{O}/o.tif'), 1, 'nodata_all.tif: no valid pixel', 'all-nodata')

case('classify', _pos('classify', '{I}/rgb.tif', f'{O}/o.tif') + ['--stretch', '99', '1'], 2, '--stretch 99 1', 'stretch-reversed')
case('classify', _pos('classify', '{I}/rgb.tif', f'{O}/o.tif') + ['--stretch', '5', '5'], 2, '--stretch 5 5', 'stretch-equal')
case('classify', _pos('classify', '{I}/rgb.tif', f'{O}/o.tif') + ['--stretch', '1', '120'], 2, 'percentile in [0, 100]', 'stretch-over-100')
case('classify', _pos('classify', '{I}/rgb.tif', f'{O}/o.tif') + ['--bands', '0,1,2'], 2, '1-based', 'bands-zero')
case('classify', _pos('classify', '{I}/rgb.tif', f'{O}/o.tif') + ['--bands', 'r,g,b'], 2, "'r,g,b'", 'bands-names')
case('classify', _pos('classify', '{I}/rgb.tif', f'{O}/o.tif') + ['--bands', '1,2'], 1, '2 bands, but the model was trained on 3', 'bands-too-few')
case('classify', _pos('classify', '{I}/rgb.tif', f'{O}/o.tif') + ['--bands', '1,2,7'], 1, 'asks for band 7', 'bands-out-of-range')
case('classify', _pos('classify', '{I}/rgb4.tif', f'{O}/o.tif'), 1, '--bands', 'four-bands-no-selection')
case('segment', _pos('segment', '{I}/rgb.tif', f'{O}/o.tif') + ['--bands', '1,2,9'], 1, 'rgb.tif: has 3 band', 'bands-out-of-range')
case('segment', _pos('segment', '{I}/rgb.tif', f'{O}/o.tif') + ['--bands', '1,2'], 1, 'selects 2 bands', 'bands-too-few')
case('segment', _pos('segment', '{I}/rgb4.tif', f'{O}/o.tif'), 1, 'select them with --bands', 'four-bands-no-selection')   # one convention: no silent first bands
for v in ('5', '0', '1', '-0.2', 'nan', 'half'):
    case('change', _pos('change', '{I}/rgb.tif', f'{O}/o.tif') + ['--threshold', v], 2, 'threshold', f'threshold-{v}')
case('change', CM['change'] + ['{I}/rgb.tif', '{I}/utm32.tif', f'{O}/o.tif'], 1, 'CRS', 'pair-crs')
case('change', CM['change'] + ['{I}/rgb.tif', '{I}/shift.tif', f'{O}/o.tif'], 1, 'pass --reproject', 'pair-transform')
case('change', CM['change'] + ['{I}/rgb.tif', '{I}/small.tif', f'{O}/o.tif'], 1, 'size', 'pair-size')
case('change', CM['change'] + ['{I}/rgb.tif', '{I}/rgb4.tif', f'{O}/o.tif'], 1, 'rgb4.tif: 4 bands', 'pair-bands')
case('change', CM['change'] + ['{I}/rgb.tif', '{I}/u16small.tif', f'{O}/o.tif'], 1, 'u16small.tif: pixel type uint16', 'pair-dtype')
case('change', CM['change'] + ['{I}/rgb.tif', '{I}/missing.tif', f'{O}/o.tif'], 2, 'missing.tif', 'missing-t2')
case('change', CM['change'] + ['{I}/rgb.tif', '{I}/rgb.tif', '{I}/rgb.tif'], 2, 'is an input file', 'output-is-t1')

C = ['{I}/rgb.tif', f'{O}/o.rsc', '--model', '{I}/codec.pth']
for opt, val, text in [('--tile', '100', 'multiple of 64'), ('--tile', '0', '≥ 1'), ('--tile', 'x', "'x'"), ('--rate', 'max', "'max'"),
                       ('--rate', '-1', 'rate index must be ≥ 0'), ('--rate', '7', '--rate 7: the codec'), ('--rate', 'nan', "'nan'")]:
    case('compress', C + [opt, val], 2, text, f'{opt[2:]}-{val}')
for m, code, text, cid in [('no_such_codec', 2, 'no_such_codec', 'unknown-codec'), ('{I}/chg.pth', 1, 'not a compression codec', 'change-model-as-codec'),
                           ('{I}/corrupt.pth', 1, 'corrupt.pth', 'corrupt-codec'), ('{I}/nomodel.pth', 2, 'nomodel.pth', 'missing-codec-file')]:
    case('compress', ['{I}/rgb.tif', f'{O}/o.rsc', '--model', m], code, text, cid)
case('compress', ['{I}/nan_all.tif', f'{O}/o.rsc', '--model', '{I}/codec.pth'], 1, 'nan_all.tif: every pixel is nodata or NaN/Inf', 'all-nan')
case('compress', ['{I}/nodata_all.tif', f'{O}/o.rsc', '--model', '{I}/codec.pth'], 1, 'nodata_all.tif: every pixel is nodata', 'all-nodata')
for src, text, cid in [('{I}/trunc.rsc', 'trunc.rsc: truncated', 'truncated-rsc'), ('{I}/flip.rsc', 'flip.rsc: payload checksum', 'flipped-byte'),
                       ('{I}/rgb.tif', 'rgb.tif: not an rsnb compressed raster', 'tif-as-rsc')]:
    case('decompress', [src, f'{O}/o.tif'], 1, text, cid)
case('decompress', ['{I}/good.rsc', f'{O}/o.tif', '--model', '{I}/chg.pth'], 1, 'not a compression codec', 'change-model-as-codec')
case('decompress', ['{I}/good.rsc', f'{O}/o.tif', '--model', '{I}/nomodel.pth'], 2, 'nomodel.pth', 'missing-codec-file')

E = ['--model', '{I}/ecea.pth']
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--method', 'ecea'], 2, '--model is required', 'no-model')
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--method', 'temporal'], 2, '--second-date is required', 'temporal-no-second')
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--model', '{I}/cls.pth'], 1, 'cls', 'classifier-as-generator')
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--model', 'no_such_model_name'], 2, 'no_such_model_name', 'unknown-model-name')
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--method', 'magic'] + E, 2, "invalid choice: 'magic'", 'bad-method')
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--batch-size', '0'] + E, 2, '≥ 1', 'batch-0')
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--overlap', '-3'] + E, 2, '≥ 0', 'overlap-negative')
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--overlap', '32'] + E, 2, 'must be smaller than --tile 32', 'overlap-ge-window')
case('inpaint', ['{I}/nogap.tif', f'{O}/o.tif'] + E, 1, 'nogap.tif: no missing pixels', 'no-gaps')
case('inpaint', ['{I}/nodata_all.tif', f'{O}/o.tif'] + E, 1, 'nodata_all.tif: no valid pixel', 'all-gaps')
case('inpaint', ['{I}/rgb4.tif', f'{O}/o.tif'] + E, 1, 'rgb4.tif: 4 bands, but the model was trained on 3', 'four-bands')
case('inpaint', ['{I}/gappy_big.tif', f'{O}/o.tif'] + E, 1, 'gappy_big.tif: values far outside', 'values-out-of-range')
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--mask', '{I}/mask_small.tif'] + E, 1, 'mask_small.tif: mask is 32×32', 'mask-size')
case('inpaint', ['{I}/gappy.tif', f'{O}/o.tif', '--mask', '{I}/missing_mask.tif'] + E, 2, 'missing_mask.tif: mask raster not found', 'mask-missing')
case('inpaint', ['{I}/gappy.tif', '{I}/mask.tif', '--mask', '{I}/mask.tif'] + E, 2, 'is an input file', 'output-is-mask')
case('inpaint', ['{I}/gappy.tif', '{I}/ecea.pth'] + E, 2, 'is an input file', 'output-is-model')

@pytest.mark.parametrize('tool,argv,code,text', CASES)
def test_bad_input(env, tool, argv, code, text, capsys):
    main, prog = TOOLS[tool]
    before, outs = _hashes(env/'inp'), sorted((env/'out').rglob('*'))
    got = main(_fmt(argv, env) + ['--quiet'] * (argv != ['{I}/rgb.tif']))
    out, err = capsys.readouterr()
    assert got == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'{prog}: error: '), err
    assert text in lines[0], lines[0]
    assert 'Traceback' not in err and out == ''
    assert _hashes(env/'inp') == before                        # inputs unchanged, nothing added there
    assert sorted((env/'out').rglob('*')) == outs               # no output, no temporary file left
    assert (env/'out'/'exists.tif').read_bytes() == b'old output'

# Inputs that are accepted on purpose: (tool, argv, what must hold)
ACCEPTED = [
    pytest.param('segment', ['{I}/seg.pth', '{I}/rgb4.tif', '{O}/acc1.tif', '--tile', '64', '--overlap', '0', '--bands', '1,2,3'], 'bands selected', id='segment-4band-bands'),
    pytest.param('segment', ['{I}/seg.pth', '{I}/u16small.tif', '{O}/acc2.tif', '--tile', '64', '--overlap', '0'], '16-bit type, 8-bit values', id='segment-uint16-in-range'),
    pytest.param('segment', ['{I}/seg.pth', '{I}/u16.tif', '{O}/acc3.tif', '--tile', '64', '--overlap', '0', '--force'], 'forced', id='segment-force'),
    pytest.param('classify', ['{I}/cls.pth', '{I}/u16.tif', '{O}/acc4.tif', '--tile', '32', '--overlap', '0', '--stretch', '1', '99'], 'stretched', id='classify-stretch'),
    pytest.param('classify', ['{I}/cls.pth', '{I}/rgb4.tif', '{O}/acc5.tif', '--tile', '32', '--overlap', '0', '--bands', '3,2,1'], 'selected', id='classify-bands'),
    pytest.param('change', ['{I}/chg.pth', '{I}/rgb.tif', '{I}/shift.tif', '{O}/acc6.tif', '--tile', '64', '--reproject'], 'resampled', id='change-reproject'),
    pytest.param('change', ['{I}/chg.pth', '{I}/rgb.tif', '{I}/u16small.tif', '{O}/acc7.tif', '--tile', '64', '--force'], 'forced', id='change-dtype-force'),
    pytest.param('change', ['{I}/chg.pth', '{I}/rgb.tif', '{I}/rgb.tif', '{O}/exists.tif', '--tile', '64', '--overwrite'], 'replaced', id='change-overwrite'),
    pytest.param('compress', ['{I}/nan_some.tif', '{O}/acc8.rsc', '--model', '{I}/codec.pth', '--tile', '64'], 'NaN as nodata', id='compress-nan'),
    pytest.param('compress', ['{I}/float.tif', '{O}/acc9.rsc', '--model', '{I}/codec.pth', '--rate', '1.5'], 'fractional rate', id='compress-float'),
    pytest.param('compress', ['{I}/one.tif', '{O}/acc10.rsc', '--model', '{I}/codec.pth'], 'one band', id='compress-1band'),
    pytest.param('decompress', ['{I}/good.rsc', '{O}/acc11.tif', '--model', '{I}/codec.pth'], 'decoded', id='decompress'),
    pytest.param('inpaint', ['{I}/gappy.tif', '{O}/acc12.tif', '--method', 'fillnodata'], 'filled', id='inpaint-fillnodata'),
    pytest.param('inpaint', ['{I}/gappy.tif', '{O}/acc13.tif', '--model', '{I}/ecea.pth', '--overlap', '0'], 'filled', id='inpaint-ecea'),
    pytest.param('inpaint', ['{I}/gappy_big.tif', '{O}/acc14.tif', '--model', '{I}/ecea.pth', '--force'], 'forced', id='inpaint-force'),
]

@pytest.mark.parametrize('tool,argv,what', ACCEPTED)
def test_accepted(env, tool, argv, what, capsys):
    main, prog = TOOLS[tool]
    before = _hashes(env/'inp')
    dst = Path(_fmt([argv[[i for i, a in enumerate(argv) if a.startswith('{O}')][0]]], env)[0])
    got = main(_fmt(argv, env) + ['--quiet'])
    out, err = capsys.readouterr()
    assert got == 0, err
    assert out.strip().startswith(str(dst)) and len(out.strip().splitlines()) == 1
    assert 'Traceback' not in err and (err == '' or err.startswith('warning:')) and ('--force' in argv) == err.startswith('warning:')
    assert _hashes(env/'inp') == before
    if dst.suffix == '.tif': read_meta(dst)
    assert not [p for p in dst.parent.iterdir() if p.name.startswith('.')]
    dst.unlink() if dst.name != 'exists.tif' else dst.write_bytes(b'old output')

def test_compress_nan_roundtrip(env):
    "The data-loss case of issue 16: a float raster with NaN/Inf compresses to a file that decodes, NaN where they were."
    from rsnb.compression.format import read_rsc
    from rsnb.geo import read_raster
    i, o = env/'inp', env/'out'
    assert compress([str(i/'nan_some.tif'), str(o/'n.rsc'), '--model', str(i/'codec.pth'), '-q']) == 0
    a, _ = read_raster(i/'nan_some.tif'); b, m = read_rsc(o/'n.rsc')
    bad = ~np.isfinite(a).all(0)
    assert np.isnan(b[:, bad]).all() and np.isfinite(b[:, ~bad]).all() and np.isnan(m.nodata)
    assert decompress([str(o/'n.rsc'), str(o/'n.tif'), '-q']) == 0
    (o/'n.rsc').unlink(); (o/'n.tif').unlink()

CONSOLE = [('rsnb-segment', ['{I}/seg.pth', '{I}/u16.tif', '{O}/c.tif'], 1, 'values far outside'),
           ('rsnb-compress', ['{I}/rgb.tif', '{O}/exists.rsc'], 2, 'pass --overwrite'),
           ('rsnb-change', ['{I}/chg.pth', '{I}/rgb.tif', '{I}/rgb.tif', '{O}/c.tif', '--threshold', '5'], 2, 'between 0 and 1'),
           ('rsnb-decompress', ['{I}/flip.rsc', '{O}/c.tif'], 1, 'flip.rsc: payload checksum'),
           ('rsnb-inpaint', ['{I}/nogap.tif', '{O}/c.tif', '--model', '{I}/ecea.pth'], 1, 'nogap.tif: no missing pixels'),
           ('rsnb-classify', ['{I}/cls.pth', '{I}/rgb.tif', '{O}/c.tif', '--tile', '32', '--overlap', '0', '--quiet'], 0, '')]

@pytest.mark.parametrize('prog,argv,code,text', CONSOLE, ids=[c[0] for c in CONSOLE])
def test_console(env, prog, argv, code, text):
    "Real console processes: exit status, one stderr line, the result alone on stdout, no warning on a clean run."
    exe = Path(sys.executable).parent/prog
    if not exe.exists(): pytest.skip(f'{prog} console script not installed')
    r = subprocess.run([str(exe), *_fmt(argv, env)], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == code, r.stderr
    if code:
        assert len(r.stderr.strip().splitlines()) == 1 and text in r.stderr and r.stdout == ''
    else:
        assert r.stderr == '' and r.stdout.strip() == str(env/'out'/'c.tif')   # no warnings, no progress on stdout
        (env/'out'/'c.tif').unlink()

PROGS = ['rsnb-classify', 'rsnb-segment', 'rsnb-change', 'rsnb-compress', 'rsnb-decompress', 'rsnb-inpaint', 'rsnb-repro', 'rsnb-weights']

@pytest.mark.parametrize('prog', PROGS)
def test_console_help(prog):
    "Every console script answers --help: exit 0, its usage on stdout, nothing on stderr (no warning, no traceback)."
    exe = Path(sys.executable).parent/prog
    if not exe.exists(): pytest.skip(f'{prog} console script not installed')
    r = subprocess.run([str(exe), '--help'], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert r.stdout.startswith(f'usage: {prog}'), r.stdout[:200]

def test_case_count():
    assert len(CASES) >= 100, len(CASES)

def test_inputs_unchanged(env):
    "Last: every input byte for byte as it was made, after all the cases above (each case checks sizes, times and small files)."
    assert FULL and _full_hashes(env/'inp') == FULL
