"""The paper pages: their bookkeeping lives in rsnb.repro (and records what the pages' old Results cells recorded), each
page opens with a summary of its committed results, shows pipeline checks apart from measurements, and uses one unit
per metric."""
import ast, json, re
from pathlib import Path
from types import SimpleNamespace
import numpy as np, pandas as pd, pytest
from rsnb import repro
from rsnb.repro import (page_record, record_paper, record_results, results_table, summary, pipeline_checks, page_results,
                        PAPER_ROWS, FIXTURE_WHAT, ECEA_COLS)
from rsnb.core import load_json
from rsnb.weights import registry

ROOT = Path(__file__).resolve().parents[1]
PAGES = ['bahri2019', 'sgsln', 'egan', 'ecea', 'rsseg_benchmark']
OLD = json.loads((ROOT/'tests'/'fixtures'/'repro_pages'/'old_results_cells.json').read_text())

# --- the same inputs through the old Results cells and through record_paper ------------------------------------------

def bahri_ns(**kw):
    return dict(dataset='aid150', split='50/50', arch='tf_efficientnet_lite0', pretrained=True, loss='ice', faithful=False, se=True,
                epochs=2, lr=1e-2, batch=16, image_size=96, max_per_class=10, augment=True, seed=0, ablation_seeds=[0, 1, 2],
                ablation_epochs=10, ablation_lr=1e-2, train=True, weights=None, test_dir=None, map_demo=True, resume=False,
                dev=SimpleNamespace(type='cpu'), res=dict(oa=0.1, oa_lo=0.05, oa_hi=0.15, kappa=0.0731, n=150, cm=None), train_s=58.25,
                released=dict(oa=1/30, oa_lo=0.0, oa_hi=0.1, n=60), ablation={'ice': [0.8, 0.82, 0.79], 'ce': [0.81, 0.83, 0.8]},
                rank0=True, np=np) | kw

class Dls(SimpleNamespace): pass

def sgsln_ns(**kw):
    from rsnb.change.datasets import CHANGE_DATASETS
    return dict(dataset='oscd_rgb128', model='dpcd', width=8, epochs=2, crop=64, crops_per_image=1, tile_train=False, bs=8, lr=1e-3,
                warmup=20, patience=12, start_epoch=0, threshold=0.5, seed=0, resume=False, dev=SimpleNamespace(type='cpu'), split='val',
                dls=Dls(train_ds=[0]*251, train=[0]*31), scores=dict(precision=0.1234, recall=0.05, f1=0.0712, iou=0.0369, oa=0.9637, kappa=0.061),
                released=dict(precision=0.0169, recall=0.0108, f1=0.01318, iou=0.0066, oa=0.5, kappa=0.0), released_what=FIXTURE_WHAT,
                CHANGE_DATASETS=CHANGE_DATASETS, rank0=True) | kw

def egan_ns(**kw):
    rd = lambda codecs, targets, seed: pd.DataFrame([dict(codec=c, target=t, bpp=0.3 + t/3 + i/10, bpp_stream=0.28 + t/3, bpp_est=0.27 + t/3,
                                                          psnr=29.0 + t + i, ms_ssim=0.93 + t/100, lpips=0.2 - t/20, vif=0.3 + t/10 if i else np.nan)
                                                     for i, c in enumerate(codecs) for t in targets])
    S = pd.concat([rd(['learned (msh)'], [0., 1., 2.], 0), rd(['EGA-Net (GAN decoder)'], [0., 1., 2.], 1), rd(['jpeg2000', 'hevc'], [0.15, 0.3], 2)])
    RS = pd.DataFrame([dict(bpp=0.0745, bpp_stream=0.05, bpp_est=0.04, psnr=13.75, ms_ssim=0.321, lpips=np.nan)], index=['released fixture-bmshj2018-hyperprior-N16'])
    BD = pd.DataFrame([dict(codec='learned (msh)', **{'bd_rate_vs_jpeg2000_%': 15.9, 'bd_psnr_vs_jpeg2000': -0.72, 'bd_rate_vs_hevc_%': np.nan}),
                       dict(codec='avif', **{'bd_rate_vs_jpeg2000_%': -21.7, 'bd_psnr_vs_jpeg2000': 0.9, 'bd_rate_vs_hevc_%': -5.0})])
    SP = pd.DataFrame([dict(codec='learned (msh)', encode_MP_s=2.75, decode_MP_s=0.76), dict(codec='jpeg2000', encode_MP_s=3.9, decode_MP_s=12.0)])
    RS2 = pd.DataFrame([dict(codec='jpeg2000-16bit', target=1.0, bpp=0.99, psnr=26.1, sam=4.4)])
    DS = pd.DataFrame([dict(codec='original', target=0.0, bpp=24.0, precision=0.25, recall=0.4, f1=0.303, iou=0.18, fp=3),
                       dict(codec='jpeg', target=0.3, bpp=0.31, precision=0.11, recall=0.5, f1=0.2, iou=0.1, fp=9)])
    P40 = rd(['jpeg2000', 'hevc'], [0.4], 3)
    return dict(model_id='compression_msh_default', released=None, released_more=(), gan_model_id='compression_egan_default', n_images=2,
                rates=(0, 0.5, 1, 1.5, 2), targets=(0.15, 0.3), codecs=('jpeg2000', 'hevc'), cd_model='change_dpcd_sztaki_cpu', cd_pairs=2,
                cd_targets=(0.3,), cd_codecs=('jpeg',), resume=False, dev=SimpleNamespace(type='cpu'), S=S, RS=RS, G=S.iloc[3:6], BD=BD, SP=SP,
                RS2=RS2, R16=pd.DataFrame(), DS=DS, P40=P40, card={'training': {'steps': 29886}}, sha='ab' * 32,
                rel_ids=['fixture-bmshj2018-hyperprior-N16'], gan_card={'loss': 'hific'}, det_card={'width': 8}, main=True, pd=pd) | kw

