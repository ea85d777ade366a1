"""End-to-end fixture for SGSLN's DPCD: the original's own `inference.py` (`train_net`) on a miniature LEVIR-CD set.

Usage (the torch reference venv of `tools/parity/README.md`, plus the original's evaluation dependencies):

    /work/venvs/torchref/bin/pip install 'numpy<2' albumentations==1.2.1 torchmetrics==0.9.3 opencv-python-headless 'setuptools<70' ipdb
    nice -n 10 /work/venvs/torchref/bin/python tools/parity/e2e_sgsln.py /work/refs/sgsln tests/fixtures/e2e/sgsln --commit 327b807...

The original (NJU-LHRS/offical-SGSLN, no licence) is imported from its work tree and never copied; the fixture holds
numbers only. What runs is the original's `inference.train_net(dataset_name, load_checkpoint=True)`: its
`compute_mean_std` on `train/t1` and `train/t2` (each date normalised with its own statistics), its `BasicDataset`
(albumentations `Normalize`), `DPCD()` at the official width 32, `torch.load(ph.load)['net']`, `sigmoid`, and its
torchmetrics 0.9.3 `Accuracy/Precision/Recall/F1Score` (threshold 0.5). Run-time patches, in memory only:
- `inference.DataLoader`: `num_workers=0` (the original asks for 8 workers with `persistent_workers`; same batches);
- `DPCD.forward` is wrapped to record the change logits and image names it returns (nothing else changes);
- `MetricCollection.compute` is wrapped to keep the dict it returns;
- `wandb` is stubbed (imported by `utils/dataset_process.py`, used by training only);
- `torch.Tensor.cuda` is the identity (the channel exchange calls `.cuda()`; on a CPU this is `.to(x.device)`).

Data (`{train,test}/{t1,t2,label}`, the layout `inference.py` reads): the LEVIR-CD sample pairs of `../shared/data`
(3 training pairs give the statistics, the 7 test pairs are predicted). A second root, `samestats`, has `train/t2` a
copy of `train/t1`: there the original's per-date statistics coincide, which is the protocol of rsnb's card (one set
of statistics for both dates), so rsnb's task CLI can be compared pixel for pixel too.

Weights: `seeded_state_dict` of `tests/fixtures/parity/dpcd/manifest_full.json` (the seed rule of `dpcd.py`), then
`conv_out_change.bias` set to minus the median test logit of a first pass (recorded as `bias_override`), so that about
half of the pixels are called changed and the maps and F1 can fail. Written as `{'net': sd}` (train.py's checkpoint).
"""
import argparse, json, platform, shutil, sys, tempfile, types, os
from pathlib import Path
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dpcd import seeded_state_dict            # the seed rule of the network parity fixture
SHARED = Path(os.environ.get('RSNB_SHARED_DATA', HERE.parents[2]/'shared'/'data'))
TIE = 1e-5        # |logit| below this is a near-tie at the 0.5 threshold (rsnb and the original differ by ~4e-7 in logits)

def make_root(dest:Path, same_stats=False) -> Path:
    src = SHARED/'change_detection'/'levir_cd'
    for split in ('train', 'test'):
        for d in ('t1', 't2', 'label'):
            (dest/split/d).mkdir(parents=True, exist_ok=True)
            sd = 't1' if (same_stats and split == 'train' and d == 't2') else d
            for f in sorted((src/split/sd).glob('*.png')): shutil.copy(f, dest/split/d/f.name)
    return dest

def load_inference(root:Path):
    torch.Tensor.cuda = lambda self, *a, **k: self
    sys.modules.setdefault('wandb', types.ModuleType('wandb'))     # imported by utils/dataset_process.py, used in training only
    sys.path.insert(0, str(root))
    import inference, models.Models as M
    orig_dl = inference.DataLoader
    inference.DataLoader = lambda ds, **kw: orig_dl(ds, shuffle=kw.get('shuffle', False), drop_last=kw.get('drop_last', False),
                                                    batch_size=kw['batch_size'], num_workers=0)
    rec = dict(logits=[], names=[], metrics=None)
    fwd = M.DPCD.forward
    def forward(self, t1, t2, log=False, img_name=None):
        out = fwd(self, t1, t2, log=log, img_name=img_name)
        rec['logits'].append(out[0].detach().clone()); rec['names'] += list(img_name)
        return out
    M.DPCD.forward = forward
    comp = inference.MetricCollection.compute
    def compute(self):
        r = comp(self); rec['metrics'] = {k: float(v) for k, v in r.items()}; return r
    inference.MetricCollection.compute = compute
    return inference, rec

