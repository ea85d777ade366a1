"""A rehearsal of every params file in `nbs/papers/params/`: the paper's full-scale configuration, exercised end to end on
miniature datasets in each dataset's official raw layout (`tests/rehearsal_data.py`).

Fast part (CI), per params file: it loads against the notebook's `parameters` cell, its miniature dataset is generated and
prepared by rsnb's own prep code, and the full-size model it names builds (its parameter count against the card or
against the notebook's CPU-scale default). Slow part (`RSNB_SLOW=1`): `rsnb-repro PAPER --params NAME --set <few steps,
tiny eval>` with `RSNB_DATA` at the miniature: results.json, the printed comparison table, a checkpoint for the params
that train, then `--resume RUN_DIR` continuing from it. Released-weights params skip the slow part when the weights are
not on this machine (no network at run time). A new params file without a recipe here fails the test."""
import json, os, subprocess, sys
from dataclasses import dataclass, field
from pathlib import Path
import pytest, torch
import rehearsal_data as rd
import rsnb.repro as repro

ROOT = Path(__file__).resolve().parents[1]
PARAMS = sorted((ROOT/'nbs'/'papers'/'params').glob('*.yaml'))

def n_params(m): return sum(p.numel() for p in m.parameters())

# --- the full-size models each params file names -------------------------------------------------------------------------

def scene_model(p, n_classes=30):
    from rsnb.classification.model import SceneClassifier
    return SceneClassifier(n_classes, p.get('arch', 'nasnetamobile'), faithful=p.get('faithful', False), se=p.get('se', True))

def bahri_released(p):
    "The registry entry's network: NASNet-A Mobile + SE head for its dataset's classes."
    from rsnb.weights import registry_entry
    cfg = registry_entry(p['weights'])['config']
    cfg = __import__('ast').literal_eval(cfg) if isinstance(cfg, str) else cfg
    return scene_model(dict(arch='nasnetamobile', se=True), n_classes=cfg['n_classes'])

ECEA_DEFAULT = dict(img_size=64, dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], heads=[1, 1, 2, 2], ps_hidden=16, ps_res=1, mid_res=1)
ECEA_KEYS = ('img_size', 'dims', 'depths', 'heads', 'ps_hidden', 'ps_res', 'mid_res', 'faithful', 'prefilled', 'residual')

def ecea_model(p):
    from rsnb.inpainting.model import ECEAGenerator
    return ECEAGenerator(in_c=3, **{**ECEA_DEFAULT, **{k: p[k] for k in ECEA_KEYS if k in p}})

def ecea_released(p):
    "EET: the original generator's shape (`rsnb.inpainting.convert.ecea_kwargs` of the released state dict)."
    from rsnb.inpainting.model import ECEAGenerator
    return ECEAGenerator(in_c=3, img_size=256, patch=4, dims=[64, 128, 256, 512], depths=[1, 2, 3, 4], heads=[1, 2, 4, 8],
                         ps_hidden=64, ps_res=5, mid_res=5, faithful=True)

def egan_model(p):
    "The shipped learned codec the notebook evaluates (`model_id`), built from its card."
    from rsnb.core import load_json
    from rsnb.weights import package_weights
    from rsnb.compression.models import build_codec
    return build_codec(load_json(package_weights('compression_msh_default.json')))

def egan_released(p):
    from rsnb.weights import registry_entry
    from rsnb.compression.models import build_codec
    from rsnb.compression.zoo import zoo_kwargs, ZOO
    cfg = registry_entry(p['released'])['config']
    return build_codec(dict(arch=ZOO[cfg['arch']]['arch'], kwargs=zoo_kwargs(cfg['arch'], cfg['quality'])))

SEG_CLASSES = dict(potsdam=6, vaihingen=6, isaid=16)

def seg_full(p):
    from rsnb.segmentation.models import seg_model
    arch = p['models'][0]
    return seg_model(arch, p['backbone'], SEG_CLASSES[p['dataset']], 3, output_stride=p.get('output_stride') if arch != 'hrnet' else None)

