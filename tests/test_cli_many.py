"""Many scenes per command (`rsnb.cli.run_many`): every raster command takes a folder or a list file and an output folder,
two processes (`--shard 0/2` and `1/2`, or the RANK/WORLD_SIZE a launcher sets) split 4 scenes between them and write
exactly what four single-scene runs write, a rerun skips what is there (resume), and one bad scene fails alone."""
import os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rsnb.geo import RasterMeta, write_raster
from rsnb.weights import save_model
from rsnb.classification.cli import main as classify
from rsnb.segmentation.cli import main as segment
from rsnb.change.cli import main as change, save_change_model
from rsnb.compression.cli import compress_main as compress, decompress_main as decompress
from rsnb.inpainting.cli import main as inpaint

torch.set_num_threads(1)
BIN = Path(sys.executable).parent
NAMES = [f'scene{k}' for k in range(4)]

def _meta(c=3, dtype='uint8', nodata=None, x0=500000):
    return RasterMeta(CRS.from_epsg(32633), Affine(10, 0, x0, 0, -10, 5000000), nodata, dtype, c, 64, 64)

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp('many'); m = d/'models'; m.mkdir()
    rng = np.random.default_rng(0)
    for k in ('rgb', 'A', 'B', 'gappy', 'masks', 'full'): (d/k).mkdir()
    for i, n in enumerate(NAMES):
        u8 = rng.integers(0, 255, (3, 64, 64), dtype=np.uint8)
        write_raster(d/'rgb'/f'{n}.tif', u8, _meta(x0=500000 + 640*i))
        write_raster(d/'A'/f'{n}.tif', u8, _meta(x0=500000 + 640*i))
        write_raster(d/'B'/f'{n}.tif', np.roll(u8, 8*i + 3, axis=2), _meta(x0=500000 + 640*i))
        g = rng.normal(2500, 300, (3, 64, 64)).astype(np.int16); full = g.copy(); g[:, :, i + 3::9] = -999
        write_raster(d/'gappy'/f'{n}.tif', g, _meta(dtype='int16', nodata=-999))
        write_raster(d/'full'/f'{n}.tif', full, _meta(dtype='int16', nodata=-999))
        write_raster(d/'masks'/f'{n}.tif', (g[:1] == -999).astype(np.uint8), _meta(1))
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
    save_model(SceneClassifier(3, arch='resnet18').eval(), m/'cls', dict(task='scene_classification', arch='resnet18', n_classes=3,
               classes=list('abc'), in_chans=3, bands=['r', 'g', 'b'], input_size=32, normalization=st))
    save_model(seg_model('fcn', 'resnet18', 3, 3, output_stride=16).eval(), m/'seg', dict(task='segmentation', arch='fcn', backbone='resnet18', impl='paddleseg',
               n_classes=3, in_chans=3, output_stride=16, palette=[[1, 2, 3]]*3, norm=dict(scale=255., mean=.5, std=.5)))
    save_change_model(change_model('dpcd', 3, 8), m/'chg', 'dpcd', BandStats.compute([u8.astype(np.float32)], names=['r', 'g', 'b']), width=8)
    save_model(MeanScaleHyperprior(8, 8).eval().update(), m/'codec', dict(task='compression', model_id='many-tiny', arch='MeanScaleHyperprior', kwargs=dict(N=8, M=8)))
    G = ECEAGenerator(3, img_size=32, dims=(8, 16), depths=(1, 1), heads=(1, 1), ps_hidden=8, ps_res=1, mid_res=1)
    save_ecea(G, m/'ecea', Scaler('reflectance', [0.]*3, [0.6]*3), band_names=('B3', 'B4', 'B5'))
    # the .rsc inputs of rsnb-decompress
    (d/'rsc').mkdir()
    for n in NAMES: assert compress([str(d/'rgb'/f'{n}.tif'), str(d/'rsc'/f'{n}.rsc'), '--model', str(m/'codec.pth'), '-q']) == 0
    return d

