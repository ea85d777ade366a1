"""End to end against CompressAI's own `eval_model` (fixture: `tools/parity/e2e_compressai.py`, `tests/fixtures/e2e/compressai/`).

The zoo-format files CompressAI evaluated (the network-parity fixture's weights, reduced widths) are converted by
rsnb's converter and run on the same two 192×256 Landsat-8 crops by two routes:
- coded: `rsnb-compress` then `rsnb-decompress` (rsnb's range coder and `.rsc` container) against eval_model's
  compress/decompress (`ans`): the decoded 8-bit images pixel for pixel, PSNR-RGB and MS-SSIM-RGB to the digits;
  the bit rates differ by design (another entropy coder, a container with georeferencing): both are shown;
- estimated: the converted codec's forward pass against `--entropy-estimation`: `x_hat` within 1e-4 of scale, and
  PSNR, MS-SSIM and the likelihood bpp to the digits."""
import json, math
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from e2e_helpers import fixture, shared, cli, ok, diff, ROOT

FAMILY = 'compressai'
SIZE = (192, 256)

def make_images(dest:Path) -> dict:
    "The harness's images: the first two Landsat-8 crops of the sample, top-left 192×256, as PNG."
    src = sorted(shared('compression', 'landsat8_224077_rgb8').rglob('*.png'))[:2]
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for f in src:
        Image.fromarray(np.asarray(Image.open(f).convert('RGB'))[:SIZE[0], :SIZE[1]]).save(dest/f.name); out[f.stem] = dest/f.name
    return out

def convert(arch:str, work:Path) -> Path:
    "The zoo-style file converted into an rsnb codec (`convert_checkpoint`, what `rsnb-weights convert` calls)."
    from rsnb.compression.zoo import write_fixture_checkpoint, fixture_config
    from rsnb.weights import convert_checkpoint
    src = write_fixture_checkpoint(arch, work/f'{arch}.pth.tar')
    return convert_checkpoint(src, work/f'{arch}.pth', 'compressai', fixture_config(arch))

def eval_metrics(x, x_hat) -> dict:
    "eval_model's `compute_metrics`: both images rounded to 8 bits, PSNR and MS-SSIM on 0-255 (rsnb.metrics)."
    from rsnb.metrics import ms_ssim
    o, r = [(t*255).clamp(0, 255).round().double() for t in (x, x_hat)]
    return {'psnr-rgb': float(20*math.log10(255) - 10*torch.log10((o - r).pow(2).mean())),
            'ms-ssim-rgb': float(ms_ssim(o, r, data_range=255))}

def check_compressai(work:Path, archs=None, coded=True) -> dict:
    "`coded`: True (every architecture), or the architectures whose coded route runs (`rsnb-compress`/`rsnb-decompress`)."
    from rsnb.compression.models import build_codec
    from rsnb.weights import load_model
    import rasterio
    info, arrays = fixture(FAMILY)
    work.mkdir(parents=True, exist_ok=True)
    imgs = make_images(work/'images')
    out = {}
    for arch in archs or info['archs']:
        pth = convert(arch, work)
        codec = load_model(pth, build=build_codec)[0].eval()
        ref = info['archs'][arch]
        f = out[arch] = {}
        # estimated: the forward pass
        with torch.no_grad():
            for stem, p in imgs.items():
                x = torch.from_numpy(np.asarray(Image.open(p)).transpose(2, 0, 1).copy()).float()[None]/255
                o = codec(x)
                xh = o['x_hat'][0].double()
                lik = o['likelihoods'] if isinstance(o['likelihoods'], dict) else dict(enumerate(o['likelihoods']))
                bpp = float(sum(torch.log(l.double()).sum() for l in lik.values())/(-math.log(2)*x.shape[2]*x.shape[3]))
                m = eval_metrics(x[0], xh.float())
                r = ref['estimated']['per_image'][stem]
                f[f'estimated/{stem}'] = dict(x_hat=diff(xh[:, 1::4, 1::4], arrays[f'{arch}/estimated/{stem}/sub']),
                                             x_hat_sums=diff(xh.sum((1, 2)), arrays[f'{arch}/estimated/{stem}/sum']),
                                             metrics={'psnr-rgb': (m['psnr-rgb'], r['psnr-rgb']), 'ms-ssim-rgb': (m['ms-ssim-rgb'], r['ms-ssim-rgb']),
                                                      'bpp': (bpp, r['bpp'])})
        if not coded: continue
        # coded: the console scripts a user runs (many scenes: a folder in, a folder out)
        if coded is not True and arch not in coded: continue
        ok(cli('rsnb-compress', '--model', pth, work/'images', work/f'rsc_{arch}', '--device', 'cpu', '-q'))
        ok(cli('rsnb-decompress', work/f'rsc_{arch}', work/f'dec_{arch}', '--model', pth, '--device', 'cpu', '-q'))
        for stem, p in imgs.items():
            rsc, = (work/f'rsc_{arch}').glob(f'{stem}*.rsc'); dec, = (work/f'dec_{arch}').glob(f'{stem}*.tif')
            got = rasterio.open(dec).read()
            want = arrays[f'{arch}/coded/{stem}/u8']
            x = torch.from_numpy(np.asarray(Image.open(p)).transpose(2, 0, 1).copy()).float()/255
            m = eval_metrics(x, torch.from_numpy(got).float()/255)
            r = ref['coded']['per_image'][stem]
            f[f'coded/{stem}'] = dict(decoded=dict(n=int(got.size), differ=int((got != want).sum()), max_abs_diff=int(np.abs(got.astype(int) - want).max())),
                                     metrics={'psnr-rgb': (m['psnr-rgb'], r['psnr-rgb']), 'ms-ssim-rgb': (m['ms-ssim-rgb'], r['ms-ssim-rgb'])},
                                     bpp_by_design={'rsnb .rsc (file bytes)': rsc.stat().st_size*8/(SIZE[0]*SIZE[1]), 'CompressAI ans': r['bpp']})
    return out

