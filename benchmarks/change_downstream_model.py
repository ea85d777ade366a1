"""Train the small change detector used by the compression downstream check (nbs/papers/egan.ipynb, "F1 vs bpp").

DPCD at width 8 on SZTAKI AirChange (56 training crops of 256 px, aerial RGB 1.5 m), SGSLN's loss/optimiser/schedule
through `rsnb.change.train.change_learner`, on CPU within a wall-clock budget; keeps the epoch with the best validation F1
and saves it with `save_change_model` (card: data, epochs, seconds, validation scores).

Usage: nice -n 5 .venv/bin/python benchmarks/change_downstream_model.py --minutes 30 --out rsnb/weights/change_dpcd_sztaki_cpu
"""
import argparse, time, tempfile
import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.tracker import SaveModelCallback
from rsnb.core import seed_everything
from rsnb.data import change_dls
from rsnb.metrics import ChangeScore
from rsnb.change.datasets import change_data
from rsnb.change.train import change_learner, evaluate_change
from rsnb.change.cli import save_change_model


class TimeLimit(Callback):
    "Stop training after the epoch that passes `seconds` (runs after Recorder and SaveModelCallback)."
    order = 70
    def __init__(self, seconds): self.seconds = seconds
    def before_fit(self): self.t0 = time.time()
    def after_epoch(self):
        print(f'epoch {self.epoch} f1 {self.recorder.values[-1][-1]:.4f} t {time.time() - self.t0:.0f}s', flush=True)
        if time.time() - self.t0 > self.seconds: raise CancelFitException()


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--dataset', default='sztaki_airchange'); p.add_argument('--width', type=int, default=8)
    p.add_argument('--minutes', type=float, default=30); p.add_argument('--crop', type=int, default=128)
    p.add_argument('--cpi', type=int, default=2); p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--threads', type=int, default=1); p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='runs/compression/change_dpcd_sztaki_cpu')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads); seed_everything(a.seed)
    root = change_data(a.dataset)
    dls = change_dls(root, crop=a.crop, crops_per_image=a.cpi, bs=8)
    tmp = tempfile.TemporaryDirectory()   # SaveModelCallback keeps the best epoch here and reloads it after fit
    learn = change_learner(dls, 'dpcd', width=a.width, lr=a.lr, warmup=50, monitor='f1', patience=30, path=tmp.name,
                           metrics=[ChangeScore('f1', 0.5)],
                           cbs=[TimeLimit(a.minutes*60), SaveModelCallback(monitor='f1', fname='best', with_opt=False)])
    t0 = time.time()
    with learn.no_bar(), learn.no_logging(): learn.fit(10000, a.lr)
    secs = time.time() - t0
    f1s = [v[-1] for v in learn.recorder.values]
    ev = change_dls(root, crop=None, bs=1, stats=dls.stats, aug=False).valid
    res = evaluate_change(learn.model, ev, 0.5)
    path = save_change_model(learn.model, a.out, 'dpcd', dls.stats, width=a.width, threshold=0.5,
                             dataset=a.dataset, epochs_run=len(f1s), best_epoch=int(np.argmax(f1s)), train_seconds=round(secs),
                             crop=a.crop, crops_per_image=a.cpi, lr=a.lr, hardware=f'CPU, {a.threads} thread(s)',
                             val_whole_images={k: float(res[k]) for k in ('precision', 'recall', 'f1', 'iou')})
    print(path, {k: round(float(res[k]), 4) for k in ('precision', 'recall', 'f1', 'iou')})


if __name__ == '__main__': main()
