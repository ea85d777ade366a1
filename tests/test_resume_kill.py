"""Resume after a real kill: a segmentation training process is killed with SIGKILL between its periodic checkpoints, then
resumed from the last checkpoint it wrote; it must reach the weights of an uninterrupted run (float tolerance), and its
loss log must hold every step once (the lines logged after the checkpoint, by the killed process, are dropped on resume).

The in-process variants (`stop_after`, a clean stop that writes a checkpoint) are in the trainers' notebooks; this one has
the process die with no chance to write anything, so only what the periodic checkpoint saved survives.
"""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import numpy as np, pytest, torch

WORKER = textwrap.dedent('''
    import sys, time, json
    from pathlib import Path
    import numpy as np, torch
    from PIL import Image
    from fastai.callback.core import Callback
    from rsnb.core import seed_everything
    from rsnb.segmentation.datasets import SegClasses
    from rsnb.segmentation.models import seg_model
    from rsnb.segmentation.train import seg_dls, benchmark_learner, fit_iters
    torch.set_num_threads(1)
    data, run, mode, out, pause = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), float(sys.argv[5])
    TOY = SegClasses('toy', ('bg', 'square'), ((0, 0, 0), (255, 255, 255)))
    items = [(data/f'i{k}.png', data/f'm{k}.png') for k in range(6)]
    class Slow(Callback):   # a step that takes `pause` s, so the parent can kill between checkpoints
        def after_batch(self): time.sleep(pause)
    seed_everything(0)
    dls = seg_dls(items[:4], items[4:], TOY, iters=16, bs=2, crop=48, device='cpu', seed=1)
    learn = benchmark_learner(dls, seg_model('fcn', 'resnet18', 2, 3, output_stride=32), 'fcn', 2)
    learn.add_cb(Slow())
    with learn.no_logging(), learn.no_bar():
        fit_iters(learn, 16, validate=False, run_dir=run, resume=mode == 'resume', every_minutes=float(sys.argv[6]),
                  log_every=1, print_every=None)
    torch.save({k: v for k, v in learn.model.state_dict().items() if v.dtype.is_floating_point}, out)
''')

def _items(d, n=6, size=64, seed=0):
    from PIL import Image
    rng = np.random.default_rng(seed)
    for k in range(n):
        m = np.zeros((size, size), np.uint8); y, x = rng.integers(0, size - 24, 2); m[y:y+24, x:x+24] = 1
        img = (np.stack([m]*3, -1) * 150 + rng.integers(0, 80, (size, size, 3))).astype(np.uint8)
        Image.fromarray(img).save(d/f'i{k}.png'); Image.fromarray(m).save(d/f'm{k}.png')

def _cmd(tmp, run, mode, out, pause, every):
    return [sys.executable, str(tmp/'worker.py'), str(tmp/'data'), str(run), mode, str(out), str(pause), str(every)]

def _steps(run): 
    p = run/'log.jsonl'
    if not p.exists(): return []
    out = []
    for l in p.read_text().splitlines():
        try: out.append(json.loads(l)['step'])
        except ValueError: pass        # a line cut by the kill
    return out

def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    (tmp_path/'data').mkdir(); _items(tmp_path/'data')
    (tmp_path/'worker.py').write_text(WORKER)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    # the uninterrupted run (no pause, checkpoint only at the end)
    full = subprocess.run(_cmd(tmp_path, tmp_path/'full', 'run', tmp_path/'w_full.pt', 0, 10), env=env, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-2000:]
    # the killed run: 0.25 s per step, a checkpoint every ~0.6 s; SIGKILL once step 9 is logged and a checkpoint exists
    run = tmp_path/'cut'
    p = subprocess.Popen(_cmd(tmp_path, run, 'run', tmp_path/'w_cut.pt', 0.25, 0.01), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not ((run/'checkpoint.pth').exists() and len(_steps(run)) >= 9):
        assert p.poll() is None, f'the run ended before it was killed: {p.stderr.read().decode()[-2000:]}'
        assert time.time() - t0 < 300, 'the run did not reach step 9 in 300 s'
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL and not (tmp_path/'w_cut.pt').exists()
    ck = torch.load(run/'checkpoint.pth', weights_only=True)    # plain data: read as it would be from a shared run folder
    logged = _steps(run)
    assert 0 < ck['train_iter'] < 16 and max(logged) >= ck['train_iter']
    res = subprocess.run(_cmd(tmp_path, run, 'resume', tmp_path/'w_res.pt', 0, 10), env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    w_full, w_res = torch.load(tmp_path/'w_full.pt'), torch.load(tmp_path/'w_res.pt')
    assert w_full.keys() == w_res.keys()
    gap = max(float((w_full[k] - w_res[k]).abs().max()) for k in w_full)
    assert gap < 1e-5, f'resumed weights differ from the uninterrupted run by {gap:.2e}'
    assert _steps(run) == list(range(1, 17)), _steps(run)      # every step once: the killed process's extra lines dropped
    print(f'killed after step {max(logged)} (checkpoint at {ck["train_iter"]}); resumed weights within {gap:.1e} of the uninterrupted run')
