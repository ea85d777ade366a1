"""`rsnb-weights` and the registry of released checkpoints (`rsnb.weights`), on a tiny fake family: a converter defined
here (a `Linear` layer published as `fc.*` tensors), a registry file in a temporary folder (`$RSNB_REGISTRY_DIRS`) and a
temporary weights cache (`$RSNB_WEIGHTS`). Downloads go to a local HTTP server on 127.0.0.1 that behaves like Google
Drive; nothing touches the network."""
import contextlib, http.server, io, json, socket, subprocess, sys, threading, time, urllib.parse
from pathlib import Path

import pytest
import torch

from rsnb.core import DataMissing, ModelError
from rsnb.convert import read_torch_checkpoint, convert_state_dict
from rsnb import weights as W
from rsnb.weights_cli import main

# --- the fake family -------------------------------------------------------------------------------------------

def convert_linear(path, config):
    "The family's converter: the original saves `fc.weight`/`fc.bias`; rsnb's model is a bare `Linear`."
    m = torch.nn.Linear(config.get('n_in', 3), config.get('n_out', 2))
    m.load_state_dict(convert_state_dict(read_torch_checkpoint(path), m, [(r'fc\.(weight|bias)', r'\1')], file=path))
    return m.eval(), {'task': 'classification', 'arch': 'linear', **config, 'source': {'layout': 'fc.*', 'file': 'overridden'}}

def publish(path, n_in=3, n_out=2, seed=0, extra=False, missing=False) -> dict:
    "Write an 'original' checkpoint; return its tensors."
    g = torch.Generator().manual_seed(seed)
    sd = {'fc.weight': torch.randn(n_out, n_in, generator=g), 'fc.bias': torch.randn(n_out, generator=g)}
    if extra: sd['fc.scale'] = torch.ones(n_out)
    if missing: del sd['fc.bias']
    torch.save({'state_dict': sd}, path)
    return sd

def entry(name='lin-a', **kw):
    return {'name': name, 'task': 'classification', 'format': 'fake-linear', 'config': {'n_in': 3, 'n_out': 2},
            'url': f'https://example.org/{name}.pth', 'filename': f'{name}-v1.pth', 'size': None, 'sha256': None,
            'dataset': 'fake scenes', 'bands': ['R', 'G', 'B'], 'normalisation': 'x/255', 'classes': ['a', 'b'],
            'paper_score': {'metric': 'OA', 'value': 0.9, 'source': 'Table 1'}, 'licence': 'MIT', **kw}

@pytest.fixture
def fam(tmp_path, monkeypatch):
    "A registry folder with one family file, an empty weights cache, and a helper to rewrite the entries."
    reg, cache = tmp_path/'registry', tmp_path/'cache'
    reg.mkdir()
    monkeypatch.setenv('RSNB_REGISTRY_DIRS', str(reg)); monkeypatch.setenv('RSNB_WEIGHTS', str(cache))
    monkeypatch.delenv('RSNB_WEIGHTS_DIRS', raising=False)
    fmt = {'fake-linear': {'converter': f'{__name__}:convert_linear', 'description': 'a Linear layer saved as fc.*',
                           'config_keys': ['n_in', 'n_out'], 'signature': [r'fc\.weight']}}
    def write(*entries):
        (reg/'fake.json').write_text(json.dumps({'formats': fmt, 'entries': list(entries)}))
    write(entry('lin-a'), entry('lin-b', config={'n_in': 4, 'n_out': 2}))
    class F: pass
    f = F(); f.reg, f.cache, f.tmp, f.write = reg, cache, tmp_path, write
    return f

def run(*argv):
    "`rsnb-weights argv` in-process: (exit status, stdout, stderr)."
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e): code = main([str(a) for a in argv])
    return code, o.getvalue(), e.getvalue()

def error_line(err) -> str:
    "The one error line on stderr (progress lines above it allowed, no traceback)."
    lines = [l for l in err.splitlines() if l.strip()]
    assert 'Traceback' not in err, err
    errs = [l for l in lines if l.startswith('rsnb-weights: error: ')]
    assert len(errs) == 1 and lines[-1] == errs[0], err
    return errs[0]

# --- list -------------------------------------------------------------------------------------------------------

