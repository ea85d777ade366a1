"""Registry downloads keyed by entry, and converter settings checked like command-line options (issue 23, items 2 and 6).

Downloads: all 40 PaddleSeg entries publish a file named `model.pdparams`. Two fake entries here do the same, served
by a local HTTP server on 127.0.0.1 (no network): each must yield its own weights, be stored under its own name,
recorded under its own name with its URL, and a file of one entry must never be converted for the other.
Settings: `rsnb-weights convert --config` keys of the real registry formats (unknown, wrong type, out of range,
missing for a usable card) are usage errors (exit 2) naming the key; a DPCD card with its statistics works in
`rsnb-change`."""
import contextlib, hashlib, http.server, io, json, pickle, shutil, threading
from pathlib import Path

import numpy as np
import pytest
import torch

from rsnb import weights as W
from rsnb.weights_cli import main

# --- a fake PaddleSeg-like family: two entries, one published file name -------------------------------------------

def convert_pd(path, config):
    "The fake family's converter: a `.pdparams` with `fc.weight`/`fc.bias` into a bare `Linear`."
    sd = W.read_pdparams(path)
    m = torch.nn.Linear(3, 2)
    m.load_state_dict({'weight': torch.from_numpy(sd['fc.weight']), 'bias': torch.from_numpy(sd['fc.bias'])})
    return m.eval(), {'task': 'segmentation', 'arch': 'linear', **config}

def pdparams(seed) -> bytes:
    rng = np.random.default_rng(seed)
    return pickle.dumps({'fc.weight': rng.standard_normal((2, 3)).astype(np.float32), 'fc.bias': rng.standard_normal(2).astype(np.float32),
                         'StructuredToParameterName@@': {'fc.weight': 'p0', 'fc.bias': 'p1'}}, protocol=4)

FILES = {'/a/model.pdparams': pdparams(1), '/b/model.pdparams': pdparams(2)}

class Server(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = FILES.get(self.path)
        if body is None: return self.send_error(404)
        self.send_response(200); self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)

@pytest.fixture
def fam(tmp_path, monkeypatch):
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Server)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f'http://127.0.0.1:{srv.server_port}'
    reg, cache, other = tmp_path/'registry', tmp_path/'cache', tmp_path/'mine'
    reg.mkdir(); other.mkdir()
    monkeypatch.setenv('RSNB_REGISTRY_DIRS', str(reg)); monkeypatch.setenv('RSNB_WEIGHTS', str(cache))
    monkeypatch.setenv('RSNB_WEIGHTS_DIRS', str(other))
    entries = [{'name': f'seg-{x}', 'task': 'segmentation', 'format': 'fake-pd', 'config': {}, 'url': f'{base}/{x}/model.pdparams',
                'filename': 'model.pdparams', 'size': None, 'sha256': None} for x in 'ab']
    (reg/'fake.json').write_text(json.dumps({'formats': {'fake-pd': {'converter': f'{__name__}:convert_pd', 'config_keys': []}},
                                             'entries': entries}))
    class F: pass
    f = F(); f.cache, f.other, f.base, f.tmp = cache, other, base, tmp_path
    yield f
    srv.shutdown(); srv.server_close()

def run(*argv):
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e): code = main([str(a) for a in argv])
    return code, o.getvalue(), e.getvalue()

def one_error(err) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('rsnb-weights: error: ') and 'Traceback' not in err, err
    return lines[0]

def sha(b:bytes) -> str: return hashlib.sha256(b).hexdigest()

def weights_of(body:bytes) -> torch.Tensor: return torch.from_numpy(pickle.loads(body)['fc.weight'])

# --- item 2: downloads keyed by entry ----------------------------------------------------------------------------

