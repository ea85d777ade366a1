"""End to end against PaddleSeg's own `tools/val.py` with the RSSegBenchmark config (fixture: `tools/parity/e2e_paddleseg.py`,
`tests/fixtures/e2e/paddleseg/`).

The original: the benchmark's `data/prepare_potsdam.py` clips a miniature ISPRS Potsdam (published zip layout: one
512-px training tile, one 1024-px validation tile, real sample pixels) into 512-px patches, PaddleSeg's
`tools/data/create_dataset_list.py` writes `train.txt`/`val.txt`, and `tools/val.py --config
contrib/RSSegBenchmark/configs/fcn/fcn_hrnet_w18_potsdam_512x512_80k.yml --model_path model.pdparams` evaluates a
seeded FCN HRNet-W18 (6 classes) on the whole validation patches. Here, on the same raw zips:
- data preparation: rsnb's `prepare_isprs` against the benchmark's script, file for file;
- `rsnb-weights convert --from paddleseg`, then `rsnb-segment` on the validation patches: class maps pixel-identical
  (near-ties of the original's argmax excepted), mIoU/Acc/Kappa and per-class IoU to the digits the paper prints;
- the converted network's logits (rsnb's API) within 1e-4 of scale;
- slow: `rsnb-repro rsseg_benchmark --params released --set weights=fcn-hrnet-w18-potsdam-512x512-80k --set
  weights_file=...`, the reproduction notebook's mIoU against val.py's."""
import hashlib, json, os
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from e2e_helpers import fixture, shared, cli, ok, diff, map_diff, tie_mask, ROOT

FAMILY = 'paddleseg'
REG = 'fcn-hrnet-w18-potsdam-512x512-80k'

def make_raw(dest:Path) -> Path:
    """`dest/2_Ortho_RGB.zip` and `dest/5_Labels_all_noBoundary.zip` as published: training tile 2_10 (the 512-px sample)
    and validation tile 2_13 (1024 px: the sample and its flipped/transposed copies, 2×2)."""
    import rehearsal_data as rd
    img, lbl = rd._potsdam_sample()
    v = rd._variants(img, lbl, 4)
    big = lambda i: np.concatenate([np.concatenate([v[0][i], v[1][i]], 1), np.concatenate([v[2][i], v[3][i]], 1)], 0)
    tiles = {'2_10': (img, lbl), '2_13': (big(0), big(1))}
    dest.mkdir(parents=True, exist_ok=True)
    rd._zip(dest/'2_Ortho_RGB.zip', {f'2_Ortho_RGB/top_potsdam_{t}_RGB.tif': rd._tif(i) for t, (i, l) in tiles.items()})
    rd._zip(dest/'5_Labels_all_noBoundary.zip', {f'top_potsdam_{t}_label_noBoundary.tif': rd._tif(l) for t, (i, l) in tiles.items()})
    return dest

def array_digest(path) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(Image.open(path))).tobytes()).hexdigest()[:16]

def write_checkpoint(info, path:Path) -> Path:
    "The seeded `.pdparams` val.py evaluated: the parity manifest with 6 classes, `seeded_weight`, the recorded overrides."
    from rsnb.segmentation.paddle import seeded_weight, write_pdparams
    man = json.loads((ROOT/'tests'/'fixtures'/'parity'/'paddleseg'/'fcn_hrnet_w18.json').read_text())['manifest']
    man = {k: ([info['n_classes'], *s[1:]] if k.startswith('head.cls.') else s) for k, s in man.items()}
    sd = {k: seeded_weight(k, s) for k, s in man.items()}
    for k, v in info['overrides'].items(): sd[k] = (sd[k]*np.float32(v['scale']) if 'scale' in v else np.asarray(v['value'], np.float32)).astype(np.float32)
    return write_pdparams(sd, path)

def paddle_metrics(pred, label, n, ignore=255) -> dict:
    "PaddleSeg's `metrics.calculate_area` + `mean_iou`/`class_measurement`/`kappa`, from rsnb's confusion matrix."
    from rsnb.metrics import confusion_matrix, iou, kappa
    keep = label != ignore
    cm = confusion_matrix(pred[keep].astype(np.int64), label[keep].astype(np.int64), n)
    tp = np.diag(cm)
    with np.errstate(invalid='ignore', divide='ignore'): prec = np.where(cm.sum(0) > 0, tp/cm.sum(0), 0.)
    ciou = iou(cm, 'zero')
    return dict(miou=float(ciou.mean()), acc=float(tp.sum()/cm.sum()), kappa=float(kappa(cm)), class_iou=ciou.tolist(), class_precision=prec.tolist())

