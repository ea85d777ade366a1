"""Stand-ins closer to the real published files: every known quirk of a released or user-trained checkpoint, written by a
stand-in writer and converted by the command a user runs (`rsnb-weights convert`: its `main` in-process, and the
installed console script itself for one success and one error). Each quirky file must convert
to exactly the tensors its plain form converts to. Bad input (another family's file, another configuration) gives one
line naming the file and what does not match, and writes nothing.

Quirks: Keras 2.2.5's auto-names (`dense_1`…, `activation_1`…) in the full-model layout (`model_weights/<layer>/…`) and
the weights-only layout of `save_weights`; CompressAI's pre-1.2 entropy-bottleneck names (`_matrix0`, `_bias0`,
`_factor0`) and a CompressAI training checkpoint (`{'state_dict': ..., 'epoch': ...}`); PaddleSeg's pickled
`.pdparams` with its `StructuredToParameterName@@` key and `_mean`/`_variance` BatchNorm names; `module.` prefixes
(DataParallel) and SGSLN's `{'net': ..., 'optimizer': ...}` wrapper."""
import gzip, json, re
from pathlib import Path
import numpy as np, pytest, torch
from e2e_helpers import cli, ok, ROOT

PAR = ROOT/'tests'/'fixtures'/'parity'

def convert(src, dst, fmt, *config, console=False):
    """`rsnb-weights convert` on the file: its `main` in this process (what the console script calls, ~1.5 s of process
    start saved a call), or with `console` the installed console script itself (one case per family does)."""
    args = ['convert', '--from', fmt, src, dst, *(('--config', *config) if config else ())]
    if console: return cli('rsnb-weights', *args)
    import contextlib, io, subprocess
    from rsnb.weights_cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in args])
    return subprocess.CompletedProcess(['rsnb-weights', *args], code, out.getvalue(), err.getvalue())

def convert_api(src, dst, fmt, config=None) -> dict:
    "The plain form's reference conversion, in-process (`convert_checkpoint`, what the console script calls)."
    from rsnb.weights import convert_checkpoint
    return torch.load(convert_checkpoint(src, dst, fmt, config), weights_only=True)

def converted(dst) -> dict:
    return torch.load(Path(dst).with_suffix('.pth'), weights_only=True)

def same_tensors(a:dict, b:dict):
    assert a.keys() == b.keys(), set(a) ^ set(b)
    for k in a: assert torch.equal(a[k], b[k]), k