# tool: (console script, in-process main, argv before IN, input folder, argv after OUT, output ending, single-scene argv)
def _tools(d):
    m = d/'models'
    return dict(
        classify=('rsnb-classify', classify, [m/'cls.pth'], d/'rgb', ['--tile', '32'], '.tif', lambda n, o: [m/'cls.pth', d/'rgb'/f'{n}.tif', o, '--tile', '32']),
        segment=('rsnb-segment', segment, [m/'seg.pth'], d/'rgb', ['--tile', '64', '--overlap', '0'], '.tif', lambda n, o: [m/'seg.pth', d/'rgb'/f'{n}.tif', o, '--tile', '64', '--overlap', '0']),
        change=('rsnb-change', change, [m/'chg.pth'], d, ['--tile', '64', '--overlap', '0'], '.tif', lambda n, o: [m/'chg.pth', d/'A'/f'{n}.tif', d/'B'/f'{n}.tif', o, '--tile', '64', '--overlap', '0']),
        compress=('rsnb-compress', compress, [], d/'rgb', ['--model', m/'codec.pth'], '.rsc', lambda n, o: [d/'rgb'/f'{n}.tif', o, '--model', m/'codec.pth']),
        decompress=('rsnb-decompress', decompress, [], d/'rsc', ['--model', m/'codec.pth'], '.tif', lambda n, o: [d/'rsc'/f'{n}.rsc', o, '--model', m/'codec.pth']),
        inpaint=('rsnb-inpaint', inpaint, [], d/'gappy', ['--model', m/'ecea.pth'], '.tif', lambda n, o: [d/'gappy'/f'{n}.tif', o, '--model', m/'ecea.pth']),
    )

def _argv(*parts): return [str(p) for p in parts]

def _same(a:Path, b:Path):
    if a.suffix == '.rsc': return a.read_bytes() == b.read_bytes()
    with rasterio.open(a) as x, rasterio.open(b) as y:
        return (x.profile['dtype'], x.shape, x.count, x.crs, x.transform) == (y.profile['dtype'], y.shape, y.count, y.crs, y.transform) \
               and np.array_equal(x.read(), y.read(), equal_nan=True)

def _run(main, argv, capsys):
    code = main(_argv(*argv)); out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()

def _env(**kw):
    e = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')}
    e.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', **kw)
    return e

def _outputs(tool, ext):
    """What a tool leaves in its output folder: each scene's output and (issue 25) the category names of a class map with a
    class list (classify, change: `.aux.xml`) or the filled mask of a gap fill (inpaint, with its category names)."""
    side = {'classify': ['{n}{ext}.aux.xml'], 'change': ['{n}{ext}.aux.xml'], 'inpaint': ['{n}.filled.tif', '{n}.filled.tif.aux.xml']}.get(tool, [])
    return sorted(f.format(n=n, ext=ext) for n in NAMES for f in ['{n}{ext}', *side])


TOOLS = ['classify', 'segment', 'change', 'compress', 'decompress', 'inpaint']
SLOW = pytest.mark.skipif(not os.environ.get('RSNB_SLOW'), reason='slow: set RSNB_SLOW=1 (test_two_shards_four_scenes checks the same split in-process)')

def _by_flag(tool): return tool in ('classify', 'change', 'decompress')   # the others: by the RANK/WORLD_SIZE a launcher sets

def _reference(env, tool, tmp_path, capsys):
    "The four single-scene outputs of `tool`."
    script, main, pre, src, post, ext, single = _tools(env)[tool]
    ref = tmp_path/'ref'; ref.mkdir()
    for n in NAMES: assert main(_argv(*single(n, ref/f'{n}{ext}'), '-q')) == 0, capsys.readouterr().err
    capsys.readouterr()
    return ref

def _check_split(env, tool, out, ref, lines_by_rank, capsys):
    "Each shard wrote its half (in job order) and together exactly the single-scene outputs; a rerun resumes."
    script, main, pre, src, post, ext, single = _tools(env)[tool]
    for r, lines in enumerate(lines_by_rank):
        assert lines[-1] == f'4 scenes, shard {r}/2 takes 2: 2 written, 0 skipped (already written), 0 failed'
        assert [Path(l.split(':')[0]).name for l in lines[:-1]] == [f'{n}{ext}' for n in NAMES[r::2]]
    assert sorted(p.name for p in out.iterdir()) == _outputs(tool, ext)     # nothing else (no temporary files)
    for n in NAMES: assert _same(out/f'{n}{ext}', ref/f'{n}{ext}'), n
    # a rerun is a resume: what is there is kept, what is missing is written
    t = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, o, e = _run(main, [*pre, src, out, *post, '-q'], capsys)
    assert (code, o, e) == (0, ['4 scenes: 0 written, 4 skipped (already written), 0 failed'], [])
    (out/f'scene2{ext}').unlink()
    code, o, e = _run(main, [*pre, src, out, *post, '-q'], capsys)
    assert (code, o[-1], len(o)) == (0, '4 scenes: 1 written, 3 skipped (already written), 0 failed', 2)
    assert all(out.joinpath(k).stat().st_mtime_ns == v for k, v in t.items() if not k.startswith('scene2'))   # scene2 and its sidecars are new
    assert _same(out/f'scene2{ext}', ref/f'scene2{ext}')

