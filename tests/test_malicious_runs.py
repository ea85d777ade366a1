"""Run folders and resume checkpoints are a trust boundary: a run folder shared by a colleague, copied from a cluster or
downloaded with a paper's results must not run code when a run resumes from it.

Every torch file of the hostile corpus (`tests/malicious.py`: zip and legacy format, `.pth` / `.pth.tar`, the payload
beside a state dict or wrapped in `{'net'}`, `{'state_dict'}`, `{'model', 'rng'}`, plus a tensor declaring 4 TiB) is put
where a trainer writes its `checkpoint.pth` in a real run folder (`params.yaml` written by `rsnb-repro`), then fed to
`rsnb-repro PAPER --resume RUN_DIR` for every paper whose notebook resumes (the console script as a subprocess, and the
same `main` in process for the whole matrix), to `rsnb.train.Checkpoint(resume=True)`, `load_checkpoint`,
`upgrade_checkpoint`, and to the resume API of each trainer (segmentation `fit_iters`, change `train_change`, the codec's
`codec_learner`, ECEA's `train_ecea`, classification `fit_scene`). The YAML files go to `--params`, `--set` and a run
folder's `params.yaml` (with `--resume` and `--run-dir`); so does a `!!binary` value, which `yaml.safe_load` accepts and
papermill would write into the parameters cell as code.

Each case asserts: the marker file never appears; the error is one line naming the file (or the `--set` name) and the
problem, with exit status 2 from the command and no traceback; the run folder's files are byte-identical afterwards
(hashed before and after) and nothing was added next to them (no staged file, no new run folder).
`test_malicious_corpus.py` proves that each of these files does run its payload when loaded unsafely.
"""
import base64, hashlib, json, shutil, subprocess, sys
from pathlib import Path
import pytest
import torch
import rsnb.repro as repro
from rsnb.core import RsnbError
from rsnb.train import CKPT_FORMAT
from malicious import corpus, write_yaml, yaml_set_value, payload_code

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAPERS = [p for p in repro.list_papers() if 'resume' in repro.notebook_params(p)]
# where each paper's trainer writes its checkpoint inside the run folder (the notebooks' run_dir)
CKPT_AT = {'bahri2019': 'fine_tune', 'ecea': 'train', 'rsseg_benchmark': 'runs/deeplabv3p-resnet18', 'sgsln': 'train', 'egan': '.'}

@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp('hostile')
    files = corpus(d/'corpus', d/'MARKER')
    torch_files = {n: p for n, p in files.items() if n.startswith('torch_') or n == 'absurd_size.pth'}
    return dict(dir=d, marker=d/'MARKER', torch=torch_files, yaml=files['params.yaml'])

def test_the_matrix_is_complete(hostile):
    assert sorted(PAPERS) == ['bahri2019', 'ecea', 'egan', 'rsseg_benchmark', 'sgsln'] and set(CKPT_AT) == set(PAPERS)
    assert len(hostile['torch']) == 9    # zip + legacy × (.pth, {'net'}, .pth.tar, {'model', 'rng'}) + the absurd size

def snapshot(root) -> dict:
    "Every entry under `root` (hidden ones too) with the SHA-256 of each file."
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else 'dir'
            for p in sorted(Path(root).rglob('*'))}

def run_folder(root, paper, src=None):
    "A run folder as `rsnb-repro` makes it (params.yaml with its header), `src` as the trainer's checkpoint.pth."
    run = repro.new_run_dir(paper, {}, root)
    if src is not None:
        at = run/CKPT_AT[paper]; at.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, at/'checkpoint.pth')
    return run

def one_line(err:str) -> str:
    assert 'Traceback' not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]

def check_refused(line, where, name):
    "The line names the file and says why: a global that would be called, or the absurd size."
    assert str(where) in line, line
    why = 'a tensor declares 4,398,046,511,104 bytes' if name == 'absurd_size.pth' else 'refused: not plain data, it names '
    assert why in line, line
    if name != 'absurd_size.pth':
        assert line.split('it names ')[1].split(',')[0] == ('posix.system' if name.endswith('.pth.tar') else 'builtins.exec'), line

