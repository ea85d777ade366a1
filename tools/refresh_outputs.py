#!/usr/bin/env python
"""Re-execute notebooks in place, as `nbdev-test` runs them (cells of the skipped test flags are left as they are, with
their earlier outputs), and save the new outputs: `python tools/refresh_outputs.py nbs/papers/egan.ipynb ...`.
Then run `nbdev-clean`. What a reader sees on a page is a saved output: refresh a page after changing what it shows.

A paper page (nbs/papers/*.ipynb) shows at its top the summary of the run whose outputs it shows: after the run, its
`out_dir/results.json` is copied to `nbs/papers/results/<slug>.json` and the cells that read it (`page_results(`) run again."""
import os, sys, time
from pathlib import Path

def refresh(fn:Path):
    os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ['IN_TEST'] = '1'
    from fastcore.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from rsnb.repro import cell_flags
    import torch; torch.set_num_threads(1)
    nb = read_nb(fn)
    cfg = get_config(fn.parent)
    flags = cfg.tst_flags if not isinstance(cfg.tst_flags, str) else cfg.tst_flags.split()
    skip = lambda c: bool(cell_flags(c) & set(flags))   # as nbdev-test: `#| slow`, `#| cuda`, `#| repro` cells are not run
    start = time.time()
    with working_directory(fn.parent):
        k = CaptureShell(fn)
        for c in nb.cells:
            if c.cell_type != 'code' or skip(c): continue
            k.cell(c)                      # runs the cell and stores its outputs in it
            if k.exc: raise RuntimeError(f'{fn}: cell failed: {k.exc!r}')
        if fn.parent.name == 'papers': page_results(fn, nb, k, start)
    write_nb(nb, fn)
    return time.time() - start

def page_results(fn:Path, nb, k, start:float):
    "Copy the run's results.json beside the page (`results/<slug>.json`) and re-run the cells that show it."
    import shutil
    from rsnb.repro import resolve_out
    out = k.user_ns.get('out_dir')
    src = resolve_out(out)/'results.json' if out else None
    if src is None or not src.exists() or src.stat().st_mtime < start: return   # this run wrote no results
    dest = fn.parent/'results'/f'{fn.stem}.json'
    dest.parent.mkdir(exist_ok=True)
    tmp = dest.with_suffix('.json.tmp'); shutil.copyfile(src, tmp); tmp.replace(dest)
    for c in nb.cells:
        if c.cell_type == 'code' and 'page_results(' in c.source:
            k.cell(c)
            if k.exc: raise RuntimeError(f'{fn}: cell failed: {k.exc!r}')

if __name__ == '__main__':
    for f in sys.argv[1:]: print(f'{f}: {refresh(Path(f).resolve()):.0f} s', flush=True)