def seg_released(p):
    from rsnb.weights import registry_entry
    from rsnb.segmentation.models import segmenter_from_card
    import ast
    cfg = registry_entry(p['weights'])['config']
    cfg = ast.literal_eval(cfg) if isinstance(cfg, str) else cfg
    return segmenter_from_card({'impl': 'paddleseg', **cfg})

def change_net(p):
    from rsnb.change.train import change_model
    return change_model(p.get('model', 'dpcd'), width=p.get('width', 8))

# --- recipes -------------------------------------------------------------------------------------------------------------

@dataclass
class Recipe:
    data: tuple = ()                  # rehearsal_data makers
    prep: object = None               # callable(root) -> a check of the prepared data (asserts inside)
    model: object = None              # callable(params) -> the full-size nn.Module
    smaller: object = None            # callable() -> the notebook's CPU-scale model: the full one must be larger
    card_params: int|None = None      # the parameter count the card / registry states
    slow_set: tuple = ()              # --set NAME=VALUE for a few steps and a tiny evaluation
    trains: bool = True               # writes a checkpoint (so --resume must continue it)
    weights: str|None = None          # params key naming released weights that must be on this machine

def _scene(root, dataset='aid', n=30):
    r = rd.prepare_scene(root, dataset)
    from rsnb.classification.datasets import class_folders, scene_items
    assert len(class_folders(r)) == n and len(scene_items(r)[0]) >= 2*n

def _seg(dataset):
    def check(root):
        out = rd.prepare_segmentation(root, dataset)
        for split in ('train', 'val'):
            lines = (out/f'{split}.txt').read_text().split()
            assert lines and all((out/x).exists() for x in lines), (dataset, split)
    return check

def _slcoff(root):
    from rsnb.inpainting.slcoff import slcoff_items
    items = slcoff_items(Path(root)/'inpainting'/'landsat7_slcoff')
    assert len(items) == 63 and {2, 5} <= {i['col'] for i in items} and all(i['mask'] for i in items)

def _egan(root):
    crops = sorted((Path(root)/'compression'/'landsat8_224077_rgb8').rglob('*.png'))
    assert len(crops) == 35 and len(list((Path(root)/'change_detection'/'sztaki_airchange'/'val'/'t1').iterdir())) == 12

def _levir(root):
    from rsnb.data import change_dls
    lv = Path(root)/'change_detection'/'levir_cd'
    dls = change_dls(lv, crop=64, bs=2, device='cpu')
    assert len(dls.train_ds) == 3 and len(dls.valid_ds) == 16        # the one 256-px validation pair as 4×4 crops of 64
    assert len(change_dls(lv, valid='test', crop=None, bs=1, stats=dls.stats, aug=False, device='cpu').valid_ds) == 7

