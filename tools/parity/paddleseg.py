"""Generate the PaddleSeg parity fixtures for rsnb (tests/fixtures/parity/paddleseg/).

Runs in a venv of its own with PaddlePaddle + PaddleSeg (never a dependency of rsnb):

    python3 -m venv /work/venvs/paddle && /work/venvs/paddle/bin/pip install paddlepaddle==3.3.1 paddleseg==2.8.0 'numpy<2'
    /work/venvs/paddle/bin/python tools/parity/paddleseg.py --repo /path/to/PaddleSeg-checkout [--out tests/fixtures/parity/paddleseg]

`--repo` is a work tree of github.com/PaddlePaddle/PaddleSeg (Apache-2.0): the benchmark's own ResNet50
(`contrib/RSSegBenchmark/backbones/resnet.py`) and C2FNet (`contrib/RSSegBenchmark/c2fnet/models/c2fnet.py`) are
imported from it; every other network comes from the `paddleseg` package. Nothing of PaddleSeg is copied here.

For every model it builds the PaddleSeg network at full size (n_classes=7 to keep the fixture small), fills its
state_dict with the seeded rule below (so CI regenerates the weights instead of storing them), runs it in eval mode
on a seeded 1x3x64x64 input and writes `<model>.json` (key/shape manifest in state_dict order, the parameter count at
the benchmark's 16 classes, versions) and `<model>.npz` (input and logits). `seeded_weight` is the same rule as
`rsnb.segmentation.paddle.seeded_weight`.
"""
import argparse, importlib.util, json, sys, zlib, platform
from pathlib import Path
import numpy as np

# this file is called paddleseg.py: keep its folder off the path so `import paddleseg` finds the package
sys.path[:] = [q for q in sys.path if Path(q or '.').resolve() != Path(__file__).resolve().parent]

N_CLASSES, SIZE = 7, 64

def seeded_weight(name, shape):
    "Weights from the tensor's name alone: BN variances U(0.5, 1.5), means N(0, 0.1²), 1-D weights U(0.5, 1.5), 1-D others N(0, 0.1²), kernels N(0, 1/fan_in)."
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    shape = tuple(shape)
    if name.endswith('_variance'): a = rng.uniform(0.5, 1.5, shape)
    elif name.endswith('_mean'): a = rng.standard_normal(shape) * 0.1
    elif len(shape) <= 1 and (name.endswith('.weight') or name.endswith('gamma')): a = rng.uniform(0.5, 1.5, shape)
    elif len(shape) <= 1: a = rng.standard_normal(shape) * 0.1
    else: a = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    return a.astype(np.float32)

def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod

def builders(repo):
    import paddleseg.models as M
    from paddleseg.models import backbones as B
    contrib = load_module(repo/'contrib/RSSegBenchmark/backbones/resnet.py', 'rsseg_contrib_resnet')
    r50 = lambda: contrib.ResNet50()
    vd = lambda **kw: B.ResNet50_vd(output_stride=8, **kw)
    mg = dict(multi_grid=[1, 2, 4])
    def c2f(n):
        c2fmod = load_module(repo/'contrib/RSSegBenchmark/c2fnet/models/c2fnet.py', 'rsseg_c2fnet')
        return c2fmod.C2FNet(num_classes=16, backbone=B.HRNet_W18(align_corners=False), backbone_indices=[-1], kernel_sizes=(32, 32))
    return {
        'fcn_hrnet_w18': lambda n: M.FCN(n, B.HRNet_W18(align_corners=False), backbone_indices=[-1]),
        'fcn_resnet50': lambda n: M.FCN(n, r50(), backbone_indices=[-1]),
        'fcn_resnet50_vd': lambda n: M.FCN(n, vd(**mg), backbone_indices=[-1]),
        'deeplabv3p_resnet50': lambda n: M.DeepLabV3P(n, r50(), backbone_indices=[0, 3], aspp_ratios=[1, 12, 24, 36], aspp_out_channels=256, align_corners=False),
        'deeplabv3p_resnet50_vd': lambda n: M.DeepLabV3P(n, vd(**mg), backbone_indices=[0, 3], aspp_ratios=[1, 12, 24, 36], aspp_out_channels=256, align_corners=False),
        'pspnet_resnet50': lambda n: M.PSPNet(n, r50(), enable_auxiliary_loss=True, align_corners=False),
        'pspnet_resnet50_vd': lambda n: M.PSPNet(n, vd(), enable_auxiliary_loss=True, align_corners=False),
        'upernet_resnet50': lambda n: M.UPerNet(n, r50(), backbone_indices=[0, 1, 2, 3], channels=512, dropout_prob=0.1, enable_auxiliary_loss=True),
        'upernet_resnet50_vd': lambda n: M.UPerNet(n, vd(), backbone_indices=[0, 1, 2, 3], channels=512, dropout_prob=0.1, enable_auxiliary_loss=True),
        'danet_resnet50': lambda n: M.DANet(n, r50(), backbone_indices=[2, 3]),
        'danet_resnet50_vd': lambda n: M.DANet(n, vd(), backbone_indices=[2, 3]),
        'hrnet_w48': lambda n: M.HRNetW48Contrast(bb_channels=720, num_classes=n, backbone=B.HRNet_W48(), drop_prob=0.1, proj_dim=720),
        'c2fnet_hrnet_w18': c2f,
    }

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repo', required=True, type=Path, help='PaddleSeg work tree')
    ap.add_argument('--out', default='tests/fixtures/parity/paddleseg', type=Path)
    ap.add_argument('--only', nargs='*', help='model names (default: all)')
    a = ap.parse_args(argv)
    import paddle, paddleseg
    paddle.set_device('cpu')
    a.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    for name, build in builders(a.repo).items():
        if a.only and name not in a.only: continue
        # Paddle lists BatchNorm statistics among parameters(): count the trainable ones, as torch does
        count = lambda mod: sum(int(np.prod(p.shape)) for k, p in mod.named_parameters() if not k.endswith(('_mean', '_variance')))
        n16 = count(build(16))
        m = build(N_CLASSES)
        sd = m.state_dict()
        manifest = {k: list(v.shape) for k, v in sd.items()}
        m.set_state_dict({k: paddle.to_tensor(seeded_weight(k, s)) for k, s in manifest.items()})
        m.eval()
        with paddle.no_grad():
            if name.startswith('c2fnet'):
                # the fine network (HRNet-W18 + 2-class FCN head) alone on the input
                fine = m.head_fgbg(m.backbone(paddle.to_tensor(x)))[0]
                fine = paddle.nn.functional.interpolate(fine, [SIZE, SIZE], mode='bilinear', align_corners=False).numpy()
                # (C2FNet's fused eval output is not stored: under paddle 3.3.1 its unfold/mask-assign/fold changes
                # every channel of every window, also the classes it does not refine; not investigated)
                outs = dict(x=x, fine=fine)
            else:
                outs = dict(x=x, logits=m(paddle.to_tensor(x))[0].numpy())
        np.savez_compressed(a.out/f'{name}.npz', **outs)
        info = dict(model=name, n_classes=2 if name.startswith('c2fnet') else N_CLASSES, size=SIZE, n_params_16=n16,
                    n_params=count(m), n_tensors=len(manifest),
                    seed_rule='rsnb.segmentation.paddle.seeded_weight (crc32 of the key seeds numpy default_rng)',
                    input_rule='numpy default_rng(0).standard_normal((1, 3, 64, 64))', manifest=manifest)
        (a.out/f'{name}.json').write_text(json.dumps(info))
        print(name, n16, len(manifest), {k: float(np.abs(v).max()) for k, v in outs.items()}, flush=True)
    (a.out/'versions.json').write_text(json.dumps(dict(paddlepaddle=paddle.__version__, paddleseg=paddleseg.__version__,
        numpy=np.__version__, python=platform.python_version(), paddleseg_repo='github.com/PaddlePaddle/PaddleSeg @ d7975e7 (contrib/RSSegBenchmark)'), indent=1))

if __name__ == '__main__': main()