def check_paddleseg(work:Path, api:bool=True) -> dict:
    from rsnb.segmentation.datasets import prepare_isprs
    from rsnb.weights import load_model
    from rsnb.segmentation.models import segmenter_from_card
    import rasterio
    info, arrays = fixture(FAMILY)
    work.mkdir(parents=True, exist_ok=True)
    out = {}
    # 1. data preparation: rsnb's prepare_isprs on the same zips, against the benchmark's prepare_potsdam.py
    data = work/'data'/'segmentation'/'potsdam'
    prepare_isprs('potsdam', make_raw(work/'data'/'segmentation'/'raw'/'potsdam'), data)
    prep = {}
    for kind in ('img_dir', 'ann_dir'):
        for split, want in info['prepared'][kind].items():
            got = {f.name: array_digest(f) for f in sorted((data/kind/split).glob('*.png'))}
            prep[f'{kind}/{split}'] = dict(files=len(want), same_names=sorted(got) == sorted(want),
                                           same_arrays=sum(got.get(k) == v for k, v in want.items()))
    out['data preparation (prepare_isprs vs prepare_potsdam.py)'] = prep
    # 2. the task CLI on the converted checkpoint
    ck = write_checkpoint(info, work/'model.pdparams')
    ok(cli('rsnb-weights', 'convert', '--from', 'paddleseg', ck, work/'fcn_potsdam', '--config', 'arch=fcn', 'backbone=hrnet_w18', f"n_classes={info['n_classes']}"))
    ok(cli('rsnb-segment', work/'fcn_potsdam.pth', data/'img_dir'/'val', work/'maps', '--tile', '512', '--device', 'cpu', '-q'))
    names = [i for i, _ in info['files']]
    maps = np.stack([rasterio.open(next((work/'maps').glob(f'{Path(n).stem}*.tif'))).read(1) for n in names])
    labels = np.stack([np.asarray(Image.open(data/'ann_dir'/'val'/l)) for _, l in info['files']])
    ties = tie_mask(maps.shape, arrays['ties'])
    ref = arrays['pred']
    resolved = np.where(ties, ref, maps)
    m, mr = paddle_metrics(maps, labels, info['n_classes']), paddle_metrics(resolved, labels, info['n_classes'])
    out['rsnb-segment (whole 512-px patches)'] = dict(maps=map_diff(maps, ref, ties),
        metrics={k: (m[k], v, mr[k]) for k, v in info['metrics'].items()})
    if not api: return out
    # 3. the converted network's logits (rsnb's API, PaddleSeg's normalisation (x/255 - 0.5)/0.5)
    model, card = load_model(work/'fcn_potsdam', build=segmenter_from_card)
    model.eval(); torch.set_num_threads(1)
    st = info['stride']; lg = []
    with torch.no_grad():
        for n in names:
            x = (torch.from_numpy(np.asarray(Image.open(data/'img_dir'/'val'/n).convert('RGB')).astype(np.float32)).permute(2, 0, 1)/255 - 0.5)/0.5
            lg.append(model(x[None])[0].numpy())
    lg = np.stack(lg)
    out['converted network (API)'] = dict(logits=diff(lg[:, :, st//2::st, st//2::st], arrays['logits_sub']),
                                          logit_sums=diff(lg.astype(np.float64).sum((2, 3)), arrays['logit_sum']),
                                          argmax=map_diff(lg.argmax(1), ref, ties))
    return out

@pytest.fixture(scope='module')
def figures(tmp_path_factory):
    return check_paddleseg(tmp_path_factory.mktemp('e2e_paddleseg'))

def test_fixture_can_fail():
    "Every class is predicted, every image holds all six, the labels hold five classes and the eroded boundary."
    info, arrays = fixture(FAMILY)
    assert min(info['class_histogram']) > 0.02*sum(info['class_histogram']) and set(info['per_image_classes']) == {info['n_classes']}
    assert info['label_histogram'][-1] > 0 and sum(h > 0 for h in info['label_histogram'][:-1]) >= 5
    assert info['near_ties'] < 0.01*arrays['pred'].size

def test_data_preparation_identical(figures):
    for k, v in figures['data preparation (prepare_isprs vs prepare_potsdam.py)'].items():
        assert v['files'] > 0 and v['same_names'] and v['same_arrays'] == v['files'], (k, v)

def test_cli_maps_and_metrics(figures):
    f = figures['rsnb-segment (whole 512-px patches)']
    assert f['maps']['differ_not_tie'] == 0, f['maps']
    for k, (ours, ref, resolved) in f['metrics'].items():
        if isinstance(ref, list):
            assert [round(x, 4) for x in resolved] == [round(x, 4) for x in ref], (k, resolved, ref)
        else:
            assert round(100*resolved, 2) == round(100*ref, 2), (k, resolved, ref)
            assert abs(ours - ref) <= 5*f['maps']['differ']/f['maps']['n'] + 1e-7, (k, ours, ref)

def test_api_logits(figures):
    f = figures['converted network (API)']
    assert f['logits']['rel_diff'] < 1e-4 and f['logit_sums']['rel_diff'] < 1e-4, f
    assert f['argmax']['differ_not_tie'] == 0, f['argmax']

def repro_route(work:Path) -> dict:
    "`rsnb-repro rsseg_benchmark --params released --set weights=REG --set weights_file=model.pdparams` on the prepared miniature."
    info, _ = fixture(FAMILY)
    work.mkdir(parents=True, exist_ok=True)
    from rsnb.segmentation.datasets import prepare_isprs
    prepare_isprs('potsdam', make_raw(work/'data'/'segmentation'/'raw'/'potsdam'), work/'data'/'segmentation'/'potsdam')
    ck = write_checkpoint(info, work/'model.pdparams')
    ok(cli('rsnb-repro', 'rsseg_benchmark', '--params', 'released', '--set', f'weights={REG}', '--set', f'weights_file={ck}',
           '--set', 'n_show=0', '--out', work/'runs', '-q', env={'RSNB_DATA': str(work/'data'), 'RSNB_WEIGHTS': str(work/'cache')}, timeout=1500))
    res = json.loads(next((work/'runs').rglob('results.json')).read_text())
    row = next(v for k, v in res['measured'].items() if 'fcn' in k)
    return dict(miou=(row['miou'], 100*info['metrics']['miou']))

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('RSNB_SLOW'), reason='slow (runs the reproduction notebook): set RSNB_SLOW=1')
def test_repro_released_route(tmp_path):
    f = repro_route(tmp_path)
    ours, ref = f['miou']
    assert round(ours, 2) == round(ref, 2), f

if __name__ == '__main__':      # python tests/test_e2e_paddleseg.py DEST: the raw zips for the harness
    import sys
    print(make_raw(Path(sys.argv[1])))
