"""Converters a user drives without the source (issue 26, item 4): the configuration is read from the checkpoint itself
(tensor names and shapes, CompressAI's zoo file names), `rsnb-weights info` recognises every source format and says what
it would become, `convert` needs neither `--from` nor the settings the file answers and creates its destination folder,
and `rsnb-weights list` fits 120 columns and lists the shipped models.

Stand-in files are built from the parity manifests (the originals' own tensor names and shapes) with seeded values, as in
`tests/test_e2e_quirks.py`. For each: the inferred configuration equals the one the file was built for, and converting
with what was inferred gives the same tensors, bit for bit, as converting with the configuration spelled out."""
import contextlib, io, json, re
from pathlib import Path
import numpy as np, pytest, torch

from rsnb import weights as W
from rsnb.weights_cli import main, WIDTH

ROOT = Path(__file__).resolve().parents[1]
PAR = ROOT/'tests'/'fixtures'/'parity'
STATS = {'mean': [100., 100., 100.], 'std': [50., 50., 50.]}

@pytest.fixture(autouse=True)
def real_registry(tmp_path, monkeypatch):
    monkeypatch.delenv('RSNB_REGISTRY_DIRS', raising=False); monkeypatch.delenv('RSNB_WEIGHTS_DIRS', raising=False)
    monkeypatch.setenv('RSNB_WEIGHTS', str(tmp_path/'cache'))

def run(*argv):
    "`rsnb-weights argv` in-process: (exit status, stdout, stderr)."
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e): code = main([str(a) for a in argv])
    return code, o.getvalue(), e.getvalue()

def one_error(err) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert 'Traceback' not in err and len(lines) == 1 and lines[0].startswith('rsnb-weights: error: '), err
    return lines[0]

def tensors(pth) -> dict: return torch.load(Path(pth).with_suffix('.pth'), weights_only=True)

def same_tensors(a:dict, b:dict):
    assert a.keys() == b.keys(), set(a) ^ set(b)
    for k in a: assert torch.equal(a[k], b[k]), k

def inferred_vs_explicit(tmp, src, fmt, explicit:dict, extra=()):
    "Convert `src` with nothing but `extra` on the command line (format and settings read from the file), and with the explicit config: same tensors."
    code, out, err = run('convert', src, tmp/'inferred', *(['--config', *extra] if extra else []))
    assert code == 0, err
    same_tensors(tensors(tmp/'inferred'), tensors(W.convert_checkpoint(src, tmp/'explicit', fmt, explicit)))
    return json.loads((tmp/'inferred.json').read_text())

# --- CompressAI ------------------------------------------------------------------------------------------------------------