def test_two_entries_with_one_file_name_yield_their_own_weights(fam):
    for x in 'ab':
        code, out, err = run('get', f'seg-{x}', '--download', '-q')
        assert code == 0, err
        body = FILES[f'/{x}/model.pdparams']
        assert (fam.cache/'downloads'/f'seg-{x}'/'model.pdparams').read_bytes() == body   # stored under the entry's name
        assert torch.equal(torch.load(out.strip(), weights_only=True)['weight'], weights_of(body))
        card = json.loads((fam.cache/f'seg-{x}.json').read_text())
        assert card['source']['sha256'] == sha(body) and card['source']['registry_name'] == f'seg-{x}'
        assert 'recorded at first download' in card['source']['checksum']
        info = run('info', f'seg-{x}')[1]
        assert f'source sha256: {sha(body)}' in info and f'registry entry seg-{x}' in info
    rec = json.loads((fam.cache/'recorded.json').read_text())
    for x in 'ab':
        body = FILES[f'/{x}/model.pdparams']
        assert rec[f'seg-{x}'] == {**rec[f'seg-{x}'], 'name': f'seg-{x}', 'url': f'{fam.base}/{x}/model.pdparams',
                                   'filename': 'model.pdparams', 'sha256': sha(body), 'size': len(body)}
    assert not torch.equal(weights_of(FILES['/a/model.pdparams']), weights_of(FILES['/b/model.pdparams']))
    rows = {r.split()[0]: r for r in run('list')[1].splitlines()[3:5]}
    assert rows['seg-a'].endswith('converted + source') and rows['seg-b'].endswith('converted + source')

def test_a_file_of_another_entry_is_refused_naming_both(fam):
    assert run('get', 'seg-a', '--download', '-q')[0] == 0 and run('get', 'seg-b', '--download', '-q')[0] == 0
    before = (fam.cache/'seg-b.pth').read_bytes()
    shutil.copy(fam.cache/'downloads'/'seg-a'/'model.pdparams', fam.cache/'downloads'/'seg-b'/'model.pdparams')   # a mix-up
    code, out, err = run('get', 'seg-b', '--overwrite')
    line = one_error(err)
    assert code == 1 and 'seg-a' in line and 'seg-b' in line and 'downloads/seg-b/model.pdparams' in line
    code, out, err = run('get', 'seg-b', '--overwrite', '--src', fam.cache/'downloads'/'seg-a'/'model.pdparams')
    line = one_error(err)
    assert code == 1 and 'this is the file of registry entry seg-a' in line and 'not of seg-b' in line
    assert (fam.cache/'seg-b.pth').read_bytes() == before   # the converted model of seg-b is untouched

def test_a_copy_found_by_file_name_is_used_only_when_identified(fam):
    (fam.other/'model.pdparams').write_bytes(FILES['/a/model.pdparams'])   # a copy in $RSNB_WEIGHTS_DIRS: whose?
    code, out, err = run('get', 'seg-a')
    line = one_error(err)
    assert code == 1 and 'other registry entries (seg-b) publish a file named model.pdparams' in line and '--src FILE' in line
    assert not (fam.cache/'seg-a.pth').exists()
    code, out, err = run('get', 'seg-b', '--download', '-q')   # seg-b fetches its own; the copy is not taken for it
    assert code == 0, err
    assert torch.equal(torch.load(out.strip(), weights_only=True)['weight'], weights_of(FILES['/b/model.pdparams']))
    assert run('get', 'seg-a', '--src', fam.other/'model.pdparams')[0] == 0   # the user says whose it is: recorded
    code, out, err = run('get', 'seg-a', '--overwrite')   # now the record identifies the copy found by name
    assert code == 0 and json.loads((fam.cache/'seg-a.json').read_text())['source']['sha256'] == sha(FILES['/a/model.pdparams'])