SEG_SLOW = ('iters=2', 'batch_size=2', 'crop=256', 'n_eval=1', 'n_show=0', 'encoder_weights=null')  # no ImageNet file offline
RECIPES = {
    'bahri2019_full': Recipe((rd.make_aid, rd.make_scene), _scene, scene_model, lambda: scene_model(dict(arch='tf_efficientnet_lite0')),
                             slow_set=('pretrained=false', 'epochs=1', 'batch=4', 'max_per_class=2', 'image_size=224')),
    'bahri2019_released': Recipe((rd.make_aid, rd.make_scene), _scene, bahri_released, trains=False, weights='weights',
                                 slow_set=('released_max=4',)),
    'demo_full': Recipe(slow_set=('n=100',), trains=False),
    'ecea_cpu': Recipe((rd.make_slcoff,), _slcoff, ecea_model, slow_set=('steps=2', 'batch_size=2', 'max_minutes=1')),
    'ecea_full': Recipe((rd.make_slcoff,), _slcoff, ecea_model, lambda: ecea_model({}),
                        slow_set=('steps=1', 'batch_size=1', 'max_minutes=3')),
    'ecea_released': Recipe((rd.make_slcoff,), _slcoff, ecea_released, card_params=125_846_169, weights='weights',
                            slow_set=('steps=2', 'batch_size=2', 'max_minutes=1')),
    'egan_full': Recipe((rd.make_egan,), _egan, egan_model, trains=False,
                        slow_set=('n_images=1', 'rates=[0,1]', 'targets=[0.5]', 'n16=1', 'cd_pairs=1', 'cd_targets=[0.5]', 'scene_demo=false')),
    'egan_released': Recipe((rd.make_egan,), _egan, egan_released, trains=False, weights='released',
                            slow_set=('n_images=1', 'released_more=[]', 'n16=1', 'cd_pairs=1', 's2=false')),
    'rsseg_benchmark_full': Recipe((rd.make_potsdam,), _seg('potsdam'), seg_full,
                                   lambda: seg_full(dict(models=['deeplabv3p'], backbone='resnet18', dataset='potsdam', output_stride=16)),
                                   slow_set=SEG_SLOW),
    'rsseg_benchmark_isaid_deeplabv3p_full': Recipe((rd.make_isaid,), _seg('isaid'), seg_full,
                                   lambda: seg_full(dict(models=['deeplabv3p'], backbone='resnet18', dataset='isaid', output_stride=16)),
                                   slow_set=SEG_SLOW),
    'rsseg_benchmark_potsdam_hrnet_w48_full': Recipe((rd.make_potsdam,), _seg('potsdam'), seg_full,
                                   lambda: seg_full(dict(models=['hrnet'], backbone='hrnet_w18', dataset='potsdam')),
                                   slow_set=SEG_SLOW[:-1]),
    'rsseg_benchmark_released': Recipe((rd.make_isaid,), _seg('isaid'), seg_released, trains=False, weights='weights',
                                       slow_set=('n_eval=1', 'n_show=0')),
    'sgsln_full': Recipe((rd.make_levir,), _levir, change_net, lambda: change_net(dict(width=8)),
                         slow_set=('epochs=1', 'bs=2', 'warmup=1', 'start_epoch=0')),
    'sgsln_released': Recipe((rd.make_levir,), _levir, change_net, slow_set=('epochs=1', 'bs=2')),
}

def paper_of(f:Path) -> str:
    return next(p for p in sorted(repro.list_papers(), key=len, reverse=True) if f.stem.startswith(p + '_'))

@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    "One miniature data root for the module, each maker run once."
    root, done = tmp_path_factory.mktemp('rsnb_data'), set()
    def get(makers):
        for m in makers:
            if m not in done: m(root); done.add(m)
        return root
    return get

@pytest.mark.parametrize('f', PARAMS, ids=lambda f: f.stem)
def test_params_file_fast(f, data_root):
    assert f.stem in RECIPES, f'{f.name}: no rehearsal recipe in tests/test_rehearsal.py (add one to RECIPES)'
    rec, paper = RECIPES[f.stem], paper_of(f)
    pars = repro.load_params(paper, str(f))                      # every name is a parameter of the notebook
    for s in rec.slow_set:                                        # and so is every name the slow rehearsal sets
        repro.check_params(paper, {s.split('=')[0]: None}, f'{f.name} rehearsal --set')
    if rec.data:
        root = data_root(rec.data)
        if rec.prep: rec.prep(root)
    if rec.model:
        n = n_params(rec.model(pars))
        assert n > 0
        if rec.card_params is not None: assert n == rec.card_params, (n, rec.card_params)
        if rec.smaller is not None:
            small = n_params(rec.smaller())
            assert n > small, f'{f.stem}: the full-size model ({n:,} parameters) is not larger than the CPU-scale one ({small:,})'

def test_recipes_name_existing_params_files():
    assert sorted(RECIPES) == [f.stem for f in PARAMS], set(RECIPES) ^ {f.stem for f in PARAMS}

