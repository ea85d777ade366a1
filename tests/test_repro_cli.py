"""`rsnb-repro` end to end (papermill, as a user runs it), its command-line convention, and the one results table
every reproduction notebook ends with, fed with the shapes of the five paper notebooks' `results.json`."""
import json, subprocess, sys, time
from pathlib import Path
import nbformat as nbf
import pytest
import rsnb.repro as repro
from rsnb.repro import results_table, ResultsTable
from rsnb.core import DataMissing
from rsnb.train import CKPT_FORMAT, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def cli(*args, **kw):
    return subprocess.run([str(BIN/'rsnb-repro'), *map(str, args)], capture_output=True, text=True, cwd=ROOT, **kw)

def test_demo_cli_writes_results(tmp_path):
    out = cli('demo', '--out', tmp_path, '--set', 'n=100', '--set', 'seed=1')
    assert out.returncode == 0, out.stderr
    res = list(tmp_path.glob('demo/*/results.json'))
    assert len(res) == 1
    r = json.loads(res[0].read_text())
    assert r['params'] == {'n': 100, 'noise': 0.1, 'seed': 1}
    assert abs(r['measured']['line']['slope'] - 2) < 0.1
    assert (res[0].parent/'demo.ipynb').exists()             # the executed notebook is kept beside the results
    lines = out.stdout.splitlines()                           # the table is printed on stdout, progress is not
    head = next(l for l in lines if l.startswith('dataset'))
    assert head.split() == ['dataset', 'model', 'metric', 'paper', 'rsnb', 'difference', 'rsnb', 'configuration']
    slope = next(l for l in lines if ' slope ' in l).split()
    assert slope[:3] == ['line', 'slope', '2'] and abs(float(slope[3]) - 2) < 0.1 and ' '.join(slope[5:]) == 'CPU scale: n 100, seed 1'
    assert 'Executing' not in out.stdout and 'Traceback' not in out.stderr

@pytest.mark.parametrize('args,needle', [
    (('nonexistent',), "no reproduction notebook for 'nonexistent'"),
    (('demo', '--set', 'typo=1'), "unknown parameter 'typo' of nbs/papers/demo.ipynb (valid: n, noise, seed)"),
    (('demo', '--set', 'nois=1'), "did you mean 'noise'"),
    (('demo', '--set', 'n'), '--set n: expected NAME=VALUE'),
    (('demo', '--set', 'out_dir=x'), 'use --out'),
    (('demo', '--params', 'nope'), 'nope: no such parameters file (for demo: full)'),
    (('demo', '--bogus'), 'unrecognized arguments: --bogus'),
])
def test_usage_errors(tmp_path, args, needle):
    "Usage errors: exit 2, one line `rsnb-repro: error: ...` naming the problem, no traceback, nothing run."
    out = cli(*args, '--out', tmp_path)
    assert out.returncode == 2, (out.returncode, out.stderr)
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('rsnb-repro: error: ') and needle in last, out.stderr
    assert 'Traceback' not in out.stderr and not any(tmp_path.iterdir())

def test_bad_params_file_is_a_usage_error(tmp_path):
    p = tmp_path/'mine.yaml'; p.write_text('n: 10\nepochs: 3\n')
    out = cli('demo', '--params', p, '--out', tmp_path/'runs')
    assert out.returncode == 2 and "mine.yaml: unknown parameter 'epochs'" in out.stderr and 'Traceback' not in out.stderr
    p.write_text('n: [1\n')
    out = cli('demo', '--params', p, '--out', tmp_path/'runs')
    assert out.returncode == 2 and 'not valid YAML' in out.stderr

def test_every_params_file_names_real_parameters():
    for f in sorted((ROOT/'nbs'/'papers'/'params').glob('*.yaml')):
        paper = next(p for p in repro.list_papers() if f.stem.startswith(p + '_'))
        repro.load_params(paper, str(f))