def test_list_table_json_and_task_filter(fam):
    code, out, err = run('list')
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ['name', 'size', 'score', 'dataset', 'local']
    assert rows[2] == 'fake: classification, --from fake-linear (2 entries)'   # the family's group line: task and format
    assert [r.split()[0] for r in rows[3:5]] == ['lin-a', 'lin-b'] and rows[3].rstrip().endswith('-')
    assert 'OA 0.9' in rows[3] and 'fake scenes' in rows[3]
    assert '2 registry entries' in out and 'fake-linear' in out.split('Formats for')[-1]
    js = json.loads(run('list', '--json')[1])
    reg = [e for e in js if not e['shipped']]
    assert [e['name'] for e in reg] == ['lin-a', 'lin-b'] and reg[0]['local'] == {'converted': None, 'source': None}
    code, out, err = run('list', '--task', 'segmentation')
    assert code == 0 and 'lin-a' not in out and 'segmentation_lite0_fpn_dubai' in out   # the shipped segmenter only
    assert run('list', '--task', 'nonsense')[0] == 2

def test_list_shows_local_files(fam):
    publish(fam.tmp/'x.pth')
    (fam.cache/'downloads').mkdir(parents=True)
    publish(fam.cache/'downloads'/'lin-b-v1.pth')
    assert run('get', 'lin-a', '--src', fam.tmp/'x.pth')[0] == 0
    rows = {r.split()[0]: r for r in run('list')[1].splitlines()[3:5]}
    assert rows['lin-a'].endswith('converted') and rows['lin-b'].endswith('source')
    assert rows['lin-b'].split()[1:3] == [f"{(fam.cache/'downloads'/'lin-b-v1.pth').stat().st_size/1e6:.1f}", 'MB']  # no published size: the local file's

# --- get --------------------------------------------------------------------------------------------------------

def test_get_src_converts_loads_weights_only_and_records_checksum(fam):
    sd = publish(fam.tmp/'lin-a-v1.pth')
    code, out, err = run('get', 'lin-a', '--src', fam.tmp/'lin-a-v1.pth')
    assert code == 0, err
    pth = Path(out.strip())
    assert pth == fam.cache/'lin-a.pth' and pth.with_suffix('.json').is_file()
    w = torch.load(pth, weights_only=True)
    assert torch.equal(w['weight'], sd['fc.weight']) and torch.equal(w['bias'], sd['fc.bias'])
    card = json.loads(pth.with_suffix('.json').read_text())
    src = card['source']
    assert src['sha256'] == W.sha256sum(fam.tmp/'lin-a-v1.pth') and src['size'] == (fam.tmp/'lin-a-v1.pth').stat().st_size
    assert src['registry_name'] == 'lin-a' and src['format'] == 'fake-linear' and src['config'] == {'n_in': 3, 'n_out': 2}
    assert src['layout'] == 'fc.*' and src['file'] == 'lin-a-v1.pth'  # the converter's notes kept, the provenance wins
    assert 'recorded at first download' in src['checksum']
    assert (card['task'], card['arch'], card['dataset'], card['classes'], card['licence']) == ('classification', 'linear', 'fake scenes', ['a', 'b'], 'MIT')
    assert card['paper_score']['value'] == 0.9 and card['registry']['url'] == 'https://example.org/lin-a.pth'
    rec = json.loads((fam.cache/'recorded.json').read_text())
    assert rec['lin-a']['sha256'] == src['sha256'] and rec['lin-a']['url'] == 'https://example.org/lin-a.pth' and rec['lin-a']['filename'] == 'lin-a-v1.pth'
    # a second copy is checked against the record: another file with the published name is refused
    publish(fam.tmp/'other.pth', seed=1)
    code, out, err = run('get', 'lin-a', '--src', fam.tmp/'other.pth', '--overwrite')
    assert code == 1 and 'other.pth' in error_line(err) and 'recorded (first download' in err
    # already converted: nothing to do, same path
    code, out, err = run('get', 'lin-a')
    assert code == 0 and out.strip() == str(pth) and 'already converted' in err

def test_get_finds_the_published_file_in_downloads(fam):
    (fam.cache/'downloads').mkdir(parents=True)
    publish(fam.cache/'downloads'/'lin-b-v1.pth', n_in=4)
    code, out, err = run('get', 'lin-b')
    assert code == 0, err and Path(out.strip()).name == 'lin-b.pth'

