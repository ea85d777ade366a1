"""Peak RSS of the real `rsnb-compress` CLI on large sparse rasters against their raw size (goal: flat within ~10 % from 2048²).

Each raster is a tiled (256 px), DEFLATE, SPARSE_OK GeoTIFF with nodata 0: one 768×768 textured patch, every other
block left unwritten (read back as nodata), so a 40000² 3-band uint8 raster (4.8 GB raw) is a few hundred kB on disk.
The console script runs as a subprocess (shipped codec `compression_msh_default`, rate 0, `--tile 512`, the CLI default); its peak RSS
is the child's `ru_maxrss` from `os.wait4`. A run over `--max-seconds` is stopped and the larger sizes are skipped
(its time is extrapolated from the per-pixel rate of the last finished run).
Usage: python benchmarks/compress_memory.py [--sizes 2048 8192 20000 40000] [--u16 8192 20000]
"""
import argparse, os, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from _common import save

MODEL, TILE, PATCH = 'compression_msh_default', 512, 768

def make_sparse(path, n, dtype='uint8', bands=3):
    "An n×n sparse GeoTIFF: one textured PATCH² block at (n/4, n/4), the rest nodata (unwritten blocks)."
    import rasterio
    from rasterio.windows import Window
    from affine import Affine
    y, x = np.mgrid[:PATCH, :PATCH]
    top = 250 if dtype == 'uint8' else 4000
    patch = np.stack([(np.sin(x / (9 + 4 * b)) * np.cos(y / 13) + 1) * top / 2 + 1 for b in range(bands)])
    patch = np.clip(patch + np.random.default_rng(0).normal(0, top / 50, patch.shape), 1, top).astype(dtype)
    prof = dict(driver='GTiff', width=n, height=n, count=bands, dtype=dtype, nodata=0, crs='EPSG:32633',
                transform=Affine(10, 0, 500000, 0, -10, 5000000), tiled=True, blockxsize=256, blockysize=256,
                compress='deflate', SPARSE_OK=True, BIGTIFF='IF_SAFER')
    with rasterio.open(path, 'w', **prof) as ds: ds.write(patch, window=Window(n // 4, n // 4, PATCH, PATCH))
    return path

def run_cli(src, dst, limit):
    "(peak RSS kB, wall s, return code, stderr tail) of `rsnb-compress src dst`; killed after `limit` s."
    exe = Path(sys.executable).parent/'rsnb-compress'
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    t = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([str(exe), str(src), str(dst), '--model', MODEL, '--rate', '0', '--tile', str(TILE), '--quiet', '--overwrite'],
                             stdout=subprocess.DEVNULL, stderr=err, env=env)
        while True:                                    # os.wait4 gives this child's own rusage (ru_maxrss in kB)
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid: break
            if time.perf_counter() - t > limit: p.kill()
            time.sleep(0.2)
        code = p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0); tail = err.read().decode()[-500:]
    return ru.ru_maxrss, time.perf_counter() - t, code, tail

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', type=int, nargs='+', default=[2048, 8192, 20000, 40000])
    ap.add_argument('--u16', type=int, nargs='*', default=[8192, 20000])
    ap.add_argument('--max-seconds', type=float, default=300)
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix='rsnb_cmem_'))
    runs, skipped = [], []
    for dtype, sizes in (('uint8', a.sizes), ('uint16', a.u16)):
        stop = False
        for n in sizes:
            raw = n * n * 3 * np.dtype(dtype).itemsize
            if stop: skipped.append(dict(dtype=dtype, size=n, raw_mb=raw / 2**20)); continue
            src = make_sparse(tmp/f's{n}_{dtype}.tif', n, dtype)
            peak, wall, code, err = run_cli(src, tmp/'out.rsc', a.max_seconds)
            r = dict(dtype=dtype, size=n, raw_mb=round(raw / 2**20, 1), file_mb=round(src.stat().st_size / 2**20, 3),
                     peak_rss_mb=round(peak / 1024, 1), wall_s=round(wall, 1), code=code)
            if code == 0: r['rsc_kb'] = round((tmp/'out.rsc').stat().st_size / 1024, 1)
            elif wall >= a.max_seconds: r['timed_out'] = True; stop = True
            else: raise SystemExit(f'rsnb-compress failed on {n}² {dtype}:\n{err}')
            runs.append(r); print(r, flush=True)
            src.unlink(); (tmp/'out.rsc').unlink(missing_ok=True)
    for s in skipped:                                  # extrapolated time from the last finished run of that dtype
        done = [r for r in runs if r['dtype'] == s['dtype'] and r['code'] == 0]
        if done: s['wall_s_extrapolated'] = round(done[-1]['wall_s'] * s['size']**2 / done[-1]['size']**2, 0)
    tmp.rmdir()
    ok = [r for r in runs if r['dtype'] == 'uint8' and r['code'] == 0]
    lo, hi = min(r['peak_rss_mb'] for r in ok), max(r['peak_rss_mb'] for r in ok)
    spread = hi / lo - 1                               # (max - min) / min over the uint8 sizes
    print(f'uint8 peak RSS {ok[0]["peak_rss_mb"]:.0f} MB at {ok[0]["size"]}² … {ok[-1]["peak_rss_mb"]:.0f} MB at {ok[-1]["size"]}² '
          f'(raw {ok[-1]["raw_mb"]:.0f} MB); min {lo:.0f}, max {hi:.0f} MB: spread {100 * spread:.1f} %')
    return save('compress_memory', dict(goal='peak RSS within 10 % from 2048² up, far below the raw size', spread=round(spread, 4),
                                        runs=runs, skipped=skipped, model=MODEL, rate=0, tile=TILE,
                                        raster=f'3-band, nodata 0, one {PATCH}² textured patch, other 256² blocks unwritten (SPARSE_OK)'))

if __name__ == '__main__': main()