def zoo_file(d, arch, q, name=None):
    "A zoo file's stand-in: its published name, CompressAI's tensor names and shapes at that quality, seeded values, the stored constants."
    from rsnb.compression.zoo import zoo_url
    from rsnb.compression.models import ScaleHyperprior
    g, target = torch.Generator().manual_seed(q), ScaleHyperprior(8, 8).state_dict()['entropy_bottleneck.target']
    sd = {}
    for k, s in full_shapes(arch, q).items():
        if k.endswith('pedestal'): v = torch.tensor([2. ** -36])
        elif k.endswith('beta_reparam.lower_bound.bound'): v = torch.tensor([(1e-6 + 2. ** -36) ** .5])
        elif k.endswith('gamma_reparam.lower_bound.bound'): v = torch.tensor([2. ** -18])
        elif k.endswith('likelihood_lower_bound.bound'): v = torch.tensor([1e-9])
        elif k.endswith(('lower_bound_scale.bound', 'scale_bound')): v = torch.tensor([.11])
        elif k.endswith('target'): v = target
        elif k.endswith('quantiles'): v = torch.tensor([-10., 0, 10]).repeat(s[0], 1, 1)
        elif k.endswith(('_offset', '_quantized_cdf', '_cdf_length', 'scale_table')): v = torch.zeros(0, dtype=torch.int32)
        elif k.endswith('.mask'): v = torch.ones(s); v[:, :, s[2] // 2, s[3] // 2:] = 0; v[:, :, s[2] // 2 + 1:] = 0
        else: v = torch.rand(s, generator=g) * .1 + .01
        sd[k] = v
    p = Path(d)/(name or Path(zoo_url(arch, q)).name)
    torch.save(sd, p)
    return p

def full_shapes(arch, q):
    return json.loads((PAR/'compressai'/'manifest.json').read_text())['full'][arch][str(q)]['shapes']

def test_compressai_every_zoo_configuration_by_manifest():
    "The 30 zoo configurations' own key/shape lists (CompressAI's constructors) and published file names give back arch and quality."
    from rsnb.compression.zoo import ZOO, zoo_url, infer_compressai
    n = 0
    for arch in ZOO:
        for q in ZOO[arch]['cfg']:
            got = infer_compressai(Path(zoo_url(arch, q)).name, full_shapes(arch, q))
            assert got['config'] == {'arch': arch, 'quality': q} == got['inferred'], (arch, q, got); n += 1
            other = infer_compressai('renamed.pth.tar', full_shapes(arch, q))   # no zoo name: the widths
            N, *M = ZOO[arch]['cfg'][q]
            assert other['inferred'] == {'arch': arch, 'N': N, **({'M': M[0]} if M else {})}
    assert n == 30

def test_compressai_reduced_width_fixtures(tmp_path):
    "The parity fixtures' reduced-width codecs (N=16, M=24) of the four architectures: arch and widths from the tensors."
    from rsnb.compression.zoo import ZOO, write_fixture_checkpoint, fixture_config
    for arch in ZOO:
        src = write_fixture_checkpoint(arch, tmp_path/f'{arch}_small.pth.tar')
        (f,) = W.detect_formats(src)
        assert (f['format'], f['error']) == ('compressai', None)
        assert {'arch': arch, **f['inferred']} == fixture_config(arch)

@pytest.mark.parametrize('arch,q,named', [('bmshj2018-factorized', 6, True), ('mbt2018-mean', 2, False), ('cheng2020-anchor', 1, True)])
def test_compressai_inferred_conversion_is_the_explicit_one(tmp_path, arch, q, named):
    src = zoo_file(tmp_path, arch, q, None if named else 'my_codec.pth.tar')
    card = inferred_vs_explicit(tmp_path, src, 'compressai', {'arch': arch, 'quality': q})
    assert card['source']['config'] == ({'arch': arch, 'quality': q} if named else {'arch': arch, **dict(zip('NM', [128, 192]))})

def test_compressai_contradictions_are_one_line_naming_the_file(tmp_path):
    src = zoo_file(tmp_path, 'bmshj2018-hyperprior', 7, 'bmshj2018-hyperprior-3-6d87be32.pth.tar')   # zoo name q3, widths of q6-8
    code, out, err = run('convert', src, tmp_path/'out')
    line = one_error(err)
    assert code == 1 and 'bmshj2018-hyperprior-3-6d87be32.pth.tar: the zoo name says quality 3' in line and 'qualities 6-8' in line
    src = zoo_file(tmp_path, 'bmshj2018-hyperprior', 3, 'hp.pth.tar')
    code, out, err = run('convert', src, tmp_path/'out', '--config', 'arch=mbt2018-mean')
    assert code == 1 and "hp.pth.tar: --config arch=mbt2018-mean, but its tensors are a bmshj2018-hyperprior codec's" in one_error(err)
    code, out, err = run('convert', src, tmp_path/'out', '--config', 'quality=7')
    assert code == 1 and 'hp.pth.tar: --config quality=7' in one_error(err)
    assert not list(tmp_path.glob('out*'))

# --- PaddleSeg --------------------------------------------------------------------------------------------------------------

def manifest(name): return json.loads((PAR/'paddleseg'/f'{name}.json').read_text())

def pdparams(path, name):
    from rsnb.segmentation.paddle import seeded_weight, write_pdparams
    return write_pdparams({k: seeded_weight(k, s) for k, s in manifest(name)['manifest'].items()}, path)

def test_paddleseg_every_fixture_manifest():
    "The 13 fixtures' PaddleSeg names and shapes (5 heads, HRNet-W18/W48, ResNet50, ResNet50-vd, C2FNet) give back the config."
    from rsnb.segmentation.paddle import PARITY_MODELS, infer_paddleseg
    for name, cfg in PARITY_MODELS.items():
        m = manifest(name)
        want = dict(cfg, n_classes=m['n_classes'], **({'backbone': 'hrnet_w18'} if cfg['arch'] == 'c2fnet' else {}))
        assert infer_paddleseg('model.pdparams', m['manifest'])['inferred'] == want, name

def resnet_keys(vd:bool, layout, bottleneck:bool) -> dict:
    "A key/shape list of a PaddleSeg ResNet backbone (only what the depth is read from) with an FCN classifier."
    convs = 3 if bottleneck else 2
    sh = {'backbone.conv1_1._conv.weight' if vd else 'backbone.conv1.weight': (32 if vd else 64, 4, 3, 3), 'head.cls.weight': (5, 512, 1, 1)}
    for s, n in enumerate(layout):
        for b in range(n):
            for c in range(convs):
                sh[f'backbone.bb_{s}_{b}.conv{c}._conv.weight' if vd else f'backbone.layer{s + 1}.{b}.conv{c + 1}.weight'] = (64, 64, 3, 3)
    return sh

@pytest.mark.parametrize('vd', [False, True])
@pytest.mark.parametrize('depth,layout,bottleneck', [(18, (2, 2, 2, 2), False), (34, (3, 4, 6, 3), False), (50, (3, 4, 6, 3), True), (101, (3, 4, 23, 3), True)])
def test_paddleseg_resnet_depth_and_bands(vd, depth, layout, bottleneck):
    from rsnb.segmentation.paddle import infer_paddleseg
    got = infer_paddleseg('m.pdparams', resnet_keys(vd, layout, bottleneck))['inferred']
    assert got == {'arch': 'fcn', 'backbone': f"resnet{depth}{'_vd' if vd else ''}", 'n_classes': 5, 'in_chans': 4}

@pytest.mark.parametrize('name', ['fcn_hrnet_w18', 'deeplabv3p_resnet50_vd', 'c2fnet_hrnet_w18'])
def test_paddleseg_inferred_conversion_is_the_explicit_one(tmp_path, name):
    from rsnb.segmentation.paddle import PARITY_MODELS
    src = pdparams(tmp_path/'model.pdparams', name)
    card = inferred_vs_explicit(tmp_path, src, 'paddleseg', dict(PARITY_MODELS[name], n_classes=manifest(name)['n_classes']))
    assert card['arch'] == ('fcn' if name.startswith('c2fnet') else PARITY_MODELS[name]['arch']) and 'paddle_outputs' in card['outputs']

def test_paddleseg_contradictions(tmp_path):
    src = pdparams(tmp_path/'model.pdparams', 'fcn_hrnet_w18')
    for cfg, text in ((['backbone=resnet50_vd'], '--config backbone=resnet50_vd, but its backbone is hrnet_w18'),
                      (['n_classes=16'], "--config n_classes=16, but its classifier 'head.cls.weight' has 7 outputs"),
                      (['arch=pspnet'], '--config arch=pspnet, but its classifier is')):
        code, out, err = run('convert', src, tmp_path/'out', '--config', *cfg)
        assert code == 1 and f'model.pdparams: {text}' in one_error(err), err
    assert not list(tmp_path.glob('out*'))

def test_paddle_auxiliary_outputs(tmp_path):
    "`paddle_outputs` (the documented option) returns PSPNet's auxiliary logits besides the main ones, in inference mode."
    from rsnb.segmentation.models import paddleseg_model
    from rsnb.segmentation.paddle import paddle_outputs
    m = paddleseg_model('upernet', 'resnet18', n_classes=4).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(): outs, main_ = paddle_outputs(m, x), m(x)
    assert len(outs) == 2 and all(o.shape == (1, 4, 64, 64) for o in outs) and torch.allclose(outs[0], main_, atol=1e-6)
    assert not any(mm.training for mm in m.modules())

# --- DPCD, ECEA, Keras ------------------------------------------------------------------------------------------------------

def seeded(family):
    from rsnb.change.convert import seeded_state_dict
    return seeded_state_dict(json.loads((PAR/family/'manifest_small.json').read_text()))

def test_dpcd_bands_and_width_inferred_stats_asked(tmp_path):
    torch.save({'net': seeded('dpcd'), 'optimizer': {}}, tmp_path/'checkpoint_epoch3.pth')
    (f,) = W.detect_formats(tmp_path/'checkpoint_epoch3.pth')
    assert (f['format'], f['inferred'], list(f['ask'])) == ('dpcd', {'n_in': 3, 'width': 8}, ['stats'])
    code, out, err = run('convert', tmp_path/'checkpoint_epoch3.pth', tmp_path/'out')
    assert code == 2 and "--config stats: required for format 'dpcd'" in one_error(err) and 'detected as dpcd' in err
    card = inferred_vs_explicit(tmp_path, tmp_path/'checkpoint_epoch3.pth', 'dpcd', {'n_in': 3, 'width': 8, 'stats': STATS},
                                extra=[f'stats={json.dumps(STATS)}'])
    assert (card['n_in'], card['width']) == (3, 8)

def test_ecea_inferred_conversion_states_order_and_holes(tmp_path):
    "Heads only reshape (not stored): the default gives the same tensors; the card states the argument order and hole handling."
    torch.save(seeded('ecea'), tmp_path/'EET_small.pth')
    card = inferred_vs_explicit(tmp_path, tmp_path/'EET_small.pth', 'ecea', {'heads': [1, 2, 2, 4]})
    assert 'G(x, edge=e, mask=m)' in card['call'] and card['holes'].startswith('prefilled=false')
    (f,) = W.detect_formats(tmp_path/'EET_small.pth')
    assert f['format'] == 'ecea' and any('heads are not stored' in n for n in f['notes'])

def test_ecea_original_argument_order_by_keyword():
    from rsnb.inpainting.model import ECEAGenerator
    from rsnb.core import ModelError
    G = ECEAGenerator(3, img_size=32, dims=(8, 16), depths=(1, 1), heads=(1, 1), ps_hidden=8, ps_res=1, mid_res=1, faithful=True).eval()
    g = torch.Generator().manual_seed(0)
    x, m, e = torch.rand(1, 3, 32, 32, generator=g), (torch.rand(1, 1, 32, 32, generator=g) > .7).float(), torch.rand(1, 1, 32, 32, generator=g)
    with torch.no_grad(): a, b, c = G(x, m, e), G(x, edge=e, mask=m), G(x, e, m)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])   # positionally in the original's order, the maps are swapped: why keywords are the way
    with pytest.raises(ModelError, match='mask given twice'): G(x, e, mask=m)