def ecea_ns(**kw):
    sc = lambda k: {c: 0.01 * (i + 1) * k for i, c in enumerate(ECEA_COLS)}
    return dict(img_size=64, dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], heads=[1, 1, 2, 2], ps_hidden=16, ps_res=1, mid_res=1,
                faithful=False, d_width=16, adv=1.0, per=0.5, sty=1e4, l1=100.0, cshe_w=80.0, vgg_layers=['relu1_1', 'relu2_1'],
                hole_weight=5.0, batch_size=8, lr=5e-4, betas=[0.95, 0.9995], test_cols=[2, 5], pretrained=None, seed=0, resume=False,
                dev=SimpleNamespace(type='cpu'), G=SimpleNamespace(prefilled=False, residual=False), res={'ECEA': sc(3), 'FillNodata': sc(1), 'temporal_LLHM': sc(2)},
                res_rel={'released': sc(9)}, released_what=FIXTURE_WHAT, hist=[{'seconds': 30.0}, {'seconds': 121.0}], steps_run=60,
                n_params=123456, cases=[0]*13, cols=list(ECEA_COLS), main=True) | kw

def rsseg_ns(dataset='dubai', weights=None, **kw):
    rel = 'fcn-hrnet_w18 (seeded fixture checkpoint)' if weights is None else 'deeplabv3p-resnet50_vd'
    ev = lambda m: dict(miou_benchmark=m, miou=m + 0.01, iou={'building': m / 2, 'water': m * 2})
    structures = {'deeplabv3p-resnet18': dict(output_stride=16, multi_grid=[1, 1, 1], desc='output stride 16'),
                  rel: dict(output_stride=None, multi_grid=None, desc='HRNet-W18: no output stride') if weights is None else dict(output_stride=8, multi_grid=[1, 2, 4], desc='output stride 8')}
    return dict(dataset=dataset, models=['deeplabv3p'], backbone='resnet18', encoder_weights=None, iters=20, batch_size=2, crop=64, zoom=0.5,
                eval_mode='whole', n_eval=4, lr=0.01, seed=42, weights=weights, resume=False, output_stride=16, holdout=['tile5', 'tile6'],
                dev=SimpleNamespace(type='cpu'), results={'deeplabv3p-resnet18': ev(0.28), rel: ev(0.005)}, rel_name=rel, structures=structures,
                timings={'deeplabv3p': dict(train_s=10.0)}, train_items=[0]*40, valid_items=[0]*18, eval_items=[0]*4,
                ref=PAPER_ROWS['rsseg_benchmark'].get(dataset, {}), registry=registry, main=True) | kw

CASES = {'bahri2019': bahri_ns, 'sgsln': sgsln_ns, 'egan': egan_ns, 'ecea': ecea_ns, 'rsseg_benchmark': rsseg_ns,
         'rsseg_benchmark/potsdam released': lambda: rsseg_ns('potsdam', 'deeplabv3p-resnet50-vd-potsdam-512x512-80k'),
         'bahri2019/released': lambda: bahri_ns(weights='bahri2019-aid-70-30', train=False, ablation={}, res=None),
         'egan/released': lambda: egan_ns(released='bmshj2018-hyperprior-3', rel_ids=['bmshj2018-hyperprior-3'])}

