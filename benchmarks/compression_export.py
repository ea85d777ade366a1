"""Turn a training checkpoint into shipped codec weights: build coding tables, save state dict + model card.

Usage: .venv/bin/python benchmarks/compression_export.py runs/compression/msh_default [--rd results.json]
       .venv/bin/python benchmarks/compression_export.py runs/compression/egan_base --dest rsnb/weights/compression_egan_default
       (a run of compression_train_egan.py: its GAN-stage checkpoint becomes an EGANet codec)
"""
import argparse, json, time
from pathlib import Path
import torch
from rsnb.weights import save_model
from rsnb.compression.models import MeanScaleHyperprior
from rsnb.compression.egan import EGANet

def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('run'); p.add_argument('--dest', default='rsnb/weights/compression_msh_default')
    p.add_argument('--rd', default=None, help='json with measured RD to put in the card')
    p.add_argument('--note', default='', help='free text for the card')
    p.add_argument('--hardware', default='2-core CPU, 1 thread', help='what it trained on, for the card')
    a = p.parse_args(argv)
    run = Path(a.run); cfg = json.load(open(run/'config.json'))
    log = [json.loads(l) for l in open(run/'log.jsonl')]
    if (run/'ckpt_gan.pth').exists(): return export_egan(run, cfg, log, a)
    steps = max([l.get('step', 0) for l in log] + [l.get('steps', 0) for l in log]) + cfg.get('init_steps', 0)
    m = MeanScaleHyperprior(cfg['N'], cfg['M'])
    m.load_state_dict(torch.load(run/'ckpt.pth', weights_only=True)); m.eval().update()
    card = dict(model_id='compression_msh_default', arch='MeanScaleHyperprior',
                kwargs=dict(N=cfg['N'], M=cfg['M'], in_ch=3, n_rates=3),
                rates=dict(lo=0, me=1, hi=2), lmbdas=dict(zip(('lo', 'me', 'hi'), cfg['lmbdas'])),
                loss='lambda_r * 255^2 * MSE + bpp (y and z), gain units per rate (Cui et al. 2021), STE rounding for the decoder',
                normalisation='uint8: x/255; other dtypes: per-band 0.1-99.9 percentile of valid pixels -> [0,1] (no clipping), stored per file',
                data=('random 128x128 crops (flips/rot90): Landsat-8 LC08_224077_20200518 B4B3B2 uint16 columns < 1280; '
                      'landsat8_224077_rgb8 crops c0-c4 (8-bit); AID 150px (2400 JPEG); Sentinel-2 L1C 13-band norcia t1/t2 (random 3-band subsets). '
                      'Held out: scene columns >= 1280, crops c5/c6, Sentinel-2 rio.'
                      + (f" Sampling: rasters weighted by sqrt(area) (AID ~98 % of crops) for the first {cfg.get('init_steps', 0)} steps, then sources "
                         f"by shares {json.dumps(cfg['shares'])} with nodata pixels set to the band mean." if cfg.get('shares') else '')),
                training=dict(steps=steps, batch=cfg['bs'], crop=cfg['size'], lr=cfg['lr'], optimizer='Adam (+ Adam 1e-3 on quantiles)',
                              schedule='time budget: flat then cosine to 10%', hardware=a.hardware,
                              wall_clock_s=max([l.get('t', 0) for l in log] + [round(l.get('seconds', 0)) for l in log]),
                              planned_budget_s=round(cfg['seconds']), init=cfg.get('init'), init_steps=cfg.get('init_steps', 0)),
                last_log=log[-1] if log else None,
                exported=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    if a.rd: card['measured_rd'] = json.load(open(a.rd))
    if a.note: card['note'] = a.note
    save_model(m, a.dest, card)
    print(a.dest, steps, 'steps')

def export_egan(run, cfg, log, a):
    "EGANet card for a GAN-stage run of compression_train_egan.py (its base as recorded when the run started)."
    bc = cfg['base_card']
    kw = dict(bc['kwargs'], width=cfg['width'], n_res=cfg['n_res'], generator=cfg['generator'])
    m = EGANet(**kw); m.load_state_dict(torch.load(run/'ckpt_gan.pth', weights_only=True)); m.eval().update()
    gan = [l for l in log if l.get('stage') == 'gan']
    steps = max([l.get('step', 0) for l in gan] + [l.get('steps', 0) for l in gan])
    card = dict(model_id=Path(a.dest).name, arch='EGANet', kwargs=kw, rates=bc['rates'],
                base=dict(model_id=bc['model_id'], sha256=bc['weights_sha256'], steps=bc['steps'], lmbdas=bc['lmbdas']),
                bitstream='identical to the base codec (encoder, hyperprior, gains and entropy models frozen)' if cfg['decoder_only'] else 'own',
                loss=('HiFiC generator loss without the rate term (frozen): 0.075*2^-5 * MSE(0-255) + 1.0 * LPIPS(alex) + 0.15 * -log D(x_hat, y_hat) '
                      '+ 1.0 * Sobel-magnitude L1 (edge fidelity)' if cfg['decoder_only'] else 'HiFiC generator loss with rate-targeted lambda, see EGALoss'),
                discriminator=dict(arch='PatchDiscriminator (conditional on y_hat, spectral norm)', widths=cfg['dwidths'], optimizer='Adam(1e-4, betas 0.5/0.999)'),
                normalisation=bc['normalisation'],
                data=f"base: {bc['data']} GAN stage: the same rasters" + (f", sources by shares {json.dumps(cfg['shares'])}." if cfg.get('shares') else '.'),
                training=dict(stage='GAN (stage 2) only; stage 1 = the trained base decoder (generator=base)' if cfg['generator'] == 'base' else 'warm + GAN',
                              steps=steps, batch=cfg['bs'], crop=cfg['size'], lr=cfg['lr'],
                              schedule='time budget: flat then cosine to 10%', hardware=a.hardware,
                              wall_clock_s=max([l.get('t', 0) for l in gan] or [0]), planned_budget_s=cfg.get('seconds2')),
                last_log=[l for l in gan if 'step' in l][-1], exported=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    if a.rd: card['measured_rd'] = json.load(open(a.rd))
    if a.note: card['note'] = a.note
    save_model(m, a.dest, card)
    print(a.dest, steps, 'GAN steps')

if __name__ == '__main__': main()
