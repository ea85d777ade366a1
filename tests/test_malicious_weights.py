"""Every hostile file of `tests/malicious.py` fed to every rsnb entry point that reads a model or a checkpoint
(issue 23, item 1), and files that are not models given as `--model` (item 7).

Entry points: the python API (`rsnb.weights` readers, `load_model`, `resolve_model`, `read_torch_checkpoint`, each
converter, `convert_checkpoint`, `get_weights`) and the commands (`rsnb-weights info`, `convert --from` each format,
`get NAME --src`; each task command with `--model FILE`, the file bare and with a model card beside it so that the
weights are really loaded). For each call: the payload never runs (its marker file never appears), the error is one
line naming the file (a payload is named as refused, the 4 TiB tensor as too big for its bytes), the exit status is 1
(the contents are bad), nothing is written. The commands run in-process through `main(argv)` for the whole cross
product; a sample runs as real console processes; the whole cross product as console processes is `slow`
(`RSNB_SLOW=1`)."""
import concurrent.futures, contextlib, io, json, os, shutil, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS

from malicious import corpus
from rsnb.core import RsnbError
from rsnb import weights as W

torch.set_num_threads(1)
BIN = Path(sys.executable).parent
PICKLES = lambda name: name != 'keras.h5' and name != 'params.yaml'   # every corpus file that is a pickle (torch files are)
CONFIGS = {'dpcd': {'stats': {'mean': [100, 100, 100], 'std': [50, 50, 50]}}, 'ecea': {},
           'paddleseg': {'arch': 'fcn', 'backbone': 'hrnet_w18'}, 'keras-h5-bahri': {},
           'compressai': {'arch': 'bmshj2018-hyperprior', 'quality': 3}}
READS = {'dpcd': 'torch', 'ecea': 'torch', 'compressai': 'torch', 'paddleseg': 'pdparams', 'keras-h5-bahri': 'h5'}
TASK = {'dpcd': 'change', 'ecea': 'inpainting', 'paddleseg': 'segmentation', 'keras-h5-bahri': 'classification', 'compressai': 'compression'}

# --- the world: the corpus, tiny real models, small real rasters, a registry with one entry per format ---------------

def _rasters(d:Path):
    "A 64×64 RGB uint8 window of a real Landsat-8 scene (and a 64×64 Landsat-7 SLC-off window with gaps); synthetic without RSNB_DATA."
    from rsnb.core import data_root
    from rsnb.geo import RasterMeta, write_raster
    import rasterio
    from rasterio.windows import Window
    l8, l7 = data_root()/'scenes'/'LC08_L1TP_224077_20200518_B4B3B2.tif', data_root()/'inpainting'/'landsat7_slcoff'/'images'/'LS7_ETM_095_082_20100201_r0_c2.tif'
    if l8.is_file() and l7.is_file():
        with rasterio.open(l8) as s:
            w = Window(900, 700, 64, 64); a = s.read(window=w).astype(np.float64); tr, crs = s.window_transform(w), s.crs
        lo, hi = np.percentile(a, [1, 99]); rgb = np.clip((a - lo)/(hi - lo)*255, 0, 255).astype(np.uint8)
        write_raster(d/'rgb.tif', rgb, RasterMeta(crs, tr, None, 'uint8', 3, 64, 64))
        with rasterio.open(l7) as s:
            w = Window(0, 0, 64, 64); g = s.read(window=w); write_raster(d/'gappy.tif', g, RasterMeta(s.crs, s.window_transform(w), s.nodata, 'int16', 3, 64, 64))
        assert (g == -999).any() and (g != -999).any()
        return 'real'
    rng = np.random.default_rng(0)
    m = lambda dt, nd=None: RasterMeta(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5000000), nd, dt, 3, 64, 64)
    write_raster(d/'rgb.tif', rng.integers(0, 255, (3, 64, 64), dtype=np.uint8), m('uint8'))
    g = rng.normal(2500, 300, (3, 64, 64)).astype(np.int16); g[:, ::7] = -999
    write_raster(d/'gappy.tif', g, m('int16', -999))
    return 'synthetic'