@pytest.mark.parametrize('tool', TOOLS)
def test_two_shards_four_scenes(env, tool, tmp_path, capsys, monkeypatch):
    "The two shards (`--shard r/2`, or RANK/WORLD_SIZE), run here one after the other, split the scenes as two processes do."
    script, main, pre, src, post, ext, single = _tools(env)[tool]
    ref, out, lines = _reference(env, tool, tmp_path, capsys), tmp_path/'out', []
    for r in (0, 1):
        if not _by_flag(tool): monkeypatch.setenv('RANK', str(r)); monkeypatch.setenv('WORLD_SIZE', '2'); monkeypatch.setenv('LOCAL_RANK', str(r))
        code, o, e = _run(main, [*pre, src, out, *post, '-q', *(['--shard', f'{r}/2'] if _by_flag(tool) else [])], capsys)
        assert code == 0 and e == [], e
        lines.append(o)
    for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'): monkeypatch.delenv(k, raising=False)
    _check_split(env, tool, out, ref, lines, capsys)

@pytest.mark.parametrize('tool', [t if t == 'classify' else pytest.param(t, marks=[pytest.mark.slow, SLOW]) for t in TOOLS])
def test_two_processes_four_scenes(env, tool, tmp_path, capsys):
    "Two console processes at once (segment's RANK split under a real launcher: `test_accelerate_launch`)."
    script, main, pre, src, post, ext, single = _tools(env)[tool]
    ref, out = _reference(env, tool, tmp_path, capsys), tmp_path/'out'
    by_flag = _by_flag(tool)
    ps = [subprocess.Popen(_argv(BIN/script, *pre, src, out, *post, '-q', *(['--shard', f'{r}/2'] if by_flag else [])),
                           env=_env(**({} if by_flag else dict(RANK=str(r), WORLD_SIZE='2', LOCAL_RANK=str(r)))),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    res = [p.communicate(timeout=600) + (p.returncode,) for p in ps]
    for r, (o, e, code) in enumerate(res): assert code == 0 and e == '', e
    _check_split(env, tool, out, ref, [o.splitlines() for o, e, code in res], capsys)

@pytest.mark.parametrize('tool', ['segment', 'compress', 'inpaint'])
def test_bad_scene_fails_alone(env, tool, tmp_path, capsys):
    script, main, pre, src, post, ext, single = _tools(env)[tool]
    d = tmp_path/'in'; shutil.copytree(src, d)
    (d/'broken.tif').write_bytes(b'not a raster' * 50)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    code, o, e = _run(main, [*pre, d, tmp_path/'out', *post, '-q'], capsys)
    assert code == 1 and o[-1] == '5 scenes: 4 written, 0 skipped (already written), 1 failed', (o, e)
    assert len(e) == 1 and e[0].startswith(f'{script}: error: {d/"broken.tif"}') and 'Traceback' not in e[0], e
    assert sorted(p.name for p in (tmp_path/'out').iterdir()) == _outputs(tool, ext)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before

def test_change_forms(env, tmp_path, capsys):
    "Two folders, a folder with A/B sub-folders and a list file of pairs give the same maps."
    m = env/'models'/'chg.pth'; opt = ['--tile', '64', '--overlap', '0', '-q']
    assert _run(change, [m, env/'A', env/'B', tmp_path/'two', *opt], capsys)[0] == 0
    (tmp_path/'pairs.txt').write_text('# first date\tsecond date\n' + ''.join(f"{env/'A'/n}.tif\t{env/'B'/n}.tif\n" for n in NAMES))
    code, o, e = _run(change, [m, tmp_path/'pairs.txt', tmp_path/'list', *opt], capsys)
    assert (code, o[-1]) == (0, '4 scenes: 4 written, 0 skipped (already written), 0 failed'), e
    assert _run(change, [m, env, tmp_path/'layout', *opt], capsys)[0] == 0
    for n in NAMES: assert _same(tmp_path/'two'/f'{n}.tif', tmp_path/'list'/f'{n}.tif') and _same(tmp_path/'two'/f'{n}.tif', tmp_path/'layout'/f'{n}.tif')

def test_inpaint_masks(env, tmp_path, capsys):
    "A folder of masks matched by name, or masks in the list file's second column, fill the same pixels."
    m = env/'models'/'ecea.pth'
    code, o, e = _run(inpaint, [env/'full', tmp_path/'a', '--mask', env/'masks', '--model', m, '-q'], capsys)
    assert (code, o[-1]) == (0, '4 scenes: 4 written, 0 skipped (already written), 0 failed'), e
    (tmp_path/'l.txt').write_text(''.join(f"{env/'full'/n}.tif {env/'masks'/n}.tif\n" for n in NAMES))
    assert _run(inpaint, [tmp_path/'l.txt', tmp_path/'b', '--model', m, '-q'], capsys)[0] == 0
    for n in NAMES:
        assert _same(tmp_path/'a'/f'{n}.tif', tmp_path/'b'/f'{n}.tif')
        with rasterio.open(tmp_path/'a'/f'{n}.tif') as a, rasterio.open(env/'full'/f'{n}.tif') as f, rasterio.open(env/'masks'/f'{n}.tif') as k:
            gap = k.read(1) == 1; x, y = a.read(), f.read()
            assert gap.any() and np.array_equal(x[:, ~gap], y[:, ~gap]) and not np.array_equal(x[:, gap], y[:, gap])

def _usage(main, argv, capsys, text, tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    code, o, e = _run(main, argv, capsys)
    assert code == 2 and o == [] and len(e) == 1 and text in e[0] and 'Traceback' not in e[0], (code, o, e)
    assert sorted(p.name for p in tmp_path.iterdir()) == before    # no output folder or file left

def test_many_usage_errors(env, tmp_path, capsys):
    m, seg = env/'models', env/'models'/'seg.pth'
    (tmp_path/'l1.txt').write_text(f"{env/'rgb'}/scene0.tif\nnope.tif\n")
    (tmp_path/'l2.txt').write_text(f"{env/'rgb'}/scene0.tif\n{env/'A'}/scene0.tif\n")
    (tmp_path/'empty').mkdir()
    for argv, text in [
        ([seg, env/'rgb', env/'rgb'], 'output folder is the input folder'),
        ([seg, env/'rgb', tmp_path/'maps.tif'], 'looks like a file name'),
        ([seg, env/'rgb', env/'rgb'/'scene0.tif'], 'must be a folder'),
        ([seg, tmp_path/'l1.txt', tmp_path/'o'], f"l1.txt: line 2: {tmp_path/'nope.tif'}: file not found"),
        ([seg, tmp_path/'l2.txt', tmp_path/'o'], 'both'),
        ([seg, tmp_path/'empty', tmp_path/'o'], 'empty: folder holds no input rasters'),
        ([seg, env/'rgb', tmp_path/'o', '--shard', '2/2'], "--shard '2/2'"),
        ([seg, env/'rgb', tmp_path/'no'/'o'], 'output folder does not exist'),
    ]: _usage(segment, argv, capsys, text, tmp_path)
    chg = m/'chg.pth'
    for argv, text in [
        ([chg, env/'A', env/'rgb'/'scene0.tif', tmp_path/'o'], 'is a folder but'),
        ([chg, env/'rgb', tmp_path/'o'], 'must hold date sub-folders'),
        ([chg, tmp_path/'l2.txt', tmp_path/'o'], 'line 1: 1 paths, expected 2'),
    ]: _usage(change, argv, capsys, text, tmp_path)
    (tmp_path/'B2').mkdir(); shutil.copy(env/'B'/'scene0.tif', tmp_path/'B2')
    _usage(change, [chg, env/'A', tmp_path/'B2', tmp_path/'o'], capsys, 'no second-date raster for', tmp_path)
    _usage(inpaint, [env/'gappy', tmp_path/'o', '--mask', env/'masks'/'scene0.tif', '--model', m/'ecea.pth'], capsys, 'must be a folder of masks', tmp_path)

def test_accelerate_launch(env, tmp_path):
    "`accelerate launch` with 2 CPU processes shards the scenes by rank: each writes its half, together all four."
    acc = BIN/'accelerate'
    if not acc.exists(): pytest.skip('accelerate is not installed')
    m = env/'models'/'seg.pth'; out = tmp_path/'out'
    cmd = _argv(acc, 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
                '--dynamo_backend', 'no', BIN/'rsnb-segment', m, env/'rgb', out, '--tile', '64', '--overlap', '0', '-q')
    r = subprocess.run(cmd, env=_env(ACCELERATE_USE_CPU='true'), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    summ = sorted(l for l in r.stdout.splitlines() if 'scenes' in l)
    assert summ == [f'4 scenes, shard {k}/2 takes 2: 2 written, 0 skipped (already written), 0 failed' for k in (0, 1)], r.stdout
    assert sorted(p.name for p in out.iterdir()) == [f'{n}.tif' for n in NAMES]
    ref = tmp_path/'ref.tif'
    assert segment(_argv(m, env/'rgb'/'scene3.tif', ref, '--tile', '64', '--overlap', '0', '-q')) == 0
    assert _same(out/'scene3.tif', ref)
