"""One pipeline across scenes (issue 27): a many-scene command works on up to three scenes at a time (`rsnb.cli.run_many`)
sharing the model through `rsnb.tiles.SceneGate`. Its outputs are byte-identical to single-scene runs (segment, compress,
change), scenes really overlap while model calls never do, a scene failing in the middle of its pipeline leaves no file
and stops no other scene, a rerun still skips what is written and writes again what another job made, and SIGTERM with
scenes in flight leaves only complete outputs."""
import argparse, contextlib, io, threading, time
from pathlib import Path
import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS
from rsnb.geo import RasterMeta, write_raster
from rsnb.weights import save_model
from rsnb.cli import run_many, scene_jobs, list_scenes, staged_output, verify_geotiff, output_job, SCENES_IN_FLIGHT
from rsnb.tiles import predict_raster, to_classes
from rsnb.segmentation.cli import main as segment
from rsnb.change.cli import main as change, save_change_model
from rsnb.compression.cli import compress_main as compress

torch.set_num_threads(1)
NAMES = [f'scene{k}' for k in range(5)]

def _meta(c=3, h=128, w=160, x0=500000):
    return RasterMeta(CRS.from_epsg(32633), Affine(10, 0, x0, 0, -10, 5000000), None, 'uint8', c, h, w)

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp('pipe'); m = d/'models'
    for k in ('rgb', 'A', 'B', 'models'): (d/k).mkdir()
    rng = np.random.default_rng(0)
    for i, n in enumerate(NAMES):
        u8 = rng.integers(0, 255, (3, 128, 160), dtype=np.uint8)
        for k in ('rgb', 'A'): write_raster(d/k/f'{n}.tif', u8, _meta(x0=500000 + 1600*i))
        write_raster(d/'B'/f'{n}.tif', np.roll(u8, 8*i + 3, axis=2), _meta(x0=500000 + 1600*i))
    from rsnb.segmentation.models import seg_model
    from rsnb.change.train import change_model
    from rsnb.data import BandStats
    from rsnb.compression.models import MeanScaleHyperprior
    torch.manual_seed(0)
    save_model(seg_model('fcn', 'resnet18', 3, 3, output_stride=16).eval(), m/'seg', dict(task='segmentation', arch='fcn', backbone='resnet18',
               impl='paddleseg', n_classes=3, in_chans=3, output_stride=16, palette=[[1, 2, 3]]*3, norm=dict(scale=255., mean=.5, std=.5)))
    save_change_model(change_model('dpcd', 3, 8), m/'chg', 'dpcd', BandStats.compute([u8.astype(np.float32)], names=['r', 'g', 'b']), width=8)
    save_model(MeanScaleHyperprior(8, 8).eval().update(), m/'codec', dict(task='compression', model_id='pipe-tiny', arch='MeanScaleHyperprior', kwargs=dict(N=8, M=8)))
    return d

def _run(main, argv, capsys):
    code = main([str(a) for a in argv]); out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()

# (main, argv before the input, many-scene input, argv after the output, output ending, single-scene argv(name, output))
def _tools(d):
    m, seg = d/'models', ['--tile', '64', '--overlap', '16', '--batch-size', '2']
    return dict(
        segment=(segment, [m/'seg.pth'], d/'rgb', seg, '.tif', lambda n, o: [m/'seg.pth', d/'rgb'/f'{n}.tif', o, *seg]),
        change=(change, [m/'chg.pth'], d, seg, '.tif', lambda n, o: [m/'chg.pth', d/'A'/f'{n}.tif', d/'B'/f'{n}.tif', o, *seg]),
        compress=(compress, [], d/'rgb', ['--model', m/'codec.pth', '--tile', '64'], '.rsc', lambda n, o: [d/'rgb'/f'{n}.tif', o, '--model', m/'codec.pth', '--tile', '64']))