def _models(d:Path):
    "Tiny real models for each task command (their cards are what the hostile copies carry)."
    from rsnb.weights import save_model
    from rsnb.classification.model import SceneClassifier
    from rsnb.segmentation.models import seg_model
    from rsnb.change.train import change_model
    from rsnb.change.cli import save_change_model
    from rsnb.data import BandStats
    from rsnb.compression.models import MeanScaleHyperprior
    from rsnb.inpainting.model import ECEAGenerator
    from rsnb.inpainting.slcoff import Scaler
    from rsnb.inpainting.train import save_ecea
    from rsnb.geo import read_raster
    torch.manual_seed(0)
    st = dict(mean=[120.]*3, std=[60.]*3)
    save_model(SceneClassifier(3, arch='resnet18').eval(), d/'cls', dict(task='scene_classification', arch='resnet18', n_classes=3,
               classes=list('abc'), in_chans=3, bands=['r', 'g', 'b'], input_size=None, normalization=st))
    save_model(seg_model('fcn', 'resnet18', 3, 3, output_stride=16).eval(), d/'seg', dict(task='segmentation', arch='fcn', backbone='resnet18',
               impl='paddleseg', n_classes=3, in_chans=3, output_stride=16, palette=[[1, 2, 3]]*3, norm=dict(scale=255., mean=.5, std=.5)))
    a, _ = read_raster(d/'rgb.tif')
    save_change_model(change_model('dpcd', 3, 8), d/'chg', 'dpcd', BandStats.compute([a.astype(np.float32)], names=['r', 'g', 'b']), width=8)
    save_model(MeanScaleHyperprior(8, 8).eval().update(), d/'codec', dict(task='compression', model_id='hostile-tiny', arch='MeanScaleHyperprior', kwargs=dict(N=8, M=8)))
    G = ECEAGenerator(3, img_size=32, dims=(8, 16), depths=(1, 1), heads=(1, 1), ps_hidden=8, ps_res=1, mid_res=1)
    save_ecea(G, d/'ecea', Scaler('reflectance', [0.]*3, [0.6]*3), band_names=('B3', 'B4', 'B5'))

# (command, main, the card its --model needs, argv with {M} for the model)
TOOLS = {'classify': ('rsnb-classify', 'rsnb.classification.cli:main', 'cls', ['{M}', '{D}/rgb.tif', '{O}/out.tif', '--tile', '32', '--overlap', '0']),
         'segment': ('rsnb-segment', 'rsnb.segmentation.cli:main', 'seg', ['{M}', '{D}/rgb.tif', '{O}/out.tif', '--tile', '64', '--overlap', '0']),
         'change': ('rsnb-change', 'rsnb.change.cli:main', 'chg', ['{M}', '{D}/rgb.tif', '{D}/rgb.tif', '{O}/out.tif', '--tile', '64']),
         'compress': ('rsnb-compress', 'rsnb.compression.cli:compress_main', 'codec', ['{D}/rgb.tif', '{O}/out.rsc', '--model', '{M}']),
         'decompress': ('rsnb-decompress', 'rsnb.compression.cli:decompress_main', 'codec', ['{D}/good.rsc', '{O}/out.tif', '--model', '{M}']),
         'inpaint': ('rsnb-inpaint', 'rsnb.inpainting.cli:main', 'ecea', ['{D}/gappy.tif', '{O}/out.tif', '--model', '{M}'])}