def run(inference, rec, ph, data:Path, ckpt:Path):
    rec.update(logits=[], names=[], metrics=None)
    ph.load = str(ckpt)
    cwd = os.getcwd(); os.chdir(data.parent)
    try:
        stats = dict(zip(('t1_mean', 't1_std'), inference.compute_mean_std(images_dir=f'./{data.name}/train/t1/')))
        stats.update(zip(('t2_mean', 't2_std'), inference.compute_mean_std(images_dir=f'./{data.name}/train/t2/')))
        inference.train_net(dataset_name=data.name, load_checkpoint=True)
    finally: os.chdir(cwd)
    return torch.cat(rec['logits'])[:, 0].numpy().astype(np.float32), list(rec['names']), dict(rec['metrics']), {k: [float(x) for x in v] for k, v in stats.items()}

def summarise(logits, names, metrics, stats, label_dir:Path):
    from PIL import Image
    prob = 1/(1 + np.exp(-logits.astype(np.float64)))
    maps = (torch.sigmoid(torch.from_numpy(logits)) >= 0.5).numpy()       # torchmetrics 0.9.3: preds >= threshold
    labels = np.stack([np.array(Image.open(label_dir/f'{n}.png')) != 0 for n in names])
    ties = np.argwhere(np.abs(logits) < TIE)
    return dict(names=names, metrics=metrics, stats=stats, changed_fraction=float(maps.mean()),
                changed_per_image=[float(m.mean()) for m in maps], label_fraction=float(labels.mean()),
                near_ties=int(len(ties)), logit_range=[float(logits.min()), float(logits.max())]), dict(
        maps=np.packbits(maps.reshape(len(names), -1), axis=1), shape=np.array(maps.shape), logits_sub=logits[:, 1::4, 1::4],
        logit_sum=logits.astype(np.float64).sum((1, 2)), logit_sumsq=(logits.astype(np.float64)**2).sum((1, 2)),
        ties=ties.astype(np.int32), prob_mean=prob.mean((1, 2)))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('sgsln', type=Path); ap.add_argument('out', type=Path)
    ap.add_argument('--commit', default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    man = json.loads((HERE.parents[1]/'tests'/'fixtures'/'parity'/'dpcd'/'manifest_full.json').read_text())
    inference, rec = load_inference(a.sgsln.resolve())
    from utils.path_hyperparameter import ph
    tmp = Path(tempfile.mkdtemp())
    roots = {'own_stats': make_root(tmp/'levir_e2e'), 'same_stats': make_root(tmp/'levir_e2e_samestats', same_stats=True)}
    sd = seeded_state_dict(man); sd['conv_out_change.bias'] = torch.zeros(1)
    torch.save({'net': sd}, tmp/'ck0.pth')
    logits0 = run(inference, rec, ph, roots['own_stats'], tmp/'ck0.pth')[0]
    bias = round(-float(np.median(logits0)), 4)
    sd['conv_out_change.bias'] = torch.tensor([bias])
    torch.save({'net': sd}, tmp/'ck.pth')
    a.out.mkdir(parents=True, exist_ok=True)
    info, arrays = dict(bias_override={'conv_out_change.bias': [bias]}), {}
    for tag, root in roots.items():
        s, arr = summarise(*run(inference, rec, ph, root, tmp/'ck.pth'), root/'test'/'label')
        info[tag] = s; arrays.update({f'{tag}_{k}': v for k, v in arr.items()})
    np.savez_compressed(a.out/'outputs.npz', **arrays)
    import albumentations, torchmetrics
    info['versions'] = dict(original='NJU-LHRS/offical-SGSLN', commit=a.commit, entry='inference.train_net(dataset_name, load_checkpoint=True)',
                            python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
                            albumentations=albumentations.__version__, torchmetrics=torchmetrics.__version__, threads=1)
    info['data'] = dict(source='../shared/data/change_detection/levir_cd', train=sorted(f.name for f in (roots['own_stats']/'train'/'t1').iterdir()),
                        test=info['own_stats']['names'], layout='{train,test}/{t1,t2,label}/*.png', same_stats='train/t2 := train/t1')
    info['weights'] = dict(manifest='tests/fixtures/parity/dpcd/manifest_full.json', rule='rsnb.change.convert.seeded_state_dict',
                           file_form="{'net': state_dict} (train.py checkpoint)", width=32)
    info['tie_tolerance'] = TIE
    (a.out/'fixture.json').write_text(json.dumps(info, indent=1))
    print(json.dumps({k: info[k]['metrics'] for k in roots}, indent=1), info['own_stats']['changed_fraction'], info['own_stats']['near_ties'])
    shutil.rmtree(tmp)

if __name__ == '__main__': main()
