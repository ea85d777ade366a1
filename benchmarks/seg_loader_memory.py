"""Peak memory of the segmentation training loader: streamed from disk (rsnb today) vs preloaded float32+int64 (before).

Miniature ISPRS-style data: N 512 px uint8 RGB patches with index masks (PNG, as `prepare_isprs` writes them). Each
configuration runs in a fresh process: build `seg_dls` (crop 512, batch 4), draw 30 training batches, report the peak
RSS above the baseline after imports. Streaming must not grow with N; preloading grows by ~5 MiB per patch.
Extrapolated to Potsdam (the benchmark's 512/256 clipping of 24 train + 14 val tiles of 6000 px: 38 × 23² = 20,102 patches).
Usage: python benchmarks/seg_loader_memory.py [--n 16 64 256]
"""
import argparse, json, os, resource, subprocess, sys, tempfile
from pathlib import Path
import numpy as np

def make(root, n):
    from PIL import Image
    rng = np.random.default_rng(0); items = []
    for k in range(n):
        i, m = root/f'i{k}.png', root/f'm{k}.png'
        if not i.exists():
            Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(i)
            Image.fromarray(rng.integers(0, 6, (512, 512), dtype=np.uint8)).save(m)
        items.append((i, m))
    return items

def child(root, n, mode):
    import torch
    from rsnb.segmentation.datasets import POTSDAM
    from rsnb.segmentation.train import seg_dls, SegDataset, zoom_pair
    from rsnb.segmentation.datasets import load_pair
    torch.set_num_threads(1)
    items = make(Path(root), n)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dls = seg_dls(items, items[:2], POTSDAM, iters=30, bs=4, crop=512, device='cpu', num_workers=0)
    keep = None
    if mode == 'preload_float':   # what SegDataset did before: every pair as float32 + int64 tensors
        keep = [zoom_pair(torch.from_numpy(a.astype(np.float32)), torch.from_numpy(b.astype(np.int64)), 1.) for a, b in (load_pair(i, m, POTSDAM) for i, m in items)]
    for k, b in enumerate(dls.train):
        if k == 30: break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(n=n, mode=mode, peak_mib=(peak - base) / 1024)))

def main(argv=None):
    ap = argparse.ArgumentParser(); ap.add_argument('--n', type=int, nargs='+', default=[16, 64, 256]); ap.add_argument('--child', nargs=3)
    a = ap.parse_args(argv)
    if a.child: return child(a.child[0], int(a.child[1]), a.child[2])
    sys.path.insert(0, str(Path(__file__).parent)); from _common import save
    root = Path(tempfile.mkdtemp(prefix='rsnb_segmem_'))
    res = []
    for mode in ('stream', 'preload_float'):
        for n in a.n:
            out = subprocess.run([sys.executable, __file__, '--child', str(root), str(n), mode], capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
            res.append(json.loads(out.stdout.strip().splitlines()[-1]))
    st = {r['n']: r['peak_mib'] for r in res if r['mode'] == 'stream'}; pf = {r['n']: r['peak_mib'] for r in res if r['mode'] == 'preload_float'}
    n0, n1 = min(a.n), max(a.n)
    per_patch = (pf[n1] - pf[n0]) / (n1 - n0)
    potsdam = 38 * 23 ** 2
    growth = max((st[n1] - st[n0]) / (n1 - n0), 0.)    # the streamed loader's growth per patch (index, file handles, allocator)
    r = dict(runs=res, preload_mib_per_patch=per_patch, stream_growth_mib_per_patch=growth,
             potsdam_patches=potsdam, potsdam_preload_gib=per_patch * potsdam / 1024,
             potsdam_stream_gib=(st[n1] + growth * (potsdam - n1)) / 1024,   # linear from the largest run: an upper bound if growth is noise
             note='peak RSS above the post-import baseline, 30 batches of 4 × 512 px crops, one process (num_workers=0); '
                  'with W workers each holds about one batch in flight')
    return save('seg_loader_memory', r)

if __name__ == '__main__': main()