def one_line_error(r, *must):
    "Exit 1 or 2, no traceback, the last stderr line the error naming what must be named."
    assert r.returncode in (1, 2), (r.returncode, r.stderr[-500:])
    assert 'Traceback' not in r.stderr, r.stderr[-1500:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('rsnb-weights: '), last
    for m in must: assert m in last, (m, last)
    return last

def nothing_written(dst):
    d = Path(dst)
    assert not d.with_suffix('.pth').exists() and not d.with_suffix('.json').exists()
    assert not [p for p in d.parent.iterdir() if p.name.startswith(d.name)], list(d.parent.iterdir())

# --- Keras 2.2.5 (Bahri et al.'s released .h5) ---------------------------------------------------------------------------

def keras_file(path, naming='keras225', layout='full'):
    from rsnb.classification.keras import seeded_weights, write_keras_h5
    man = json.loads((PAR/'bahri'/f'manifest_{naming}.json').read_text())
    w = seeded_weights(man, man['meta']['seed'])
    cfg = gzip.open(PAR/'bahri'/'model_config.json.gz', 'rt').read() if layout == 'full' else None
    return write_keras_h5(path, man, w, cfg, keras_version=man['meta']['keras_version'])

@pytest.fixture(scope='module')
def keras_plain(tmp_path_factory):
    d = tmp_path_factory.mktemp('keras')
    return convert_api(keras_file(d/'tfkeras.h5', 'tfkeras'), d/'plain', 'keras-h5-bahri', dict(n_classes=30))

@pytest.mark.parametrize('layout', ['full', 'weights'])
def test_keras225_names(tmp_path, keras_plain, layout):
    "Keras 2.2.5's `dense_1`… auto-names, as `model.save` (ModelCheckpoint) and as `save_weights` write them."
    src = keras_file(tmp_path/'bahri_keras225.h5', 'keras225', layout)
    import h5py
    with h5py.File(src) as f:
        root = f['model_weights'] if layout == 'full' else f
        assert 'dense_1' in root and 'model_weights' in f if layout == 'full' else 'dense_1' in f
    ok(convert(src, tmp_path/'k225', 'keras-h5-bahri', 'n_classes=30', console=layout == 'full'))
    same_tensors(converted(tmp_path/'k225'), keras_plain)

def test_keras_wrong_class_count(tmp_path):
    src = keras_file(tmp_path/'bahri_aid.h5')
    one_line_error(convert(src, tmp_path/'out', 'keras-h5-bahri', 'n_classes=21', console=True), str(src.name))
    nothing_written(tmp_path/'out')

# --- CompressAI ---------------------------------------------------------------------------------------------------------

def zoo_sd(arch='bmshj2018-hyperprior', quality=3):
    import rehearsal_data as rd
    return rd.compressai_state_dict(arch, quality)

def old_names(sd):
    f = lambda k: re.sub(r'entropy_bottleneck\.(matrices|biases|factors)\.(\d+)',
                         lambda m: f"entropy_bottleneck._{dict(matrices='matrix', biases='bias', factors='factor')[m[1]]}{m[2]}", k)
    return {f(k): v for k, v in sd.items()}

@pytest.fixture(scope='module')
def zoo_plain(tmp_path_factory):
    d = tmp_path_factory.mktemp('zoo')
    torch.save(zoo_sd(), d/'bmshj2018-hyperprior-3-6d87be32.pth.tar')
    return convert_api(d/'bmshj2018-hyperprior-3-6d87be32.pth.tar', d/'plain', 'compressai', dict(arch='bmshj2018-hyperprior', quality=3))

def test_compressai_pre12_names(tmp_path, zoo_plain):
    "The zoo files published before CompressAI 1.2 name the bottleneck's parameters `_matrix0`, `_bias0`, `_factor0`."
    sd = old_names(zoo_sd())
    assert any('_matrix0' in k for k in sd) and not any('matrices' in k for k in sd)
    torch.save(sd, tmp_path/'old.pth.tar')
    ok(convert(tmp_path/'old.pth.tar', tmp_path/'old', 'compressai', 'arch=bmshj2018-hyperprior', 'quality=3'))
    same_tensors(converted(tmp_path/'old'), zoo_plain)

def test_compressai_training_checkpoint(tmp_path, zoo_plain):
    "CompressAI's examples/train.py saves `{'epoch', 'state_dict', 'loss', 'optimizer', ...}` (eval_model unwraps 'state_dict')."
    torch.save({'epoch': 10, 'state_dict': zoo_sd(), 'loss': 1.0}, tmp_path/'checkpoint_best_loss.pth.tar')
    ok(convert(tmp_path/'checkpoint_best_loss.pth.tar', tmp_path/'ck', 'compressai', 'arch=bmshj2018-hyperprior', 'quality=3'))
    same_tensors(converted(tmp_path/'ck'), zoo_plain)

def test_compressai_wrong_quality(tmp_path):
    torch.save(zoo_sd(), tmp_path/'hp3.pth.tar')
    one_line_error(convert(tmp_path/'hp3.pth.tar', tmp_path/'out', 'compressai', 'arch=bmshj2018-hyperprior', 'quality=6'), 'hp3.pth.tar')
    nothing_written(tmp_path/'out')

def test_compressai_wrong_architecture(tmp_path):
    torch.save(zoo_sd(), tmp_path/'hp3.pth.tar')
    one_line_error(convert(tmp_path/'hp3.pth.tar', tmp_path/'out', 'compressai', 'arch=mbt2018-mean', 'quality=3'), 'hp3.pth.tar')
    nothing_written(tmp_path/'out')

# --- PaddleSeg ------------------------------------------------------------------------------------------------------------

def pdparams(path, model='fcn_hrnet_w18'):
    from rsnb.segmentation.paddle import seeded_weight, write_pdparams
    man = json.loads((PAR/'paddleseg'/f'{model}.json').read_text())['manifest']
    sd = {k: seeded_weight(k, s) for k, s in man.items()}
    return write_pdparams(sd, path), sd

def test_pdparams_structured_names_and_bn_statistics(tmp_path):
    "A `.pdparams` as paddle.save writes it: `StructuredToParameterName@@` beside the arrays, BN statistics as `_mean`/`_variance`."
    import pickle
    src, sd = pdparams(tmp_path/'model.pdparams')
    raw = pickle.loads(src.read_bytes())    # numpy arrays and a dict of str: written here, not a hostile file
    assert 'StructuredToParameterName@@' in raw and any(k.endswith('._mean') for k in raw) and any(k.endswith('._variance') for k in raw)
    ok(convert(src, tmp_path/'fcn', 'paddleseg', 'arch=fcn', 'backbone=hrnet_w18', 'n_classes=7'))
    out = converted(tmp_path/'fcn')
    means = [k for k in sd if k.endswith('._mean')]
    assert sum(k.endswith('running_mean') for k in out) == len(means) and sum(k.endswith('running_var') for k in out) == len(means)
    # every `_mean`/`_variance` array arrives bit for bit as a running_mean/running_var
    for src_end, dst_end in (('._mean', 'running_mean'), ('._variance', 'running_var')):
        assert {sd[k].tobytes() for k in sd if k.endswith(src_end)} == {v.numpy().tobytes() for k, v in out.items() if k.endswith(dst_end)}

def test_pdparams_wrong_class_count(tmp_path):
    src, _ = pdparams(tmp_path/'model.pdparams')
    one_line_error(convert(src, tmp_path/'out', 'paddleseg', 'arch=fcn', 'backbone=hrnet_w18', 'n_classes=16'), 'model.pdparams')
    nothing_written(tmp_path/'out')

def test_pdparams_wrong_backbone(tmp_path):
    src, _ = pdparams(tmp_path/'model.pdparams')
    one_line_error(convert(src, tmp_path/'out', 'paddleseg', 'arch=fcn', 'backbone=resnet50', 'n_classes=7'), 'model.pdparams')
    nothing_written(tmp_path/'out')

# --- DataParallel prefixes and training wrappers (SGSLN, ECEA) --------------------------------------------------------------

DPCD_STATS = '{"mean": [100, 100, 100], "std": [50, 50, 50]}'   # a card rsnb-change can use needs band statistics

def dpcd_sd():
    from rsnb.change.convert import seeded_state_dict
    return seeded_state_dict(json.loads((PAR/'dpcd'/'manifest_small.json').read_text()))

@pytest.fixture(scope='module')
def dpcd_plain(tmp_path_factory):
    d = tmp_path_factory.mktemp('dpcd')
    torch.save(dpcd_sd(), d/'best_f1_epoch300.pth')
    return convert_api(d/'best_f1_epoch300.pth', d/'plain', 'dpcd', dict(stats=json.loads(DPCD_STATS)))

@pytest.mark.parametrize('form', ['net', 'module', 'net+module'])
def test_dpcd_wrappers_and_prefixes(tmp_path, dpcd_plain, form):
    "SGSLN's train.py checkpoint `{'net': sd, 'optimizer': ...}`, and DataParallel's `module.` prefixes, alone or inside it."
    sd = dpcd_sd()
    if 'module' in form: sd = {f'module.{k}': v for k, v in sd.items()}
    obj = {'net': sd, 'optimizer': {'state': {}, 'param_groups': [{'lr': 2e-4}]}} if 'net' in form else sd
    torch.save(obj, tmp_path/'checkpoint_epoch300.pth')
    ok(convert(tmp_path/'checkpoint_epoch300.pth', tmp_path/'out', 'dpcd', f'stats={DPCD_STATS}'))
    same_tensors(converted(tmp_path/'out'), dpcd_plain)

ECEA_SMALL_HEADS = 'heads=[1,2,2,4]'

def ecea_sd():
    from rsnb.change.convert import seeded_state_dict
    return seeded_state_dict(json.loads((PAR/'ecea'/'manifest_small.json').read_text()))

def test_ecea_module_prefix(tmp_path):
    "A generator saved from `nn.DataParallel` (`module.` on every key) converts like the plain state dict (the form of EET.pth)."
    torch.save(ecea_sd(), tmp_path/'EET.pth')
    plain = convert_api(tmp_path/'EET.pth', tmp_path/'plain', 'ecea', dict(heads=[1, 2, 2, 4]))
    torch.save({f'module.{k}': v for k, v in ecea_sd().items()}, tmp_path/'EET_dp.pth')
    ok(convert(tmp_path/'EET_dp.pth', tmp_path/'dp', 'ecea', ECEA_SMALL_HEADS))
    same_tensors(converted(tmp_path/'dp'), plain)

# --- another family's file ------------------------------------------------------------------------------------------------

SLOW = pytest.mark.skipif(not __import__('os').environ.get('RSNB_SLOW'), reason='slow: set RSNB_SLOW=1 (the fast cases check the same property)')
@pytest.mark.parametrize('given,fmt,config', [('ecea', 'dpcd', (f'stats={DPCD_STATS}',)), ('pdparams', 'dpcd', (f'stats={DPCD_STATS}',)), ('dpcd', 'compressai', ('arch=bmshj2018-hyperprior', 'quality=3')),
    pytest.param('dpcd', 'ecea', (), marks=[pytest.mark.slow, SLOW]),
    pytest.param('dpcd', 'paddleseg', ('arch=fcn', 'backbone=hrnet_w18', 'n_classes=7'), marks=[pytest.mark.slow, SLOW]),
    pytest.param('zoo', 'ecea', (), marks=[pytest.mark.slow, SLOW])])
def test_another_family(tmp_path, given, fmt, config):
    src = tmp_path/{'ecea': 'EET.pth', 'dpcd': 'best_f1.pth', 'pdparams': 'model.pdparams', 'zoo': 'hp3.pth.tar'}[given]
    if given == 'ecea': torch.save(ecea_sd(), src)
    elif given == 'dpcd': torch.save({'net': dpcd_sd()}, src)
    elif given == 'pdparams': pdparams(src)
    else: torch.save(zoo_sd(), src)
    one_line_error(convert(src, tmp_path/'out', fmt, *config), src.name)
    nothing_written(tmp_path/'out')
