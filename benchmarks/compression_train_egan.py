"""EGA-Net training, HiFiC recipe: warm start from a trained MSE hyperprior (encoder, hyperprior, entropy models, gains),
stage 1 without the GAN term (generator learns to decode), stage 2 with the conditional PatchGAN; rate-targeted λ per rate.

Not run to convergence in this repository (CPU only). Usage (GPU recommended):
  .venv/bin/python benchmarks/compression_train_egan.py --base rsnb/weights/compression_msh_default.pth \
      --steps1 50000 --steps2 50000 --out runs/compression/egan --device cuda
"""
import argparse, json, time, os
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from rsnb.core import seed_everything
from rsnb.weights import load_model, save_model
from rsnb.compression.models import MeanScaleHyperprior
from rsnb.compression.egan import EGANet, PatchDiscriminator, EGALoss, DiscriminatorStep
from rsnb.compression.train import CropDataset, training_items, RateCallback, AuxOptimizer, codec_splitter

def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--base', default='rsnb/weights/compression_msh_default.pth')
    p.add_argument('--steps1', type=int, default=20000); p.add_argument('--steps2', type=int, default=20000)
    p.add_argument('--bs', type=int, default=8); p.add_argument('--size', type=int, default=256)
    p.add_argument('--width', type=int, default=256); p.add_argument('--n_res', type=int, default=6)
    p.add_argument('--lr', type=float, default=1e-4); p.add_argument('--device', default='cpu')
    p.add_argument('--lpips', action='store_true', help='add the LPIPS term (offline weights from rsnb.metrics)')
    p.add_argument('--out', default='runs/compression/egan')
    a = p.parse_args(argv); seed_everything(0); os.makedirs(a.out, exist_ok=True)
    base, card = load_model(a.base, build=lambda c: MeanScaleHyperprior(**c['kwargs']))
    m = EGANet.from_hyperprior(base, width=a.width, n_res=a.n_res).to(a.device)
    D = PatchDiscriminator(m.in_ch, m.M).to(a.device)
    lp = None
    if a.lpips:
        from rsnb.metrics import lpips_model
        net = lpips_model('alex', a.device)
        lp = lambda xh, x: net(xh[:, :3] * 2 - 1, x[:, :3] * 2 - 1).mean()
    items = training_items()
    mk = lambda n, s, aug: CropDataset(items, size=a.size, n=n, seed=s, augment=aug)
    for stage, steps, disc in (('warm', a.steps1, None), ('gan', a.steps2, D)):
        if steps <= 0: continue
        per_epoch = min(200, steps)
        dls = DataLoaders.from_dsets(mk(a.bs * per_epoch, 0, True), mk(min(8, a.bs * 2), 123, False), bs=a.bs, num_workers=0, device=a.device)
        learn = Learner(dls, m, loss_func=EGALoss(disc, lpips=lp, k_P=1. if lp else 0.), splitter=codec_splitter,
                        cbs=[RateCallback(), AuxOptimizer(), DiscriminatorStep(D, a.lr)])
        learn.fit(max(1, steps // per_epoch), a.lr)
        m.eval().update()
        save_model(m, f'{a.out}/egan_{stage}', dict(model_id=f'compression_egan_{stage}', arch='EGANet',
                   kwargs=dict(N=m.N, M=m.M, in_ch=m.in_ch, n_rates=m.n_rates, width=a.width, n_res=a.n_res),
                   base=card.get('model_id'), stage=stage, steps=steps, loss=dict(learn.loss_func.last)))
        m.train()

if __name__ == '__main__': main()