def run_old(paper, ns, out:Path) -> dict:
    "The old Results cell of `paper` on `ns`, writing into `out`; its results.json."
    g = dict(ns, out_dir=str(out), out=out, record_results=record_results, results_table=results_table, load_json=load_json)
    exec(OLD[paper], g)
    return load_json(out/'results.json')

def same(old, new):
    drop = ('created', 'machine', 'checks')
    assert {k: v for k, v in old.items() if k not in drop} == {k: v for k, v in new.items() if k not in drop}

@pytest.mark.parametrize('case', list(CASES))
def test_record_paper_writes_what_the_old_cell_wrote(case, tmp_path):
    paper = case.split('/')[0]
    ns = CASES[case]()
    old = run_old(paper, ns, tmp_path/'old')
    new = record_paper(paper, ns, out_dir=tmp_path/'new')
    if paper == 'bahri2019':   # the one stored unit that changed: kappa in % (as sgsln's), not a fraction
        for k, v in old['measured'].items():
            if 'kappa' in v: assert new['measured'][k]['kappa'] == pytest.approx(100*v['kappa']); v['kappa'] = new['measured'][k]['kappa']
    same(old, new)
    assert new == load_json(tmp_path/'new'/'results.json')

def test_sgsln_comparison_rows(tmp_path):
    "The slow comparison cell re-records with the multi-seed rows (and, unlike the old cell, keeps the official row's names)."
    summ = {'oscd_rgb128': {'unet': dict(precision=0.2, recall=0.1, f1=0.125, iou=0.07, oa=0.95, kappa=0.1, f1_std=0.03, cpu_s_per_epoch=4.04)}}
    ns = sgsln_ns()
    run_old('sgsln', ns, tmp_path/'old')
    g = dict(ns, out_dir=str(tmp_path/'old'), record_results=record_results, summaries=summ,
             **{k: v for k, v in page_record('sgsln', ns).items() if k in ('measured', 'reference', 'params', 'notes')})
    exec(OLD['sgsln_compare'].replace('#| slow\n', ''), g)
    old = load_json(tmp_path/'old'/'results.json')
    new = record_paper('sgsln', dict(ns, summaries=summ), out_dir=tmp_path/'new')
    assert new['measured']['oscd_rgb128/unet/3seeds'] == {'precision': 20.0, 'recall': 10.0, 'f1': 12.5, 'iou': 7.0, 'oa': 95.0, 'kappa': 10.0,
                                                          'f1_std': 3.0, 'cpu_s_per_epoch': 4.0}
    same(old, {k: v for k, v in new.items() if k != 'rows'})

def test_checks_are_the_fixture_rows():
    "A released-weights path on seeded weights is listed in `checks`; with released weights nothing is."
    for case, want in [('bahri2019', ['aid150 50/50 SE+ICE released-model fixture (random weights)']), ('sgsln', ['oscd_rgb128/official']),
                       ('egan', ['released fixture-bmshj2018-hyperprior-N16 (Landsat-8 held-out)']), ('ecea', [f'released: {FIXTURE_WHAT}']),
                       ('rsseg_benchmark', ['fcn-hrnet_w18 (seeded fixture checkpoint)'])]:
        assert page_record(case, CASES[case]())['checks'] == want, case
    assert page_record('bahri2019', CASES['bahri2019/released']())['checks'] == []
    assert page_record('rsseg_benchmark', CASES['rsseg_benchmark/potsdam released']())['checks'] == []
    assert page_record('ecea', ecea_ns(released_what='eet'))['checks'] == []

# --- the committed pages and their results ------------------------------------------------------------------------------

def committed(paper):
    r = page_results(paper)
    assert isinstance(r, dict), r
    return r

def code_cells(paper):
    return [c for c in json.loads((ROOT/'nbs'/'papers'/f'{paper}.ipynb').read_text())['cells']]

@pytest.mark.parametrize('paper', PAGES)
def test_summary_rows(paper):
    s = summary(committed(paper))
    assert 1 <= len(s.rows) <= 8
    for r in s.rows:   # every paper number is answered: rsnb's number, or what a measurement needs
        assert isinstance(r['rsnb'], (int, float)) or (r['status'] and r['status'] != 'not measured'), r
        assert isinstance(r['rsnb'], (int, float)) == (not r['status'].startswith(('needs', 'not in this run', 'rsnb reports', 'FITS'))), r
    assert s.rows[0]['paper'] is not None or paper == 'ecea'   # ECEA publishes no numbers
    assert '<table' in s._repr_html_() and str(s).splitlines()[1].split()[:3] == ['dataset', 'model', 'metric']

