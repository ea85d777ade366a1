"""Miniature datasets in each dataset's official raw layout (archives as published), generated from the real samples in
`../shared/data` (`RSNB_DATA`), for the rehearsal of every params file (`tests/test_rehearsal.py`).

Every `make_*` function writes into a data root `root` (what `RSNB_DATA` then points at), in the layout rsnb's prep code
or the paper notebook reads, and returns the folder or archive it made. Images are real samples (resampled, flipped or
regrouped); only their class assignment and, for iSAID, the mapping of LoveDA classes onto iSAID colours are made up.
Nothing here is committed data: the tests generate it into `tmp_path`."""
import os, shutil, zipfile
from pathlib import Path
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('RSNB_SHARED_DATA', ROOT.parent/'shared'/'data'))

def shared(*parts) -> Path:
    "A file or folder of the real samples (skips the caller's test cleanly when the samples are absent)."
    p = SHARED.joinpath(*parts)
    if not p.exists():
        import pytest
        pytest.skip(f'{p}: sample data not on this machine (../shared/data)')
    return p

def _zip(dest:Path, members:dict) -> Path:
    "Write a zip whose members are `{name in archive: bytes or source path}` (stored: the images are compressed already)."
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, 'w', zipfile.ZIP_STORED) as z:
        for name, src in members.items():
            if isinstance(src, (bytes, bytearray)): z.writestr(name, src)
            else: z.write(src, name)
    return dest

def _png(a) -> bytes:
    import io
    b = io.BytesIO(); Image.fromarray(np.ascontiguousarray(a)).save(b, format='PNG'); return b.getvalue()

def _jpg(a) -> bytes:
    import io
    b = io.BytesIO(); Image.fromarray(np.ascontiguousarray(a)).save(b, format='JPEG', quality=90); return b.getvalue()

def _tif(a, count=None) -> bytes:
    "An H×W×C (or H×W) uint8 array as GeoTIFF bytes (no georeferencing, like the ISPRS tiles)."
    import rasterio, warnings
    from rasterio.io import MemoryFile
    a = np.asarray(a); a = a[..., None] if a.ndim == 2 else a
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
        with MemoryFile() as mf:
            with mf.open(driver='GTiff', width=a.shape[1], height=a.shape[0], count=a.shape[2], dtype=a.dtype.name) as ds:
                ds.write(a.transpose(2, 0, 1))
            return mf.read()

# --- scene classification: AID, UC Merced, NWPU-RESISC45 -------------------------------------------------------------

UCM_CLASSES = ('agricultural airplane baseballdiamond beach buildings chaparral denseresidential forest freeway golfcourse '
               'harbor intersection mediumresidential mobilehomepark overpass parkinglot river runway sparseresidential '
               'storagetanks tenniscourt').split()
NWPU_CLASSES = ('airplane airport baseball_diamond basketball_court beach bridge chaparral church circular_farmland cloud '
                'commercial_area dense_residential desert forest freeway golf_course ground_track_field harbor industrial_area '
                'intersection island lake meadow medium_residential mobile_home_park mountain overpass palace parking_lot '
                'railway railway_station rectangular_farmland river roundabout runway sea_ice ship snowberg sparse_residential '
                'stadium storage_tank tennis_court terrace thermal_power_station wetland').split()

def _aid150(n_classes, per_class):
    "`per_class` real AID images (150 px) from each of the first `n_classes` AID classes of the shared sample."
    src = shared('classification', 'aid150')
    classes = sorted(d.name for d in src.iterdir() if d.is_dir())
    if len(classes) < n_classes: raise RuntimeError(f'{src}: {len(classes)} classes, need {n_classes}')
    return {c: sorted((src/c).glob('*.jpg'))[:per_class] for c in classes[:n_classes]}, classes