def cli(*args):
    return subprocess.run([str(BIN/'rsnb-repro'), *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=600)

# --- rsnb-repro PAPER --resume RUN_DIR ---------------------------------------------------------------------------------

def test_resume_refuses_every_hostile_checkpoint_in_process(hostile, tmp_path, capsys):
    "The whole matrix (every paper that resumes × every torch file) through `rsnb-repro`'s `main`."
    n = 0
    for paper in PAPERS:
        for name, src in hostile['torch'].items():
            root = tmp_path/f'{paper}-{name}'
            run = run_folder(root, paper, src); before = snapshot(root)
            code = repro.main([paper, '--resume', str(run), '-q'])
            out, err = capsys.readouterr()
            line = one_line(err)
            assert code == 2 and line.startswith('rsnb-repro: error: ') and out == '', (paper, name, code, err)
            check_refused(line, run/CKPT_AT[paper]/'checkpoint.pth' if CKPT_AT[paper] != '.' else run/'checkpoint.pth', name)
            assert snapshot(root) == before, (paper, name)
            assert not hostile['marker'].exists(), (paper, name)
            n += 1
    assert n == len(PAPERS) * len(hostile['torch']) == 45

def test_resume_refuses_hostile_checkpoints_console_script(hostile, tmp_path):
    "The console script as a user runs it: each paper with another file of the corpus (the full matrix: the slow test)."
    names = sorted(hostile['torch'])
    for i, paper in enumerate(PAPERS):
        name = names[(2 * i) % len(names)]
        root = tmp_path/paper; run = run_folder(root, paper, hostile['torch'][name]); before = snapshot(root)
        r = cli(paper, '--resume', run, '-q')
        line = one_line(r.stderr)
        assert r.returncode == 2 and line.startswith('rsnb-repro: error: ') and r.stdout == '', (paper, name, r.returncode, r.stderr)
        check_refused(line, 'checkpoint.pth', name)
        assert snapshot(root) == before and not hostile['marker'].exists(), (paper, name)

@pytest.mark.slow
@pytest.mark.skipif(not __import__('os').environ.get('RSNB_SLOW'), reason='slow (45 rsnb-repro processes): set RSNB_SLOW=1')
def test_resume_refuses_every_hostile_checkpoint_console_script(hostile, tmp_path):
    for paper in PAPERS:
        for name, src in hostile['torch'].items():
            root = tmp_path/f'{paper}-{name}'; run = run_folder(root, paper, src); before = snapshot(root)
            r = cli(paper, '--resume', run, '-q')
            assert r.returncode == 2 and r.stdout == '', (paper, name, r.returncode, r.stderr)
            check_refused(one_line(r.stderr), 'checkpoint.pth', name)
            assert snapshot(root) == before and not hostile['marker'].exists(), (paper, name)

def test_resume_refuses_a_hostile_file_beside_the_checkpoint(hostile, tmp_path, capsys):
    """Every torch file of the run folder is read as data only before the notebook runs (here SGSLN's best model), and a
    checkpoint.pth must be one of rsnb.train.Checkpoint."""
    root = tmp_path/'runs'; run = run_folder(root, 'sgsln')
    (run/'train'/'models').mkdir(parents=True)
    torch.save({'format': CKPT_FORMAT}, run/'train'/'checkpoint.pth')
    shutil.copyfile(hostile['torch']['torch_zip.pth'], run/'train'/'models'/'sgsln_dpcd.pth')
    torch.save({'model': {}}, run/'train'/'models'/'other.pth')      # plain data: fine beside a checkpoint
    before = snapshot(root)
    assert repro.main(['sgsln', '--resume', str(run), '-q']) == 2
    line = one_line(capsys.readouterr().err)
    assert f'{run}/train/models/sgsln_dpcd.pth: refused: not plain data, it names builtins.exec' in line, line
    assert snapshot(root) == before
    torch.save({'model': {}}, run/'train'/'checkpoint.pth')         # loads as data, but is no checkpoint of rsnb.train
    before = snapshot(root)
    assert repro.main(['sgsln', '--resume', str(run), '-q']) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{run}/train/checkpoint.pth: not a checkpoint of rsnb.train.Checkpoint (no 'format' entry)" in line, line
    assert snapshot(root) == before and not hostile['marker'].exists()

# --- rsnb.train: Checkpoint(resume=True), load_checkpoint, upgrade_checkpoint ----------------------------------------

def test_checkpoint_api_refuses_every_hostile_file(hostile, tmp_path):
    from rsnb.train import Checkpoint, load_checkpoint, load_plain, upgrade_checkpoint
    for name, src in hostile['torch'].items():
        run = tmp_path/name; run.mkdir(); shutil.copyfile(src, run/'checkpoint.pth'); before = snapshot(run)
        for f in (lambda: Checkpoint(run, resume=True), lambda: load_checkpoint(run/'checkpoint.pth'),
                  lambda: load_plain(run/'checkpoint.pth', mmap=True), lambda: upgrade_checkpoint(run/'checkpoint.pth'),
                  lambda: repro.check_run_files(run)):
            with pytest.raises(RsnbError) as e: f()
            msg = str(e.value)
            assert '\n' not in msg, msg
            check_refused(msg, run/'checkpoint.pth', name)
        assert snapshot(run) == before and not hostile['marker'].exists(), name   # upgrade_checkpoint kept no backup either

# --- each trainer's resume API ----------------------------------------------------------------------------------------

def _tensor_dls(ts, bs=2):
    from torch.utils.data import TensorDataset
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader as FDL
    return DataLoaders(FDL(TensorDataset(*ts), bs=bs, shuffle=True, drop_last=True), FDL(TensorDataset(*[t[:2] for t in ts]), bs=2), device='cpu')

def _scene_folder(root):
    import numpy as np, rasterio
    from affine import Affine
    rng = np.random.default_rng(0)
    for k, c in enumerate(['dark', 'bright']):
        (root/c).mkdir(parents=True)
        for i in range(4):
            with rasterio.open(root/c/f'{c}_{i}.tif', 'w', driver='GTiff', width=16, height=16, count=3, dtype='uint8',
                               transform=Affine(1, 0, 0, 0, -1, 16)) as ds:
                ds.write(np.clip(rng.normal(60 + 120*k, 20, (3, 16, 16)), 0, 255).astype(np.uint8))
    return root

def trainers(tmp):
    "name -> resume(run_dir): each trainer's own entry point with resume=True, on a tiny model and data."
    import numpy as np, torch.nn as nn
    from rsnb.segmentation.train import benchmark_learner, fit_iters
    from rsnb.change.train import train_change
    from rsnb.compression.models import MeanScaleHyperprior
    from rsnb.compression.train import codec_learner
    from rsnb.inpainting.model import ECEAGenerator, PatchDiscriminator
    from rsnb.inpainting.train import SlcoffPatches, train_ecea
    from rsnb.classification.learner import scene_dls, scene_learner, fit_scene
    g = torch.Generator().manual_seed(0)
    seg = benchmark_learner(_tensor_dls((torch.randn(4, 3, 16, 16, generator=g), torch.randint(0, 3, (4, 16, 16), generator=g))),
                            nn.Conv2d(3, 3, 1), 'fcn', 3)
    change_dls = _tensor_dls((torch.rand(4, 3, 16, 16, generator=g), torch.rand(4, 3, 16, 16, generator=g), (torch.rand(4, 1, 16, 16, generator=g) > .5).float()))
    codec_dls = _tensor_dls((torch.rand(4, 3, 64, 64, generator=g), torch.randint(0, 3, (4,), generator=g)))
    rng = np.random.default_rng(0)
    tiles = [(rng.random((3, 48, 48)).astype(np.float32), np.zeros((48, 48), bool)) for _ in range(2)]
    G = ECEAGenerator(3, 32, dims=(8, 16, 32), depths=(1, 1, 1), heads=(1, 1, 2), ps_hidden=8, ps_res=1, mid_res=1)
    ecea_dl = torch.utils.data.DataLoader(SlcoffPatches(tiles, size=32, n=4, seed=0), batch_size=2)
    cls = scene_learner(scene_dls(_scene_folder(tmp/'scenes'), 0.5, seed=0, bs=2, num_workers=0,
                                  stats=dict(mean=[127.5]*3, std=[127.5]*3, names=['red', 'green', 'blue'])),
                        arch='resnet18', loss='ce', augment=False, pretrained=False)
    return {'segmentation fit_iters': lambda run: fit_iters(seg, 2, validate=False, run_dir=run, resume=True, print_every=None),
            'change train_change': lambda run: train_change(change_dls, 'dpcd', 8, run_dir=run, resume=True, print_every=None),
            'compression codec_learner': lambda run: codec_learner(MeanScaleHyperprior(8, 8, 3), codec_dls, run_dir=run, resume=True),
            'inpainting train_ecea': lambda run: train_ecea(G, PatchDiscriminator(3, nf=8), ecea_dl, device='cpu', progress=False,
                                                            run_dir=run, resume=True, num_workers=0, print_every=None),
            'classification fit_scene': lambda run: fit_scene(cls, 1, run_dir=run, resume=True, print_every=None)}

def test_every_trainer_refuses_every_hostile_checkpoint(hostile, tmp_path):
    ts = trainers(tmp_path)
    n = 0
    for tname, resume in ts.items():
        for name, src in hostile['torch'].items():
            run = tmp_path/'runs'/f'{tname.split()[0]}-{name}'; run.mkdir(parents=True)
            shutil.copyfile(src, run/'checkpoint.pth'); before = snapshot(run)
            with pytest.raises(RsnbError) as e: resume(run)
            msg = str(e.value)
            assert '\n' not in msg and not msg.startswith('Exception occured'), (tname, msg)   # refused before fastai's fit
            check_refused(msg, run/'checkpoint.pth', name)
            assert snapshot(run) == before and not hostile['marker'].exists(), (tname, name)
            n += 1
    assert n == 5 * 9

# --- YAML: --params, --set, params.yaml -------------------------------------------------------------------------------

def binary_yaml(marker) -> str:
    "A params file that `yaml.safe_load` reads (bytes, from `!!binary`), and papermill would write into the notebook as code."
    b = f'" + str(open({json.dumps(str(marker))}, "w").write("payload ran")) + "'.encode()   # no single quote: bytes' repr keeps the double ones
    return f"device: !!binary {base64.b64encode(b).decode()}\n"

def test_binary_payload_is_live(hostile, tmp_path):
    "Without the value check, papermill's parameters cell for this file creates the marker when run (so the refusal below matters)."
    import yaml
    from papermill.translators import PythonTranslator
    m = tmp_path/'LIVE'
    src = PythonTranslator.codify(yaml.safe_load(binary_yaml(m)))
    try: exec(src, {})                 # what the kernel would run: the payload creates the marker (then a TypeError)
    except TypeError: pass
    assert m.exists(), src

def test_yaml_tags_and_binary_values_are_usage_errors(hostile, tmp_path, capsys):
    marker = hostile['marker']
    tagged = tmp_path/'evil.yaml'; write_yaml(tagged, marker)
    binary = tmp_path/'binary.yaml'; binary.write_text(binary_yaml(marker))
    for paper in PAPERS:
        out_root = tmp_path/'out'/paper
        runs = tmp_path/'runs'/paper
        tag_run = run_folder(runs, paper, None)
        (tag_run/'params.yaml').write_text((tag_run/'params.yaml').read_text().splitlines()[0] + '\n' + tagged.read_text())
        bin_run = repro.new_run_dir(paper, {}, runs)
        (bin_run/'params.yaml').write_text((bin_run/'params.yaml').read_text().splitlines()[0] + '\n' + binary.read_text())
        before = snapshot(tmp_path/'runs')
        cases = [(['--params', tagged, '--out', out_root], 'evil.yaml: line 2: the YAML tag !!python/object/apply:builtins.exec is not allowed'),
                 (['--set', f'seed={yaml_set_value(marker)}', '--out', out_root], '--set seed: the YAML tag !!python/object/apply:builtins.exec is not allowed'),
                 (['--resume', tag_run], 'params.yaml: line 3: the YAML tag !!python/object/apply:builtins.exec is not allowed'),
                 (['--run-dir', tag_run], 'params.yaml: line 3: the YAML tag !!python/object/apply:builtins.exec is not allowed'),
                 (['--params', binary, '--out', out_root], "binary.yaml: parameter 'device': a bytes value is not a parameter value"),
                 (['--set', f"device=!!binary {binary.read_text().split()[-1]}", '--out', out_root], "--set: parameter 'device': a bytes value"),
                 (['--resume', bin_run], "params.yaml: parameter 'device': a bytes value is not a parameter value"),
                 (['--run-dir', bin_run, '--set', 'resume=true'], "params.yaml: parameter 'device': a bytes value")]
        assert len(cases) == 8
        for args, needle in cases:
            code = repro.main([paper, *map(str, args), '-q'])
            out, err = capsys.readouterr()
            line = one_line(err)
            assert code == 2 and line.startswith('rsnb-repro: error: ') and needle in line and out == '', (paper, args, err)
        assert snapshot(tmp_path/'runs') == before and not out_root.exists() and not marker.exists(), paper

def test_yaml_tags_console_script(hostile, tmp_path):
    "The same refusals from the console script: a tagged --params file, --set value and run folder's params.yaml."
    marker = hostile['marker']
    tagged = tmp_path/'evil.yaml'; write_yaml(tagged, marker)
    run = repro.new_run_dir('ecea', {}, tmp_path/'runs')
    (run/'params.yaml').write_text((run/'params.yaml').read_text().splitlines()[0] + '\n' + tagged.read_text())
    before = snapshot(tmp_path/'runs')
    for args, needle in [(['--params', tagged], 'evil.yaml: line 2: the YAML tag !!python/object/apply:builtins.exec'),
                         (['--set', f'lr={yaml_set_value(marker)}'], '--set lr: the YAML tag !!python/object/apply:builtins.exec'),
                         (['--resume', run], 'params.yaml: line 3: the YAML tag !!python/object/apply:builtins.exec')]:
        r = cli('ecea', *args, '--out', tmp_path/'out', '-q')
        line = one_line(r.stderr)
        assert r.returncode == 2 and needle in line and r.stdout == '', (args, r.stderr)
    assert snapshot(tmp_path/'runs') == before and not (tmp_path/'out').exists() and not marker.exists()