def test_the_old_layout_and_records_keyed_by_file_name(fam):
    "What rsnb wrote before: downloads/model.pdparams and a record keyed by file name. B no longer converts A's file."
    (fam.cache/'downloads').mkdir(parents=True)
    body = FILES['/a/model.pdparams']
    (fam.cache/'downloads'/'model.pdparams').write_bytes(body)
    (fam.cache/'recorded.json').write_text(json.dumps({'model.pdparams': {'name': 'seg-a', 'sha256': sha(body), 'size': len(body),
                                                                          'recorded': '2024-01-01 00:00 UTC', 'url': f'{fam.base}/a/model.pdparams'}}))
    code, out, err = run('get', 'seg-b')
    line = one_error(err)
    assert code == 1 and 'this is the file of registry entry seg-a' in line and 'not of seg-b' in line and 'get seg-b --download' in line
    assert not (fam.cache/'seg-b.pth').exists()
    code, out, err = run('get', 'seg-a')
    assert code == 0, err
    assert 'recorded at first download (2024-01-01 00:00 UTC) matched' in json.loads((fam.cache/'seg-a.json').read_text())['source']['checksum']

def test_a_changed_url_voids_the_record(fam):
    assert run('get', 'seg-a', '--download', '-q')[0] == 0
    rec = json.loads((fam.cache/'recorded.json').read_text())
    rec['seg-a']['url'] = 'https://elsewhere.example/model.pdparams'
    (fam.cache/'recorded.json').write_text(json.dumps(rec))
    code, out, err = run('get', 'seg-a', '--overwrite')
    assert code == 1 and 'recorded for https://elsewhere.example/model.pdparams' in one_error(err)

def test_failed_download_leaves_nothing(fam):
    FILES_BAK = dict(FILES); FILES.pop('/b/model.pdparams')
    try:
        code, out, err = run('get', 'seg-b', '--download', '-q')
        assert code == 1 and 'HTTP 404' in one_error(err)
    finally: FILES.update(FILES_BAK)
    assert not (fam.cache/'downloads'/'seg-b').exists() and not (fam.cache/'recorded.json').exists()

# --- item 6: converter settings checked like command-line options ------------------------------------------------

@pytest.fixture
def real_registry(tmp_path, monkeypatch):
    monkeypatch.delenv('RSNB_REGISTRY_DIRS', raising=False); monkeypatch.setenv('RSNB_WEIGHTS', str(tmp_path/'cache'))
    torch.save({'w': torch.zeros(1)}, tmp_path/'any.pth')
    return tmp_path

STATS = '{"mean": [100, 100, 100], "std": [50, 50, 50]}'
BAD = [  # (--from, --config, text the one line must contain)
    ('dpcd', ['threshold=5', f'stats={STATS}'], '--config threshold=5: expected a number strictly between 0 and 1'),
    ('dpcd', ['threshold=half', f'stats={STATS}'], '--config threshold=half: expected a number'),
    ('dpcd', ['stats={"mean": [1, 2], "std": [1]}'], '--config stats='),
    ('dpcd', ['stats={"mean": [1], "std": [0]}'], 'one std > 0 per band'),
    ('dpcd', ['stats=[1, 2, 3]'], '--config stats=[1, 2, 3]: expected band statistics'),
    ('dpcd', [], "--config stats: required for format 'dpcd'"),
    ('dpcd', ['width=abc', f'stats={STATS}'], '--config width=abc: expected an integer'),
    ('compressai', ['arch=cheng2020-anchor', 'quality=7'], '--config quality=7: expected an integer in 1..6 for cheng2020-anchor'),
    ('compressai', ['arch=bmshj2018-hyperprior', 'quality=0'], '--config quality=0: expected an integer in 1..8'),
    ('compressai', ['arch=bmshj2018-hyperprior', 'quality=2.5'], '--config quality=2.5: expected an integer'),
    ('compressai', ['arch=nope', 'quality=1'], '--config arch=nope: unknown CompressAI architecture'),
    ('compressai', ['arch=bmshj2018-hyperprior', 'N=0'], '--config N=0: expected an integer ≥ 1'),   # a missing quality is read from the file
    ('paddleseg', ['arch=fcn', 'backbone=hrnet_w18', 'output_stride=12'], '--config output_stride=12: expected one of 8, 16, 32'),
    ('paddleseg', ['arch=fcn', 'n_classes=0'], '--config n_classes=0: expected an integer ≥ 1'),   # arch=fcn alone: the backbone is read from the file
    ('paddleseg', ['arch=fcn', 'backbone=vgg16'], '--config backbone=vgg16: expected one of'),
    ('ecea', ['scale=-1'], '--config scale=-1: expected a number > 0'),
    ('ecea', ['heads=[1, 0, 4, 8]'], '--config heads=[1, 0, 4, 8]: expected a list of integers ≥ 1'),
    ('ecea', ['prefilled=yes'], '--config prefilled=yes: expected true or false'),
    ('keras-h5-bahri', ['n_classes=1'], '--config n_classes=1: expected an integer ≥ 2'),
    ('keras-h5-bahri', ['n_classes=3', 'classes=["a", "b"]'], '--config classes: 2 names, but n_classes=3'),
]

