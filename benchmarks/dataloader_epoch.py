"""GeoTIFF DataLoader epoch / the same epoch on preloaded tensors (goal ≤ 1.25).

Two real GeoTIFF datasets through `rsnb.data`: the 63 Landsat-7 int16 tiles (`image_dls`, whole 256×256 tiles)
and the 7 OSCD 4-band uint16 city pairs (`change_dls`, random 128-px crops, 8 per pair). The GeoTIFF loader
reads every file on every epoch (`cache=False`); `rsnb.data.preloaded` gives the same DataLoader (same transforms,
augmentations, batching) over records that already hold the decoded arrays. Also reported: the default cached
loader (`cache=True`) after its first epoch. Runs alternate; minima of process CPU time are compared (wall time on
the shared development machine is dominated by other processes; both are saved).
Usage: python benchmarks/dataloader_epoch.py [--repeats 5]
"""
import argparse, time
import torch
from _common import save
from rsnb.core import data_path
from rsnb.data import image_dls, change_dls, preloaded, raster_cache

def timed(dl, n=5):
    "Mean (wall, CPU) seconds of an epoch over `n` epochs."
    w, c = time.perf_counter(), time.process_time()
    for _ in range(n):
        for b in dl: pass
    return (time.perf_counter() - w) / n, (time.process_time() - c) / n

def bench(make, repeats):
    raster_cache.clear()
    geo = make(cache=False).train
    pre = preloaded(geo)
    cached = make(cache=True).train
    timed(geo); timed(pre); timed(cached)                       # warm-up; fills the cache of `cached`
    res = {k: [] for k in ('geotiff', 'preloaded', 'cached')}
    for _ in range(repeats):
        for k, dl in (('geotiff', geo), ('preloaded', pre), ('cached', cached)): res[k].append(timed(dl))
    best = {k: min(t[1] for t in v) for k, v in res.items()}
    return dict(ratio=best['geotiff'] / best['preloaded'], ratio_cached=best['cached'] / best['preloaded'],
                ratio_wall=min(t[0] for t in res['geotiff']) / min(t[0] for t in res['preloaded']),
                batches=len(geo), bs=geo.bs, wall_cpu_s=res)

def main(argv=None):
    ap = argparse.ArgumentParser(); ap.add_argument('--repeats', type=int, default=5)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    l7, oscd = data_path('inpainting', 'landsat7_slcoff', 'images'), data_path('change_detection', 'oscd_ms10m')
    out = {'landsat7_tiles': bench(lambda cache: image_dls(l7, bs=8, cache=cache, seed=0), a.repeats),
           'oscd_pairs_crop128': bench(lambda cache: change_dls(oscd, crop=128, crops_per_image=8, bs=8, cache=cache), a.repeats)}
    for k, v in out.items(): print(f"{k}: uncached geotiff/preloaded {v['ratio']:.3f}, default cached loader/preloaded {v['ratio_cached']:.3f} (wall {v['ratio_wall']:.3f}), {v['batches']} batches")
    return save('dataloader_epoch', dict(ratio=max(v['ratio'] for v in out.values()), ratio_cached=max(v['ratio_cached'] for v in out.values()),
                goal=1.25, timer='process CPU time, mean of 5 epochs, min over repeats', datasets=out))

if __name__ == '__main__': main()
