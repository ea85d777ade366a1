"""End-to-end fixture for PaddleSeg's RS segmentation benchmark: the repository's own `tools/val.py` on a miniature Potsdam.

    /work/h26-parity/.venv/bin/python tests/test_e2e_paddleseg.py /tmp/pdl_raw        # the raw zips (rsnb's venv: rasterio)
    nice -n 10 /work/venvs/paddle/bin/python tools/parity/e2e_paddleseg.py --repo /work/refs/paddleseg --raw /tmp/pdl_raw \\
        --out tests/fixtures/e2e/paddleseg

Venv: `pip install paddlepaddle==3.3.1 'numpy<2' 'opencv-python<=4.6.0' pyyaml tqdm filelock scipy prettytable
scikit-learn scikit-image visualdl` (the checkout's `requirements.txt`); PaddleSeg itself is imported from the work tree
`--repo` (github.com/PaddlePaddle/PaddleSeg @ d7975e7, Apache-2.0; `git archive d7975e7 contrib/RSSegBenchmark paddleseg
tools configs`), never copied.

Steps, all the original's own code: `contrib/RSSegBenchmark/data/prepare_potsdam.py RAW -o data/Potsdam` (the two zips
the mmsegmentation instructions name: `2_Ortho_RGB.zip`, `5_Labels_all_noBoundary.zip`), `tools/data/create_dataset_list.py
data/Potsdam --separator ' ' --folder img_dir ann_dir --second_folder train val --format png png` (the benchmark README
points to it for `train.txt`/`val.txt`), then `tools/val.py --config
contrib/RSSegBenchmark/configs/fcn/fcn_hrnet_w18_potsdam_512x512_80k.yml --model_path model.pdparams --device cpu
--opts model.backbone.pretrained=None` (the backbone's ImageNet URL cannot be fetched offline; every tensor is then
replaced from `--model_path` anyway). `benchmark val.py` of contrib/RSSegBenchmark is not used: at d7975e7 it fails to
build its config; `tools/val.py` runs the same `paddleseg.core.evaluate`.

Run-time hooks (in memory, observation only): `paddleseg.core.infer.inference` wrapped to record the logits and argmax it
returns; `paddleseg.core.evaluate` wrapped to record its return value (mIoU, Acc, class IoU, class precision, Kappa)
and the validation file list.

Weights: the network-parity manifest of FCN HRNet-W18 (`tests/fixtures/parity/paddleseg/fcn_hrnet_w18.json`) with the
classifier resized to 6 classes, values from `seeded_weight` (the rule of `tools/parity/paddleseg.py`), then the
classifier scaled by 4 and its bias set to minus each class's mean logit over the validation pixels of a first pass
(recorded as `overrides`), so that every class wins somewhere. Saved with `paddle.save(model.state_dict())` (the
`.pdparams` PaddleSeg's train.py writes).
"""
import argparse, hashlib, json, os, platform, runpy, shutil, subprocess, sys, tempfile, zlib
from pathlib import Path
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:] = [q for q in sys.path if Path(q or '.').resolve() != HERE]
ROOT = HERE.parents[1]
CONFIG = 'contrib/RSSegBenchmark/configs/fcn/fcn_hrnet_w18_potsdam_512x512_80k.yml'
N = 6
TIE = 1e-4       # top-1 minus top-2 logit below this (relative to the logit scale) is a near-tie of the argmax
STRIDE = 16

def seeded_weight(name, shape):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    shape = tuple(shape)
    if name.endswith('_variance'): a = rng.uniform(0.5, 1.5, shape)
    elif name.endswith('_mean'): a = rng.standard_normal(shape) * 0.1
    elif len(shape) <= 1 and (name.endswith('.weight') or name.endswith('gamma')): a = rng.uniform(0.5, 1.5, shape)
    elif len(shape) <= 1: a = rng.standard_normal(shape) * 0.1
    else: a = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    return a.astype(np.float32)

def manifest():
    man = json.loads((ROOT/'tests'/'fixtures'/'parity'/'paddleseg'/'fcn_hrnet_w18.json').read_text())['manifest']
    return {k: ([N, *s[1:]] if k.startswith('head.cls.') else s) for k, s in man.items()}