def test_get_without_the_file_says_how_to_get_it(fam):
    code, out, err = run('get', 'lin-a')
    line = error_line(err)
    assert code == 1 and 'lin-a-v1.pth: not found' in line and 'rsnb-weights get lin-a --download' in line
    assert str(fam.cache/'downloads') in line

def test_get_checks_published_sha256_size_and_prefix(fam):
    publish(fam.tmp/'lin-a-v1.pth'); good = W.sha256sum(fam.tmp/'lin-a-v1.pth'); n = (fam.tmp/'lin-a-v1.pth').stat().st_size
    fam.write(entry('lin-a', sha256='0'*64), entry('lin-b', sha256_prefix=good[:8]), entry('lin-c', size=n + 1),
              entry('lin-d', sha256_prefix='00000000'), entry('lin-e', sha256=good, size=n))
    code, out, err = run('get', 'lin-a', '--src', fam.tmp/'lin-a-v1.pth')
    assert code == 1 and 'lin-a-v1.pth: SHA-256' in error_line(err) and 'hash mismatch' in err
    assert not (fam.cache/'lin-a.pth').exists()
    code, out, err = run('get', 'lin-b', '--src', fam.tmp/'lin-a-v1.pth')
    assert code == 0, err
    assert 'published prefix' in json.loads((fam.cache/'lin-b.json').read_text())['source']['checksum']
    code, out, err = run('get', 'lin-c', '--src', fam.tmp/'lin-a-v1.pth')
    assert code == 1 and 'truncated download or another file' in error_line(err)
    code, out, err = run('get', 'lin-d', '--src', fam.tmp/'lin-a-v1.pth')
    assert code == 1 and 'does not start with the published prefix 00000000' in error_line(err)
    code, out, err = run('get', 'lin-e', '--src', fam.tmp/'lin-a-v1.pth')
    assert code == 0 and json.loads((fam.cache/'lin-e.json').read_text())['source']['checksum'] == 'published sha256 and size matched'
    assert not (fam.cache/'recorded.json').exists()  # published checksums are never "recorded"

