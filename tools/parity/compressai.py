"""Parity fixture for the CompressAI zoo architectures (run in a venv with `compressai`, never in CI).

    python3 -m venv /work/venvs/compressai
    /work/venvs/compressai/bin/pip install torch==2.14.1 compressai 'numpy<2'
    OMP_NUM_THREADS=1 /work/venvs/compressai/bin/python tools/parity/compressai.py tests/fixtures/parity/compressai

Writes, for bmshj2018-factorized, bmshj2018-hyperprior, mbt2018-mean (N=16, M=24) and cheng2020-anchor (N=16):
`<arch>.npz` holding the CompressAI state dict after `update(force=True)` (`w:<name>`, every tensor, buffers included,
except the large rANS tables `*._quantized_cdf`, whose shapes are in the manifest: CI writes zeros there; rsnb drops them),
the input `x` (1×3×64×128, `torch.Generator().manual_seed(0)`, U(0,1)) and CompressAI's eval outputs `y` (g_a(x)),
`y_hat` (as the model rounds it), `x_hat`, `lik_y`, `lik_z`; `manifest.json` (name → shape of the state dicts of the
small configurations and of the zoo constructors at every quality, `pretrained=False`); `versions.json`.

Weights (the seed rule, documented; the weights themselves are stored, so CI needs no rule): the CompressAI
constructor under `torch.manual_seed(k)` (k = index of the architecture), then, to move every tensor off its
special initial value, `g = torch.Generator().manual_seed(1000 + k)` and, in state-dict order, for each parameter
`p += 0.1·N(0,1)·(std(p) or 1)`, except GDN's `beta` and `gamma`, which get `|0.02·N(0,1)|` added (they stay in the
reparametrised domain, above their lower bounds), and the bottleneck `quantiles`, which are left as constructed.
No CompressAI code is copied into rsnb; the fixture holds numbers only (CompressAI is BSD-3-Clause-Clear).
"""
import json, sys, platform
from pathlib import Path
_here = str(Path(__file__).resolve().parent)  # this file is named like the package: import the real one
sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]
import numpy as np
import torch
import compressai
from compressai.zoo import image as zoo
from compressai.models import FactorizedPrior, ScaleHyperprior, MeanScaleHyperprior, Cheng2020Anchor

SMALL = {'bmshj2018-factorized': (FactorizedPrior, dict(N=16, M=24)),
         'bmshj2018-hyperprior': (ScaleHyperprior, dict(N=16, M=24)),
         'mbt2018-mean': (MeanScaleHyperprior, dict(N=16, M=24)),
         'cheng2020-anchor': (Cheng2020Anchor, dict(N=16))}
ZOO_FN = {'bmshj2018-factorized': zoo.bmshj2018_factorized, 'bmshj2018-hyperprior': zoo.bmshj2018_hyperprior,
          'mbt2018-mean': zoo.mbt2018_mean, 'cheng2020-anchor': zoo.cheng2020_anchor}
QUALITIES = {'bmshj2018-factorized': range(1, 9), 'bmshj2018-hyperprior': range(1, 9), 'mbt2018-mean': range(1, 9),
             'cheng2020-anchor': range(1, 7)}


def seeded(arch, k):
    cls, kw = SMALL[arch]
    torch.manual_seed(k); net = cls(**kw)
    g = torch.Generator().manual_seed(1000 + k)
    with torch.no_grad():
        for name, p in net.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith('.beta') or name.endswith('.gamma'): p.add_((0.02 * noise).abs())
            elif name.endswith('quantiles'): continue
            else: p.add_(0.1 * noise * (float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 1.))
    net.update(force=True)
    return net.eval()


@torch.no_grad()
def outputs(arch, net, x):
    "CompressAI's forward, plus y and ŷ recomputed from its own modules (checked against the forward's x̂)."
    out = net(x)
    y = net.g_a(x)
    if arch == 'bmshj2018-factorized': y_hat, _ = net.entropy_bottleneck(y)
    elif arch == 'bmshj2018-hyperprior':
        z_hat, _ = net.entropy_bottleneck(net.h_a(torch.abs(y))); y_hat, _ = net.gaussian_conditional(y, net.h_s(z_hat))
    elif arch == 'mbt2018-mean':
        z_hat, _ = net.entropy_bottleneck(net.h_a(y)); s, m = net.h_s(z_hat).chunk(2, 1); y_hat, _ = net.gaussian_conditional(y, s, means=m)
    else: y_hat = net.gaussian_conditional.quantize(y, 'dequantize')
    assert torch.equal(net.g_s(y_hat), out['x_hat']), arch
    return dict(y=y, y_hat=y_hat, x_hat=out['x_hat'], lik_y=out['likelihoods']['y'],
                **({'lik_z': out['likelihoods']['z']} if 'z' in out['likelihoods'] else {}))


def shapes(sd): return {k: list(v.shape) for k, v in sd.items()}


def main(dst):
    dst = Path(dst); dst.mkdir(parents=True, exist_ok=True)
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    manifest = {'small': {}, 'full': {}}
    for k, arch in enumerate(SMALL):
        net = seeded(arch, k)
        sd = net.state_dict()
        manifest['small'][arch] = dict(kwargs=SMALL[arch][1], shapes=shapes(sd),
                                       n_params=sum(p.numel() for p in net.parameters()))
        o = outputs(arch, net, x)
        np.savez_compressed(dst / f'{arch}.npz', x=x.numpy(), **{f'w:{n}': v.numpy() for n, v in sd.items() if not n.endswith('_quantized_cdf')},
                            **{n: v.numpy() for n, v in o.items()})
        manifest['full'][arch] = {}
        for q in QUALITIES[arch]:
            m = ZOO_FN[arch](quality=q, pretrained=False)
            manifest['full'][arch][str(q)] = dict(shapes=shapes(m.state_dict()), n_params=sum(p.numel() for p in m.parameters()),
                                                  url=zoo.model_urls[arch]['mse'][q], cfg=list(zoo.cfgs[arch][q]))
    (dst / 'manifest.json').write_text(json.dumps(manifest, indent=0))
    (dst / 'versions.json').write_text(json.dumps(dict(compressai=compressai.__version__, torch=torch.__version__, numpy=np.__version__,
                                                       python=platform.python_version(), script='tools/parity/compressai.py'), indent=1))
    return dst


if __name__ == '__main__':
    if len(sys.argv) != 2: sys.exit(__doc__)
    print(main(sys.argv[1]))