def digest(path) -> str:
    from PIL import Image
    return hashlib.sha256(np.ascontiguousarray(np.asarray(Image.open(path))).tobytes()).hexdigest()[:16]

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repo', type=Path, required=True); ap.add_argument('--raw', type=Path, required=True)
    ap.add_argument('--out', type=Path, default=ROOT/'tests'/'fixtures'/'e2e'/'paddleseg')
    a = ap.parse_args()
    repo = a.repo.resolve()
    tmp = Path(tempfile.mkdtemp())
    raw = tmp/'raw'; raw.mkdir()
    for z in ('2_Ortho_RGB.zip', '5_Labels_all_noBoundary.zip'): shutil.copy(a.raw/z, raw/z)
    work = tmp/'work'; (work/'data').mkdir(parents=True)
    py = sys.executable
    subprocess.run([py, str(repo/'contrib/RSSegBenchmark/data/prepare_potsdam.py'), str(raw), '-o', str(work/'data'/'Potsdam')], check=True, cwd=work)
    subprocess.run([py, str(repo/'tools/data/create_dataset_list.py'), str(work/'data'/'Potsdam'), '--separator', ' ', '--folder', 'img_dir', 'ann_dir',
                    '--second_folder', 'train', 'val', '--format', 'png', 'png'], check=True, cwd=work)
    sys.path.insert(0, str(repo))
    import paddle, paddleseg
    import paddleseg.core, paddleseg.core.infer as infer
    paddle.set_device('cpu')
    rec = dict(logits=[], preds=[], result=None, files=None)
    inf = infer.inference
    def inference(model, im, **kw):
        out = inf(model, im, **kw)
        pred, logit = out
        rec['logits'].append(logit.numpy().astype(np.float32)); rec['preds'].append(pred.numpy())
        return out
    infer.inference = inference
    ev = paddleseg.core.evaluate
    def evaluate(model, eval_dataset, **kw):
        r = ev(model, eval_dataset, **kw); rec['result'] = r; rec['files'] = [f for f in eval_dataset.file_list]; return r
    paddleseg.core.evaluate = evaluate
    # the model (as val.py builds it) to write the seeded checkpoint in PaddleSeg's own format
    from paddleseg.cvlibs import Config, SegBuilder
    man = manifest()
    def write(path, overrides):
        cfg = Config(str(repo/CONFIG), opts=['model.backbone.pretrained=None'])
        m = SegBuilder(cfg).model
        sd = m.state_dict()
        assert {k: list(v.shape) for k, v in sd.items()} == man, 'the config builds another network than the manifest'
        vals = {k: seeded_weight(k, s) for k, s in man.items()}
        for k, v in overrides.items(): vals[k] = (vals[k]*v['scale'] if 'scale' in v else np.asarray(v['value'], np.float32)).astype(np.float32)
        m.set_state_dict({k: paddle.to_tensor(v) for k, v in vals.items()})
        paddle.save(m.state_dict(), str(path))
    def val(path):
        rec.update(logits=[], preds=[], result=None, files=None)
        argv, cwd = sys.argv, os.getcwd()
        sys.argv = ['val.py', '--config', str(repo/CONFIG), '--model_path', str(path), '--device', 'cpu', '--opts', 'model.backbone.pretrained=None']
        os.chdir(work)
        try: runpy.run_path(str(repo/'tools'/'val.py'), run_name='__main__')
        finally: sys.argv = argv; os.chdir(cwd)
        return np.concatenate(rec['logits'])
    ov = {'head.cls.weight': {'scale': 4.0}}
    write(tmp/'model0.pdparams', ov)
    lg = val(tmp/'model0.pdparams')
    ov['head.cls.bias'] = {'value': [round(float(x), 4) for x in (seeded_weight('head.cls.bias', [N]) - lg.mean((0, 2, 3)))]}
    write(tmp/'model.pdparams', ov)
    lg = val(tmp/'model.pdparams')
    pred = np.concatenate(rec['preds'])[:, 0].astype(np.uint8)
    s = np.sort(lg, axis=1); margin = s[:, -1] - s[:, -2]; scale = float(np.abs(lg).max())
    ties = np.argwhere(margin < TIE*scale).astype(np.int32)
    miou, acc, class_iou, class_precision, kappa = rec['result']
    files = [(Path(i).name, Path(l).name) for i, l in rec['files']]
    pdir = work/'data'/'Potsdam'
    prepared = {split: {f.name: digest(f) for f in sorted((pdir/'img_dir'/split).glob('*.png'))} for split in ('train', 'val')}
    prepared_ann = {split: {f.name: digest(f) for f in sorted((pdir/'ann_dir'/split).glob('*.png'))} for split in ('train', 'val')}
    labels = np.stack([np.asarray(__import__('PIL.Image', fromlist=['Image']).open(pdir/'ann_dir'/'val'/l)) for _, l in files])
    a.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out/'outputs.npz', pred=pred, logits_sub=lg[:, :, STRIDE//2::STRIDE, STRIDE//2::STRIDE],
                        logit_sum=lg.astype(np.float64).sum((2, 3)), logit_sumsq=(lg.astype(np.float64)**2).sum((2, 3)), ties=ties)
    hist = np.bincount(pred.ravel(), minlength=N)
    info = dict(config=CONFIG, registry_name='fcn-hrnet-w18-potsdam-512x512-80k', n_classes=N, overrides=ov, files=files,
                metrics=dict(miou=float(miou), acc=float(acc), kappa=float(kappa), class_iou=[float(x) for x in class_iou],
                             class_precision=[float(x) for x in class_precision]),
                class_histogram=hist.tolist(), label_histogram=np.bincount(labels.ravel(), minlength=256)[[*range(N), 255]].tolist(),
                per_image_classes=[int(len(np.unique(p))) for p in pred], near_ties=int(len(ties)), tie_tolerance=f'{TIE} x max|logit|',
                logit_scale=scale, stride=STRIDE, prepared=dict(img_dir=prepared, ann_dir=prepared_ann),
                versions=dict(original='PaddlePaddle/PaddleSeg', commit='d7975e7cb3b9102eae4eabcef5afb81b878473aa', paddlepaddle=paddle.__version__,
                              paddleseg=getattr(paddleseg, '__version__', '?') + ' (work tree)', numpy=np.__version__, python=platform.python_version(),
                              entry=f'tools/val.py --config {CONFIG} --model_path model.pdparams --device cpu --opts model.backbone.pretrained=None',
                              prepare='contrib/RSSegBenchmark/data/prepare_potsdam.py + tools/data/create_dataset_list.py'))
    (a.out/'fixture.json').write_text(json.dumps(info, indent=1))
    print(json.dumps({k: info[k] for k in ('metrics', 'class_histogram', 'per_image_classes', 'near_ties', 'files')}, indent=1))
    shutil.rmtree(tmp)

if __name__ == '__main__': main()
