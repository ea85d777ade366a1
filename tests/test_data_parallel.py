"""Data parallel (`rsnb.train.distrib_ctx`) for the five trainers.

Fast: `ShardedDL`'s slices against the single-process order, `distrib_ctx` a no-op in one process.
Slow (RSNB_SLOW=1): 2 gloo processes × batch b under `accelerate launch` reach the weights of 1 process × batch 2b after k
steps, for segmentation (`fit_iters`), change (`change_learner`), the codec (`codec_learner` + `AuxOptimizer`), EGA-Net's GAN
stage (`DiscriminatorStep`), ECEA (`train_ecea` + `ECEADiscriminator`) and classification (`scene_learner`); only rank 0 writes
checkpoints and logs; a run stopped and resumed under DP ends where the uninterrupted single-process run does.
Tiny models and generated data; what DP cannot make equal is switched off, as the docs of `rsnb.train` say: batch norms
and dropout are replaced by identities (no CPU SyncBatchNorm), the codec's uniform training noise (drawn per process) by
rounding (entropy models in eval mode), the change loss's batch-pooled Dice by its per-sample BCE, and random-crop datasets
are drawn once into tensors (their samples come from a generator used in call order, not from the index).
"""
import json, os, random, shutil, subprocess, sys, textwrap, time
from pathlib import Path
import numpy as np
import pytest
import torch

