"""Parity fixture for ECEA's generator (Chowdz/ecea, `application/models.py`: the model the released EET.pth fits).

Usage (in a venv of its own with torch + numpy only, NOT rsnb's):

    python3 -m venv /work/venvs/torchref && /work/venvs/torchref/bin/pip install torch==2.14.1 numpy
    git -C <bare repo> archive HEAD application | tar -x -C /work/refs/ecea
    /work/venvs/torchref/bin/python tools/parity/ecea.py /work/refs/ecea tests/fixtures/parity/ecea --commit b9857fb...

The original is MIT-licensed, but nothing of it is copied: the fixture holds only numbers. The only run-time patch is a
stub for `torchvision` (imported by `application/models.py` and never used by the generator).

Models: the small generator `Generator(img_size=64, in_c=4, out_c=3, patch_size=4, embed_dim=16, depth=[1, 2, 1, 1],
num_heads=[1, 2, 2, 4])` (its constructor takes every size) and the full-size one of `application/options.py`
(`img_size=256, in_c=4, out_c=3, patch_size=4, embed_dim=64, depth=[1, 2, 3, 4], num_heads=[1, 2, 4, 8]`).

Seed rule: the same as `tools/parity/dpcd.py` (per original tensor name, `zlib.crc32(name)` seeds a generator;
`rsnb.change.convert.seeded_state_dict` regenerates it). Inputs, from `torch.Generator().manual_seed(0)` (small, B=2)
and `manual_seed(1)` (full, B=1), drawn in this order: `x = rand(B, 3, S, S)`, `mask = (rand(B, 1, S, S) > 0.7)`,
`e = rand(B, 1, S, S)`. The original is called `G(x, e, mask)` (it does not zero the holes) and, for the small model
only, once more with zeroed holes `G(x * (1 - mask), e, mask)`. Eval mode.

Writes `manifest_small.json`, `manifest_full.json`, `io_small.pt` (inputs and outputs), `out_full.pt` (outputs only:
the inputs are regenerated from the seed) and `versions.json`.
"""
import argparse, json, math, platform, sys, types, zlib
from pathlib import Path
import numpy as np
import torch

SMALL = dict(img_size=64, in_c=4, out_c=3, patch_size=4, embed_dim=16, depth=[1, 2, 1, 1], num_heads=[1, 2, 2, 4])
FULL = dict(img_size=256, in_c=4, out_c=3, patch_size=4, embed_dim=64, depth=[1, 2, 3, 4], num_heads=[1, 2, 4, 8])

def seeded_state_dict(manifest):
    "The seed rule of tools/parity/dpcd.py."
    sd = {}
    for k, v in manifest.items():
        s, g = tuple(v['shape']), torch.Generator().manual_seed(zlib.crc32(k.encode()))
        if v['dtype'] == 'int64': t = torch.zeros(s, dtype=torch.int64)
        elif k.endswith('running_var'): t = 0.5 + torch.rand(s, generator=g)
        elif len(s) <= 1 and k.endswith('weight'): t = 1 + 0.1*torch.randn(s, generator=g)
        elif len(s) <= 1: t = 0.1*torch.randn(s, generator=g)
        else: t = torch.randn(s, generator=g)/math.sqrt(math.prod(s[1:]))
        sd[k] = t
    return sd

def fixture_inputs(seed, B, S):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 3, S, S, generator=g)
    mask = (torch.rand(B, 1, S, S, generator=g) > 0.7).float()
    e = torch.rand(B, 1, S, S, generator=g)
    return x, mask, e

def manifest(model):
    return {k: {'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', '')} for k, v in model.state_dict().items()}

def dump_manifest(man):
    return '{\n' + ',\n'.join(f'{json.dumps(k)}: {json.dumps(v)}' for k, v in man.items()) + '\n}\n'

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('ecea', type=Path, help='work tree of Chowdz/ecea (needs application/)')
    ap.add_argument('out', type=Path, help='fixture folder (tests/fixtures/parity/ecea)')
    ap.add_argument('--commit', default=None, help="the original's commit (recorded in versions.json)")
    ap.add_argument('--no-full-forward', action='store_true', help='full-size: manifest only')
    a = ap.parse_args()
    torch.set_num_threads(1)   # bit-exact results need the same reduction order: one thread here and in CI
    for name in ('torchvision', 'torchvision.transforms'): sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules['torchvision'].transforms = sys.modules['torchvision.transforms']
    sys.path.insert(0, str((a.ecea/'application').resolve()))
    from models import Generator
    a.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for tag, cfg in (('small', SMALL), ('full', FULL)):
        torch.manual_seed(0)
        G = Generator(**cfg).eval()
        man = manifest(G)
        (a.out/f'manifest_{tag}.json').write_text(dump_manifest(man))
        summary[tag] = dict(config=cfg, tensors=len(man), params=sum(p.numel() for p in G.parameters()))
        if tag == 'full' and a.no_full_forward: continue
        G.load_state_dict(seeded_state_dict(man), strict=True)
        x, mask, e = fixture_inputs(0, 2, 64) if tag == 'small' else fixture_inputs(1, 1, 256)
        with torch.no_grad():
            img, edge = G(x, e, mask)
            if tag == 'small': img0, edge0 = G(x*(1 - mask), e, mask)
        if tag == 'small':
            torch.save(dict(x=x, mask=mask, e=e, img=img, edge=edge, img_zeroed=img0, edge_zeroed=edge0), a.out/'io_small.pt')
        else: torch.save(dict(img=img, edge=edge), a.out/'out_full.pt')
        summary[tag].update(img_std=float(img.std()), edge_std=float(edge.std()))
    versions = dict(original='Chowdz/ecea (application/models.py)', commit=a.commit, python=platform.python_version(),
                    torch=torch.__version__, numpy=np.__version__, threads=torch.get_num_threads(), patches=['torchvision stubbed'], models=summary)
    (a.out/'versions.json').write_text(json.dumps(versions, indent=1))
    print(json.dumps(summary, indent=1))

if __name__ == '__main__': main()