@pytest.mark.parametrize('tool', ['segment', 'compress', 'change'])
def test_many_equals_single_bytes(env, tool, tmp_path, capsys):
    "Five scenes, three in flight: every output file has exactly the bytes of its single-scene run; nothing else is left."
    main, pre, src, post, ext, single = _tools(env)[tool]
    ref = tmp_path/'ref'; ref.mkdir()
    for n in NAMES: assert _run(main, [*single(n, ref/f'{n}{ext}'), '-q'], capsys)[0] == 0
    code, o, e = _run(main, [*pre, src, tmp_path/'out', *post, '-q'], capsys)
    assert (code, o[-1], e) == (0, '5 scenes: 5 written, 0 skipped (already written), 0 failed', []), e
    assert [Path(l.split(':')[0]).name for l in o[:-1]] == [f'{n}{ext}' for n in NAMES]      # result lines in scene order
    files = sorted(p.name for p in (tmp_path/'out').iterdir())
    assert files == sorted(p.name for p in ref.iterdir())          # the same files (class names sidecars of a change map included)
    assert [f for f in files if not f.endswith('.aux.xml')] == [f'{n}{ext}' for n in NAMES]
    for f in files: assert (tmp_path/'out'/f).read_bytes() == (ref/f).read_bytes(), f

def _args(**kw): return argparse.Namespace(prog='rsnb-test', overwrite=False, shard=None, quiet=True, debug=False, **kw)

def _cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, padding=1)).eval()

def _one(model_fn):
    def one(ins, out):
        with staged_output(out, lambda t: verify_geotiff(t, ins[0], 1, 'uint8', out)) as tmp:
            predict_raster(model_fn, ins[0], tmp, tile=32, overlap=8, batch_size=2, finalize=to_classes, dtype='uint8', nodata=255, progress=False)
        return out.name
    return one

def test_scenes_overlap_model_calls_do_not(env, tmp_path):
    "Scenes run three at a time (never more) while no two model calls overlap, and the classes match one-at-a-time runs."
    net, active, calls, lock = _cnn(), set(), [0, 0], threading.Lock()
    most = [0]
    def model_fn(x):
        with lock: calls[0] += 1; calls[1] = max(calls[1], calls[0])
        active.add(threading.current_thread().name); most[0] = max(most[0], len(active))
        time.sleep(0.002); y = net(x)
        with lock: calls[0] -= 1
        return y
    def one(ins, out):
        try: return _one(model_fn)(ins, out)
        finally: active.discard(threading.current_thread().name)
    jobs = scene_jobs(list_scenes(env/'rgb'), tmp_path/'many', '.tif')
    lines, code = run_many(_args(), jobs, one)
    assert (code, lines[-1]) == (0, '5 scenes: 5 written, 0 skipped (already written), 0 failed')
    assert calls[1] == 1 and 2 <= most[0] <= SCENES_IN_FLIGHT == 3, (calls, most)
    lines, code = run_many(_args(), scene_jobs(list_scenes(env/'rgb'), tmp_path/'seq', '.tif'), _one(net), in_flight=1)
    assert code == 0
    for n in NAMES: assert (tmp_path/'many'/f'{n}.tif').read_bytes() == (tmp_path/'seq'/f'{n}.tif').read_bytes(), n

def test_failing_scene_in_the_middle(env, tmp_path):
    "The model fails on scene 2's fourth batch (after rows of it were written): one error line for it, no file or staged file of it, the other four as alone."
    net, seen = _cnn(), {}
    def model_fn(x):
        me = threading.current_thread().name
        seen[me] = seen.get(me, 0) + 1
        if me == 'rsnb-scene-2' and seen[me] == 4: raise RuntimeError('the accelerator fell over')
        return net(x)
    jobs = scene_jobs(list_scenes(env/'rgb'), tmp_path/'out', '.tif')
    err = io.StringIO()
    with contextlib.redirect_stderr(err): lines, code = run_many(_args(), jobs, _one(model_fn))
    assert (code, lines) == (1, ['scene0.tif', 'scene1.tif', 'scene3.tif', 'scene4.tif', '5 scenes: 4 written, 0 skipped (already written), 1 failed'])
    e = err.getvalue().splitlines()
    assert len(e) == 1 and e[0].startswith('rsnb-test: error: unexpected RuntimeError: the accelerator fell over'), e
    assert sorted(p.name for p in (tmp_path/'out').iterdir()) == ['scene0.tif', 'scene1.tif', 'scene3.tif', 'scene4.tif']   # no staged file
    assert seen['rsnb-scene-2'] == 4
    single = tmp_path/'single'; single.mkdir()
    for n in ('scene1', 'scene3'):
        with output_job([env/'rgb'/f'{n}.tif'], None, options={}): _one(net)((env/'rgb'/f'{n}.tif',), single/f'{n}.tif')   # the tag run_many gives
        assert (single/f'{n}.tif').read_bytes() != b'' and (single/f'{n}.tif').read_bytes() == (tmp_path/'out'/f'{n}.tif').read_bytes()

