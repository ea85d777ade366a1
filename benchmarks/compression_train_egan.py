"""EGA-Net training, HiFiC recipe: warm start from a trained MSE hyperprior (encoder, hyperprior, entropy models, gains),
stage 1 without the GAN term (generator learns to decode), stage 2 with the conditional PatchGAN; rate-targeted λ per rate.

Paper recipe (HiFiC generator from scratch; GPU recommended):
  .venv/bin/python benchmarks/compression_train_egan.py --base rsnb/weights/compression_msh_default.pth \
      --steps1 50000 --steps2 50000 --lpips --out runs/compression/egan --device cuda
CPU-scale recipe of the shipped compression_egan_default (the base codec's own synthesis as the generator, only the decoder
trains, so the bitstream is the base codec's; GAN stage under a wall-clock budget):
  .venv/bin/python benchmarks/compression_train_egan.py --generator base --decoder-only --steps1 0 --seconds2 4200 \
      --size 128 --lr 1e-4 --lpips --balanced --dwidths 32 64 128 256 --out runs/compression/egan_base
"""
import argparse, json, time, os
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from _common import jsonl_logger
from rsnb.core import seed_everything
from rsnb.weights import load_model, save_model
from rsnb.compression.models import MeanScaleHyperprior
from rsnb.compression.format import weights_hash
from rsnb.compression.egan import EGANet, PatchDiscriminator, EGALoss, DiscriminatorStep, freeze_codec
from rsnb.compression.train import CropDataset, training_items, RateCallback, AuxOptimizer, codec_splitter, TimeBudget, CODEC_SHARES

def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--base', default='rsnb/weights/compression_msh_default.pth')
    p.add_argument('--steps1', type=int, default=20000); p.add_argument('--steps2', type=int, default=20000)
    p.add_argument('--bs', type=int, default=8); p.add_argument('--size', type=int, default=256)
    p.add_argument('--width', type=int, default=256); p.add_argument('--n_res', type=int, default=6)
    p.add_argument('--lr', type=float, default=1e-4); p.add_argument('--device', default='cpu')
    p.add_argument('--lpips', action='store_true', help='add the LPIPS term (offline weights from rsnb.metrics)')
    p.add_argument('--generator', default='hific', choices=['hific', 'base'], help="'base': start the generator from the base synthesis")
    p.add_argument('--decoder-only', action='store_true', help='train only g_s (freeze_codec): the bitstream stays the base codec\'s')
    p.add_argument('--seconds2', type=float, default=None, help='wall-clock budget of the GAN stage (replaces --steps2)')
    p.add_argument('--balanced', action='store_true', help='sample sources by CODEC_SHARES'); p.add_argument('--threads', type=int, default=1)
    p.add_argument('--dwidths', type=int, nargs=4, default=[64, 128, 256, 512], help='discriminator widths (HiFiC: 64 128 256 512)')
    p.add_argument('--out', default='runs/compression/egan')
    a = p.parse_args(argv); seed_everything(0); os.makedirs(a.out, exist_ok=True); torch.set_num_threads(a.threads)
    base, card = load_model(a.base, build=lambda c: MeanScaleHyperprior(**c['kwargs']))
    m = EGANet.from_hyperprior(base, width=a.width, n_res=a.n_res, generator=a.generator).to(a.device)
    if a.decoder_only: freeze_codec(m)
    D = PatchDiscriminator(m.in_ch, m.M, tuple(a.dwidths)).to(a.device)
    lp = None
    if a.lpips:
        from rsnb.metrics import lpips_model
        net = lpips_model('alex', a.device)
        lp = lambda xh, x: net(xh[:, :3] * 2 - 1, x[:, :3] * 2 - 1).mean()
    items = training_items()
    shares = CODEC_SHARES if a.balanced else None
    mk = lambda n, s, aug: CropDataset(items, size=a.size, n=n, seed=s, augment=aug, shares=shares)
    log = jsonl_logger(f'{a.out}/log.jsonl')
    # what the base was *when this run started* (its file may be overwritten later): the export writes it into the card
    base_card = dict(model_id=card.get('model_id'), weights_sha256=weights_hash(base), steps=card.get('training', {}).get('steps'),
                     **{k: card[k] for k in ('kwargs', 'rates', 'lmbdas', 'normalisation', 'data') if k in card})
    json.dump(dict(vars(a), shares=shares, base_card=base_card, started=time.time()), open(f'{a.out}/config.json', 'w'))
    for stage, steps, disc in (('warm', a.steps1, None), ('gan', a.steps2, D)):
        budget = a.seconds2 if stage == 'gan' else None
        if steps <= 0 and not budget: continue
        per_epoch = 200 if budget else min(200, steps)
        dls = DataLoaders.from_dsets(mk(a.bs * per_epoch, 0, True), mk(min(8, a.bs * 2), 123, False), bs=a.bs, num_workers=0, device=a.device)
        cbs = [RateCallback(), DiscriminatorStep(D, a.lr)] + ([] if a.decoder_only else [AuxOptimizer()])
        tb = TimeBudget(budget, lr=a.lr, ckpt=f'{a.out}/ckpt_{stage}.pth', every=300, log=lambda d, s=stage: log(dict(d, stage=s))) if budget else None
        learn = Learner(dls, m, loss_func=EGALoss(disc, lpips=lp, k_P=1. if lp else 0.), splitter=codec_splitter, cbs=cbs + ([tb] if tb else []))
        with learn.no_bar(): learn.fit(100000 if budget else max(1, steps // per_epoch), a.lr)
        done = tb.steps if tb else steps
        log(dict(stage=stage, done=True, steps=done))
        m.eval().update()
        save_model(m, f'{a.out}/egan_{stage}', dict(model_id=f'compression_egan_{stage}', arch='EGANet',
                   kwargs=dict(N=m.N, M=m.M, in_ch=m.in_ch, n_rates=m.n_rates, width=a.width, n_res=a.n_res, generator=a.generator),
                   base=card.get('model_id'), stage=stage, steps=done, decoder_only=a.decoder_only, loss=dict(learn.loss_func.last)))
        m.train()

if __name__ == '__main__': main()
