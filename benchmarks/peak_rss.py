"""Peak RSS of tiled prediction on a 4×-area mosaic of the Landsat-8 scene / on the scene itself (goal ≤ 1.2).

The mosaic (2×2 copies of the 2006×1515 scene, 4012×3030 px) is built window by window in a temp dir.
Each size runs in a fresh process (`--child`), predicting 4-band float32 probabilities with the small CNN
(width 16) and writing a GeoTIFF; peak RSS is the child's `ru_maxrss`, GDAL and torch included.
Usage: python benchmarks/peak_rss.py
"""
import argparse, json, resource, subprocess, sys, tempfile, time
from dataclasses import replace
from pathlib import Path
import numpy as np
from _common import small_cnn, scene_path, save

def child(src, dst):
    import torch
    torch.set_num_threads(1)
    from rsnb.tiles import predict_raster
    model = small_cnn(width=16); f = lambda x: torch.softmax(model(x / 10000), 1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    predict_raster(f, src, dst, tile=256, overlap=32, batch_size=8, progress=False)
    print(json.dumps(dict(peak_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, base_kb=base,
                          seconds=time.perf_counter() - t, **predict_raster.last_stats)))

def mosaic(src, dst, n=2):
    from rsnb.geo import read_raster, RasterWriter
    img, meta = read_raster(src)
    with RasterWriter(dst, replace(meta, height=n * meta.height, width=n * meta.width, path=None)) as w:
        for i in range(n):
            for j in range(n): w.write(img, row=i * meta.height, col=j * meta.width)
    return dst

def main(argv=None):
    ap = argparse.ArgumentParser(); ap.add_argument('--child', nargs=2); ap.add_argument('--repeats', type=int, default=2)
    a = ap.parse_args(argv)
    if a.child: return child(*a.child)
    tmp = Path(tempfile.mkdtemp(prefix='rsnb_rss_'))
    src = scene_path(); big = mosaic(src, tmp/'mosaic_4x.tif')
    res = {'1x': [], '4x': []}
    for _ in range(a.repeats):                       # alternate; RSS of shared libraries varies with machine load
        for name, p in (('1x', src), ('4x', big)):
            out = subprocess.run([sys.executable, __file__, '--child', str(p), str(tmp/f'pred_{name}.tif')], capture_output=True, text=True)
            if out.returncode: raise SystemExit(f'{name} child failed:\n{out.stderr[-3000:]}')
            res[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(name, res[name][-1])
    peak = {k: max(r['peak_kb'] for r in v) for k, v in res.items()}
    grow = {k: max(r['peak_kb'] - r['base_kb'] for r in v) for k, v in res.items()}
    ratio = peak['4x'] / peak['1x']
    print(f'peak RSS (max over runs) 1×: {peak["1x"]/1024:.0f} MB, 4×: {peak["4x"]/1024:.0f} MB -> ratio {ratio:.3f}; '
          f'growth during prediction 1×: {grow["1x"]/1024:.0f} MB, 4×: {grow["4x"]/1024:.0f} MB')
    for f in tmp.iterdir(): f.unlink()
    tmp.rmdir()
    return save('peak_rss', dict(ratio=ratio, goal=1.2, peak_kb=peak, growth_kb=grow, runs=res, output='4-band float32 probabilities, GeoTIFF',
                                 model='small_cnn width 16', sizes={'1x': '2006×1515', '4x': '4012×3030'}))

if __name__ == '__main__': main()
