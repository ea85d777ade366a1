"""End-to-end fixture for the CompressAI zoo codecs: CompressAI's own `python -m compressai.utils.eval_model checkpoint`.

    nice -n 10 /work/venvs/compressai/bin/python tools/parity/e2e_compressai.py tests/fixtures/e2e/compressai

(venv of `tools/parity/README.md`: PyPI `compressai` 1.2.8, BSD-3-Clause-Clear; nothing of it is copied here.)
For each architecture of the network-parity fixture (bmshj2018-factorized, bmshj2018-hyperprior, mbt2018-mean,
cheng2020-anchor at the reduced widths of `tests/fixtures/parity/compressai/`, whose stored weights are written as a zoo
file: a plain state dict, `torch.save`), `eval_model.main(['checkpoint', DIR, '-a', ARCH, '-p', FILE, '--per-image', ...])`
runs twice: with the default entropy coder (`ans`: compress, decompress, bytes counted) and with
`--entropy-estimation` (the forward pass, bpp from the likelihoods). Its `load_checkpoint` calls
`from_state_dict` + `update(force=True)`; `inference` pads to a multiple of 64, codes, unpads; `compute_metrics`
rounds both images to 8 bits before PSNR and MS-SSIM.

Run-time patch, in memory only: `eval_model.compute_metrics` is wrapped to keep the reconstruction it is given (the
decoded `x_hat`, unpadded) — nothing else changes. Images: two 192×256 crops of the Landsat-8 sample crops
(`../shared/data/compression/landsat8_224077_rgb8`, first two files, top-left corner) written as PNG (multiples of
64: CompressAI's zero padding is then empty, and rsnb's tiling has nothing to pad either).

Fixture: `outputs.npz` with, per architecture and mode (`coded`, `estimated`) and image, the 8-bit reconstruction
(`(x_hat*255).clamp(0,255).round()`, uint8), `x_hat` at every 4th pixel (float32), and per-channel sums of `x_hat`
(float64); `fixture.json` with eval_model's per-image and mean results (psnr-rgb, ms-ssim-rgb, bpp), the byte count
per image, the versions.
"""
import argparse, json, platform, sys, tempfile
from pathlib import Path
_here = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]
import numpy as np, torch
from PIL import Image
import compressai
import compressai.utils.eval_model.__main__ as em

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ('bmshj2018-factorized', 'bmshj2018-hyperprior', 'mbt2018-mean', 'cheng2020-anchor')
SIZE = (192, 256)  # H, W

def make_images(dest:Path, shared:Path) -> list:
    src = sorted((shared/'compression'/'landsat8_224077_rgb8').rglob('*.png'))[:2]
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in src:
        a = np.asarray(Image.open(f).convert('RGB'))[:SIZE[0], :SIZE[1]]
        Image.fromarray(a).save(dest/f.name); out.append(f.name)
    return out

def write_zoo_file(arch, dst):
    "The parity fixture's stored weights as a zoo file (zeros for the `_quantized_cdf` tables, which update() rebuilds)."
    fx = ROOT/'tests'/'fixtures'/'parity'/'compressai'
    z = np.load(fx/f'{arch}.npz'); shapes = json.loads((fx/'manifest.json').read_text())['small'][arch]['shapes']
    torch.save({k: torch.from_numpy(z[f'w:{k}']) if f'w:{k}' in z else torch.zeros(s, dtype=torch.int32) for k, s in shapes.items()}, dst)
    return dst

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out', type=Path)
    ap.add_argument('--shared', type=Path, default=ROOT.parent/'shared'/'data')
    a = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    names = make_images(tmp/'images', a.shared)
    rec = []
    cm = em.compute_metrics
    def compute_metrics(org, x_hat, max_val=255):
        rec.append(x_hat.detach().clone()); return cm(org, x_hat, max_val)
    em.compute_metrics = compute_metrics
    arrays, info = {}, dict(images=names, size=list(SIZE), archs={})
    for arch in ARCHS:
        ck = write_zoo_file(arch, tmp/f'{arch}.pth.tar')
        info['archs'][arch] = {}
        for mode, extra in (('coded', []), ('estimated', ['--entropy-estimation'])):
            rec.clear(); od = tmp/f'out_{arch}_{mode}'
            em.main(['checkpoint', str(tmp/'images'), '-a', arch, '-p', str(ck), '--per-image', '-d', str(od), '-o', 'res.json'] + extra)
            res = json.loads((od/'res.json').read_text())
            per = {}
            for n, x in zip(names, rec):
                stem = Path(n).stem
                per[stem] = json.loads(next(od.rglob(f'{stem}-*.json')).read_text())['results']
                x = x[0].double()
                arrays[f'{arch}/{mode}/{stem}/u8'] = (x*255).clamp(0, 255).round().to(torch.uint8).numpy()
                arrays[f'{arch}/{mode}/{stem}/sub'] = x[:, 1::4, 1::4].float().numpy()
                arrays[f'{arch}/{mode}/{stem}/sum'] = x.sum((1, 2)).numpy()
            info['archs'][arch][mode] = dict(mean=res['results'], per_image=per)
            print(arch, mode, {k: v for k, v in res['results'].items() if 'time' not in k}, flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out/'outputs.npz', **arrays)
    info['versions'] = dict(original='CompressAI (PyPI)', compressai=compressai.__version__, torch=torch.__version__, numpy=np.__version__,
                            python=platform.python_version(), entry="python -m compressai.utils.eval_model checkpoint DIR -a ARCH -p FILE --per-image",
                            entropy_coder=compressai.available_entropy_coders()[0], threads=1, commit='v1.2.8 = 79e51871e972c517bc528b689ccf15137fcc7785')
    info['weights'] = 'tests/fixtures/parity/compressai/<arch>.npz (stored; seed rule in tools/parity/compressai.py), written as a zoo state dict'
    (a.out/'fixture.json').write_text(json.dumps(info, indent=1))

if __name__ == '__main__': main()