@pytest.mark.parametrize('fmt,config,text', BAD, ids=[f'{b[0]}-{i}' for i, b in enumerate(BAD)])
def test_bad_settings_are_usage_errors(real_registry, fmt, config, text):
    d = real_registry
    code, out, err = run('convert', d/'any.pth', d/'out', '--from', fmt, *(['--config', *config] if config else []))
    line = one_error(err)
    assert code == 2 and text in line and f'--from {fmt}' in line, line
    assert not (d/'out.pth').exists() and not (d/'out.json').exists() and out == ''

def test_a_dpcd_card_with_stats_works_in_rsnb_change(real_registry):
    "The setting that fixes the refusal above gives a card `rsnb-change` uses (the KeyError of issue 23 is gone)."
    from rsnb.change.convert import seeded_state_dict
    from rsnb.change.cli import main as change
    from rsnb.geo import RasterMeta, write_raster
    from affine import Affine
    from rasterio.crs import CRS
    d = real_registry
    man = json.loads((Path(__file__).parent/'fixtures'/'parity'/'dpcd'/'manifest_small.json').read_text())
    torch.save({'net': seeded_state_dict(man), 'optimizer': {}}, d/'checkpoint_epoch1.pth')
    code, out, err = run('convert', d/'checkpoint_epoch1.pth', d/'mydpcd', '--from', 'dpcd', '--config', f'stats={STATS}', 'threshold=0.4')
    assert code == 0, err
    card = json.loads((d/'mydpcd.json').read_text())
    assert card['stats']['std'] == [50, 50, 50] and card['threshold'] == 0.4 and card['source']['sha256'] == W.sha256sum(d/'checkpoint_epoch1.pth')
    rng = np.random.default_rng(0)
    meta = RasterMeta(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5000000), None, 'uint8', 3, 64, 64)
    for t in ('t1', 't2'): write_raster(d/f'{t}.tif', rng.integers(0, 255, (3, 64, 64), dtype=np.uint8), meta)
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        code = change([str(d/'mydpcd.pth'), str(d/'t1.tif'), str(d/'t2.tif'), str(d/'map.tif'), '--tile', '64', '--quiet'])
    assert code == 0, e.getvalue()
    assert (d/'map.tif').is_file()

def test_every_registry_entry_passes_its_format_settings(monkeypatch):
    "The released entries' configs are valid cards (what `get` converts with), and `config_keys` lists the settings."
    monkeypatch.delenv('RSNB_REGISTRY_DIRS', raising=False)
    fmts, n = W.registry_formats(), 0
    for f, spec in fmts.items():
        settings = W._format_object(f, 'settings')
        assert settings is not None and list(settings) == spec['config_keys'], f
    for name, e in W.registry().items():
        if e.get('convertible') is False: continue
        assert W.check_settings(e['format'], e['config'], require=True) is not None, name
        n += 1
    assert n >= 70, n

def test_paddleseg_backbones_are_the_ones_rsnb_builds():
    from rsnb.segmentation.paddle import PADDLESEG_SETTINGS
    from rsnb.segmentation.models import RESNETS
    assert PADDLESEG_SETTINGS['backbone'].choices == [*RESNETS, 'hrnet_w18', 'hrnet_w48']