def test_scene_archives_prepare(tmp_path):
    "UC Merced and NWPU-RESISC45 in their published zip layouts extract into the ImageFolder roots rsnb expects."
    rd.make_ucm(tmp_path); rd.make_nwpu(tmp_path)
    _scene(tmp_path, 'ucm', 21); _scene(tmp_path, 'nwpu', 45)
    assert rd.prepare_scene(tmp_path, 'ucm').parts[-2:] == ('UCMerced_LandUse', 'Images')

def test_vaihingen_prepares(tmp_path):
    rd.make_vaihingen(tmp_path); _seg('vaihingen')(tmp_path)

RELEASED = sorted({repro.load_params(paper_of(f), str(f)).get(r.weights) for f in PARAMS for r in [RECIPES[f.stem]] if r.weights} - {None})

@pytest.mark.parametrize('name', RELEASED)
def test_released_standin_converts(name, tmp_path, monkeypatch):
    "The released file's stand-in (published format and shapes) goes through the registry's converter and loads by name."
    from rsnb.weights import registry_entry, resolve_model, CARD_TASK
    monkeypatch.setenv('RSNB_WEIGHTS', str(tmp_path/'cache'))
    pth = rd.converted_standin(name, tmp_path/'cache')
    e = registry_entry(name)
    assert resolve_model(name, task=CARD_TASK.get(e['task'], e['task'])) == pth
    card = json.loads(pth.with_suffix('.json').read_text())
    assert card['name'] == name and card['source']['registry_name'] == name and 'stand-in' in card['source']['checksum']
    assert sum(v.numel() for v in torch.load(pth, weights_only=True).values()) > 1_000_000   # full size, not a toy

# --- slow: the rehearsal run itself ----------------------------------------------------------------------------------------

def repro_cli(*args, data, timeout=1500, env=None):
    env = {**os.environ, 'RSNB_DATA': str(data), 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', **(env or {})}
    return subprocess.run([str(Path(sys.executable).parent/'rsnb-repro'), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)

def _weights_here(name) -> bool:
    from rsnb.weights import weights_cache
    return name is None or any(weights_cache().glob(f'{name}*'))

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('RSNB_SLOW'), reason='slow (a rehearsal run per params file): set RSNB_SLOW=1')
@pytest.mark.parametrize('f', PARAMS, ids=lambda f: f.stem)
def test_params_file_rehearsal(f, data_root, tmp_path):
    rec, paper = RECIPES[f.stem], paper_of(f)
    pars = repro.load_params(paper, str(f))
    env = {}
    if rec.weights and pars.get(rec.weights) and not _weights_here(pars[rec.weights]):
        # no released file here: a stand-in in its published format (seeded values), converted by the real converter
        rd.converted_standin(pars[rec.weights], tmp_path/'weights'); env['RSNB_WEIGHTS'] = str(tmp_path/'weights')
    root = data_root(rec.data)
    if rec.prep: rec.prep(root)
    sets = [a for s in rec.slow_set for a in ('--set', s)]
    out = repro_cli(paper, '--params', f, *sets, '--out', tmp_path/'runs', '-q', data=root, env=env)
    assert out.returncode == 0, f'{f.name}: exit {out.returncode}: {out.stderr.strip().splitlines()[-1:]}'
    run, = (tmp_path/'runs'/paper).iterdir()
    res = json.loads((run/'results.json').read_text())
    assert res['paper'] == paper and res['measured']
    head = next(l for l in out.stdout.splitlines() if l.startswith('dataset'))
    assert head.split()[:6] == ['dataset', 'model', 'metric', 'paper', 'rsnb', 'difference']
    assert (run/'params.yaml').exists()
    if not rec.trains: return
    cks = repro.checkpoints(run)
    assert cks, f'{f.name}: no checkpoint.pth written under the run folder'
    again = repro_cli(paper, '--resume', run, '-q', data=root, env=env)
    assert again.returncode == 0, f'{f.name} --resume: exit {again.returncode}: {again.stderr.strip().splitlines()[-1:]}'
    assert json.loads((run/'results.json').read_text())['measured'].keys() == res['measured'].keys()
