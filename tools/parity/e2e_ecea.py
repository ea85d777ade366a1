"""End-to-end fixture for ECEA: the application's own `main.inpainting_process` on a Landsat-7 SLC-off scene.

    cd tests && /work/h26-parity/.venv/bin/python -c "import test_e2e_ecea as t; t.make_scene('/tmp/ecea_scene.tif')"
    nice -n 10 /work/venvs/torchref/bin/python tools/parity/e2e_ecea.py /work/refs/ecea /tmp/ecea_scene.tif tests/fixtures/e2e/ecea \\
        --commit b9857fbe9efc92d1d8abab82ce5459b2d397af67

The original (github.com/Chowdz/ecea, MIT) is imported from its work tree (`application/`), never copied. What runs is
`inpainting_process(input_path, output_path, vis_param={'min': 0, 'max': 0.4, 'gamma': 1.4})`, the function its
`main.py` calls: `SatelliteDataset` (RGB TIFF, centre crop 5120, 256-px patches every 236 px, mirror padding at the
edges, VIS_PARAM clamp/stretch/gamma, mask = any band 0, the CSHE edge map per patch), the generator `G(x, edge,
mask)` per patch, `stitch_patches` (overlaps averaged over 20 px, trimmed to 5120), `ToPILImage` and `.save`.

Run-time patches, in memory only: `download_model_if_needed` returns the seeded file instead of fetching `EET.pth`
(`gdown` stubbed); `Options` builds a reduced generator at the application's patch size (`EMBED_DIM=16`,
`DEPTH=[1,2,1,1]`, `NUM_HEADS=[1,2,2,4]`; IMG_SIZE 256, PATCH_SIZE 4, IN_C 4, OUT_C 3 as published); the centre crop is
1100 px instead of 5120 (`SatelliteDataset(crop_size=1100)`: its last column is 156 px wide, as 5120 leaves 164; 1024 would leave 80 px, which its reflect padding cannot pad, and `stitch_patches(rows_per_image=5)` instead of the
22 that main.py passes): the tiling algorithm (256-px patches every 236 px, mirror padding, 20-px averaged overlaps,
the trim) is the application's, on 25 patches instead of 484 — even the reduced generator keeps the published
full-resolution head (5 residual blocks of 64 channels at 256 px), about 4 s a patch on a shared CPU. Hooks
(observation only) keep the stitched tensor and two patches' inputs, masks, edges and outputs.

Scene: the first date of the SLC-off sample (`../shared/data/inpainting/landsat7_slcoff`, 3×7 tiles of 256 px, bands
B3/B4/B5 surface reflectance ×1e4, gaps −999) as one mosaic, mirrored 7×3 to 5376×5376 (the application refuses
less than 5120), reflectance ×255 as 8 bits, gaps 0: an 8-bit RGB TIFF as the application expects from an export.
Weights: `seeded_state_dict` of the reduced generator's manifest (written into the fixture), the rule of `ecea.py`.
"""
import argparse, json, os, platform, sys, tempfile, types
from pathlib import Path
import numpy as np, torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dpcd import seeded_state_dict, manifest, dump_manifest
KEEP = (0, 12)       # patches whose inputs, masks, edges and outputs are stored (12: the centre one)
CROP = 1100          # the application's centre crop, reduced from 5120 (see the docstring); 4×236 + 156, like 5120 = 21×236 + 164
STRIDE = 8           # the stitched output is stored at every STRIDE-th pixel
VIS = {'min': 0, 'max': 0.4, 'gamma': 1.4}

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('ecea', type=Path); ap.add_argument('scene', type=Path); ap.add_argument('out', type=Path)
    ap.add_argument('--commit', default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    sys.modules.setdefault('gdown', types.ModuleType('gdown'))
    sys.path.insert(0, str(a.ecea.resolve()/'application'))
    import options, main as app, dataset, models
    small = dict(EMBED_DIM=16, DEPTH=[1, 2, 1, 1], NUM_HEADS=[1, 2, 2, 4])
    init = options.Options.__init__
    def opts_init(self):
        init(self)
        for k, v in small.items(): setattr(self, k, v)
    options.Options.__init__ = opts_init
    app.Options = options.Options
    o = options.Options()
    torch.manual_seed(0)
    G = models.Generator(img_size=o.IMG_SIZE, in_c=o.IN_C, out_c=o.OUT_C, patch_size=o.PATCH_SIZE, embed_dim=o.EMBED_DIM, depth=o.DEPTH, num_heads=o.NUM_HEADS)
    man = manifest(G)
    tmp = Path(tempfile.mkdtemp())
    torch.save(seeded_state_dict(man), tmp/'EET.pth')
    app.download_model_if_needed = lambda url: str(tmp/'EET.pth')
    rec = dict(patches={})
    gi = dataset.SatelliteDataset.__getitem__
    def getitem(self, i):
        r = gi(self, i)
        if i in KEEP: rec['patches'][i] = [t.clone() for t in r]
        return r
    dataset.SatelliteDataset.__getitem__ = getitem
    init_ds = dataset.SatelliteDataset.__init__
    def ds_init(self, img_path, crop_size=CROP, patch_size=256, step_size=236, vis_params=None):
        init_ds(self, img_path, crop_size=crop_size, patch_size=patch_size, step_size=step_size, vis_params=vis_params)
    dataset.SatelliteDataset.__init__ = ds_init
    app.SatelliteDataset = dataset.SatelliteDataset
    st = app.stitch_patches
    def stitch(patches, **kw):
        kw['rows_per_image'] = len(range(0, CROP, 236))     # main.py passes 22 (= the 5120 crop's patches per row)
        rec['n_patches'] = int(patches.shape[0])
        rec['patch_fake'] = {i: patches[i, 1].clone() for i in KEEP}
        rec['patch_sums'] = patches[:, 1].double().sum((2, 3)).numpy()
        out = st(patches, **kw); rec['stitched'] = out[1].clone(); return out
    app.stitch_patches = stitch
    (tmp/'out').mkdir()
    app.inpainting_process(str(a.scene), str(tmp/'out'), vis_param=VIS)
    from PIL import Image
    saved = np.asarray(Image.open(next((tmp/'out').glob('*_Inpainting.*'))))
    fake = rec['stitched']
    arrays = dict(stitched_sub=fake[:, STRIDE//2::STRIDE, STRIDE//2::STRIDE].numpy().astype(np.float32),
                  stitched_sum=fake.double().sum((1, 2)).numpy(), saved_sub=saved[STRIDE//2::STRIDE, STRIDE//2::STRIDE],
                  saved_sum=saved.astype(np.int64).sum((0, 1)), patch_sums=rec['patch_sums'])
    import hashlib
    digest = lambda t: hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()
    digests = {}
    for i in KEEP:
        x, m, e = rec['patches'][i]
        f = rec['patch_fake'][i]
        digests[str(i)] = dict(x=digest(x), mask=digest(m))
        arrays.update({f'p{i}_x_sub': x[:, 2::4, 2::4].numpy(), f'p{i}_edge': e.numpy(), f'p{i}_fake_sub': f[:, 1::2, 1::2].numpy(),
                       f'p{i}_fake_sum': f.double().sum((1, 2)).numpy(), f'p{i}_fake_sumsq': (f.double()**2).sum((1, 2)).numpy()})
    a.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out/'outputs.npz', **arrays)
    (a.out/'manifest.json').write_text(dump_manifest(man))
    info = dict(digests=digests, n_patches=rec['n_patches'], keep=list(KEEP), stride=STRIDE, crop=CROP, vis_param=VIS, options=dict(vars(o)),
                stitched_shape=list(fake.shape), saved_shape=list(saved.shape), saved_dtype=str(saved.dtype),
                mask_fraction={str(i): float(rec['patches'][i][1].mean()) for i in KEEP},
                output_std=float(fake.std()), output_range=[float(fake.min()), float(fake.max())],
                versions=dict(original='Chowdz/ecea', commit=a.commit, entry='application/main.py inpainting_process(input_path, output_path, vis_param)',
                              python=platform.python_version(), torch=torch.__version__, numpy=np.__version__, threads=1,
                              opencv=__import__('cv2').__version__),
                scene='../shared/data/inpainting/landsat7_slcoff, date 20100116, mosaic mirrored to 5376 px (tests/test_e2e_ecea.make_scene)')
    (a.out/'fixture.json').write_text(json.dumps(info, indent=1))
    print(json.dumps({k: info[k] for k in ('n_patches', 'mask_fraction', 'output_std', 'output_range', 'saved_shape')}))

if __name__ == '__main__': main()