def test_get_truncated_or_corrupt_file(fam):
    publish(fam.tmp/'full.pth')
    data = (fam.tmp/'full.pth').read_bytes()
    (fam.tmp/'cut.pth').write_bytes(data[:len(data)//2])
    code, out, err = run('get', 'lin-a', '--src', fam.tmp/'cut.pth')
    assert code == 1 and 'cut.pth: not a readable torch checkpoint (truncated or another format)' in error_line(err)
    assert not (fam.cache/'recorded.json').exists()  # a copy that does not convert is never recorded as the reference
    (fam.tmp/'junk.pth').write_bytes(b'\x00garbage' * 50)
    code, out, err = run('get', 'lin-a', '--src', fam.tmp/'junk.pth', '--overwrite')
    assert code == 1 and 'junk.pth: not a readable torch checkpoint' in error_line(err)
    assert not (fam.cache/'lin-a.pth').exists()

def test_get_unknown_name_and_missing_src_are_usage_errors(fam):
    code, out, err = run('get', 'lin-aa')
    assert code == 2 and error_line(err).startswith('rsnb-weights: error: lin-aa: not in the registry') and 'did you mean: lin-a' in err
    code, out, err = run('get', 'lin-a', '--src', fam.tmp/'nope.pth')
    assert code == 2 and 'nope.pth: checkpoint (--src) not found' in error_line(err)

def test_get_no_network(fam):
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()  # a port nobody listens on
    fam.write(entry('lin-a', url=f'http://127.0.0.1:{port}/lin-a-v1.pth'))
    code, out, err = run('get', 'lin-a', '--download', '-q')
    line = error_line(err)
    assert code == 1 and f'http://127.0.0.1:{port}/lin-a-v1.pth: cannot download (no network?)' in line
    assert f'put the file in {fam.cache/"downloads"}' in line
    assert list((fam.cache/'downloads').glob('*')) == []

def test_debug_shows_the_traceback(fam):
    with pytest.raises(DataMissing):
        with contextlib.redirect_stderr(io.StringIO()): main(['get', 'lin-a', '--debug'])
    with pytest.raises(DataMissing):
        with contextlib.redirect_stderr(io.StringIO()): main(['--debug', 'get', 'lin-a'])

# --- convert ----------------------------------------------------------------------------------------------------

def test_convert_and_its_usage_errors(fam):
    sd = publish(fam.tmp/'mine.pth', n_in=5, n_out=3)
    code, out, err = run('convert', fam.tmp/'mine.pth', fam.tmp/'out'/'mine', '--from', 'keras')
    assert code == 2 and "--from keras: unknown checkpoint format; the registry's formats are: fake-linear" in error_line(err)
    code, out, err = run('convert', fam.tmp/'mine.pth', fam.tmp/'conv', '--from', 'fake-linear', '--config', 'n_in=5', 'n_out=3')
    assert code == 0, err
    assert out.strip() == str(fam.tmp/'conv.pth')
    assert torch.equal(torch.load(fam.tmp/'conv.pth', weights_only=True)['weight'], sd['fc.weight'])
    card = json.loads((fam.tmp/'conv.json').read_text())
    assert card['source']['registry_name'] is None and card['source']['config'] == {'n_in': 5, 'n_out': 3} and card['n_in'] == 5
    code, out, err = run('convert', fam.tmp/'mine.pth', fam.tmp/'conv.pth', '--from', 'fake-linear', '--config', 'n_in=5', 'n_out=3')
    assert code == 2 and 'conv.pth: output exists; pass --overwrite' in error_line(err)
    assert run('convert', fam.tmp/'mine.pth', fam.tmp/'conv.json', '--from', 'fake-linear', '--config', 'n_in=5', 'n_out=3', '--overwrite')[0] == 0
    code, out, err = run('convert', fam.tmp/'mine.pth', fam.tmp/'c2', '--from', 'fake-linear', '--config', 'width=5')
    assert code == 2 and "--config width: not a setting of format 'fake-linear'" in error_line(err)
    code, out, err = run('convert', fam.tmp/'mine.pth', fam.tmp/'c2', '--from', 'fake-linear', '--config', 'n_in')
    assert code == 2 and 'expected key=value' in error_line(err)
    code, out, err = run('convert', fam.tmp/'none.pth', fam.tmp/'c2', '--from', 'fake-linear')
    assert code == 2 and 'none.pth: checkpoint not found' in error_line(err)
    code, out, err = run('convert', fam.tmp/'mine.pth', fam.tmp/'mine.pth', '--from', 'fake-linear')
    assert code == 2 and 'input' in error_line(err)
    code, out, err = run('convert', fam.tmp/'mine.pth', fam.tmp/'c2')   # no --from: recognised by its tensor names
    assert code == 1 and "tensor 'fc.weight' has shape (3, 5), rsnb's 'weight' needs (2, 3)" in error_line(err)
    torch.save({'conv.weight': torch.zeros(1)}, fam.tmp/'foreign.pth')
    code, out, err = run('convert', fam.tmp/'foreign.pth', fam.tmp/'c2')
    assert code == 2 and 'foreign.pth: its tensor names match no registry format (fake-linear); pass --from FORMAT' in error_line(err)
    assert not (fam.tmp/'c2.pth').exists()

def test_convert_missing_extra_and_misshapen_tensors(fam):
    publish(fam.tmp/'extra.pth', extra=True)
    code, out, err = run('convert', fam.tmp/'extra.pth', fam.tmp/'c', '--from', 'fake-linear')
    assert code == 1 and "extra.pth: tensor 'fc.scale'" in error_line(err) and 'no place in the rsnb model' in err
    publish(fam.tmp/'missing.pth', missing=True)
    code, out, err = run('convert', fam.tmp/'missing.pth', fam.tmp/'c', '--from', 'fake-linear')
    assert code == 1 and "missing.pth: rsnb parameter 'bias' is not filled" in error_line(err)
    publish(fam.tmp/'other_config.pth', n_in=7)  # a checkpoint of another configuration
    code, out, err = run('convert', fam.tmp/'other_config.pth', fam.tmp/'c', '--from', 'fake-linear', '--config', 'n_in=3')
    assert code == 1 and "other_config.pth: tensor 'fc.weight' has shape (2, 7), rsnb's 'weight' needs (2, 3)" in error_line(err)
    assert not (fam.tmp/'c.pth').exists() and not (fam.tmp/'c.json').exists()

def test_converter_that_cannot_be_imported_names_the_registry_file(fam):
    (fam.reg/'zz.json').write_text(json.dumps({'formats': {'broken': {'converter': 'rsnb.no_such_module:convert'}}, 'entries': []}))
    publish(fam.tmp/'a.pth')
    code, out, err = run('convert', fam.tmp/'a.pth', fam.tmp/'c', '--from', 'broken')
    assert code == 1 and 'zz.json: converter rsnb.no_such_module:convert' in error_line(err)

def test_broken_registry_file_is_named(fam):
    (fam.reg/'zz.json').write_text(json.dumps({'formats': {}, 'entries': [entry('lin-a')]}))
    code, out, err = run('list')
    assert code == 1 and "zz.json: entry 'lin-a' is also defined in" in error_line(err)
    (fam.reg/'zz.json').write_text('{"formats": ')
    code, out, err = run('list')
    assert code == 1 and 'zz.json: not valid JSON' in error_line(err)
    (fam.reg/'zz.json').write_text(json.dumps({'entries': [{**entry('new'), 'format': 'compressai'}]}))
    assert "zz.json: entry 'new' has unknown format 'compressai'" in error_line(run('list')[2])
    (fam.reg/'zz.json').write_text(json.dumps({'entries': [{**entry('new'), 'task': 'detection'}]}))
    assert "zz.json: entry 'new' has unknown task 'detection'" in error_line(run('list')[2])

# --- info -------------------------------------------------------------------------------------------------------

def test_info_converted_and_raw(fam):
    publish(fam.tmp/'lin-a-v1.pth')
    run('get', 'lin-a', '--src', fam.tmp/'lin-a-v1.pth')
    code, out, err = run('info', fam.cache/'lin-a.json')
    assert code == 0 and "rsnb model, 2 tensors, 8 values (weights match the card's SHA-256)" in out and 'task: classification' in out
    assert json.loads(run('info', fam.cache/'lin-a', '--json')[1])['source']['file'] == 'lin-a-v1.pth'
    assert run('info', 'lin-a')[1] == run('info', fam.cache/'lin-a.pth')[1]  # by name
    assert 'change_dpcd_sztaki_cpu.pth: rsnb model' in run('info', 'change_dpcd_sztaki_cpu')[1]
    code, out, err = run('info', 'lin-z')
    assert code == 2 and 'lin-z: no such model' in error_line(err)
    code, out, err = run('info', fam.tmp/'lin-a-v1.pth')
    assert code == 0 and 'torch checkpoint, 2 tensors, 8 values' in out and 'fc.weight: [2, 3]' in out
    assert 'looks like registry entry lin-a (format fake-linear): its published file name and its SHA-256' in out
    assert 'looks like format fake-linear: tensor names' in out
    torch.save({'conv.weight': torch.zeros(1)}, fam.tmp/'foreign.pth')
    assert 'looks like no registry entry or format' in run('info', fam.tmp/'foreign.pth')[1]
    (fam.cache/'lin-a.pth').write_bytes(b'tampered')
    code, out, err = run('info', fam.cache/'lin-a.pth')
    assert code == 1 and 'do not match the SHA-256' in error_line(err)
    (fam.tmp/'junk.pth').write_bytes(b'junk')
    assert run('info', fam.tmp/'junk.pth')[0] == 1
    assert run('info', fam.tmp/'absent.pth')[0] == 2

def test_info_pdparams_without_running_code(fam, tmp_path):
    import pickle, numpy as np
    with open(tmp_path/'m.pdparams', 'wb') as f: pickle.dump({'conv.weight': np.zeros((4, 3, 3, 3), np.float32)}, f)
    code, out, err = run('info', tmp_path/'m.pdparams')
    assert code == 0 and 'PaddlePaddle .pdparams, 1 tensors, 108 values' in out
    class Evil:
        def __reduce__(self): return (print, ('pwned',))
    with open(tmp_path/'evil.pdparams', 'wb') as f: pickle.dump({'x': Evil()}, f)
    code, out, err = run('info', tmp_path/'evil.pdparams')
    assert code == 1 and 'refused: loading it would call builtins.print' in error_line(err) and 'pwned' not in out + err

# --- resolve_model: how the task CLIs find a model ----------------------------------------------------------

def test_resolve_model(fam):
    publish(fam.tmp/'lin-a-v1.pth')
    with pytest.raises(DataMissing, match='run `rsnb-weights get lin-a`'): W.resolve_model('lin-a')
    run('get', 'lin-a', '--src', fam.tmp/'lin-a-v1.pth')
    p = fam.cache/'lin-a.pth'
    assert W.resolve_model('lin-a') == p and W.resolve_model('lin-a', task='classification') == p
    assert W.resolve_model(p) == p and W.resolve_model(p.with_suffix('')) == p and W.resolve_model(str(p.with_suffix('.json'))) == p
    with pytest.raises(ModelError, match='lin-a.pth: is a classification model, not a compression model'):
        W.resolve_model('lin-a', task='compression')
    shipped = W.resolve_model('change_dpcd_sztaki_cpu', task='change')
    assert shipped.name == 'change_dpcd_sztaki_cpu.pth' and shipped.parent.name == 'weights'
    with pytest.raises(ModelError, match='did you mean: lin-(a|b), lin-(a|b)'): W.resolve_model('lin-c')
    with pytest.raises(ModelError, match='not found'): W.resolve_model(fam.tmp/'nothing.pth')
    (fam.tmp/'raw.pth').write_bytes(p.read_bytes())
    with pytest.raises(ModelError, match='raw.pth: not a model: no model card raw.json beside it'): W.resolve_model(fam.tmp/'raw.pth')

# --- downloads: a local server behaving like Google Drive --------------------------------------------------

PAYLOAD = b'\x80published-weights' * 4000

class Drive(http.server.BaseHTTPRequestHandler):
    "Google Drive's answers: `/uc` gives a virus-scan warning page (variant per file id), then the file once confirmed."
    def log_message(self, *a): pass
    def _send(self, body, ctype='application/octet-stream', headers=(), length=None):
        self.send_response(200); self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body) if length is None else length))
        for k, v in headers: self.send_header(k, v)
        self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        u = urllib.parse.urlparse(self.path); q = dict(urllib.parse.parse_qsl(u.query))
        self.server.log.append(self.path)
        base = f'http://127.0.0.1:{self.server.server_port}'
        warn = "<html><head><title>Google Drive - Virus scan warning</title></head><body>Google Drive can't scan this file for viruses."
        if u.path == '/uc' and q.get('id') == 'FORM':
            self._send((warn + f'<form id="download-form" action="{base}/download" method="get">'
                        '<input type="submit" value="Download anyway"/><input type="hidden" name="id" value="FORM">'
                        '<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">'
                        '<input type="hidden" name="uuid" value="u-123"></form></body></html>').encode(), 'text/html; charset=utf-8')
        elif u.path == '/download' and q == {'id': 'FORM', 'export': 'download', 'confirm': 't', 'uuid': 'u-123'}:
            self._send(PAYLOAD)
        elif u.path == '/uc' and q.get('id') == 'COOKIE' and 'confirm' not in q:
            self._send((warn + '</body></html>').encode(), 'text/html', [('Set-Cookie', 'download_warning_13058876669334088843_COOKIE=Xy9z; Path=/')])
        elif u.path == '/uc' and q.get('id') == 'COOKIE' and q.get('confirm') == 'Xy9z':
            self._send(PAYLOAD)
        elif u.path == '/uc' and q.get('id') == 'LINK' and 'confirm' not in q:
            self._send((warn + '<a id="uc-download-link" href="/uc?export=download&amp;confirm=AbC&amp;id=LINK">Download anyway</a></body></html>').encode(), 'text/html')
        elif u.path == '/uc' and q.get('id') == 'LINK' and q.get('confirm') == 'AbC':
            self._send(PAYLOAD)
        elif u.path == '/uc' and q.get('id') == 'QUOTA':
            self._send(b'<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users have viewed or downloaded this file recently.</body></html>', 'text/html')
        elif u.path == '/plain/w.pth':
            self._send(PAYLOAD)
        elif u.path == '/plain/cut.pth':
            self._send(PAYLOAD[:1000], length=len(PAYLOAD))
        elif u.path == '/plain/page.pth':  # a server that sends a page where a file was expected, typed as a file
            self._send(b'<html><title>Sign in</title></html>')
        else:
            self.send_error(404)