@pytest.fixture(scope='module')
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp('hostile')
    w = type('World', (), {})(); w.d, w.marker, w.out = d, d/'MARKER', d/'out'
    w.out.mkdir()
    w.files = corpus(d/'corpus', w.marker)
    w.data = _rasters(d)
    _models(d)
    from rsnb.compression.cli import compress_main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert compress_main([str(d/'rgb.tif'), str(d/'good.rsc'), '--model', str(d/'codec.pth'), '-q']) == 0
    # each hostile file as the weights of a model: a copy NAME.pth with the tool's card beside it (SHA-256 = the file's)
    w.carded = {}
    for tool, (_, _, card, _) in TOOLS.items():
        c = json.loads((d/f'{card}.json').read_text())
        for name, p in w.files.items():
            q = d/'carded'/tool/(p.name.replace('.', '_') + '.pth'); q.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, q); (q.with_suffix('.json')).write_text(json.dumps({**c, 'sha256': W.sha256sum(p)}))
            w.carded[tool, name] = q
    # a registry with one entry per real format, no checksum published (so `get --src` reaches the converter)
    fmts = {f: {k: v for k, v in spec.items() if k != 'registry_file'} for f, spec in W.registry_formats().items()}
    entries = [{'name': f'h-{f}', 'task': TASK[f], 'format': f, 'config': CONFIGS[f], 'url': f'https://example.org/{f}/file',
                'filename': f'{f}-file', 'size': None, 'sha256': None} for f in fmts]
    (d/'registry').mkdir(); (d/'registry'/'hostile.json').write_text(json.dumps({'formats': fmts, 'entries': entries}))
    w.env = {'RSNB_REGISTRY_DIRS': str(d/'registry'), 'RSNB_WEIGHTS': str(d/'cache'), 'RSNB_WEIGHTS_DIRS': ''}
    return w

@contextlib.contextmanager
def env(vals):
    old = {k: os.environ.get(k) for k in vals}
    os.environ.update(vals)
    try: yield
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v

def _main(spec):
    import importlib
    mod, fn = spec.split(':'); return getattr(importlib.import_module(mod), fn)

# --- the plan: every (file, command) pair, shared by the in-process and the console tests -------------------------

def plan(w) -> list[dict]:
    "One dict per command call: prog, main, argv, the file named in the error, which reader it goes through."
    out = []
    for name, p in w.files.items():
        out.append(dict(prog='rsnb-weights', main='rsnb.weights_cli:main', argv=['info', str(p)], file=p, name=name, reader='info'))
        for f, cfg in CONFIGS.items():
            conf = ['--config', *[f'{k}={json.dumps(v)}' for k, v in cfg.items()]] if cfg else []
            out.append(dict(prog='rsnb-weights', main='rsnb.weights_cli:main', argv=['convert', str(p), str(w.out/'conv'), '--from', f, *conf],
                            file=p, name=name, reader=READS[f]))
            out.append(dict(prog='rsnb-weights', main='rsnb.weights_cli:main', argv=['get', f'h-{f}', '--src', str(p)], file=p, name=name, reader=READS[f]))
        for tool, (prog, main, _, argv) in TOOLS.items():
            for m, reader in ((p, 'bare'), (w.carded[tool, name], 'torch')):
                a = [x.replace('{M}', str(m)).replace('{D}', str(w.d)).replace('{O}', str(w.out)) for x in argv]
                out.append(dict(prog=prog, main=main, argv=a + ['--quiet'], file=m, name=name, reader=reader))
    return out

def check(c:dict, code:int, out:str, err:str, w) -> str:
    "Assert what every call must give; returns the error line ('' for the one accepted case)."
    what = f"{c['prog']} {' '.join(c['argv'])}"
    assert not w.marker.exists(), f'PAYLOAD RAN: {what}'
    assert 'Traceback' not in err, f'{what}: {err}'
    if c['reader'] == 'info' and c['name'] == 'keras.h5':   # HDF5 data is listed, never deserialised: exit 0
        assert code == 0 and 'HDF5 (Keras)' in out and err == '', f'{what}: {code} {out} {err}'
        return ''
    lines = err.strip().splitlines()
    assert code == 1 and out == '' and len(lines) == 1 and lines[0].startswith(f"{c['prog']}: error: "), f'{what}: {code} {err!r}'
    line = lines[0]
    assert c['file'].name in line, f'{what}: the error does not name the file: {line}'
    payload = PICKLES(c['name']) and c['name'] != 'absurd_size.pth'
    if c['reader'] in ('info', 'torch') and payload or c['reader'] == 'pdparams' and c['file'].suffix in ('.pkl', '.pdparams'):
        assert 'refused: loading it would call' in line, f'{what}: {line}'
    if c['name'] == 'absurd_size.pth' and c['reader'] in ('info', 'torch'):
        assert 'declares 1,099,511,627,776 float values (4 TiB) but the file holds 4 bytes' in line, f'{what}: {line}'
    if c['reader'] == 'bare': assert 'not a model' in line, f'{what}: {line}'
    return line