def test_help_is_fast():
    t = time.time(); out = cli('--help')
    assert out.returncode == 0 and '--set NAME=VALUE' in out.stdout and 'Exit status' in out.stdout
    assert time.time() - t < 3, time.time() - t

def test_runtime_error_exits_1(tmp_path, monkeypatch):
    nb = nbf.v4.new_notebook()
    p = nbf.v4.new_code_cell("out_dir = 'x'"); p.metadata['tags'] = ['parameters']
    nb.cells = [p, nbf.v4.new_code_cell("raise ValueError('boom')")]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    (tmp_path/'papers').mkdir(); nbf.write(nb, tmp_path/'papers'/'fails.ipynb')
    monkeypatch.setattr(repro, 'papers_dir', lambda: tmp_path/'papers')
    assert repro.main(['fails', '--out', str(tmp_path/'runs'), '-q']) == 1

def test_missing_data_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    nb = nbf.v4.new_notebook()
    p = nbf.v4.new_code_cell("out_dir = 'x'"); p.metadata['tags'] = ['parameters']
    nb.cells = [p, nbf.v4.new_code_cell("from rsnb.core import data_path\ndata_path('no_such_dataset', hint='https://example.org/get-it')")]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    (tmp_path/'papers').mkdir(); nbf.write(nb, tmp_path/'papers'/'needsdata.ipynb')
    monkeypatch.setattr(repro, 'papers_dir', lambda: tmp_path/'papers')
    with pytest.raises(DataMissing, match='no_such_dataset.*example.org/get-it'):
        repro.run_paper('needsdata', out_root=tmp_path/'runs', progress=False)

# --- the results table, with the shapes each paper notebook passes to record_results ---------------------------------

BAHRI = dict(paper='bahri2019',
    params=dict(dataset='aid150', split='50/50', arch='tf_efficientnet_lite0', pretrained=True, loss='ice', faithful=False, se=True,
                epochs=2, lr=0.01, batch=16, image_size=96, max_per_class=10, augment=True, seed=0),
    reference={'UCM 80/20 SE+ICE': {'oa': 99.52}, 'AID 50/50 SE+ICE': {'oa': 97.08, 'oa_lo': 96.7, 'oa_hi': 97.5},
               'AID 50/50 SE+CE': {'oa': 96.64}},
    measured={'aid150 50/50 tf_efficientnet_lite0 ICE fine-tune': dict(oa=10.67, oa_lo=6.0, oa_hi=16.0, kappa=0.076, n_test=150, train_s=58.2),
              'aid150 50/50 frozen tf_efficientnet_lite0 SE+ICE': dict(oa=80.78, oa_std=1.0, seeds=3),
              'aid150 50/50 frozen tf_efficientnet_lite0 SE+CE': dict(oa=82.36, oa_std=0.13, seeds=3)})
RSSEG = dict(paper='rsseg_benchmark', params=dict(dataset='dubai', models=['fcn', 'deeplabv3p'], backbone='resnet18', iters=150),
    reference={},
    measured={'fcn-resnet18': {'miou': 22.84, 'miou_standard': 22.84, 'iou_building': 0.73, 'iou_water': 80.63},
              'deeplabv3p-resnet18': {'miou': 23.21, 'miou_standard': 23.21, 'iou_building': 2.37, 'iou_water': 78.2}})
RSSEG_POTSDAM = dict(RSSEG, params=dict(RSSEG['params'], dataset='potsdam'),
    reference={'deeplabv3p-resnet50_vd': {'miou': 77.93}, 'fcn-hrnet_w18': {'miou': 78.13}},
    measured={'deeplabv3p-resnet50_vd': {'miou': 75.0, 'iou_water': 90.0}})