def test_resume_skips_and_redoes(env, tmp_path, capsys):
    "A rerun of rsnb-segment skips the five outputs untouched; with one removed and one made with other options, it writes those two again, same bytes."
    main, pre, src, post, ext, _ = _tools(env)['segment']
    out = tmp_path/'out'
    assert _run(main, [*pre, src, out, *post, '-q'], capsys)[0] == 0
    ref = {p.name: p.read_bytes() for p in out.iterdir()}
    t = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert _run(main, [*pre, src, out, *post, '-q'], capsys) == (0, ['5 scenes: 0 written, 5 skipped (already written), 0 failed'], [])
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == t
    (out/'scene1.tif').unlink()
    b = out/'scene3.tif'                             # made by another job: other options
    assert _run(main, [*pre, env/'rgb'/'scene3.tif', b, '--tile', '64', '--overlap', '8', '-q', '--overwrite'], capsys)[0] == 0
    assert b.read_bytes() != ref['scene3.tif']
    code, o, e = _run(main, [*pre, src, out, *post, '-q'], capsys)
    assert (code, o[-1]) == (0, '5 scenes: 2 written, 3 skipped (already written), 0 failed'), (o, e)
    assert e == [f'rsnb-segment: {b}: made with other options; writing it again'], e
    assert {p.name: p.read_bytes() for p in out.iterdir()} == ref
    assert all(out.joinpath(k).stat().st_mtime_ns == v for k, v in t.items() if k not in ('scene1.tif', 'scene3.tif'))

# a write slowed down (the final outputs only) so that SIGTERM lands while scenes are in flight with staged files
SLOW = ("import sys, time\nimport rsnb.geo as g\nw = g.RasterWriter.write\n"
        "def slow(self, *a, **k):\n    if '.part.' in self.dest.name: time.sleep(1)\n    return w(self, *a, **k)\n"
        "g.RasterWriter.write = slow\nfrom rsnb.segmentation.cli import main\nsys.exit(main(sys.argv[1:]))\n")

def test_sigterm_many_scenes_in_flight(env, tmp_path, capsys):
    "SIGTERM while three scenes are in flight: exit 143 and one line; no staged file left; what is there is complete, and a rerun completes the rest, same bytes."
    import os, signal, subprocess, sys
    main, pre, src, post, ext, _ = _tools(env)['segment']
    out = tmp_path/'out'
    p = subprocess.Popen([sys.executable, '-c', SLOW, *map(str, [*pre, src, out, *post, '-q'])], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    t = time.time()
    while not (out.is_dir() and sum('.part.' in q.name for q in out.iterdir()) >= 2):   # two scenes writing at once
        assert p.poll() is None and time.time() - t < 120, p.communicate()
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM); o, e = p.communicate(timeout=120)
    assert (p.returncode, o, e.splitlines()) == (143, '', ['rsnb-segment: interrupted (SIGTERM)'])
    left = sorted(q.name for q in out.iterdir())
    assert all(n in [f'{k}{ext}' for k in NAMES] for n in left) and len(left) < 5, left      # no staged file
    assert _run(main, [*pre, src, tmp_path/'ref', *post, '-q'], capsys)[0] == 0
    kept = {n: (out/n).read_bytes() for n in left}
    code, o, e = _run(main, [*pre, src, out, *post, '-q'], capsys)
    assert (code, o[-1], e) == (0, f'5 scenes: {5 - len(left)} written, {len(left)} skipped (already written), 0 failed', []), (o, e)
    assert all((out/n).read_bytes() == b for n, b in kept.items())
    for n in NAMES: assert (out/f'{n}{ext}').read_bytes() == (tmp_path/'ref'/f'{n}{ext}').read_bytes(), n

# Where a signal lands. Raised inside an event's or a queue's lock bookkeeping (Condition.wait between releasing and
# re-taking its lock) it leaves the lock released twice: CI once saw `RuntimeError: release unlocked lock` instead of
# "interrupted (SIGTERM)". The main thread's waits run inside `signals_deferred`: the signal is raised by
# `check_interrupt`, between waits.

def _innermost(e):
    tb = e.__traceback__
    while tb.tb_next is not None: tb = tb.tb_next
    return tb.tb_frame.f_code.co_name