MEANS = ('mbt2018-mean', 'cheng2020-anchor')   # mean-scale models: rsnb's coder quantises the means (by design)

@pytest.fixture(scope='module')
def figures(tmp_path_factory):
    "Every architecture's forward route; the coded route for one scale-only and one mean-scale model (the rest: slow)."
    return check_compressai(tmp_path_factory.mktemp('e2e_compressai'), coded=('bmshj2018-hyperprior', 'mbt2018-mean'))

def test_fixture_can_fail():
    "CompressAI's decoded images are not flat, and differ between architectures."
    info, arrays = fixture(FAMILY)
    us = {a: arrays[f'{a}/coded/LC08_224077_r0_c0/u8'] for a in info['archs']}
    assert all(u.std() > 5 for u in us.values()), {a: u.std() for a, u in us.items()}
    assert len({u.tobytes() for u in us.values()}) == len(us)

def test_forward_route(figures):
    for arch, f in figures.items():
        for k, v in f.items():
            if not k.startswith('estimated/'): continue
            assert v['x_hat']['rel_diff'] < 1e-4 and v['x_hat_sums']['rel_diff'] < 1e-4, (arch, k, v)
            for m, (ours, ref) in v['metrics'].items():
                assert round(ours, 2 if m == 'psnr-rgb' else 4) == round(ref, 2 if m == 'psnr-rgb' else 4), (arch, k, m, ours, ref)

def check_coded(figures):
    """Scale-only codecs: decoded images pixel-identical, PSNR/MS-SSIM to the digits. Mean-scale codecs: rsnb's range
    coder quantises the predicted means (cross-platform decoding), so a latent on a rounding boundary can decode to
    the neighbouring integer: a few pixels may differ (measured: ±1 in 8 bits), nothing more."""
    n = 0
    for arch, f in figures.items():
        for k, v in f.items():
            if not k.startswith('coded/'): continue
            n += 1
            if arch in MEANS:
                assert v['decoded']['differ'] <= 0.01*v['decoded']['n'] and v['decoded']['max_abs_diff'] <= 2, (arch, k, v['decoded'])
                continue
            assert v['decoded']['differ'] == 0, (arch, k, v['decoded'])
            for m, (ours, ref) in v['metrics'].items():
                assert round(ours, 2 if m == 'psnr-rgb' else 4) == round(ref, 2 if m == 'psnr-rgb' else 4), (arch, k, m, ours, ref)
    assert n > 0

def test_coded_route(figures): check_coded(figures)

@pytest.mark.slow
@pytest.mark.skipif(not __import__('os').environ.get('RSNB_SLOW'), reason='slow (every architecture through the console scripts): set RSNB_SLOW=1')
def test_coded_route_all(tmp_path):
    check_coded(check_compressai(tmp_path))

@pytest.mark.xfail(reason='converter: `rsnb-weights convert --from compressai` takes only arch/quality, not the N/M that '
                          'convert_compressai accepts (reduced-width or non-zoo files cannot be converted by the console script)', strict=False)
def test_console_script_converts_reduced_width(tmp_path):
    from rsnb.compression.zoo import write_fixture_checkpoint, fixture_config
    src = write_fixture_checkpoint('bmshj2018-hyperprior', tmp_path/'hp.pth.tar')
    cfg = fixture_config('bmshj2018-hyperprior')
    ok(cli('rsnb-weights', 'convert', '--from', 'compressai', src, tmp_path/'hp', '--config', *[f'{k}={json.dumps(v)}' for k, v in cfg.items()]))