def nothing_written(w):
    assert sorted(p.name for p in w.out.iterdir()) == [], list(w.out.iterdir())
    cache = w.d/'cache'
    assert not cache.exists() or not [p for p in cache.rglob('*') if p.is_file()], list(cache.rglob('*'))

# --- the python API ---------------------------------------------------------------------------------------------

def test_python_api_every_file_every_reader(world):
    from rsnb.convert import read_torch_checkpoint
    from rsnb.change.convert import convert_dpcd
    from rsnb.inpainting.convert import convert_ecea
    from rsnb.segmentation.paddle import convert_paddleseg, read_pdparams
    from rsnb.classification.keras import convert_bahri_h5, read_keras_h5
    from rsnb.compression.zoo import convert_compressai
    w = world
    readers = {  # name -> (fn(path), reader kind)
        'scan_torch': (W.scan_torch, 'torch'), 'load_torch': (W.load_torch, 'torch'), 'read_torch_checkpoint': (read_torch_checkpoint, 'torch'),
        'read_pdparams': (read_pdparams, 'pdparams'), 'checkpoint_shapes': (W.checkpoint_shapes, 'info'), 'read_keras_h5': (read_keras_h5, 'h5'),
        'convert_dpcd': (lambda p: convert_dpcd(p, CONFIGS['dpcd']), 'torch'), 'convert_ecea': (convert_ecea, 'torch'),
        'convert_compressai': (lambda p: convert_compressai(p, CONFIGS['compressai']), 'torch'),
        'convert_paddleseg': (lambda p: convert_paddleseg(p, CONFIGS['paddleseg']), 'pdparams'), 'convert_bahri_h5': (convert_bahri_h5, 'h5'),
        'resolve_model': (W.resolve_model, 'bare'),
        **{f'convert_checkpoint/{f}': (lambda p, f=f: W.convert_checkpoint(p, w.out/'conv', f, CONFIGS[f]), READS[f]) for f in CONFIGS},
        **{f'get_weights/{f}': (lambda p, f=f: W.get_weights(f'h-{f}', src=p), READS[f]) for f in CONFIGS}}
    n = refused = 0
    with env(w.env):
        for name, p in w.files.items():
            for rname, (fn, kind) in readers.items():
                c = dict(prog='api', argv=[rname, str(p)], file=p, name=name, reader=kind)
                try: fn(p); code, err = 0, ''
                except RsnbError as e: code, err = 1, f'api: error: {e}'
                n += 1
                if code == 0:   # accepted only as data: the Keras file's tensors (never its code)
                    assert name == 'keras.h5' and rname in ('checkpoint_shapes', 'read_keras_h5'), f'{rname} accepted {name}'
                    assert not w.marker.exists()
                    continue
                refused += 'refused' in check(c, 1, '', err + '\n', w)
            for tool in TOOLS:   # a hostile file as the weights of an rsnb model, its card beside it
                q = w.carded[tool, name]
                with pytest.raises(RsnbError) as e: W.load_model(q)
                check(dict(prog='api', argv=['load_model', str(q)], file=q, name=name, reader='torch'), 1, '', f'api: error: {e.value}\n', w)
                n += 1; refused += 'refused' in str(e.value)
    nothing_written(w)
    assert n == len(w.files) * (len(readers) + len(TOOLS)) and n >= 21 * 28, n
    assert refused >= 18 * 12, refused   # the payloads are named as refused, not just unreadable

# --- the commands, in-process (the whole cross product) ---------------------------------------------------------

def test_commands_every_file_in_process(world):
    w, t, counts = world, time.time(), {}
    with env(w.env):
        for c in plan(w):
            o, e = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e): code = _main(c['main'])(c['argv'])
            check(c, code, o.getvalue(), e.getvalue(), w)
            nothing_written(w)
            counts[c['prog']] = counts.get(c['prog'], 0) + 1
    assert counts == {'rsnb-weights': 11 * len(w.files), **{TOOLS[k][0]: 2 * len(w.files) for k in TOOLS}}, counts
    print(f'{sum(counts.values())} calls ({len(w.files)} files) in {time.time() - t:.0f} s')