SCRIPT = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
    from torch.utils.data import TensorDataset
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader as FDL
    from fastai.callback.core import Callback
    import rsnb.train as T
    from rsnb.core import seed_everything
    from rsnb.train import Checkpoint, TrainLog, distrib_ctx, num_processes, process_rank, unwrap

    out, GB, K, which = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(',')
    W = num_processes(); bs = GB // W; N = K * GB
    WRITES = []                                   # what this process wrote through rsnb.train's atomic_write
    _aw = T.atomic_write
    def _spy(path, *a, **k): WRITES.append(str(Path(path).relative_to(out))); return _aw(path, *a, **k)
    T.atomic_write = _spy

    def strip(m):
        "Batch norms and dropout out (no CPU SyncBatchNorm; dropout masks differ per process)."
        for n, c in m.named_children():
            if isinstance(c, (nn.modules.batchnorm._BatchNorm, nn.Dropout)): setattr(m, n, nn.Identity())
            else: strip(c)
        return m

    def dls_of(ts, n_valid=2):
        return DataLoaders(FDL(TensorDataset(*ts), bs=bs, shuffle=True, drop_last=True),
                           FDL(TensorDataset(*[t[:n_valid] for t in ts]), bs=2), device='cpu')

    def gen(seed): return torch.Generator().manual_seed(seed)

    def save(name, init, **mods):
        sd = {f'{k}.{n}': v.detach().clone().cpu() for k, m in mods.items() for n, v in unwrap(m).state_dict().items()}
        r = process_rank()
        torch.save(dict(final=sd, init=init), out/f'{name}.rank{r}.pt')
        be = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
        (out/f'{name}.rank{r}.json').write_text(json.dumps(dict(world=W, rank=r, backend=be, writes=list(WRITES))))
        WRITES.clear()

    def snap(**mods): return {f'{k}.{n}': v.detach().clone().cpu() for k, m in mods.items() for n, v in m.state_dict().items()}

    class NoNoise(Callback):
        "Rounding instead of uniform noise in the entropy models (the noise is drawn per process)."
        order = 1
        def before_train(self):
            m = unwrap(self.learn.model); m.entropy_bottleneck.eval(); m.gaussian_conditional.eval()

    # --- segmentation: benchmark_learner + fit_iters
    from rsnb.segmentation.train import benchmark_learner, fit_iters
    def seg_learner():
        seed_everything(0); g = gen(1)
        x, y = torch.randn(N, 3, 16, 16, generator=g), torch.randint(0, 3, (N, 16, 16), generator=g)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1))
        return benchmark_learner(dls_of((x, y)), model, 'fcn', 3, lr=0.05)
    def t_seg():
        learn = seg_learner(); init = snap(model=learn.model)
        with learn.no_bar(), learn.no_logging():
            fit_iters(learn, K, validate=False, run_dir=out/'seg_run', print_every=None, log_every=1)
        save('seg', init, model=learn.model)
    def t_seg_resume():
        run = out/'seg_resume_run'
        learn = seg_learner(); init = snap(model=learn.model)
        with learn.no_bar(), learn.no_logging():
            fit_iters(learn, K, validate=False, run_dir=run, print_every=None, log_every=1, stop_after=2)
        learn = seg_learner()
        with learn.no_bar(), learn.no_logging():
            fit_iters(learn, K, validate=False, run_dir=run, print_every=None, log_every=1, resume=True)
        save('seg_resume', init, model=learn.model)

    # --- change: change_learner (a decomposable loss: see the module docstring) in distrib_ctx
    from rsnb.change.train import change_learner
    from rsnb.change.loss import change_logits, as_change_target
    class TinyChange(nn.Module):
        def __init__(self): super().__init__(); self.c1, self.c2 = nn.Conv2d(6, 8, 3, padding=1), nn.Conv2d(8, 1, 1)
        def forward(self, a, b): return self.c2(F.relu(self.c1(torch.cat([a, b], 1))))
    def bce(pred, targ): return F.binary_cross_entropy_with_logits(change_logits(pred).float(), as_change_target(targ))
    def t_change():
        seed_everything(0); g = gen(2)
        a, b = torch.rand(N, 3, 16, 16, generator=g), torch.rand(N, 3, 16, 16, generator=g)
        m = (torch.rand(N, 1, 16, 16, generator=g) > 0.5).float()
        learn = change_learner(dls_of((a, b, m)), arch=TinyChange(), lr=1e-2, warmup=2, swap_p=0., fp16=False)
        learn.loss_func = bce; init = snap(model=learn.model)
        run = out/'change_run'
        with learn.no_bar(), learn.no_logging(), distrib_ctx(learn):
            learn.fit(1, 1e-2, cbs=[Checkpoint(run), TrainLog(run/'log.jsonl', every=1, print_every=None)])
        save('change', init, model=learn.model)

    # --- the codec: codec_learner (AuxOptimizer on the quantiles) and EGA-Net's GAN stage (DiscriminatorStep)
    from rsnb.compression.models import MeanScaleHyperprior
    from rsnb.compression.train import codec_learner, TimeBudget
    from rsnb.compression.egan import EGANet, PatchDiscriminator, EGALoss, DiscriminatorStep
    def codec_data(seed):
        g = gen(seed); return torch.rand(N, 3, 64, 64, generator=g), torch.randint(0, 3, (N,), generator=g)
    def t_codec():
        seed_everything(0); x, r = codec_data(3)
        m = MeanScaleHyperprior(8, 8, 3); init = snap(model=m)
        learn = codec_learner(m, dls_of((x, r)), run_dir=out/'codec_run', print_every=None, log_every=1,
                              cbs=[NoNoise(), TimeBudget(1e6, lr=1e-3, max_steps=K)])
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        save('codec', init, model=learn.model)
    def t_egan():
        seed_everything(0); x, r = codec_data(4)
        eg = EGANet.from_hyperprior(MeanScaleHyperprior(8, 8, 3), width=16, n_res=1)
        D = PatchDiscriminator(3, 8, (8, 16), cond_ch=4); init = snap(model=eg, disc=D)
        learn = codec_learner(eg, dls_of((x, r)), loss_func=EGALoss(D), cbs=[NoNoise(), DiscriminatorStep(D, lr=1e-3)],
                              run_dir=out/'egan_run', print_every=None, log_every=1)
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        save('egan', init, model=eg, disc=D)

    # --- a random-crop dataset (drawn in call order): each rank must draw its own crops, rank 0 those of one process
    from rsnb.compression.train import CropDataset
    from rsnb.compression.models import fit_scaling
    class Inputs(Callback):
        def before_fit(self): self.xs = []
        def before_batch(self):
            if self.training: self.xs.append(self.xb[0].detach().clone())
    def t_crops():
        seed_everything(0); arr = (np.random.default_rng(6).random((3, 96, 96)) * 255).astype(np.uint8)
        ds = CropDataset([(arr, *fit_scaling(arr))], size=64, n=N, seed=0)
        dls = DataLoaders.from_dsets(ds, ds, bs=bs, num_workers=0, device='cpu')
        rec = Inputs()
        learn = codec_learner(MeanScaleHyperprior(8, 8, 3), dls, cbs=[rec, TimeBudget(1e6, lr=1e-3, max_steps=2)])
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        save('crops', dict(batches=torch.stack(rec.xs)), model=learn.model)

    # --- ECEA: train_ecea with ECEADiscriminator
    from rsnb.inpainting.model import ECEAGenerator, PatchDiscriminator as ECEAD
    from rsnb.inpainting.train import SlcoffPatches, train_ecea
    def t_ecea():
        seed_everything(0); rng = np.random.default_rng(5)
        tiles = [(rng.random((3, 48, 48)).astype(np.float32), np.zeros((48, 48), bool)) for _ in range(2)]
        ds = SlcoffPatches(tiles, size=32, n=N, seed=0)
        items = [ds[i] for i in range(N)]       # drawn once: the same samples in every process
        tds = TensorDataset(*[torch.stack([it[j] for it in items]) for j in range(6)])
        G = strip(ECEAGenerator(3, 32, 4, dims=(8, 16, 32), depths=(1, 1, 1), heads=(1, 1, 2), ps_hidden=8, ps_res=1, mid_res=1))
        D = ECEAD(3, nf=8); init = snap(model=G, disc=D)
        train_ecea(G, D, torch.utils.data.DataLoader(tds, batch_size=bs), epochs=1, lr=1e-3, device='cpu', progress=False,
                   run_dir=out/'ecea_run', print_every=None, log_every=1, num_workers=0)
        save('ecea', init, model=G, disc=D)

    # --- classification: scene_learner in distrib_ctx
    from rsnb.classification.learner import scene_dls, scene_learner
    def t_cls():
        seed_everything(0)
        dls = scene_dls(os.environ['DP_CLS_DATA'], 0.5, seed=0, bs=bs, num_workers=0,
                        stats=dict(mean=[127.5]*3, std=[127.5]*3, names=['red', 'green', 'blue']))
        learn = scene_learner(dls, arch='resnet18', loss='ce', augment=False, lr=1e-2)
        learn.model = strip(learn.model); init = snap(model=learn.model)
        run = out/'cls_run'
        with learn.no_bar(), learn.no_logging(), distrib_ctx(learn, sync_bn=False):
            learn.fit(1, cbs=[Checkpoint(run), TrainLog(run/'log.jsonl', every=1, print_every=None)])
        save('cls', init, model=learn.model)

    for name in which: globals()[f't_{name}']()
