"""What the commands leave on disk (issue 23): a rerun over many scenes keeps an output only when it is complete and made by
this very job (the rsnb tag of a GeoTIFF, the checksums and header of an `.rsc`), writes other rsnb outputs again and
refuses files rsnb did not write; SIGTERM and SIGINT during a write remove the staged file (exit 143 / 130) and leave the
destination untouched; what a SIGKILLed run left is deleted by the next run; GDAL's own messages never precede rsnb's one
line; list files take a byte-order mark and paths with spaces; launcher variables and `--shard` are checked."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rsnb.core import _host_id
from rsnb.geo import RasterMeta, write_raster
from rsnb.weights import save_model
from rsnb.segmentation.cli import main as segment
from rsnb.compression.cli import compress_main as compress, decompress_main as decompress
from rsnb.inpainting.cli import main as inpaint

torch.set_num_threads(1)
BIN = Path(sys.executable).parent
NAMES = ['scene0', 'scene1']

def _meta(c=3, h=64, w=64, dtype='uint8', nodata=None, x0=500000):
    return RasterMeta(CRS.from_epsg(32633), Affine(10, 0, x0, 0, -10, 5000000), nodata, dtype, c, h, w)

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp('outputs'); m = d/'models'; (d/'rgb').mkdir(); m.mkdir()
    rng = np.random.default_rng(0)
    for i, n in enumerate(NAMES): write_raster(d/'rgb'/f'{n}.tif', rng.integers(0, 255, (3, 64, 64), dtype=np.uint8), _meta(x0=500000 + 640*i))
    g = rng.normal(2500, 300, (3, 256, 256)).astype(np.int16); g[:, :, ::9] = -999
    write_raster(d/'gappy.tif', g, _meta(h=256, w=256, dtype='int16', nodata=-999))
    write_raster(d/'rgb256.tif', rng.integers(0, 255, (3, 256, 256), dtype=np.uint8), _meta(h=256, w=256))
    from rsnb.segmentation.models import seg_model
    from rsnb.compression.models import MeanScaleHyperprior
    card = dict(task='segmentation', arch='fcn', backbone='resnet18', impl='paddleseg', n_classes=3, in_chans=3, output_stride=16,
                palette=[[1, 2, 3]]*3, norm=dict(scale=255., mean=.5, std=.5))
    for k, seed in (('segA', 0), ('segB', 1)):
        torch.manual_seed(seed); save_model(seg_model('fcn', 'resnet18', 3, 3, output_stride=16).eval(), m/k, card)
    for k, seed in (('codecA', 0), ('codecB', 1)):
        torch.manual_seed(seed)
        save_model(MeanScaleHyperprior(8, 8).eval().update(), m/k, dict(task='compression', model_id=f'out-{k}', arch='MeanScaleHyperprior', kwargs=dict(N=8, M=8)))
    return d

def _run(main, argv, capsys):
    code = main([str(a) for a in argv]); out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()

def _staged(d): return sorted(p.name for p in Path(d).iterdir() if 'rsnb-part' in p.name or '.part.' in p.name)

def _tags(p):
    with rasterio.open(p) as ds: return ds.tags()

# --- a rerun keeps only the outputs of this job ---------------------------------------------------------------------

def test_rerun_geotiff(env, tmp_path, capsys):
    "rsnb-segment over a folder: kept when the tag, grid, bands and blocks check; written again when made otherwise; refused when not rsnb's."
    m, out = env/'models', tmp_path/'out'
    seg = lambda model, *extra: _run(segment, [m/f'{model}.pth', env/'rgb', out, '--tile', '64', '--overlap', '0', '-q', *extra], capsys)
    assert seg('segA') == (0, [f'{out/n}.tif' for n in NAMES] + ['2 scenes: 2 written, 0 skipped (already written), 0 failed'], [])
    t = _tags(out/'scene0.tif')
    assert (json.loads(t['RSNB_INPUT']), t['RSNB_MODEL'], json.loads(t['RSNB_OPTIONS'])) == \
           ([str((env/'rgb'/'scene0.tif').resolve())], str((m/'segA.pth').resolve()), dict(bands=None, cog=True, overlap=0, stretch=None, tile=64, vector=None))
    ref = {n: (out/f'{n}.tif').read_bytes() for n in NAMES}
    assert seg('segA') == (0, ['2 scenes: 0 written, 2 skipped (already written), 0 failed'], [])      # the same job: kept
    # made by another model: written again
    assert _run(segment, [m/'segB.pth', env/'rgb'/'scene0.tif', tmp_path/'b.tif', '--tile', '64', '--overlap', '0', '-q'], capsys)[0] == 0
    shutil.copy(tmp_path/'b.tif', out/'scene0.tif')
    code, o, e = seg('segA')
    assert (code, o[-1], e) == (0, '2 scenes: 1 written, 1 skipped (already written), 0 failed', [f"rsnb-segment: {out/'scene0.tif'}: made by another model; writing it again"])
    assert (out/'scene0.tif').read_bytes() == ref['scene0']
    # other options, a changed input: written again
    code, o, e = seg('segA', '--tile', '32')
    assert (code, o[-1]) == (0, '2 scenes: 2 written, 0 skipped (already written), 0 failed') and all('made with other options' in l for l in e) and len(e) == 2
    src = tmp_path/'rgb'; shutil.copytree(env/'rgb', src)
    run_src = lambda: _run(segment, [m/'segA.pth', src, tmp_path/'o2', '--tile', '64', '--overlap', '0', '-q'], capsys)
    assert run_src()[0] == 0
    st = (src/'scene1.tif').stat(); os.utime(src/'scene1.tif', ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    code, o, e = run_src()
    assert (code, o[-1], e) == (0, '2 scenes: 1 written, 1 skipped (already written), 0 failed', [f"rsnb-segment: {tmp_path/'o2'/'scene1.tif'}: its input changed since it was written; writing it again"])
    # the pixel type changed after it was written, the tag copied along (gdal_translate -ot keeps metadata): written again
    assert seg('segA')[0] == 0
    with rasterio.open(out/'scene0.tif') as ds: a, prof, tags = ds.read(), ds.profile, ds.tags()
    prof.update(dtype='float32', nodata=None)
    with rasterio.open(out/'scene0.tif', 'w', **prof) as ds: ds.write(a.astype('float32')); ds.update_tags(**tags)
    code, o, e = seg('segA')
    assert e == [f"rsnb-segment: {out/'scene0.tif'}: its bands or pixel type changed since it was written; writing it again"] and code == 0
    # rsnb's but damaged (the tag reads, the blocks do not): written again
    b = bytearray((out/'scene1.tif').read_bytes()); n = len(b)
    with rasterio.open(out/'scene1.tif') as ds: off = int(ds.get_tag_item('BLOCK_OFFSET_0_0', 'TIFF', bidx=1))
    b[off:off + 64] = b'\xff' * 64; (out/'scene1.tif').write_bytes(bytes(b)); assert len(b) == n
    code, o, e = seg('segA')
    assert code == 0 and len(e) == 1 and e[0].startswith(f"rsnb-segment: {out/'scene1.tif'}: incomplete or damaged") and e[0].endswith('writing it again'), e
    assert (out/'scene1.tif').read_bytes() == ref['scene1']

@pytest.mark.parametrize('what', ['no-tag', 'text', 'truncated'])
def test_rerun_refuses_foreign(env, tmp_path, capsys, what):
    "A file with the output's name that rsnb did not write (or cannot open) is refused, untouched, unless --overwrite."
    m, out = env/'models', tmp_path/'out'
    argv = [m/'segA.pth', env/'rgb', out, '--tile', '64', '--overlap', '0', '-q']
    assert _run(segment, argv, capsys)[0] == 0
    f = out/'scene1.tif'
    if what == 'no-tag':    # a GeoTIFF of the right grid written by another program
        with rasterio.open(f) as ds: prof, a = ds.profile, ds.read()
        f.unlink()
        with rasterio.open(f, 'w', **prof) as ds: ds.write(a)
        why = 'a GeoTIFF without the rsnb tag'
    elif what == 'text': f.write_text('my notes'); why = 'not a GeoTIFF'
    else: f.write_bytes(f.read_bytes()[:200]); why = 'not a raster rsnb can open'
    before = f.read_bytes()
    code, o, e = _run(segment, argv, capsys)
    assert (code, o[-1], len(e)) == (1, '2 scenes: 0 written, 1 skipped (already written), 1 failed', 1), (o, e)
    assert e[0].startswith(f'rsnb-segment: error: {f}: exists and was not written by rsnb ({why}') and e[0].endswith('remove it or pass --overwrite to replace it'), e
    assert f.read_bytes() == before
    assert _run(segment, argv + ['--overwrite'], capsys)[0] == 0 and 'RSNB_VERSION' in _tags(f)

def test_rerun_rsc(env, tmp_path, capsys):
    "rsnb-compress over a folder: an .rsc is kept only when its payload SHA-256, codec, rate, tile and input check."
    m, out = env/'models', tmp_path/'out'
    comp = lambda codec='codecA', *extra: _run(compress, [env/'rgb', out, '--model', m/f'{codec}.pth', '-q', *extra], capsys)
    assert comp()[0] == 0
    ref = {n: (out/f'{n}.rsc').read_bytes() for n in NAMES}
    assert comp() == (0, ['2 scenes: 0 written, 2 skipped (already written), 0 failed'], [])
    f = out/'scene0.rsc'
    def redone(why):
        code, o, e = comp('codecA')
        assert (code, e) == (0, [f'rsnb-compress: {f}: {why}; writing it again'])
        assert f.read_bytes() == ref['scene0']
    b = bytearray(ref['scene0']); b[-5] ^= 0x01; f.write_bytes(bytes(b))              # one bit of the payload, same length
    redone('payload checksum mismatch (corrupt file)')
    f.write_bytes(ref['scene0'][:-10]); redone('truncated file (payload {} of {} bytes)'.format(*_payload(ref['scene0'], 10)))
    assert comp('codecB')[0] == 0; shutil.copy(f, tmp_path/'b.rsc')                   # rewritten by codec B (its weights differ)...
    assert comp('codecA')[0] == 0                                                      # ...and by A again
    shutil.copy(tmp_path/'b.rsc', f); redone('written with other codec weights')
    shutil.copy(out/'scene1.rsc', f); redone("its raster is not its input's (bands, size, pixel type or georeferencing)")
    code, o, e = comp('codecA', '--rate', '0')
    assert o[-1] == '2 scenes: 2 written, 0 skipped (already written), 0 failed' and e[0] == f'rsnb-compress: {f}: written at rate 1; writing it again', e
    f.write_bytes(b'GIF89a not an rsc at all')                                         # not rsnb's: refused, untouched
    code, o, e = comp('codecA', '--rate', '0')
    assert (code, e) == (1, [f'rsnb-compress: error: {f}: exists and was not written by rsnb (not an rsnb compressed raster (no .rsc magic)); remove it or pass --overwrite to replace it'])
    assert f.read_bytes() == b'GIF89a not an rsc at all'

def _payload(data, cut):
    from rsnb.compression.format import _head
    h, off = _head(data, len(data), 'x')
    return h['payload_len'] - cut, h['payload_len']

def test_single_scene_outputs_tagged(env, tmp_path, capsys):
    "Single-scene runs tag their outputs too (rsnb-decompress, rsnb-inpaint), so a later run over the folder keeps them."
    (tmp_path/'rs').mkdir(); (tmp_path/'dd').mkdir(); rsc = tmp_path/'rs'/'s.rsc'
    assert _run(compress, [env/'rgb'/'scene0.tif', rsc, '--model', env/'models'/'codecA.pth', '-q'], capsys)[0] == 0
    assert _run(decompress, [rsc, tmp_path/'dd'/'s.tif', '-q'], capsys)[0] == 0
    assert json.loads(_tags(tmp_path/'dd'/'s.tif')['RSNB_INPUT']) == [str(rsc.resolve())]
    assert _run(decompress, [tmp_path/'rs', tmp_path/'dd', '-q'], capsys) == (0, ['1 scenes: 0 written, 1 skipped (already written), 0 failed'], [])
    assert _run(inpaint, [env/'gappy.tif', tmp_path/'i.tif', '--method', 'fillnodata', '-q'], capsys)[0] == 0
    t = _tags(tmp_path/'i.tif')
    assert (t['RSNB_MODEL'], json.loads(t['RSNB_OPTIONS'])['method'], t['RSNB_DTYPE'], t['RSNB_BANDS']) == ('fillnodata', 'fillnodata', 'int16', '3')

# --- signals, killed runs ---------------------------------------------------------------------------------------------

# the real command, with a hook that makes its write slow so that the signal lands while the staged file exists
SLOW_TIF = ("import rsnb.geo as g\nw = g.RasterWriter.write\n"
            "def slow(self, *a, **k):\n    if '.part.' in self.dest.name: time.sleep(3)   # the final output only\n    return w(self, *a, **k)\n"
            "g.RasterWriter.write = slow\n")
HOOKS = {'inpaint': ('rsnb.inpainting.cli', 'main', SLOW_TIF, '.part.tif'),         # its last write, after the fill (nested staging)
         'segment': ('rsnb.segmentation.cli', 'main', SLOW_TIF, '.part.tif'),       # predict_raster's writer thread (pipelined)
         'compress': ('rsnb.compression.cli', 'compress_main', "import rsnb.compression.format as f\nmp = f._mask_pass\n"
                      "def slow(*a, **k): time.sleep(60); return mp(*a, **k)\nf._mask_pass = slow\n", '.part.rsc')}

def _start(tool, argv, hook=True):
    mod, fn, patch, _ = HOOKS[tool]
    code = 'import sys, time\n' + (patch if hook else '') + f'from {mod} import {fn}\nsys.exit({fn}(sys.argv[1:]))\n'
    return subprocess.Popen([sys.executable, '-c', code, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

def _wait_staged(p, d, mark, timeout=180):
    t = time.time()
    while time.time() - t < timeout:
        if any(mark in q.name for q in d.iterdir()): return
        assert p.poll() is None, p.communicate()
        time.sleep(0.02)
    p.kill(); raise AssertionError('the staged file never appeared')

def _argv(tool, env, dst):
    if tool == 'inpaint': return [env/'gappy.tif', dst, '--method', 'fillnodata', '-q', '--overwrite']
    if tool == 'segment': return [env/'models'/'segA.pth', env/'rgb256.tif', dst, '--tile', '64', '--overlap', '0', '-q', '--overwrite']
    return [env/'rgb256.tif', dst, '--model', env/'models'/'codecA.pth', '-q', '--overwrite', '--tile', '64']

@pytest.mark.parametrize('tool,sig', [pytest.param('segment', signal.SIGTERM, id='segment-SIGTERM'),
                                      pytest.param('inpaint', signal.SIGTERM, id='inpaint-SIGTERM'),
                                      pytest.param('compress', signal.SIGINT, id='compress-SIGINT'),
                                      pytest.param('inpaint', signal.SIGINT, id='inpaint-SIGINT', marks=pytest.mark.slow),
                                      pytest.param('compress', signal.SIGTERM, id='compress-SIGTERM', marks=pytest.mark.slow)])
def test_signal_mid_write(env, tmp_path, tool, sig):
    "A signal while the output is being written (a GeoTIFF through nested staging, an .rsc): exit 128+signal, one line, no staged file left, the old output untouched."
    d = tmp_path/'out'; d.mkdir(); dst = d/('o.rsc' if tool == 'compress' else 'o.tif')
    dst.write_bytes(b'old output')                          # replaced only if the run completes (--overwrite)
    p = _start(tool, _argv(tool, env, dst))
    _wait_staged(p, d, HOOKS[tool][3])
    p.send_signal(sig); out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, (p.returncode, err)
    assert (out, err.splitlines()) == ('', [f"rsnb-{tool}: interrupted ({signal.Signals(sig).name})"])
    assert sorted(q.name for q in d.iterdir()) == [dst.name] and dst.read_bytes() == b'old output'

@pytest.mark.slow   # two processes; the same clean-up of planted files is test_stale_staged_cleaned
def test_sigkill_leftovers_cleaned_by_next_run(env, tmp_path):
    "SIGKILL cannot be caught: the staged files stay, and the next run into the folder deletes them (and writes its output)."
    d = tmp_path/'out'; d.mkdir(); dst = d/'o.tif'
    p = _start('inpaint', _argv('inpaint', env, dst))
    _wait_staged(p, d, '.part.tif')
    p.send_signal(signal.SIGKILL); p.wait()
    left = _staged(d)
    assert p.returncode == -signal.SIGKILL and left and all(f'-{p.pid}-' in n for n in left), left
    r = subprocess.run([str(BIN/'rsnb-inpaint'), *map(str, _argv('inpaint', env, dst))], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert (r.returncode, r.stderr) == (0, '') and sorted(q.name for q in d.iterdir()) == ['o.filled.tif', 'o.filled.tif.aux.xml', 'o.tif']   # the output and its filled-pixel mask (issue 25)

def test_stale_staged_cleaned(env, tmp_path, capsys):
    "Before writing, a command deletes rsnb's staged files that no live process can own; it keeps a live one's and anything else."
    live = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    dead = subprocess.Popen([sys.executable, '-c', 'pass']); dead.wait()
    try:
        for form, d in (('single', tmp_path/'single'), ('many', tmp_path/'many')):
            d.mkdir()
            plant = {f'.o.tif.rsnb-part-{_host_id()}-{dead.pid}-a1b2c3d4.part.tif': 3600, f'.x.json.rsnb-part-{_host_id()}-{dead.pid}-e5f6g7h8.json.tmp': 3600,
                     '.o.tif.k2j3h4ab.part.tif': 3600, '.o.tif.k2j3h4ab.tif.tmp': 3600,                             # older rsnb's names
                     '.o.tif.rsnb-part-00000000-7-a1b2c3d4.part.tif': 2*86400}                                      # another machine's, two days old
            keep = {f'.o.tif.rsnb-part-{_host_id()}-{live.pid}-q1w2e3r4.part.tif': 3600,                            # a running process's
                    '.o.tif.rsnb-part-00000000-7-z9y8x7w6.part.tif': 3600,                                          # another machine's, an hour old
                    '.notes.txt': 3600, '.o.tif.masked': 3600}
            for name, age in {**plant, **keep}.items():
                (d/name).write_bytes(b'x'); os.utime(d/name, (time.time() - age,)*2)
            (d/'.o.tif.abcd1234').mkdir(); (d/'.o.tif.abcd1234'/'t2_on_t1_grid.tif').write_bytes(b'x')        # an older rsnb-change folder
            os.utime(d/'.o.tif.abcd1234', (time.time() - 3600,)*2)
            argv = [env/'gappy.tif', d/'o.tif'] if form == 'single' else [env/'rgb', d]
            if form == 'single': assert _run(inpaint, [*argv, '--method', 'fillnodata', '-q'], capsys)[0] == 0
            else: assert _run(segment, [env/'models'/'segA.pth', *argv, '--tile', '64', '--overlap', '0', '-q'], capsys)[0] == 0
            outs = ['o.tif', 'o.filled.tif', 'o.filled.tif.aux.xml'] if form == 'single' else [f'{n}.tif' for n in NAMES]   # inpaint: with its filled mask
            assert sorted(p.name for p in d.iterdir()) == sorted([*keep, *outs]), form
    finally: live.kill(); live.wait()

# --- GDAL's messages, launcher variables, list files ---------------------------------------------------------------------

def test_gdal_messages_folded(env, tmp_path):
    "An .rsc whose CRS GDAL cannot parse: GDAL's own 'ERROR 1: ...' line does not precede rsnb's, it is folded into it."
    from rsnb.compression.format import pack, unpack
    assert compress([str(env/'rgb'/'scene0.tif'), str(tmp_path/'s.rsc'), '--model', str(env/'models'/'codecA.pth'), '-q']) == 0
    h, payload = unpack((tmp_path/'s.rsc').read_bytes())
    h['crs'] = 'PROJCS["x",GEOGCS["y"]]'                   # valid checksums, a CRS PROJ refuses
    (tmp_path/'bad.rsc').write_bytes(pack({k: v for k, v in h.items() if k not in ('payload_len', 'payload_sha256')}, payload))
    r = subprocess.run([str(BIN/'rsnb-decompress'), str(tmp_path/'bad.rsc'), str(tmp_path/'o.tif'), '--model', str(env/'models'/'codecA.pth'), '-q'],
                       capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != 'CPL_LOG'})
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"rsnb-decompress: error: {tmp_path/'bad.rsc'}: "), r.stderr
    assert '; GDAL: ' in lines[0] and not (tmp_path/'o.tif').exists()

@pytest.mark.parametrize('env_vars,text', [(dict(RANK='2', WORLD_SIZE='2'), 'RANK=2 with WORLD_SIZE=2: the rank must be in 0..1'),
                                           (dict(RANK='-1', WORLD_SIZE='2'), 'RANK=-1 with WORLD_SIZE=2'),
                                           (dict(RANK='zero', WORLD_SIZE='2'), "RANK='zero' is not an integer"),
                                           (dict(WORLD_SIZE='2'), 'WORLD_SIZE=2 is set but RANK is not')],
                         ids=['rank-ge-world', 'rank-negative', 'rank-not-int', 'world-without-rank'])
def test_launcher_variables(env, tmp_path, capsys, monkeypatch, env_vars, text):
    "A RANK/WORLD_SIZE that is set but wrong is a usage error before anything runs, not silently all scenes."
    for k in ('RANK', 'WORLD_SIZE'): monkeypatch.delenv(k, raising=False)
    for k, v in env_vars.items(): monkeypatch.setenv(k, v)
    code, o, e = _run(segment, [env/'models'/'segA.pth', env/'rgb', tmp_path/'out', '-q'], capsys)
    assert (code, o, len(e)) == (2, [], 1) and e[0].startswith('rsnb-segment: error: ') and text in e[0], e
    assert not (tmp_path/'out').exists()

def test_shard_single_scene(env, tmp_path, capsys):
    code, o, e = _run(segment, [env/'models'/'segA.pth', env/'rgb'/'scene0.tif', tmp_path/'o.tif', '--shard', '0/2', '-q'], capsys)
    assert (code, o) == (2, []) and e == [f"rsnb-segment: error: --shard 0/2: {env/'rgb'/'scene0.tif'} is one scene; --shard splits the scenes of a folder or a list file"]
    assert not (tmp_path/'o.tif').exists()

def test_list_file_bom_and_spaces(env, tmp_path, capsys):
    "A list file saved by a Windows editor (byte-order mark, CRLF) naming files with spaces, bare, quoted or tab-separated."
    d = tmp_path/'my scenes'; d.mkdir()
    for i, n in enumerate(NAMES): shutil.copy(env/'rgb'/f'{n}.tif', d/f'{n} copy {i}.tif')
    (tmp_path/'l.txt').write_bytes(f'\ufeffmy scenes/scene0 copy 0.tif\r\n"{d}/scene1 copy 1.tif"\r\n'.encode('utf-8'))
    code, o, e = _run(segment, [env/'models'/'segA.pth', tmp_path/'l.txt', tmp_path/'out', '--tile', '64', '--overlap', '0', '-q'], capsys)
    assert (code, o[-1], e) == (0, '2 scenes: 2 written, 0 skipped (already written), 0 failed', [])
    assert sorted(p.name for p in (tmp_path/'out').iterdir()) == ['scene0 copy 0.tif', 'scene1 copy 1.tif']