@pytest.mark.parametrize('paper', PAGES)
def test_summary_cell_comes_first(paper):
    "The first code cell after the parameters and import cells shows the summary of the committed results."
    cells = [c for c in code_cells(paper) if c['cell_type'] == 'code']
    i = next(i for i, c in enumerate(cells) if 'parameters' in c['metadata'].get('tags', []))
    def setup(c):
        body = ast.parse(''.join(c['source'])).body
        return all(isinstance(n, (ast.Import, ast.ImportFrom)) or (isinstance(n, ast.Expr) and 'warnings.' in ast.unparse(n)) for n in body)
    rest = [c for c in cells[i + 1:]]
    first = next(c for c in rest if not setup(c))
    assert ''.join(first['source']).strip() == f"summary(page_results('{paper}'))"
    assert first['outputs'], 'the summary cell has no saved output'

@pytest.mark.parametrize('paper', PAGES)
def test_results_cells_are_short(paper):
    "The cells under the Results heading (rsseg: Record, Paper against rsnb) are one to three lines; no page calls record_results itself."
    sec, n = None, 0
    for c in code_cells(paper):
        s = ''.join(c['source'])
        if c['cell_type'] == 'markdown' and s.startswith('#'): sec = s.splitlines()[0]; continue
        if c['cell_type'] != 'code': continue
        assert 'record_results(' not in s
        if sec and re.match(r'## (Results|Record|Paper against rsnb)', sec):
            n += 1; assert len([l for l in s.splitlines() if l.strip()]) <= 3, s
    assert n >= 1
    titles = [''.join(c['source']).splitlines()[0] for c in code_cells(paper) if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith('#')]
    assert '## Pipeline checks (random-weight fixtures, not measurements)' in titles

FIXTURE = re.compile(r'fixture|random weights|seeded|untrained', re.I)

@pytest.mark.parametrize('paper', PAGES)
def test_no_fixture_in_the_measured_table(paper):
    res = committed(paper)
    t = results_table(res, metrics='all')
    assert not [r for r in t.rows if FIXTURE.search(r['model'])]
    for k in res['measured']:   # every fixture row is a listed check, shown in its own table
        if FIXTURE.search(k + repro.row_keys(res, k)[1]): assert k in res.get('checks', []), k
    if res.get('checks'): assert pipeline_checks(res).rows

PERCENT = ('oa', 'f1', 'iou', 'miou', 'miou_standard', 'precision', 'recall', 'kappa')
FRACTION = ('ssim', 'ms_ssim')

@pytest.mark.parametrize('paper', PAGES)
def test_units(paper):
    "F1/IoU/OA/precision/recall/kappa/mIoU in % on every page (some value above 1 where one is measured), SSIM and MS-SSIM in 0-1."
    res = committed(paper)
    pct, frac = [], []
    for table in ('measured', 'reference'):
        for row, vals in res[table].items():
            for m, v in vals.items():
                if not isinstance(v, (int, float)): continue
                if m in PERCENT or m.startswith('iou_'): pct.append((table, row, m, v))
                if m in FRACTION: frac.append((table, row, m, v))
    assert all(-100 <= v <= 100 if m == 'kappa' else 0 <= v <= 100 for *_, m, v in pct), [p for p in pct if not 0 <= p[3] <= 100]
    assert all(0 <= v <= 1 for *_, v in frac)
    mine = [v for t, *_, v in pct if t == 'measured']
    if mine: assert max(mine) > 1, 'percent metrics all below 1: fractions?'
    if paper != 'ecea': assert mine or paper == 'egan' and frac

def test_page_results_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(repro, 'papers_dir', lambda: tmp_path)
    r = page_results('bahri2019')
    assert isinstance(r, str) and len(r.splitlines()) == 1 and 'bahri2019' in r and summary(r) == r

@pytest.mark.parametrize('paper', PAGES)
def test_full_table_grouped_by_dataset(paper):
    "Below the summary, the full table: the paper's rows, then rsnb's own, each part one block per dataset."
    t = results_table(committed(paper), metrics='all')
    for part in (t.compared, t.rsnb_only):
        ds = [r['dataset'] for r in part]
        blocks = [d for i, d in enumerate(ds) if i == 0 or d != ds[i - 1]]
        assert len(blocks) == len(set(blocks)), blocks

def test_cli_prints_summary_then_table():
    "rsnb-repro's output: the headline rows, the full table, then the names of the pipeline-check rows it left out."
    text = '\n'.join(repro._table('sgsln', ROOT/'nbs'/'papers'/'results'/'sgsln.json'))
    assert text.index('sgsln: summary') < text.index('rsnb configuration')
    assert 'Pipeline checks (random-weight fixtures, not measurements), left out of the table: oscd_rgb128/official' in text
    assert 'official' not in text.split('left out of the table')[0].split('rsnb configuration')[1]