SGSLN = dict(paper='sgsln', params=dict(dataset='oscd_rgb128', model='dpcd', width=8, epochs=2),
    reference={k: {'f1': v} for k, v in dict(levir_cd=92.33, whu_cd=94.86, cdd=97.77).items()},
    measured={'oscd_rgb128/dpcd': dict(precision=0.0, recall=0.0, f1=0.0, iou=0.0, oa=96.37, kappa=0.0),
              'oscd_rgb128/unet/3seeds': dict(f1=12.5, f1_std=3.0, cpu_s_per_epoch=4.0)})
EGAN = dict(paper='egan', params=dict(model_id='compression_msh_default', n_images=2),
    reference={'EGA-Net lo (Vaihingen)': dict(bpp=0.13, psnr=29.1, ssim=0.936, fits=0.668, lpips=0.118),
               'JPEG2000 @0.40 (Vaihingen)': dict(bpp=0.40, psnr=30.95, ssim=0.963, fits=0.729, lpips=0.102)},
    measured={'learned msh lo (Landsat-8 held-out)': dict(bpp=0.377, bpp_stream=0.325, bpp_est=0.318, psnr=29.93, ms_ssim=0.935, lpips=0.231, vif=0.314),
              'EGA-Net GAN decoder lo (Landsat-8 held-out)': dict(bpp=0.42, psnr=28.16, ms_ssim=0.90),
              'BD vs anchors: avif': {'bd_rate_vs_jpeg2000_%': -17.9, 'bd_psnr_vs_jpeg2000': 0.74},
              'speed: jpeg': dict(encode_MP_s=50.0, decode_MP_s=80.0),
              'S2 13-band jpeg2000 @0.5': dict(bpp=0.5, psnr=40.1),
              'downstream F1 jpeg @0.3': dict(bpp=0.31, precision=0.11, recall=0.5, f1=0.2, iou=0.1)})
ECEA = dict(paper='ecea', params=dict(img_size=64, steps=60),
    reference={'FillNodata': dict(rmse=0.016, psnr=29.17), 'temporal_LLHM': dict(rmse=0.0246, psnr=25.14)},
    measured={'ECEA': dict(rmse=0.0205, psnr=25.88)})
DEMO = dict(paper='demo', params=dict(n=200, noise=0.1, seed=0),
    reference={'line': {'slope': 2.0, 'intercept': 1.0}}, measured={'line': {'slope': 2.01, 'intercept': 0.99}})

def keyed(t): return {(r['dataset'], r['model'], r['metric']): (r['paper'], r['rsnb']) for r in t.rows}

def check_layout(t):
    "Rows with a paper value come first, then the rsnb-only rows grouped by dataset (each dataset one block)."
    kinds = [r['paper'] is None for r in t.rows]
    assert kinds == sorted(kinds), 'a paper row after an rsnb-only row'
    ds = [r['dataset'] for r in t.rows if r['paper'] is None]
    assert [d for i, d in enumerate(ds) if i == 0 or d != ds[i - 1]] == list(dict.fromkeys(ds)), 'rsnb-only datasets interleaved'
    s, h, m = str(t), t._repr_html_(), t._repr_markdown_()
    assert s.splitlines()[0].split()[:3] == ['dataset', 'model', 'metric'] and '<table' in h and '| dataset |' in m
    w = {len(l) for l in s.splitlines()[:2]}; assert len(w) == 1, 'header and rule not aligned'