def keras_file(path, naming='keras225'):
    import gzip
    from rsnb.classification.keras import seeded_weights, write_keras_h5
    man = json.loads((PAR/'bahri'/f'manifest_{naming}.json').read_text())
    return write_keras_h5(path, man, seeded_weights(man, man['meta']['seed']), gzip.open(PAR/'bahri'/'model_config.json.gz', 'rt').read(),
                          keras_version=man['meta']['keras_version'])

def test_keras_class_count_inferred(tmp_path):
    src = keras_file(tmp_path/'NasNet_Mobile_New_Loss3_AID.h5')
    card = inferred_vs_explicit(tmp_path, src, 'keras-h5-bahri', {'n_classes': 30})
    assert card['n_classes'] == 30
    code, out, err = run('convert', src, tmp_path/'out', '--config', 'n_classes=45')
    assert code == 1 and "NasNet_Mobile_New_Loss3_AID.h5: --config n_classes=45, but the file's classifier has 30 outputs" in one_error(err)

# --- info: one signature per format, and rsnb models --------------------------------------------------------------------------

def test_info_recognises_every_format(tmp_path):
    from rsnb.compression.zoo import write_fixture_checkpoint
    files = {'compressai': write_fixture_checkpoint('bmshj2018-hyperprior', tmp_path/'codec.pth.tar'),
             'paddleseg': pdparams(tmp_path/'model.pdparams', 'fcn_hrnet_w18'),
             'keras-h5-bahri': keras_file(tmp_path/'bahri.h5', 'tfkeras')}
    torch.save({'net': seeded('dpcd')}, files.setdefault('dpcd', tmp_path/'best_f1.pth'))
    torch.save({f'module.{k}': v for k, v in seeded('ecea').items()}, files.setdefault('ecea', tmp_path/'EET.pth'))
    task = {'compressai': 'compression', 'paddleseg': 'segmentation', 'keras-h5-bahri': 'classification', 'dpcd': 'change', 'ecea': 'inpainting'}
    for fmt, f in files.items():
        code, out, err = run('info', f, '--json')
        assert code == 0, err
        wb = json.loads(out)['would_become']
        assert [(w['format'], w['task'], w['error']) for w in wb] == [(fmt, task[fmt], None)], (fmt, wb)
        assert wb[0]['command'].startswith(f'rsnb-weights convert {f} ') and f'--from {fmt}' in wb[0]['command']
        text = run('info', f)[1]
        assert f'would become: an rsnb {task[fmt]} model (format {fmt})' in text and 'convert: rsnb-weights convert' in text
    # the command info prints converts the file (the placeholders of what must be given aside)
    cmd = json.loads(run('info', files['compressai'], '--json')[1])['would_become'][0]['command'].split()
    assert run(*cmd[1:3], tmp_path/'sub'/'codec', *cmd[4:])[0] == 0
    code, out, err = run('info', tmp_path/'sub'/'codec.pth')    # an rsnb model: its card
    assert code == 0 and 'rsnb model' in out and 'task: compression' in out
    torch.save({'conv.weight': torch.zeros(3)}, tmp_path/'foreign.pth')
    assert json.loads(run('info', tmp_path/'foreign.pth', '--json')[1])['would_become'] == []

