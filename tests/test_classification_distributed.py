"Slow test: scene-classifier training runs unchanged under `accelerate launch` (2 CPU processes, gloo backend)."
import json, os, shutil, subprocess, sys, textwrap
from pathlib import Path
import numpy as np
import pytest

SCRIPT = textwrap.dedent('''
    import json, sys, os
    from pathlib import Path
    import torch
    from fastai.callback.core import Callback
    from fastai.distributed import *
    from fastai.torch_core import rank_distrib, num_distrib
    from rsnb.core import seed_everything
    from rsnb.classification.learner import scene_dls, scene_learner, save_scene_model, load_scene_model, distrib_ctx
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    seed_everything(0)
    class Count(Callback):
        def before_fit(self): self.n, self.seen = 0, 0
        def after_batch(self):
            if self.training: self.n += 1; self.seen += self.xb[0].shape[0]
    dls = scene_dls(root, 0.5, seed=0, bs=4, stats=dict(mean=[127.5]*3, std=[127.5]*3, names=['red', 'green', 'blue']))
    learn = scene_learner(dls, arch='resnet18', size=32, cbs=[Count()], lr=1e-2)
    with distrib_ctx(learn, sync_bn=False):
        learn.fit(2)
    r = rank_distrib()
    cnt = learn.cbs.filter(lambda c: isinstance(c, Count))[0]
    (out/f'rank{r}.json').write_text(json.dumps(dict(rank=r, world=num_distrib(), batches=cnt.n, seen=cnt.seen,
        backend=torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        loss=float(learn.recorder.losses[-1]))))
    save_scene_model(learn, out/'model')
''')

def _make_folder(root: Path, n_per_class=8, size=24):
    import rasterio
    from rasterio.transform import from_origin
    rng = np.random.default_rng(0)
    for k, c in enumerate(['dark', 'bright']):
        (root/c).mkdir(parents=True)
        for i in range(n_per_class):
            a = np.clip(rng.normal(60 + 120*k, 20, (3, size, size)), 0, 255).astype(np.uint8)
            with rasterio.open(root/c/f'{c}_{i}.tif', 'w', driver='GTiff', width=size, height=size, count=3, dtype='uint8',
                               transform=from_origin(0, size, 1, 1)) as ds: ds.write(a)

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('RSNB_SLOW'), reason='slow (2-process training): set RSNB_SLOW=1')
def test_two_process_gloo(tmp_path):
    accelerate = Path(sys.executable).parent/'accelerate'
    if not accelerate.exists(): pytest.skip('accelerate is not installed')
    root, out = tmp_path/'data', tmp_path/'out'; out.mkdir()
    _make_folder(root)
    (tmp_path/'train.py').write_text(SCRIPT)
    # torchrun-style launch of 2 processes; with no GPU (or ACCELERATE_USE_CPU) accelerate picks MULTI_CPU over gloo
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'ACCELERATE_USE_CPU': 'true', 'CUDA_VISIBLE_DEVICES': ''}
    cmd = [str(accelerate), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
           '--dynamo_backend', 'no', str(tmp_path/'train.py'), str(root), str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ranks = [json.loads((out/f'rank{i}.json').read_text()) for i in range(2)]
    assert [x['rank'] for x in ranks] == [0, 1] and all(x['world'] == 2 for x in ranks)
    assert all(x['backend'] == 'gloo' for x in ranks)
    # both ranks trained, each on its own half of the 8 training images per epoch (2 epochs, batch 4)
    assert all(x['batches'] == 2 and x['seen'] == 8 for x in ranks), ranks
    # the model was saved once, by rank 0, as a state dict + card that loads with weights_only=True
    assert sorted(p.name for p in out.iterdir()) == ['model.json', 'model.pth', 'rank0.json', 'rank1.json']
    from rsnb.classification.learner import load_scene_model
    model, card = load_scene_model(out/'model')
    assert card['classes'] == ['bright', 'dark'] and card['arch'] == 'resnet18'
