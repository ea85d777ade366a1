"""Train the shipped scene classifier: ImageNet EfficientNet-Lite0 (frozen, from the offline PyPI package), Bahri et al.'s
SE head and ICE loss, on the 30-class AID sample (150 px, upsampled to 224); report overall accuracy on a held-back part.

Split: per class, a seeded permutation holds back 16 of the 80 images (20 %, 480 images) that are never trained on.
Training features: the 64 training images per class under the 8 flips/rotations of the square (the paper's augmentation
is random rotation/shift/flip; the dihedral group is its exact part), computed once by the frozen backbone.

Usage: .venv/bin/python benchmarks/train_shipped_scene.py [--epochs 30] [--dest rsnb/weights/scene_lite0_aid30]
Writes DEST.pth (float16 state dict) + DEST.json (model card) and benchmarks/results/shipped_scene.json.
"""
import argparse, json, time
from pathlib import Path
import numpy as np, torch
from _common import save
from rsnb.core import seed_everything, data_path
from rsnb.classification.model import SceneClassifier, count_params
from rsnb.classification.pretrained import load_imagenet
from rsnb.classification.learner import imagenet_stats, _image_files, head_learner, _norm
from rsnb.data import read_array
from rsnb.metrics import confusion_matrix, overall_accuracy, kappa, bootstrap_ci
from rsnb.weights import save_model

ARCH = 'tf_efficientnet_lite0'

def split(files, classes, hold=16, seed=0):
    "(train_idx, held_idx): per class, `hold` images of a seeded permutation are held back."
    rng = np.random.default_rng(seed); tr, ho = [], []
    lab = np.array([classes.index(f.parent.name) for f in files])
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(lab == c)); ho += list(idx[:hold]); tr += list(idx[hold:])
    return sorted(tr), sorted(ho), lab

def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=30); p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--size', type=int, default=224); p.add_argument('--seed', type=int, default=0)
    p.add_argument('--augment', type=int, default=8, help='dihedral variants of each training image (1 = none)')
    p.add_argument('--dest', default='rsnb/weights/scene_lite0_aid30')
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads); seed_everything(a.seed); t0 = time.time()
    root = data_path('classification', 'aid150')
    files = _image_files(root); classes = sorted({f.parent.name for f in files})
    tr, ho, lab = split(files, classes, seed=a.seed)
    net = SceneClassifier(len(classes), arch=ARCH); rec = load_imagenet(net)
    stats = imagenet_stats(ARCH)
    card_in = dict(normalization=stats, in_chans=3, input_size=a.size, bands=None)
    imgs = np.stack([read_array(f).arr for f in files]).astype(np.float32)
    def feats(idx, k):
        out = []
        with torch.inference_mode():
            for i in range(0, len(idx), 50):
                x = torch.from_numpy(imgs[idx[i:i+50]])
                x = torch.rot90(x, k % 4, (2, 3)); x = x.flip(3) if k >= 4 else x
                out.append(net.backbone.eval()(_norm(x, card_in)).half())
        return torch.cat(out)
    f_tr = torch.cat([feats(tr, k) for k in range(a.augment)]); y_tr = np.tile(lab[tr], a.augment)
    f_ho = feats(ho, 0); t_feat = time.time() - t0
    allf = torch.cat([f_tr, f_ho]); ally = np.concatenate([y_tr, lab[ho]])
    n_tr = len(f_tr)
    learn = head_learner(allf, ally, range(n_tr), range(n_tr, len(allf)), len(classes), loss='ice', lr=a.lr, bs=64)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(a.epochs, a.lr)
    probs, targs = learn.get_preds()
    pred, targ = probs.argmax(1).numpy(), targs.numpy()
    cm = confusion_matrix(pred, targ, len(classes)); ci = bootstrap_ci(pred, targ, n_boot=1000, seed=0)
    metrics = dict(oa=overall_accuracy(cm), kappa=kappa(cm), oa_lo=ci['lo'], oa_hi=ci['hi'], n=int(len(targ)))
    net.head.load_state_dict(learn.model.state_dict())
    net = net.eval().half()
    card = dict(task='scene_classification', paper='bahri2019', model_id=Path(a.dest).name, arch=ARCH, n_classes=len(classes),
                classes=classes, in_chans=3, bands=['red', 'green', 'blue'], normalization=stats, input_size=a.size,
                input_range='8-bit RGB (0-255), any size (resized to input_size)', faithful=False, se=True, loss='ice',
                pretrained=rec, n_params=count_params(net), dtype='float16 weights (computed in float32)',
                data=dict(dataset='AID (Xia et al. 2017), 30 classes, the 150 px sample (80 images per class)',
                          split=f'per class a seeded permutation (seed {a.seed}) holds back 16 of 80 images (480 in all), never trained on',
                          augmentation=f'{a.augment} dihedral variants (rot90 x flip) of each training image'),
                training=dict(backbone='frozen ImageNet EfficientNet-Lite0', head="Bahri et al.'s SE head, ICE loss",
                              optimizer='SGD momentum 0.9, one-cycle', lr=a.lr, epochs=a.epochs, batch=64,
                              train_images=len(tr), train_samples=n_tr, seconds=round(time.time() - t0, 1),
                              hardware='2-core CPU'),
                metrics={f'held_back_{k}': v for k, v in metrics.items()})
    dest = Path(a.dest); dest.parent.mkdir(parents=True, exist_ok=True)
    save_model(net, dest, card)
    # the shipped (float16) weights, reloaded as a user loads them, on the held-back images
    from rsnb.classification.learner import load_scene_model, predict_scenes
    m, _ = load_scene_model(dest)
    p_ship = predict_scenes(m, card, imgs[ho]).argmax(1).numpy()
    metrics['oa_shipped_weights'] = float((p_ship == lab[ho]).mean())
    card['metrics']['held_back_oa_shipped_weights'] = metrics['oa_shipped_weights']
    save_model(net, dest, card)
    res = dict(metrics=metrics, feature_seconds=round(t_feat, 1), total_seconds=round(time.time() - t0, 1),
               size_mb=round(dest.with_suffix('.pth').stat().st_size / 1e6, 2), epochs=a.epochs, augment=a.augment, lr=a.lr)
    print(json.dumps(res))
    save('shipped_scene', res)

if __name__ == '__main__': main()