''')

TRAINERS = ['seg', 'seg_resume', 'change', 'codec', 'egan', 'ecea', 'cls', 'crops']
GB, K = 4, 4   # global batch 2b = 4, k = 4 steps (classification: its 8 training images, 2 steps)


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


needs_slow = pytest.mark.skipif(not os.environ.get('RSNB_SLOW'), reason='slow (2-process training): set RSNB_SLOW=1')


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    accelerate = Path(sys.executable).parent/'accelerate'
    if not accelerate.exists(): pytest.skip('accelerate is not installed')
    base = tmp_path_factory.mktemp('dp')
    (base/'dp.py').write_text(SCRIPT)
    _make_folder(base/'cls_data')
    env = {k: v for k, v in os.environ.items() if k not in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', DP_CLS_DATA=str(base/'cls_data'))
    one, two = base/'one', base/'two'; one.mkdir(); two.mkdir()
    t0 = time.time()
    r = subprocess.run([sys.executable, str(base/'dp.py'), str(one), str(GB), str(K), ','.join(TRAINERS)], env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    t1 = time.time()
    cmd = [str(accelerate), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
           '--dynamo_backend', 'no', str(base/'dp.py'), str(two), str(GB), str(K), ','.join(TRAINERS)]
    r = subprocess.run(cmd, env={**env, 'ACCELERATE_USE_CPU': 'true'}, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    t2 = time.time()
    print(f'\n[dp] 1 process: {t1 - t0:.1f} s, 2 processes (accelerate launch): {t2 - t1:.1f} s')
    yield dict(one=one, two=two)
    shutil.rmtree(base, ignore_errors=True)


def _load(d, name, rank): return torch.load(d/f'{name}.rank{rank}.pt', weights_only=True)
def _info(d, name, rank): return json.loads((d/f'{name}.rank{rank}.json').read_text())


def _check_equivalent(runs, name, ref=None, groups=('model',)):
    one = _load(runs['one'], ref or name, 0)
    r0, r1 = _load(runs['two'], name, 0), _load(runs['two'], name, 1)
    i0, i1 = _info(runs['two'], name, 0), _info(runs['two'], name, 1)
    assert (i0['world'], i0['rank'], i0['backend'], i1['rank']) == (2, 0, 'gloo', 1)
    assert set(r0['final']) == set(one['final']) and {k.split('.')[0] for k in one['final']} == set(groups)
    for k, v in one['final'].items():
        assert torch.equal(r0['final'][k], r1['final'][k]), f'{name}: {k} differs between the ranks'
        if v.is_floating_point():   # elementwise: within 1e-4 (Adam turns gradients that are pure rounding noise,
            # e.g. of a conv bias under InstanceNorm, into steps of up to lr; measured max 4e-5, 1e-8 without Adam)
            assert torch.allclose(r0['final'][k], v, rtol=1e-4, atol=1e-4), \
                f'{name}: {k} 2×b vs 1×2b max diff {float((r0["final"][k] - v).abs().max()):.3g}'
        else: assert torch.equal(r0['final'][k], v), k
    for g in groups:   # per network: |w_2proc − w_1proc| / |w_1proc − w_init| (measured ≤ 8e-5; a wrong shard or a missing
        ks = [k for k in one['final'] if k.startswith(g + '.') and one['final'][k].is_floating_point() and one['final'][k].numel()]
        diff = sum(float(((r0['final'][k] - one['final'][k])**2).sum()) for k in ks) ** .5       # average gives O(1))
        moved = sum(float(((one['final'][k] - one['init'][k])**2).sum()) for k in ks) ** .5
        assert moved > 1e-3, f'{name}: {g} did not train'
        assert diff / moved < 1e-3, f'{name}: {g} relative difference {diff / moved:.3g}'
        print(f'[dp] {name}/{g}: |w_2x{GB // 2} - w_1x{GB}| / |w_1x{GB} - w_init| = {diff / moved:.2e}, '
              f'max abs {max(float((r0["final"][k] - one["final"][k]).abs().max()) for k in ks):.1e}')
    return i0, i1


def _check_rank0_writes(runs, name, run_dir):
    i0, i1 = _info(runs['two'], name, 0), _info(runs['two'], name, 1)
    assert i1['writes'] == [], i1['writes']                            # rank 1 wrote nothing
    assert f'{run_dir}/checkpoint.pth' in i0['writes']                   # rank 0 wrote the checkpoint
    assert (runs['two']/run_dir/'checkpoint.pth').exists()
    ck = torch.load(runs['two']/run_dir/'checkpoint.pth', weights_only=True)   # plain data (rsnb.train.CKPT_FORMAT)
    assert len(ck['ranks']) == 2                                       # with both ranks' random states
    lines = (runs['two']/run_dir/'log.jsonl').read_text().splitlines()
    ref = (runs['one']/run_dir/'log.jsonl').read_text().splitlines()
    assert [json.loads(l)['step'] for l in lines] == [json.loads(l)['step'] for l in ref]   # one writer: no duplicate lines


@pytest.mark.parametrize('name,groups', [('seg', ('model',)), ('change', ('model',)), ('codec', ('model',)),
                                         ('egan', ('model', 'disc')), ('ecea', ('model', 'disc')), ('cls', ('model',))])
@pytest.mark.slow
@needs_slow
def test_two_processes_match_one(runs, name, groups):
    _check_equivalent(runs, name, groups=groups)
    _check_rank0_writes(runs, name, f'{name}_run')


@pytest.mark.slow
@needs_slow
def test_codec_aux_parameters(runs):
    one, two = _load(runs['one'], 'codec', 0)['final'], _load(runs['two'], 'codec', 0)['final']
    q = [k for k in one if k.endswith('quantiles')]
    assert q and all(torch.allclose(two[k], one[k], rtol=1e-4, atol=1e-6) for k in q)
    assert any(not torch.equal(one[k], _load(runs['one'], 'codec', 0)['init'][k]) for k in q)   # the aux optimiser moved them


@pytest.mark.slow
@needs_slow
def test_resume_under_dp(runs):
    "Stopped after 2 of 4 steps and resumed, on 2 processes: the weights of the uninterrupted single-process run."
    _check_equivalent(runs, 'seg_resume', ref='seg')
    assert _info(runs['two'], 'seg_resume', 1)['writes'] == []


@pytest.mark.slow
@needs_slow
def test_random_crops_differ_between_ranks(runs):
    "A dataset drawing crops from its own generator: rank 0 draws those of one process, rank 1 others (`split_stream`)."
    one = _load(runs['one'], 'crops', 0)['init']['batches']           # (steps, 2b, C, H, W)
    r0, r1 = (_load(runs['two'], 'crops', r)['init']['batches'] for r in (0, 1))   # (steps, b, C, H, W)
    assert one.shape[1] == 2 * r0.shape[1] == 2 * r1.shape[1]
    assert torch.equal(r0[0], one[0, :r0.shape[1]])                     # rank 0's first batch: the first b crops of one process
    assert not any(torch.equal(a, b) for a in r0.flatten(0, 1) for b in r1.flatten(0, 1))   # no crop drawn by both ranks


# --- fast, in one process

def _order(dl, seed=0):
    dl.rng = random.Random(seed)
    return [b[0][:, 0].long().tolist() for b in dl]


@pytest.mark.parametrize('n,b,W,drop_last', [(22, 3, 2, False), (22, 3, 2, True), (24, 2, 3, False), (7, 2, 4, False), (40, 5, 4, True)])
def test_sharded_dl_slices(n, b, W, drop_last):
    from fastai.data.load import DataLoader
    from rsnb.train import ShardedDL
    ds = torch.utils.data.TensorDataset(torch.arange(n).float()[:, None])
    ref = _order(DataLoader(ds, bs=W*b, shuffle=True, drop_last=drop_last))
    shards = [_order(ShardedDL(DataLoader(ds, bs=b, shuffle=True, drop_last=drop_last), rank=r, world_size=W)) for r in range(W)]
    assert all(len(s) == len(ref) for s in shards)
    order = sum(ref, [])
    for k, batch in enumerate(ref):
        if len(batch) == W*b:   # full global batch: rank r's k-th batch is the slice [k·W·b + r·b, k·W·b + (r+1)·b)
            for r in range(W): assert shards[r][k] == order[k*W*b + r*b: k*W*b + (r+1)*b]
        else:                   # the short last one: equal pieces, padded by repetition, covering it
            assert sorted(set(sum((s[k] for s in shards), []))) == sorted(batch)
    assert len(ShardedDL(DataLoader(ds, bs=b, drop_last=drop_last), rank=0, world_size=W)) == len(ref)


def test_distrib_ctx_noop_single_process(monkeypatch):
    from functools import partial
    from fastai.learner import Learner
    from fastai.data.core import DataLoaders
    from fastai.optimizer import SGD
    from rsnb.train import distrib_ctx, DataParallel, num_processes
    for k in ('WORLD_SIZE', 'RANK'): monkeypatch.delenv(k, raising=False)
    assert num_processes() == 1
    def fit(ctx):
        torch.manual_seed(0); random.seed(0)
        x = torch.linspace(0, 1, 32)[:, None]
        dls = DataLoaders.from_dsets(torch.utils.data.TensorDataset(x, 2*x + 1), torch.utils.data.TensorDataset(x[:4], x[:4]),
                                     bs=8, shuffle=True, num_workers=0, device='cpu')
        learn = Learner(dls, torch.nn.Linear(1, 1), loss_func=torch.nn.MSELoss(), opt_func=partial(SGD, mom=0.9), lr=0.1)
        with learn.no_bar(), learn.no_logging():
            if ctx:
                with distrib_ctx(learn) as l:
                    assert l is learn and not any(isinstance(c, DataParallel) for c in learn.cbs)
                    learn.fit(2)
            else: learn.fit(2)
        assert isinstance(learn.model, torch.nn.Linear)
        return torch.cat([p.detach().flatten() for p in learn.model.parameters()])
    assert torch.equal(fit(True), fit(False))
