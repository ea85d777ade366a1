"""Train the default rsnb codec (mean-scale hyperprior, gain units for lo/me/hi) on CPU within a wall-clock budget.

Usage: nice -n 10 .venv/bin/python benchmarks/compression_train.py --until 00:08 --out runs/compression/msh_default
       (resume: --init runs/compression/msh_default/ckpt.pth or --init rsnb/weights/compression_msh_default.pth;
        --balanced samples sources by CODEC_SHARES)
Held out: Landsat-8 scene columns >= 1280 and the crops c5/c6 (see rsnb.compression.train.training_items).
"""
import argparse, json, time, datetime as dt, os
import torch
from fastai.data.core import DataLoaders
from _common import jsonl_logger
from rsnb.core import seed_everything
from rsnb.tiles import pick_device
from rsnb.compression.models import MeanScaleHyperprior
from rsnb.train import load_plain
from rsnb.compression.train import CropDataset, training_items, codec_learner, TimeBudget, DEFAULT_LMBDAS, CODEC_SHARES

def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--until', default=None, help='UTC HH:MM to stop (overrides --seconds)')
    p.add_argument('--seconds', type=float, default=3600)
    p.add_argument('--out', default='runs/compression/msh_default')
    p.add_argument('--N', type=int, default=64); p.add_argument('--M', type=int, default=96)
    p.add_argument('--size', type=int, default=128); p.add_argument('--bs', type=int, default=8)
    p.add_argument('--lr', type=float, default=3e-4); p.add_argument('--threads', type=int, default=1)
    p.add_argument('--init', default=None, help='state dict to start from')
    p.add_argument('--balanced', action='store_true', help='sample sources by CODEC_SHARES instead of by raster area')
    p.add_argument('--device', default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads); seed_everything(0)
    secs = a.seconds
    if a.until:
        now = dt.datetime.now(dt.timezone.utc); h, m = map(int, a.until.split(':'))
        end = now.replace(hour=h, minute=m, second=0, microsecond=0)
        if end < now: end += dt.timedelta(days=1)
        secs = (end - now).total_seconds()
    os.makedirs(a.out, exist_ok=True)
    items = training_items()
    shares = CODEC_SHARES if a.balanced else None
    tr = CropDataset(items, size=a.size, n=a.bs * 200, seed=0, shares=shares)
    va = CropDataset(items, size=a.size, n=8, seed=123, augment=False, shares=shares)
    dev = pick_device(a.device)
    # the device must be given: fastai DataLoaders built without one leave batches and model on the CPU (a GPU run trained at CPU speed)
    dls = DataLoaders.from_dsets(tr, va, bs=a.bs, num_workers=0, device=dev, pin_memory=dev.type == 'cuda')
    m = MeanScaleHyperprior(a.N, a.M)
    if a.init: m.load_state_dict(load_plain(a.init))   # data only (weights_only=True); a refused file: one line
    log = jsonl_logger(f'{a.out}/log.jsonl')
    tb = TimeBudget(secs, lr=a.lr, ckpt=f'{a.out}/ckpt.pth', every=300, log=log)
    learn = codec_learner(m, dls, lmbdas=DEFAULT_LMBDAS, cbs=[tb])
    init_steps = 0   # steps already behind the --init checkpoint (read from its run's log), so the card counts them all
    if a.init and os.path.exists(os.path.join(os.path.dirname(a.init), 'log.jsonl')):
        for l in open(os.path.join(os.path.dirname(a.init), 'log.jsonl')):
            d = json.loads(l); init_steps = max(init_steps, d.get('step', 0), d.get('steps', 0))
        prev = os.path.join(os.path.dirname(a.init), 'config.json')
        if os.path.exists(prev): init_steps += json.load(open(prev)).get('init_steps', 0)
    elif a.init and os.path.exists(os.path.splitext(a.init)[0] + '.json'):  # shipped weights: their card counts the steps
        init_steps = json.load(open(os.path.splitext(a.init)[0] + '.json')).get('training', {}).get('steps', 0)
    json.dump(dict(vars(a), device=str(dev), seconds=secs, shares=shares, lmbdas=DEFAULT_LMBDAS, n_items=len(items), started=time.time(), init_steps=init_steps),
              open(f'{a.out}/config.json', 'w'))
    with learn.no_bar(): learn.fit(100000)
    log(dict(done=True, steps=tb.steps, seconds=time.time() - tb.t0))

if __name__ == '__main__':
    import sys
    from rsnb.core import RsnbError
    try: main()
    except RsnbError as e: sys.exit(f'compression_train.py: error: {e}')   # a refused --init file: one line, no traceback