def test_convert_creates_the_destination_folder_and_leaves_nothing_on_failure(tmp_path):
    from rsnb.compression.zoo import write_fixture_checkpoint
    src = write_fixture_checkpoint('bmshj2018-factorized', tmp_path/'c.pth.tar')
    code, out, err = run('convert', src, tmp_path/'a'/'b'/'m', '--config', 'arch=bmshj2018-hyperprior')
    assert code == 1 and not (tmp_path/'a').exists()              # failed: no folder, no file
    code, out, err = run('convert', src, tmp_path/'a'/'b'/'m')
    assert code == 0 and (tmp_path/'a'/'b'/'m.pth').is_file() and (tmp_path/'a'/'b'/'m.json').is_file()
    (tmp_path/'file').write_text('x')
    code, out, err = run('convert', src, tmp_path/'file'/'m')
    assert code == 2 and 'not a folder' in one_error(err)

def test_loaded_models_are_in_eval_mode_with_their_card(tmp_path):
    from rsnb.compression.zoo import write_fixture_checkpoint
    from rsnb.compression.models import build_codec
    p = W.convert_checkpoint(write_fixture_checkpoint('mbt2018-mean', tmp_path/'c.pth.tar'), tmp_path/'m')
    model, card = W.load_model(p, build=build_codec)
    assert not model.training and card['arch'] == 'MeanScaleHyperprior' and card['source']['config']['arch'] == 'mbt2018-mean'