@pytest.fixture
def drive():
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Drive); srv.log = []
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield srv, f'http://127.0.0.1:{srv.server_port}'
    srv.shutdown(); srv.server_close()

@pytest.mark.parametrize('file_id', ['FORM', 'COOKIE', 'LINK'])
def test_gdrive_confirm_dance(drive, tmp_path, file_id):
    srv, base = drive
    dest = W.fetch(W.gdrive_url(file_id, base=base), tmp_path/'w.h5', allow_download=True, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert len(srv.log) == 2 and srv.log[0] == f'/uc?export=download&id={file_id}'

def test_gdrive_error_page_is_not_saved(drive, tmp_path):
    srv, base = drive
    with pytest.raises(Exception, match="answered with an HTML page \\('Google Drive - Quota exceeded'\\), not the file"):
        W.fetch(W.gdrive_url('QUOTA', base=base), tmp_path/'w.h5', allow_download=True, progress=False)
    assert list(tmp_path.iterdir()) == []

def test_http_download_checks(drive, tmp_path):
    srv, base = drive
    import hashlib
    good = hashlib.sha256(PAYLOAD).hexdigest()
    assert W.fetch(f'{base}/plain/w.pth', tmp_path/'w.pth', good, allow_download=True, size=len(PAYLOAD), progress=False).read_bytes() == PAYLOAD
    with pytest.raises(ModelError, match=r'plain/w.pth: downloaded file not kept \(x.pth\): .*hash mismatch'):
        W.fetch(f'{base}/plain/w.pth', tmp_path/'x.pth', '1'*64, allow_download=True, progress=False)
    with pytest.raises(Exception, match='download truncated'):
        W.fetch(f'{base}/plain/cut.pth', tmp_path/'y.pth', allow_download=True, progress=False)
    with pytest.raises(Exception, match="HTML page \\('Sign in'\\)"):
        W.fetch(f'{base}/plain/page.pth', tmp_path/'z.pth', allow_download=True, progress=False)
    with pytest.raises(Exception, match='HTTP 404'):
        W.fetch(f'{base}/plain/absent.pth', tmp_path/'z.pth', allow_download=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['w.pth']

def test_get_download_from_a_drive_like_server(fam, drive):
    srv, base = drive
    buf = io.BytesIO(); torch.save({'fc.weight': torch.ones(2, 3), 'fc.bias': torch.zeros(2)}, buf)
    body = buf.getvalue()
    global PAYLOAD
    old, PAYLOAD = PAYLOAD, body
    try:
        import hashlib
        fam.write(entry('lin-a', url=W.gdrive_url('FORM', base=base), sha256=hashlib.sha256(body).hexdigest()),
                  entry('lin-b', url=f'{base}/plain/w.pth', sha256='2'*64))
        code, out, err = run('get', 'lin-a', '--download', '-q')
        assert code == 0, err
        assert (fam.cache/'downloads'/'lin-a'/'lin-a-v1.pth').read_bytes() == body   # stored under the entry's name
        assert torch.equal(torch.load(out.strip(), weights_only=True)['weight'], torch.ones(2, 3))
        code, out, err = run('get', 'lin-b', '--download', '-q')
        assert code == 1 and 'downloaded file not kept' in error_line(err) and 'hash mismatch' in err
        assert not (fam.cache/'downloads'/'lin-b'/'lin-b-v1.pth').exists()
    finally: PAYLOAD = old

# --- the command-line contract ----------------------------------------------------------------------------------

def test_help_is_fast_and_imports_no_torch():
    t = time.time()
    r = subprocess.run([sys.executable, '-c', 'import sys; from rsnb.weights_cli import main; code = main(["--help"]); '
                        'print("torch" in sys.modules, file=sys.stderr); sys.exit(code)'], capture_output=True, text=True)
    assert r.returncode == 0 and 'rsnb-weights' in r.stdout and r.stderr.strip() == 'False'
    assert time.time() - t < 3
    r = subprocess.run([sys.executable, '-m', 'rsnb.weights_cli', 'frobnicate'], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith('rsnb-weights: error:') and len(r.stderr.strip().splitlines()) == 1
