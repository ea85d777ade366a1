"""Tiled prediction time / bare forward time over the same windows (goal ≤ 1.10).

Bare: the scene's windows (256 px, overlap 32) already in memory as tensors, forwarded in batches of 8.
Tiled: `rsnb.tiles.predict_raster` on the GeoTIFF: reading strips, nodata check, the same forwards, sin² blending,
argmax and writing a tiled, compressed uint8 GeoTIFF. Runs alternate; the minimum of each is compared.
Usage: python benchmarks/tiled_predict_overhead.py [--repeats 3] [--threads 1] [--out probs|classes] [--compress deflate|zstd]
"""
import argparse, shutil, tempfile, time
from pathlib import Path
import numpy as np, torch
from _common import small_cnn, scene_path, save
from rsnb.geo import read_raster
from rsnb.tiles import predict_raster, tile_starts, to_classes, _pad

def main(argv=None):
    ap = argparse.ArgumentParser(); ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--tile', type=int, default=256); ap.add_argument('--overlap', type=int, default=32)
    ap.add_argument('--batch', type=int, default=8); ap.add_argument('--out', default='classes'); ap.add_argument('--compress', default='deflate')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    src = scene_path(); model = small_cnn()
    f = lambda x: model(x / 10000)
    img, meta = read_raster(src)
    rows, cols = tile_starts(meta.height, a.tile, a.overlap), tile_starts(meta.width, a.tile, a.overlap)
    wins = [torch.from_numpy(_pad(img[:, r:r+a.tile, c:c+a.tile], a.tile, a.tile).astype(np.float32)) for r in rows for c in cols]
    batches = [torch.stack(wins[i:i+a.batch]) for i in range(0, len(wins), a.batch)]
    fin = to_classes if a.out == 'classes' else None
    tmp = Path(tempfile.mkdtemp(prefix='rsnb_bench_'))
    def timed(fn):
        w, c = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - w, time.process_time() - c
    def bare():
        with torch.inference_mode():
            for b in batches: f(b)
    def tiled():
        predict_raster(f, src, tmp/'pred.tif', tile=a.tile, overlap=a.overlap, batch_size=a.batch, finalize=fin, compress=a.compress, progress=False)
    bare(); tiled()                                   # warm-up (allocators, GDAL, page cache)
    tb, tt = [], []
    for _ in range(a.repeats): tb.append(timed(bare)); tt.append(timed(tiled))
    stats = predict_raster.last_stats
    shutil.rmtree(tmp, ignore_errors=True)
    cpu = min(t[1] for t in tt) / min(t[1] for t in tb)
    wall = min(t[0] for t in tt) / min(t[0] for t in tb)
    print(f'windows {stats}  CPU s: bare {min(t[1] for t in tb):.2f} tiled {min(t[1] for t in tt):.2f} -> ratio {cpu:.3f};  wall ratio {wall:.3f}')
    name = 'tiled_predict_overhead' + ('' if a.out == 'classes' else f'_{a.out}') + ('' if a.compress == 'deflate' else f'_{a.compress}')
    return save(name, dict(compress=a.compress, ratio=cpu, ratio_wall=wall, goal=1.10, timer='process CPU time (wall time is dominated by other processes on a shared machine)',
                bare_wall_cpu_s=tb, tiled_wall_cpu_s=tt, windows=len(wins),
                run=stats['run'], tile=a.tile, overlap=a.overlap, batch=a.batch, output=a.out,
                model='small_cnn(3→32→32→32→4, 3×3)', scene=src.name))

if __name__ == '__main__': main()
