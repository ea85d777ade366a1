"""Train the ECEA Landsat-7 SLC-off inpainting generator under a wall-clock budget, on CUDA when present.

The recipe of `nbs/papers/ecea.ipynb` (its defaults: README run, Adam 5e-4, betas (0.95, 0.9995), constant LR,
adversarial loss with the patch discriminator; held-out tile columns never trained on), on the shared SLC-off sample.
Writes RUN/G.pth + G.json (model card), RUN/checkpoint.pth every --every-minutes, RUN/log.jsonl, RUN/history.json.
Usage: python benchmarks/ecea_train.py --seconds 300 --out runs/ecea/gpu [--device cuda] [--resume] [--img-size 64]
"""
import argparse, json, sys, time
from pathlib import Path
import torch
from torch.utils.data import DataLoader
from rsnb.core import seed_everything, save_json
from rsnb.tiles import pick_device
from rsnb.inpainting.slcoff import slcoff_items, read_tile, fit_scaler
from rsnb.inpainting.model import ECEAGenerator, PatchDiscriminator
from rsnb.inpainting.losses import ECEALoss
from rsnb.inpainting.train import SlcoffPatches, train_ecea, save_ecea
from rsnb.train import load_checkpoint

def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--seconds', type=float, default=300); p.add_argument('--out', default='runs/ecea/budget')
    p.add_argument('--device', default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument('--img-size', type=int, default=64); p.add_argument('--bs', type=int, default=8)
    p.add_argument('--steps', type=int, default=200_000, help='upper bound; the budget usually ends the run first')
    p.add_argument('--small', action='store_true', help='a narrow generator (CPU rehearsal)')
    p.add_argument('--test-cols', default='5', help='held-out tile columns, comma-separated')
    p.add_argument('--resume', action='store_true'); p.add_argument('--every-minutes', type=float, default=2.)
    p.add_argument('--workers', type=int, default=None); p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    seed_everything(a.seed); dev = pick_device(a.device)
    test_cols = {int(c) for c in a.test_cols.split(',') if c}
    items = slcoff_items()
    tiles = {(i['date'], i['row'], i['col']): read_tile(i)[:2] for i in items}
    meta0 = read_tile(items[0])[2]
    dates = sorted({k[0] for k in tiles})
    train = {k: v for k, v in tiles.items() if k[2] not in test_cols}
    scaler = fit_scaler([x for x, m in train.values()], [m for x, m in train.values()])
    keys = sorted(train)
    tl = [(scaler.encode(train[k][0]), train[k][1]) for k in keys]
    borrow = [[tiles[(d, k[1], k[2])][1] for d in dates if d != k[0]] for k in keys]
    kw = dict(dims=(16, 32), depths=(1, 1), heads=(1, 2), ps_hidden=16, ps_res=1, mid_res=1) if a.small else {}
    G, D = ECEAGenerator(len(meta0.band_names) or tl[0][0].shape[0], img_size=a.img_size, **kw), PatchDiscriminator(tl[0][0].shape[0])
    dl = DataLoader(SlcoffPatches(tl, size=a.img_size, n=a.steps * a.bs, borrow=borrow, seed=a.seed), batch_size=a.bs)
    t0 = time.time()
    hist = train_ecea(G, D, dl, epochs=1, loss=ECEALoss(None), device=dev, max_seconds=a.seconds, log_every=10, progress=False,
                      run_dir=a.out, resume=a.resume, every_minutes=a.every_minutes, num_workers=a.workers, print_every=30)
    ck = Path(a.out)/'checkpoint.pth'      # written at the end of the fit: the exact count of steps done
    steps = load_checkpoint(ck)['train_iter'] if ck.exists() else (hist[-1]['step'] if hist else 0)
    save_ecea(G.cpu(), f'{a.out}/G', scaler, band_names=meta0.band_names, steps=steps, seconds=time.time() - t0,
              training=dict(device=str(dev), img_size=a.img_size, batch=a.bs, small=a.small, test_cols=sorted(test_cols),
                            recipe='train_ecea defaults (Adam 5e-4, betas (0.95, 0.9995), adversarial, no VGG terms)'))
    save_json(hist, f'{a.out}/history.json')
    print(json.dumps(dict(steps=steps, seconds=round(time.time() - t0, 1), device=str(dev), last=hist[-1] if hist else None)))

if __name__ == '__main__':
    from rsnb.core import RsnbError
    try: main()
    except RsnbError as e: sys.exit(f'ecea_train.py: error: {e}')   # a refused checkpoint: one line, no traceback