def _aid150_cycle(names, per_class):
    "One list of `per_class` real images for each name in `names` (AID's classes reused in turn when there are more names)."
    src = shared('classification', 'aid150')
    classes = sorted(d.name for d in src.iterdir() if d.is_dir())
    return {n: sorted((src/classes[i % len(classes)]).glob('*.jpg'))[(i // len(classes))*per_class:][:per_class] for i, n in enumerate(names)}

def make_aid(root, per_class:int=2, size:int=600) -> Path:
    "`root/classification/AID.zip` as published (`AID/<Class>/<class>_<n>.jpg`, 600 px JPEG, 30 classes)."
    imgs, _ = _aid150(30, per_class)
    members = {}
    for c, files in imgs.items():
        for f in files:
            a = np.asarray(Image.open(f).convert('RGB').resize((size, size), Image.BILINEAR))
            members[f'AID/{c}/{f.name}'] = _jpg(a)
    return _zip(Path(root)/'classification'/'AID.zip', members)

def make_ucm(root, per_class:int=2) -> Path:
    "`root/classification/UCMerced_LandUse.zip` as published (`UCMerced_LandUse/Images/<class>/<class>NN.tif`, 256 px, 21 classes)."
    members = {}
    for c, files in _aid150_cycle(UCM_CLASSES, per_class).items():
        for k, f in enumerate(files):
            a = np.asarray(Image.open(f).convert('RGB').resize((256, 256), Image.BILINEAR))
            members[f'UCMerced_LandUse/Images/{c}/{c}{k:02d}.tif'] = _tif(a)
    return _zip(Path(root)/'classification'/'UCMerced_LandUse.zip', members)

def make_nwpu(root, per_class:int=2) -> Path:
    "`root/classification/NWPU-RESISC45.zip` as published (`NWPU-RESISC45/<class>/<class>_NNN.jpg`, 256 px, 45 classes)."
    members = {}
    for c, files in _aid150_cycle(NWPU_CLASSES, per_class).items():
        for k, f in enumerate(files):
            a = np.asarray(Image.open(f).convert('RGB').resize((256, 256), Image.BILINEAR))
            members[f'NWPU-RESISC45/{c}/{c}_{k + 1:03d}.jpg'] = _jpg(a)
    return _zip(Path(root)/'classification'/'NWPU-RESISC45.zip', members)

def prepare_scene(root, dataset:str) -> Path:
    "Extract the miniature archive with rsnb's own code into `root/classification/<dataset>`; its ImageFolder root."
    from rsnb.classification.datasets import SCENE_DATASETS, download_scene_dataset, safe_extract, scene_root
    d = SCENE_DATASETS[dataset]
    archive = Path(root)/'classification'/d['filename']
    dest = Path(root)/'classification'/dataset
    if d.get('md5') or d.get('sha256'):      # the published checksum cannot match a miniature: extract as download_scene_dataset does
        safe_extract(archive, dest); return scene_root(dataset, dest)
    return download_scene_dataset(dataset, dest=dest, archive=archive)

# --- segmentation: ISPRS Potsdam / Vaihingen, iSAID --------------------------------------------------------------------

def _potsdam_sample():
    "The shared Potsdam crop (512 px RGB) and its label as ISPRS colours (unlabeled pixels black, as in the eroded files)."
    from rsnb.segmentation.datasets import POTSDAM, POTSDAM_SAMPLE_MAP, index_to_rgb
    img = np.asarray(Image.open(shared('segmentation', 'potsdam_sample', 'img', '2_10_0_0_512_512.png')).convert('RGB'))
    ann = np.asarray(Image.open(shared('segmentation', 'potsdam_sample', 'ann', '2_10_0_0_512_512.png')))
    lut = np.full(256, 255, np.uint8); lut[list(POTSDAM_SAMPLE_MAP)] = list(POTSDAM_SAMPLE_MAP.values())
    idx = lut[ann]
    rgb = np.asarray(index_to_rgb(idx, POTSDAM))
    rgb = rgb.transpose(1, 2, 0) if rgb.shape[0] == 3 else rgb
    return img, np.ascontiguousarray(rgb.astype(np.uint8))

def _variants(img, lbl, n):
    "`n` (image, label) tiles from one: the sample, then flipped and transposed copies."
    ops = [lambda a: a, lambda a: a[:, ::-1], lambda a: a[::-1], lambda a: a.transpose(1, 0, 2)]
    return [(ops[i % 4](img), ops[i % 4](lbl)) for i in range(n)]

POTSDAM_TILES = ('2_10', '2_13')   # one training tile, one validation tile (POTSDAM_SPLITS)
VAIHINGEN_AREAS = ('1', '6')       # likewise (VAIHINGEN_SPLITS)

def make_potsdam(root) -> Path:
    "`root/segmentation/raw/potsdam/` with `2_Ortho_RGB.zip`, `5_Labels_all.zip` and `5_Labels_all_noBoundary.zip` as published."
    raw = Path(root)/'segmentation'/'raw'/'potsdam'
    tiles = dict(zip(POTSDAM_TILES, _variants(*_potsdam_sample(), len(POTSDAM_TILES))))
    _zip(raw/'2_Ortho_RGB.zip', {f'2_Ortho_RGB/top_potsdam_{t}_RGB.tif': _tif(i) for t, (i, l) in tiles.items()})
    _zip(raw/'5_Labels_all.zip', {f'top_potsdam_{t}_label.tif': _tif(l) for t, (i, l) in tiles.items()})
    _zip(raw/'5_Labels_all_noBoundary.zip', {f'top_potsdam_{t}_label_noBoundary.tif': _tif(l) for t, (i, l) in tiles.items()})
    return raw

def make_vaihingen(root) -> Path:
    "`root/segmentation/raw/vaihingen/` with the IRRG tiles zip and the eroded ground-truth zip as published (the Potsdam crop as false colour)."
    raw = Path(root)/'segmentation'/'raw'/'vaihingen'
    img, lbl = _potsdam_sample()
    tiles = dict(zip(VAIHINGEN_AREAS, _variants(img[..., [1, 0, 2]], lbl, len(VAIHINGEN_AREAS))))
    _zip(raw/'ISPRS_semantic_labeling_Vaihingen.zip', {f'top/top_mosaic_09cm_area{t}.tif': _tif(i) for t, (i, l) in tiles.items()})
    _zip(raw/'ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip',
         {f'top_mosaic_09cm_area{t}_noBoundary.tif': _tif(l) for t, (i, l) in tiles.items()})
    return raw

# LoveDA class (file value) -> iSAID class index: a made-up but fixed assignment, so each patch has several iSAID colours
LOVEDA_TO_ISAID = {0: 0, 1: 0, 2: 1, 3: 9, 4: 11, 5: 6, 6: 14, 7: 13}

def make_isaid(root) -> Path:
    "`root/segmentation/raw/isaid/{train,val}/` with DOTA-style image zips and iSAID `Semantic_masks` zips as published (LoveDA tiles)."
    from rsnb.segmentation.datasets import ISAID
    raw = Path(root)/'segmentation'/'raw'/'isaid'
    pal = np.array(ISAID.palette, dtype=np.uint8)
    for split, k in (('train', '0'), ('val', '1')):
        # 896 px: one benchmark patch per scene (the 1024-px tiles would give four)
        img = np.asarray(Image.open(shared('segmentation', 'loveda_sample', 'img', f'{k}.png')).convert('RGB').resize((896, 896), Image.BILINEAR))
        ann = np.asarray(Image.open(shared('segmentation', 'loveda_sample', 'ann', f'{k}.png')).resize((896, 896), Image.NEAREST))
        lut = np.zeros(256, np.int64); lut[list(LOVEDA_TO_ISAID)] = list(LOVEDA_TO_ISAID.values())
        rgb = pal[lut[ann]]
        stem = f'P{int(k) + 1:04d}'
        _zip(raw/split/'images'/'part1.zip', {f'images/{stem}.png': _png(img)})
        _zip(raw/split/'Semantic_masks'/'images.zip', {f'images/{stem}_instance_color_RGB.png': _png(rgb)})
    return raw

def prepare_segmentation(root, dataset:str) -> Path:
    "Run rsnb's prep (`prepare_isprs` / `prepare_isaid`) on the miniature raw archives; the prepared folder."
    from rsnb.segmentation.datasets import prepare_isprs, prepare_isaid
    raw, out = Path(root)/'segmentation'/'raw'/dataset, Path(root)/'segmentation'/dataset
    return prepare_isaid(raw, out) if dataset == 'isaid' else prepare_isprs(dataset, raw, out)

# --- change detection: LEVIR-CD ------------------------------------------------------------------------------------------

def make_levir(root) -> Path:
    "`root/change_detection/levir_cd/{train,val,test}/{A,B,label}/*.png`: the official LEVIR-CD layout (the shared pairs)."
    src, dest = shared('change_detection', 'levir_cd'), Path(root)/'change_detection'/'levir_cd'
    for split in ('train', 'val', 'test'):
        for a, b in (('t1', 'A'), ('t2', 'B'), ('label', 'label')):
            (dest/split/b).mkdir(parents=True, exist_ok=True)
            for f in sorted((src/split/a).glob('*.png')): shutil.copy(f, dest/split/b/f.name)
    return dest

# --- the samples the compression and inpainting notebooks read as they are ---------------------------------------------

def _copy(dest_root, *parts):
    src, dest = shared(*parts), Path(dest_root).joinpath(*parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir(): shutil.copytree(src, dest, dirs_exist_ok=True)
    else: shutil.copy(src, dest)
    return dest

def make_slcoff(root) -> Path:
    "`root/inpainting/`: the Landsat-7 SLC-off tiles (`images/*.tif`, `masks/*_mask.tif`) and the USGS gap-mask product."
    _copy(root, 'inpainting', 'usgs_gapmask_sample')
    return _copy(root, 'inpainting', 'landsat7_slcoff')

def make_egan(root) -> Path:
    "`root/`: the Landsat-8 crops, the Landsat-8 scene, the Sentinel-2 13-band stacks and SZTAKI AirChange validation pairs."
    _copy(root, 'scenes', 'LC08_L1TP_224077_20200518_B4B3B2.tif')
    _copy(root, 'compression', 's2_l1c_13band')
    _copy(root, 'change_detection', 'sztaki_airchange', 'val')
    return _copy(root, 'compression', 'landsat8_224077_rgb8')

def make_scene(root) -> Path:
    "`root/scenes/`: the Landsat-8 scene (bahri2019's land-use map demo)."
    return _copy(root, 'scenes', 'LC08_L1TP_224077_20200518_B4B3B2.tif')

# --- released checkpoints: the published file's format and size, seeded values ----------------------------------------

FIXTURES = ROOT/'tests'/'fixtures'/'parity'

def compressai_state_dict(arch:str='bmshj2018-hyperprior', quality:int=3) -> dict:
    """A CompressAI zoo checkpoint's state dict at full size (shapes from the parity manifest), random values, and the
    buffers CompressAI stores with the values it stores (lower bounds, pedestals; empty entropy tables)."""
    import json, torch
    from rsnb.compression.zoo import fixture_dir
    from rsnb.compression.models import ScaleHyperprior
    shapes = json.loads((fixture_dir()/'manifest.json').read_text())['full'][arch][str(quality)]['shapes']
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.rand(s, generator=g) * .1 + .01 if s else torch.zeros(0) for k, s in shapes.items()}
    ref = ScaleHyperprior(128, 192).state_dict()
    for k in list(sd):
        if k.endswith('pedestal'): sd[k] = torch.tensor([2. ** -36])
        elif k.endswith('beta_reparam.lower_bound.bound'): sd[k] = torch.tensor([(1e-6 + 2. ** -36) ** .5])
        elif k.endswith('gamma_reparam.lower_bound.bound'): sd[k] = torch.tensor([2. ** -18])
        elif k.endswith('likelihood_lower_bound.bound'): sd[k] = torch.tensor([1e-9])
        elif k.endswith(('lower_bound_scale.bound', 'scale_bound')): sd[k] = torch.tensor([.11])
        elif k.endswith('target'): sd[k] = ref['entropy_bottleneck.target']
        elif k.endswith(('_offset', '_quantized_cdf', '_cdf_length', 'scale_table')): sd[k] = torch.zeros(0, dtype=torch.int32)
    sd['entropy_bottleneck.quantiles'] = torch.tensor([-10., 0, 10]).repeat(128, 1, 1)
    return sd

def published_file(name:str, dest) -> Path:
    """A stand-in for registry entry `name`'s published file: its format, file name and tensor shapes, with seeded values
    (the real file is a download). Made with the writers the parity tests use; the rehearsal converts it with the real
    converter, so everything after the download runs as it would with the released weights."""
    import json, gzip, torch
    from rsnb.weights import registry_entry
    e = registry_entry(name); p = Path(dest)/e['filename']; p.parent.mkdir(parents=True, exist_ok=True)
    fmt, cfg = e['format'], e.get('config') or {}
    if fmt == 'paddleseg':
        from rsnb.segmentation.paddle import seeded_weight, write_pdparams, _CLASSIFIER
        fx = f"{cfg['arch']}_{cfg['backbone']}"
        man = json.loads((FIXTURES/'paddleseg'/f'{fx}.json').read_text())['manifest']
        cls = _CLASSIFIER[cfg['arch']].rsplit('.', 1)[0]
        man = {k: ([cfg['n_classes'], *s[1:]] if k.rsplit('.', 1)[0] == cls else s) for k, s in man.items()}
        write_pdparams({k: seeded_weight(k, s) for k, s in man.items()}, p)
    elif fmt == 'ecea':
        from rsnb.change.convert import seeded_state_dict
        torch.save(seeded_state_dict(json.loads((FIXTURES/'ecea'/'manifest_full.json').read_text())), p)
    elif fmt == 'compressai':
        assert cfg['arch'] == 'bmshj2018-hyperprior', cfg
        torch.save(compressai_state_dict(cfg['arch'], cfg['quality']), p)
    elif fmt == 'keras-h5-bahri':
        from rsnb.classification.keras import seeded_weights, write_keras_h5
        man = json.loads((FIXTURES/'bahri'/'manifest_keras225.json').read_text())
        assert cfg['n_classes'] == 30, cfg      # the fixture's network has AID's 30 classes
        write_keras_h5(p, man, seeded_weights(man, man['meta']['seed']), gzip.open(FIXTURES/'bahri'/'model_config.json.gz', 'rt').read(),
                       keras_version=man['meta']['keras_version'])
    else: raise ValueError(f'{name}: no stand-in for format {fmt!r}')
    return p

def converted_standin(name:str, cache) -> Path:
    "`published_file(name)` converted by the registry's converter into the weights cache `cache` (as `rsnb-weights get` would)."
    from rsnb.weights import registry_entry, convert_checkpoint
    e = registry_entry(name)
    src = published_file(name, Path(cache)/'downloads')
    return convert_checkpoint(src, Path(cache)/name, e['format'], e.get('config'), entry=e,
                              checksum='rehearsal stand-in: seeded values in the published format (not the released file)')