def test_the_harness_reaches_the_loader(world):
    "Control: with the real tiny models every task command succeeds on these rasters, so the refusals above come from the weights."
    w = world
    for tool, (prog, main, card, argv) in TOOLS.items():
        a = [x.replace('{M}', str(w.d/f'{card}.pth')).replace('{D}', str(w.d)).replace('{O}', str(w.out)) for x in argv]
        o, e = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e): code = _main(main)(a + ['--quiet'])
        assert code == 0, f'{prog}: {e.getvalue()}'
        for p in list(w.out.iterdir()): p.unlink()

# --- --model FILE that is not a model (item 7) ------------------------------------------------------------------

def test_model_that_is_not_a_model(world, tmp_path):
    w = world
    (tmp_path/'notes.txt').write_text('hello')
    shutil.copy(w.d/'rgb.tif', tmp_path/'picture.png')
    (tmp_path/'random.pth').write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path/'folder').mkdir()
    cases = [(tmp_path/'notes.txt', 1, 'notes.txt: not a model'), (tmp_path/'picture.png', 1, 'picture.png: not a model'),
             (tmp_path/'random.pth', 1, 'random.pth: not a model'), (tmp_path/'folder', 2, 'folder: a folder, not a model'),
             (tmp_path/'absent.pth', 2, 'absent.pth: not found'), ('no_such_model_name', 2, 'no_such_model_name: no such model')]
    for tool, (prog, main, _, argv) in TOOLS.items():
        for m, code, text in cases:
            a = [x.replace('{M}', str(m)).replace('{D}', str(w.d)).replace('{O}', str(w.out)) for x in argv]
            o, e = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e): got = _main(main)(a + ['--quiet'])
            lines = e.getvalue().strip().splitlines()
            assert (got, len(lines)) == (code, 1) and lines[0].startswith(f'{prog}: error: ') and text in lines[0], f'{prog} {m}: {got} {e.getvalue()}'
            assert 'not found' not in lines[0] or code == 2, lines[0]
            nothing_written(w)
    o, e = io.StringIO(), io.StringIO()
    from rsnb.weights_cli import main as weights
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        assert weights(['info', 'no_such_model_name']) == 2 and weights(['info', str(tmp_path/'absent.pth')]) == 2

# --- real console processes -------------------------------------------------------------------------------------

def _console(c, w) -> tuple:
    exe = BIN/c['prog']
    r = subprocess.run([str(exe), *c['argv']], capture_output=True, text=True, timeout=600,
                       env={**os.environ, **w.env, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'})
    return c, r.returncode, r.stdout, r.stderr

def _run_console(calls, w, workers):
    if not (BIN/'rsnb-weights').exists(): pytest.skip('console scripts not installed')
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(lambda c: _console(c, w), calls))
    for c, code, out, err in results: check(c, code, out, err, w)
    nothing_written(w)
    return len(results)

SAMPLE = [('rsnb-weights', 'info', 'pdparams_p2_numpy_exec'), ('rsnb-weights', 'info', 'absurd_size.pth'),
          ('rsnb-weights', 'convert', 'torch_zip_net.pth'), ('rsnb-weights', 'get', 'torch_legacy.pth.tar'),
          ('rsnb-classify', 'torch', 'torch_legacy_checkpoint.pth'), ('rsnb-compress', 'torch', 'pickle_p4_numpy_exec.pkl')]

def test_console_sample(world):
    """Real console processes on a sample (all at once, so it stays quick; a task command's start costs ~10 s of CPU): the
    one-line error, exit status and untouched outputs hold outside `main()` too. Every command × every file: the slow test."""
    calls = []
    for prog, kind, name in SAMPLE:
        for c in plan(world):
            if c['prog'] == prog and c['name'] == name and (c['argv'][0] == kind if prog == 'rsnb-weights' else c['reader'] == kind):
                calls.append(c); break
    assert len(calls) == len(SAMPLE)
    assert _run_console(calls, world, workers=len(calls)) == len(SAMPLE)

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('RSNB_SLOW'), reason='slow (every file × every command as a console process): set RSNB_SLOW=1')
def test_console_every_file_every_command(world):
    assert _run_console(plan(world), world, workers=4) == 23 * len(world.files)