def test_table_bahri():
    t = results_table(BAHRI); check_layout(t); k = keyed(t)
    assert k[('AID 50/50', 'SE+ICE', 'oa')] == (97.08, 10.67) and k[('AID 50/50', 'SE+ICE', 'oa_hi')] == (97.5, 16.0)
    # paper rows rsnb did not measure in this run say why, and the configuration names the command that would
    assert k[('AID 50/50', 'SE+CE', 'oa')] == (96.64, 'not in this run (CPU-scale on the AID sample)')
    assert next(r for r in t.rows if r['model'] == 'SE+CE')['rsnb configuration'] == 'rsnb-repro bahri2019 --set loss=ce'
    assert k[('UCM 80/20', 'SE+ICE', 'oa')][0] == 99.52 and k[('UCM 80/20', 'SE+ICE', 'oa')][1].startswith('needs UCM in $RSNB_DATA')
    assert t.answered == {'measured': 3, 'proxy': 0, 'status': 2, 'open': 0}
    assert k[('AID 50/50', 'SE+ICE, frozen backbone', 'oa')] == (None, 80.78)
    assert ('AID 50/50', 'SE+ICE', 'kappa') not in k and t.hidden == 7       # kappa, n_test, train_s, oa_std x2, seeds x2
    row = next(r for r in t.rows if r['metric'] == 'oa' and r['rsnb'] == 10.67)
    assert abs(row['difference'] - (10.67 - 97.08)) < 1e-9 and row['rsnb configuration'].startswith('CPU scale: dataset aid150')
    assert ('AID 50/50', 'SE+ICE', 'kappa') in keyed(results_table(BAHRI, metrics='all'))

def test_table_rsseg_dubai_is_not_potsdam():
    t = results_table(RSSEG); check_layout(t); k = keyed(t)
    assert k == {('Dubai', 'fcn-resnet18', 'miou'): (None, 22.84), ('Dubai', 'fcn-resnet18', 'miou_standard'): (None, 22.84),
                 ('Dubai', 'deeplabv3p-resnet18', 'miou'): (None, 23.21), ('Dubai', 'deeplabv3p-resnet18', 'miou_standard'): (None, 23.21)}
    t = results_table(RSSEG_POTSDAM); check_layout(t); k = keyed(t)
    assert k[('Potsdam', 'deeplabv3p-resnet50_vd', 'miou')] == (77.93, 75.0) and k[('Potsdam', 'fcn-hrnet_w18', 'miou')] == (78.13, None)

def test_table_sgsln():
    t = results_table(SGSLN); check_layout(t); k = keyed(t)
    assert k[('levir_cd', 'DPCD', 'f1')] == (92.33, 'needs LEVIR-CD + GPU') and k[('oscd_rgb128', 'DPCD', 'f1')] == (None, 0.0)
    assert t.answered['open'] == 0 and t.answered['measured'] == 0
    assert k[('oscd_rgb128', 'U-Net, mean of 3 seeds', 'f1')] == (None, 12.5)
    assert all(r['dataset'] != 'oscd_rgb128' for r in t.compared)

def test_table_egan():
    t = results_table(EGAN); check_layout(t); k = keyed(t)
    # a proxy: rsnb's own EGA-Net on Landsat-8 beside the paper's Vaihingen number, with no difference computed
    assert k[('Vaihingen', 'EGA-Net lo', 'psnr')] == (29.1, 28.16)
    r = next(r for r in t.rows if r['model'] == 'EGA-Net lo' and r['metric'] == 'psnr')
    assert r['difference'] is None and r['rsnb configuration'].startswith('baseline:') and 'not Vaihingen' in r['rsnb configuration']
    assert k[('Vaihingen', 'EGA-Net lo', 'fits')] == (0.668, 'FITS: not computed by rsnb')
    assert t.answered == {'measured': 0, 'proxy': 2, 'status': 8, 'open': 0}
    assert k[('Landsat-8 held-out', 'learned msh lo', 'psnr')] == (None, 29.93)
    assert k[('Landsat-8 held-out', 'avif (BD vs anchors)', 'bd_rate_vs_jpeg2000_%')] == (None, -17.9)
    assert k[('SZTAKI AirChange (change F1 after decoding)', 'jpeg @0.3', 'f1')] == (None, 0.2)
    assert ('Landsat-8 held-out', 'learned msh lo', 'bpp_stream') not in k and t.hidden > 0
    assert len(results_table(EGAN, metrics='all').rows) == 10 + 7 + 3 + 2 + 2 + 2 + 5