def _kill_later(s=0.3):
    import os, signal
    t = threading.Timer(s, os.kill, (os.getpid(), signal.SIGTERM)); t.start(); return t

def test_signal_held_until_safe_point():
    "In `signals_deferred` a signal raises only at `check_interrupt` (or the block's end); `signals_now` raises at once again; outside, a signal raises where it lands."
    import signal
    from rsnb.cli import signals_interrupt, signals_deferred, signals_now, check_interrupt, Interrupted
    ev = threading.Event()
    with pytest.raises(Interrupted) as e, signals_interrupt(), signals_deferred():
        signal.raise_signal(signal.SIGTERM)
        for _ in range(5): ev.wait(0.01)           # held: no raise inside the waits
        check_interrupt()
    assert (e.value.signum, _innermost(e.value)) == (signal.SIGTERM, 'check_interrupt')
    with pytest.raises(Interrupted) as e, signals_interrupt(), signals_deferred():
        signal.raise_signal(signal.SIGTERM); x = 1  # held until the block ends
    assert _innermost(e.value) == 'check_interrupt'
    with pytest.raises(Interrupted) as e, signals_interrupt(), signals_deferred(), signals_now():
        signal.raise_signal(signal.SIGTERM); time.sleep(5)
    assert _innermost(e.value) == 'on_signal'                        # the handler raised where the signal landed
    tb = e.value.__traceback__
    while tb.tb_next.tb_next is not None: tb = tb.tb_next
    assert tb.tb_frame.f_code.co_name == 'test_signal_held_until_safe_point'
    with signals_interrupt(), signals_deferred(): check_interrupt()   # nothing held: nothing raised

def test_signal_while_run_many_waits(tmp_path):
    "SIGTERM while `run_many` waits on its scenes: `Interrupted` comes from `check_interrupt`, the scenes finish before it propagates."
    import signal
    from rsnb.cli import signals_interrupt, Interrupted
    ended = []
    def one(ins, out):
        time.sleep(0.8); ended.append(out); return str(out)
    jobs = [((tmp_path/f'in{k}.tif',), tmp_path/f'out{k}.tif') for k in range(4)]
    a = argparse.Namespace(overwrite=False, shard=(0, 1), quiet=True, debug=False, prog='t')
    t0 = time.time(); _kill_later()
    with pytest.raises(Interrupted) as e, signals_interrupt(): run_many(a, jobs, one, complete=lambda o, i: True)
    assert (e.value.signum, _innermost(e.value)) == (signal.SIGTERM, 'check_interrupt')
    assert len(ended) == 3 and time.time() - t0 < 1.5, (ended, time.time() - t0)   # the three in flight ended; the fourth never started

def test_signal_while_pipeline_waits():
    "SIGTERM while a single-scene pipeline waits for its reader: `Interrupted` from `check_interrupt`, both stages stopped."
    import signal
    from rsnb.cli import signals_interrupt, Interrupted
    from rsnb.tiles import _pipelined
    got = []
    def batches():
        for k in range(20): time.sleep(0.1); yield k, [k], None
    before = threading.active_count()
    _kill_later(0.35)
    with pytest.raises(Interrupted) as e, signals_interrupt():
        _pipelined(batches(), lambda b, xs: b, lambda b, y: got.append(b), lambda: None, 2, {}, lambda seen, n: None)
    assert (e.value.signum, _innermost(e.value)) == (signal.SIGTERM, 'check_interrupt')
    assert 1 <= len(got) <= 4, got

def test_cleanup_error_after_signal_reported_as_interrupt(capsys):
    "An error raised while cleaning up after a signal (its context is the `Interrupted`) is reported as the interrupt: exit 143, one line."
    import signal
    from rsnb.cli import RsnbParser, cli_main, Interrupted
    def run(a):
        try: raise Interrupted(signal.SIGTERM)
        except Interrupted: raise RuntimeError('release unlocked lock')
    assert cli_main(RsnbParser(prog='rsnb-x'), run, []) == 143
    assert capsys.readouterr().err.splitlines() == ['rsnb-x: interrupted (SIGTERM)']
    def bad(a): raise RuntimeError('boom')                # without a signal: still an unexpected error
    assert cli_main(RsnbParser(prog='rsnb-x'), bad, []) == 1
    assert 'unexpected RuntimeError: boom' in capsys.readouterr().err
