"""Tiled prediction time / bare forward time over the same windows (goal ≤ 1.10); with `--simulate`, the pipelining ratio.

Bare: the scene's windows (256 px, overlap 32) already in memory as tensors, forwarded in batches of 8.
Tiled: `rsnb.tiles.predict_raster` on the GeoTIFF: reading strips, nodata check, the same forwards, sin² blending,
argmax and writing a tiled, compressed uint8 GeoTIFF. Runs alternate; the minimum of each is compared.
Simulated accelerator (`--simulate`): io-only = `predict_raster` with a model that returns at once (reading, stacking,
blending, argmax, compression, writing: everything but the model); model-only = a model_fn that sleeps (GIL
released, like a CUDA forward waiting for the GPU) for io-only / batches per batch, so model-only = io-only; then
wall / max(io-only, model-only) with that model, for the sequential path (`pipeline=False`: about 2) and the
pipelined one (reader and writer threads; goal ≤ 1.15). `--device cuda` runs a real model on the GPU instead of
the sleep (ratio against its own model-only time).
Usage: python benchmarks/tiled_predict_overhead.py [--repeats 3] [--threads 1] [--out probs|classes] [--compress deflate|zstd]
       python benchmarks/tiled_predict_overhead.py --simulate [--repeats 3] [--mosaic 4] [--device cpu|cuda] [--name NAME]
"""
import argparse, shutil, tempfile, time
from pathlib import Path
import numpy as np, torch
from _common import small_cnn, scene_path, save
from peak_rss import mosaic
from rsnb.geo import read_raster
from rsnb.tiles import predict_raster, tile_starts, to_classes, _pad

def main(argv=None):
    ap = argparse.ArgumentParser(); ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--tile', type=int, default=256); ap.add_argument('--overlap', type=int, default=32)
    ap.add_argument('--batch', type=int, default=8); ap.add_argument('--out', default='classes'); ap.add_argument('--compress', default='deflate')
    ap.add_argument('--simulate', action='store_true', help='pipelining ratio with a simulated accelerator')
    ap.add_argument('--device', default='cpu'); ap.add_argument('--name', default=None)
    ap.add_argument('--mosaic', type=int, default=4, help='--simulate: n×n copies of the scene (more batches: the pipeline fill and drain count less)')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.simulate: return pipeline_ratio(a)
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

def pipeline_ratio(a):
    "wall / max(io-only, model-only) of predict_raster, sequential and pipelined."
    tmp = Path(tempfile.mkdtemp(prefix='rsnb_bench_'))
    src = scene_path() if a.mosaic == 1 else mosaic(scene_path(), tmp/f'mosaic_{a.mosaic}x{a.mosaic}.tif', a.mosaic)
    fin = to_classes if a.out == 'classes' else None
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(a.batch, 4, a.tile, a.tile, generator=g)          # a constant output, never overwritten
    instant = lambda x: probs[:x.shape[0]]
    def run(fn, pipeline, dev='cpu'):
        t = time.perf_counter()
        predict_raster(fn, src, tmp/'pred.tif', tile=a.tile, overlap=a.overlap, batch_size=a.batch, finalize=fin,
                       compress=a.compress, progress=False, pipeline=pipeline, device=dev)
        return time.perf_counter() - t
    run(instant, True); run(instant, False)                                # warm-up
    io = min(min(run(instant, p) for p in (False, True)) for _ in range(a.repeats))
    n_batches = -(-predict_raster.last_stats['run'] // a.batch)
    if a.device == 'cpu':
        cost = io / n_batches
        def model(x): time.sleep(cost); return probs[:x.shape[0]]
        model_only, dev, what = io, 'cpu', f'time.sleep({cost*1e3:.1f} ms) per batch'
    else:
        net = small_cnn().to(a.device)
        def model(x): return net(x / 10000)
        bs = [torch.rand(a.batch, 3, a.tile, a.tile, device=a.device) * 10000 for _ in range(n_batches)]
        with torch.inference_mode():
            for b in bs: model(b)
            torch.cuda.synchronize(); t = time.perf_counter()
            for b in bs: model(b).cpu()
            model_only = time.perf_counter() - t
        dev, what = a.device, f'small_cnn on {a.device}'
    seq = min(run(model, False, dev) for _ in range(a.repeats))
    pip = min(run(model, True, dev) for _ in range(a.repeats))
    den = max(io, model_only)
    print(f'io-only {io:.2f} s, model-only {model_only:.2f} s; sequential {seq:.2f} s -> {seq/den:.3f}; pipelined {pip:.2f} s -> {pip/den:.3f}')
    shutil.rmtree(tmp, ignore_errors=True)
    return save(a.name or ('tiled_predict_pipeline' + ('' if a.device == 'cpu' else f'_{a.device}')),
                dict(ratio_pipelined=pip/den, ratio_sequential=seq/den, goal=1.15, io_only_s=io, model_only_s=model_only,
                     sequential_s=seq, pipelined_s=pip, batches=n_batches, mosaic=a.mosaic, model=what, timer='wall clock, minimum over repeats',
                     tile=a.tile, overlap=a.overlap, batch=a.batch, output=a.out, compress=a.compress, scene=src.name))

if __name__ == '__main__': main()