def test_table_ecea_baselines_are_not_paper_values():
    t = results_table(ECEA); check_layout(t)
    assert not t.compared and {r['model'] for r in t.rows} == {'FillNodata', 'temporal_LLHM', 'ECEA'}
    assert {r['rsnb configuration'] for r in t.rows if r['model'] != 'ECEA'} == {'baseline, measured by rsnb'}

def test_table_demo_and_record(tmp_path):
    p = repro.record_results(tmp_path, 'demo', DEMO['measured'], DEMO['reference'], DEMO['params'], config='released weights (toy)',
                             rows={'line': {'dataset': 'y = 2x + 1', 'model': 'least squares'}})
    r = json.loads(p.read_text())
    assert r['measured'] == DEMO['measured'] and r['reference'] == DEMO['reference']     # results.json keeps everything
    t = results_table(r); check_layout(t)
    assert keyed(t) == {('y = 2x + 1', 'least squares', 'slope'): (2.0, 2.01), ('y = 2x + 1', 'least squares', 'intercept'): (1.0, 0.99)}
    assert {r['rsnb configuration'] for r in t.rows} == {'released weights (toy)'}
    assert isinstance(t, ResultsTable) and 'least squares' in str(t) and '+0.01' in str(t)

def test_full_params_are_called_full():
    full = repro.load_params('demo', 'full')
    assert repro.run_config(dict(paper='demo', params=full)) == 'full'
    assert repro.run_config(dict(paper='demo', params={**full, 'n': 5})) == 'CPU scale: n 5'

# --- run folders: params.yaml, --resume, --run-dir, --processes ---------------------------------------------------

# a notebook shaped like a trainer: counts steps, writes checkpoint.pth after each, can be interrupted (stop_after),
# continues from the checkpoint with resume=True
# (its checkpoints are plain data in the format of rsnb.train.Checkpoint, which `--resume` checks before the notebook runs)
TRAINER = '''import torch
from pathlib import Path
from rsnb.repro import record_results
ck = Path(out_dir)/'train'/'checkpoint.pth'
step = torch.load(ck, weights_only=True)['step'] if resume else 0
start = step
while step < steps:
    step += 1
    ck.parent.mkdir(parents=True, exist_ok=True); torch.save(dict(format=%r, step=step), ck)
    if stop_after is not None and step == stop_after: raise RuntimeError(f'interrupted at step {step}')
record_results(out_dir, 'trainer', measured={'run': {'steps': step, 'started_at': start}}, reference={},
               params=dict(steps=steps, stop_after=stop_after))''' % CKPT_FORMAT

def _papers(tmp_path, monkeypatch, **nbs):
    (tmp_path/'papers'/'params').mkdir(parents=True)
    for name, (params, body) in nbs.items():
        nb = nbf.v4.new_notebook()
        p = nbf.v4.new_code_cell(params); p.metadata['tags'] = ['parameters']
        nb.cells = [p, nbf.v4.new_code_cell(body)]
        nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
        nbf.write(nb, tmp_path/'papers'/f'{name}.ipynb')
    monkeypatch.setattr(repro, 'papers_dir', lambda: tmp_path/'papers')

def run_main(*args, capsys):
    code = repro.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err

def test_resume_continues_an_interrupted_run(tmp_path, monkeypatch, capsys):
    _papers(tmp_path, monkeypatch, trainer=("steps = 5\nstop_after = None\nresume = False\nout_dir = 'x'", TRAINER))
    code, out, err = run_main('trainer', '--out', tmp_path/'runs', '--set', 'stop_after=2', '-q', capsys=capsys)
    assert code == 1 and 'interrupted at step 2' in err.strip().splitlines()[-1]
    run, = (tmp_path/'runs'/'trainer').iterdir()
    assert yaml_load(run/'params.yaml') == {'stop_after': 2}                   # what the run was given
    assert load_checkpoint(run/'train'/'checkpoint.pth')['step'] == 2 and not (run/'results.json').exists()
    code, out, err = run_main('trainer', '--resume', run, '--set', 'stop_after=null', '-q', capsys=capsys)
    assert code == 0, err
    r = json.loads((run/'results.json').read_text())
    assert r['measured']['run'] == {'steps': 5, 'started_at': 2}               # continued from the checkpoint, not from 0
    assert yaml_load(run/'params.yaml') == {'stop_after': None}                # the --set is kept for a later resume
    assert sorted(p.name for p in (tmp_path/'runs'/'trainer').iterdir()) == [run.name]   # the same folder, no new one
    assert 'continuing' in err and 'trainer: results in' in out and 'started_at' in out