# --- list ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('task', [None, 'segmentation', 'compression', 'classification'])
def test_list_fits_120_columns(task):
    code, out, err = run('list', *(['--task', task] if task else []))
    assert code == 0 and out.strip()
    assert max(len(l) for l in out.splitlines()) <= WIDTH == 120

def test_list_scores_sizes_and_shipped_models():
    code, out, err = run('list')
    rows = {l.split()[0]: l for l in out.splitlines() if l.strip()}
    assert 'PSNR 30.97 dB @ 0.320 bpp' in rows['bmshj2018-hyperprior-q3']          # CompressAI's published Kodak figure, quality 3
    reg = W.registry()
    assert all(e['paper_score']['bpp'] > 0 and 'results/image/kodak' in e['paper_score']['source'] for e in reg.values() if e['format'] == 'compressai')
    for n in W.shipped_models():
        size = (ROOT/'rsnb'/'weights'/f'{n}.pth').stat().st_size
        assert rows[n].endswith('shipped') and f'{size/1e6:.1f} MB' in rows[n]
    js = json.loads(run('list', '--json')[1])
    shipped = {e['name']: e for e in js if e['shipped'] is True}
    assert sorted(shipped) == W.shipped_models()
    assert {n: e['task'] for n, e in shipped.items()} == {
        'change_dpcd_sztaki_cpu': 'change', 'change_siam_lite0_sztaki': 'change', 'compression_egan_default': 'compression',
        'compression_msh_default': 'compression', 'scene_lite0_aid30': 'classification', 'segmentation_lite0_fpn_dubai': 'segmentation'}
    assert all(e['shipped'] is False for e in js if e['name'] in reg)
    assert {e['name'] for e in json.loads(run('list', '--json', '--task', 'segmentation')[1]) if e['shipped']} == {'segmentation_lite0_fpn_dubai'}
