"""Parity fixture for SGSLN's DPCD (NJU-LHRS/offical-SGSLN), written from a local checkout of the original.

Usage (in a venv of its own with torch + numpy only, NOT rsnb's):

    python3 -m venv /work/venvs/torchref && /work/venvs/torchref/bin/pip install torch==2.14.1 numpy
    git -C <bare repo> archive HEAD | tar -x -C /work/refs/sgsln          # a work tree outside rsnb
    /work/venvs/torchref/bin/python tools/parity/dpcd.py /work/refs/sgsln tests/fixtures/parity/dpcd --commit 327b807...

The original has no licence: nothing of it is copied here or into the fixture, which holds only numbers (names and
shapes of its state_dict, inputs and outputs). Three things are done to the original at run time, in memory:
- `cv2` and `torchvision` are stubbed in `sys.modules` (imported by `models/dpcd_parts.py` for feature logging only);
- `torch.Tensor.cuda` returns the tensor itself (the channel exchange calls `exchange_mask.cuda()`; on a CPU this is
  what `.to(x.device)` does);
- the reduced-width model: `DPCD.__init__` hard-codes `channel_list = [32, 64, 128, 256, 512]`; the small model is
  built by compiling `models/Models.py` with that one list replaced by `[8, 16, 32, 64, 128]`.

Seed rule (the CI test regenerates the same weights from the manifest with `rsnb.change.convert.seeded_state_dict`):
for every tensor of the ORIGINAL state_dict, by its original name `k` and shape `s`,
`g = torch.Generator().manual_seed(zlib.crc32(k.encode()))`, then
- `num_batches_tracked`: 0;  `running_var`: `0.5 + rand(s, g)`;
- other 1-D tensors named `*weight` (norm scales, PReLU slopes): `1 + 0.1 randn(s, g)`;
- other 1-D tensors (biases, `running_mean`): `0.1 randn(s, g)`;
- tensors of 2 or more dims: `randn(s, g) / sqrt(prod(s[1:]))`.
Input: `torch.Generator().manual_seed(0)`, t1 = randn(2, 3, 64, 64), then t2 = randn(2, 3, 64, 64). Eval mode.
"""
import argparse, json, math, platform, sys, types, zlib
from pathlib import Path
import numpy as np
import torch

SMALL = [8, 16, 32, 64, 128]

def seeded_state_dict(manifest):
    "The seed rule above, for a manifest {name: {'shape': [...], 'dtype': 'float32'|'int64'}}."
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

def manifest(model):
    return {k: {'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', '')} for k, v in model.state_dict().items()}

def dump_manifest(man):
    "One tensor per line, in the original's state_dict order."
    return '{\n' + ',\n'.join(f'{json.dumps(k)}: {json.dumps(v)}' for k, v in man.items()) + '\n}\n'

def load_original(root:Path):
    "Import the original's modules with the run-time patches described above; return (Models module, small class)."
    for name in ('cv2', 'torchvision', 'torchvision.transforms'):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules['torchvision'].transforms = sys.modules['torchvision.transforms']
    torch.Tensor.cuda = lambda self, *a, **k: self
    sys.path.insert(0, str(root))
    import models.Models as M
    src = (root/'models'/'Models.py').read_text()
    old = 'channel_list = [32, 64, 128, 256, 512]'
    if src.count(old) != 1: raise SystemExit(f'{root}/models/Models.py: expected one `{old}`; another version of the original?')
    small = types.ModuleType('models.Models_small')
    exec(compile(src.replace(old, f'channel_list = {SMALL}'), str(root/'models'/'Models.py'), 'exec'), small.__dict__)
    return M, small

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('sgsln', type=Path, help='work tree of NJU-LHRS/offical-SGSLN')
    ap.add_argument('out', type=Path, help='fixture folder (tests/fixtures/parity/dpcd)')
    ap.add_argument('--commit', default=None, help="the original's commit (recorded in versions.json)")
    a = ap.parse_args()
    torch.set_num_threads(1)   # bit-exact results need the same reduction order: one thread here and in CI
    M, small = load_original(a.sgsln.resolve())
    a.out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    t1, t2 = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 64, 64, generator=g)
    io = {'t1': t1, 't2': t2}
    summary = {}
    for tag, cls in (('small', small.DPCD), ('full', M.DPCD)):
        torch.manual_seed(0)
        net = cls().eval()
        man = manifest(net)
        (a.out/f'manifest_{tag}.json').write_text(dump_manifest(man))
        net.load_state_dict(seeded_state_dict(man), strict=True)
        with torch.no_grad(): change, seg1, seg2 = net(t1, t2)
        io.update({f'{tag}_change': change, f'{tag}_seg1': seg1, f'{tag}_seg2': seg2})
        summary[tag] = dict(tensors=len(man), params=sum(p.numel() for p in net.parameters()),
                            change_std=float(change.std()), seg1_std=float(seg1.std()))
    torch.save(io, a.out/'io.pt')
    versions = dict(original='NJU-LHRS/offical-SGSLN', commit=a.commit, python=platform.python_version(),
                    torch=torch.__version__, numpy=np.__version__, threads=torch.get_num_threads(), small_channels=SMALL, input=[2, 3, 64, 64],
                    patches=['cv2 and torchvision stubbed', 'torch.Tensor.cuda -> identity (CPU)',
                             f'small: channel_list = {SMALL}'], models=summary)
    (a.out/'versions.json').write_text(json.dumps(versions, indent=1))
    print(json.dumps(summary, indent=1))

if __name__ == '__main__': main()