def yaml_load(p):
    import yaml
    return yaml.safe_load(Path(p).read_text())

def test_resume_errors(tmp_path, monkeypatch, capsys):
    _papers(tmp_path, monkeypatch, trainer=("steps = 5\nstop_after = None\nresume = False\nout_dir = 'x'", TRAINER),
            other=("resume = False\nout_dir = 'x'", "pass"), noresume=("n = 1\nout_dir = 'x'", "pass"))
    runs = tmp_path/'runs'
    fresh = repro.new_run_dir('trainer', {'steps': 3}, runs)
    (fresh.parent/'stray').mkdir()
    cases = [(('trainer', '--resume', runs/'missing'), 'missing: no such run folder'),
             (('trainer', '--resume', fresh.parent/'stray'), 'not a run folder of rsnb-repro (no params.yaml)'),
             (('other', '--resume', fresh), f'a run of trainer, not of other'),
             (('trainer', '--resume', fresh), 'no checkpoint yet'),
             (('trainer', '--resume', fresh, '--params', 'full'), 'drop --params'),
             (('trainer', '--resume', fresh, '--set', 'typo=1'), "unknown parameter 'typo'")]
    for args, needle in cases:
        code, out, err = run_main(*args, '-q', capsys=capsys)
        assert code == 2 and needle in err and err.count('\n') == 1 and err.startswith('rsnb-repro: error: '), (args, err)
    n = repro.new_run_dir('noresume', {}, runs); (n/'checkpoint.pth').write_text('{}')
    code, out, err = run_main('noresume', '--resume', n, capsys=capsys)
    assert code == 2 and "no 'resume' parameter" in err
    (fresh/'params.yaml').write_text('# rsnb-repro run of trainer, started now\nsteps: [1\n'); (fresh/'checkpoint.pth').write_text('{}')
    code, out, err = run_main('trainer', '--resume', fresh, capsys=capsys)
    assert code == 2 and 'params.yaml: not valid YAML' in err
    assert sorted(p.name for p in (runs/'trainer').iterdir()) == sorted([fresh.name, 'stray'])   # nothing new was made

def test_run_dir_and_processes_arguments(tmp_path, monkeypatch, capsys):
    _papers(tmp_path, monkeypatch, trainer=("steps = 2\nstop_after = None\nresume = False\nout_dir = 'x'", TRAINER))
    run = repro.new_run_dir('trainer', {'steps': 3}, tmp_path/'runs')
    for args, needle in [(('--processes', '0'), 'expected an integer ≥ 1'), (('--num-processes', 'two'), 'expected an integer'),
                         (('--run-dir', run, '--processes', '2'), '--run-dir: not with'),
                         (('--run-dir', run, '--params', 'x'), '--run-dir: not with'),
                         (('--run-dir', tmp_path), 'not a run folder of rsnb-repro')]:
        code, out, err = run_main('trainer', *args, '--out', tmp_path/'runs', capsys=capsys)
        assert code == 2 and needle in err, (args, err)
    code, out, err = run_main('trainer', '--run-dir', run, '-q', capsys=capsys)   # one rank by hand: the folder's own params
    assert code == 0, err
    assert json.loads((run/'results.json').read_text())['measured']['run']['steps'] == 3 and (run/'trainer.ipynb').exists()

def test_launch_command_line(tmp_path, monkeypatch):
    cmd = repro.launch_command('demo', tmp_path, 3, port=29600)
    assert Path(cmd[0]).name == 'accelerate' and cmd[1] == 'launch'
    opt = {cmd[i]: cmd[i + 1] for i in range(2, cmd.index('-m')) if cmd[i].startswith('--') and not cmd[i + 1].startswith('--')}
    assert opt == {'--num_processes': '3', '--num_machines': '1', '--mixed_precision': 'no', '--dynamo_backend': 'no',
                   '--main_process_port': '29600'} and '--multi_gpu' in cmd
    assert cmd[cmd.index('-m'):] == ['-m', 'rsnb.repro', 'demo', '--run-dir', str(tmp_path.resolve()), '-q']
    assert repro.launch_command('demo', tmp_path, 2, resume=True)[-2:] == ['--set', 'resume=true']
    c = repro.launch_command('demo', tmp_path, 2); assert int(c[c.index('--main_process_port') + 1]) > 1024   # a free port
    env = repro.launch_env({'device': 'cpu'}, {'PATH': '/bin'})
    assert env['ACCELERATE_USE_CPU'] == 'true' and env['CUDA_VISIBLE_DEVICES'] == '' and env['OMP_NUM_THREADS'] == '1'
    assert env['PATH'] == '/bin'
    # the parent runs what launch_command says, streams it to stderr and reports a failing rank's error line
    seen = {}
    class FakePopen:
        def __init__(self, cmd, env=None, **kw): seen['cmd'], seen['env'] = cmd, env; self.returncode = 1
        def __enter__(self):
            self.stdout = iter(['[rank1] boom\n', 'rsnb-repro: error: x.ipynb: the notebook failed in cell 3: ValueError: bad\n']); return self
        def __exit__(self, *a): return False
    import subprocess
    monkeypatch.setattr(subprocess, 'Popen', FakePopen)
    from rsnb.core import RsnbError
    with pytest.raises(RsnbError, match='2-process run failed.*cell 3: ValueError: bad'):
        repro.launch_run('demo', tmp_path, {'n': 3}, 2, progress=False)
    assert seen['cmd'][seen['cmd'].index('--num_processes') + 1] == '2' and seen['cmd'][-1] == '-q'

def test_rank1_record_results_leaves_the_run_folder_alone(tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '1')
    p = repro.record_results(tmp_path, 'demo', {'line': {'slope': 2.0}}, {})
    assert not (tmp_path/'results.json').exists() and json.loads(p.read_text())['measured'] == {'line': {'slope': 2.0}}
    monkeypatch.setenv('RANK', '0')
    assert repro.record_results(tmp_path, 'demo', {'line': {'slope': 2.0}}, {}) == tmp_path/'results.json'

@pytest.mark.slow
@pytest.mark.skipif(not __import__('os').environ.get('RSNB_SLOW'), reason='slow (2-process demo run): set RSNB_SLOW=1')
def test_demo_two_processes(tmp_path):
    out = cli('demo', '--out', tmp_path, '--set', 'n=100', '--processes', '2', timeout=600,
              env={**__import__('os').environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stderr[-3000:]
    run, = (tmp_path/'demo').iterdir()
    assert sorted(p.name for p in run.iterdir()) == ['demo.ipynb', 'params.yaml', 'rank1.ipynb', 'results.json']
    r = json.loads((run/'results.json').read_text())
    assert r['params']['n'] == 100 and abs(r['measured']['line']['slope'] - 2) < 0.2
    rank1 = nbf.read(run/'rank1.ipynb', as_version=4)        # rank 1 executed the whole notebook too
    assert rank1.cells[-1].outputs and 'on 2 processes' in out.stderr
    assert next(l for l in out.stdout.splitlines() if l.startswith('dataset')).split()[:3] == ['dataset', 'model', 'metric']
