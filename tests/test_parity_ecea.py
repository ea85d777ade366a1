"Parity of rsnb's ECEAGenerator(faithful=True) with Chowdz/ecea's generator, from the fixture of tools/parity/ecea.py (torch only)."
import json, math
from pathlib import Path
import pytest
import torch
from rsnb.convert import ConversionError, map_key
from rsnb.change.convert import seeded_state_dict, parity_figures, parity_ok
from rsnb.inpainting.convert import convert_ecea, ECEA_RULES
from rsnb.inpainting.model import ECEAGenerator
from rsnb.inpainting.train import load_ecea
from rsnb.weights import save_model

FX = Path(__file__).parent/'fixtures'/'parity'/'ecea'
IO = torch.load(FX/'io_small.pt', weights_only=True)
HEADS = {'heads': [1, 2, 2, 4]}   # the small fixture's heads (not stored in the weights)

def manifest(tag): return json.loads((FX/f'manifest_{tag}.json').read_text())

@pytest.fixture
def eet_small(tmp_path):
    p = tmp_path/'EET.pth'; torch.save(seeded_state_dict(manifest('small')), p); return p

def test_outputs_exact(eet_small):
    torch.set_num_threads(1)   # the fixture is computed on one thread
    for prefilled, suffix in ((True, ''), (False, '_zeroed')):
        G, card = convert_ecea(eet_small, {**HEADS, 'prefilled': prefilled})
        assert card['kwargs']['faithful'] and card['kwargs']['depths'] == [1, 2, 1, 1] and not G.training
        with torch.no_grad(): img, edge = G(IO['x'], IO['mask'], IO['e'])   # rsnb order (x, m, e); the original's is (x, e, m)
        figs = parity_figures(dict(img=img, edge=edge), dict(img=IO['img'+suffix], edge=IO['edge'+suffix]))
        assert parity_ok(figs), (prefilled, figs)   # bit-exact where the fixture was made; parity_ok allows another CPU's summation order
        ref = IO['img'+suffix]
        assert ((ref > 0.01) & (ref < 0.75)).float().mean() > 0.3   # enough unsaturated outputs for the check to mean something

def test_full_manifest_matches_rsnb():
    man = manifest('full')
    tsd = ECEAGenerator(faithful=True).state_dict()
    assert {map_key(k, ECEA_RULES): tuple(v['shape']) for k, v in man.items()} == {k: tuple(v.shape) for k, v in tsd.items()}
    assert sum(math.prod(v['shape']) for k, v in man.items() if 'running' not in k and 'num_batches' not in k) == 125_846_169

def test_card_loads_with_load_ecea(eet_small, tmp_path):
    G, card = convert_ecea(eet_small, HEADS)
    save_model(G, tmp_path/'eet', card)
    G2, scaler, card2 = load_ecea(tmp_path/'eet')
    assert card2['arch'] == 'ECEAGenerator' and scaler.mode == 'paper' and scaler.convention == 'code'
    with torch.no_grad(): a, b = G(IO['x'], IO['mask'], IO['e'])[0], G2(IO['x'], IO['mask'], IO['e'])[0]
    assert torch.equal(a, b)

def test_bad_inputs(eet_small, tmp_path):
    sd = seeded_state_dict(manifest('small'))
    def save(obj, name): torch.save(obj, tmp_path/name); return tmp_path/name
    (tmp_path/'cut.pth').write_bytes(eet_small.read_bytes()[:8000])
    cases = [
        (tmp_path/'cut.pth', {}, 'cut.pth: not a readable torch checkpoint'),
        (save({'en_block1.0.conv_bn_relu.0.weight': torch.zeros(8, 3, 3, 3)}, 'dpcd.pth'), {}, 'dpcd.pth: not an ECEA generator checkpoint'),
        (save({**sd, 'decoder64.extra': torch.zeros(1)}, 'extra.pth'), HEADS, "extra.pth: tensor 'decoder64.extra'"),
        (save({k: v for k, v in sd.items() if k != 'concat64.bias'}, 'miss.pth'), HEADS, "miss.pth: rsnb parameter 'fuse.0.mix.bias' is not filled"),
        (save({**sd, 'out.block1.0.weight': torch.zeros(64, 16, 3, 3)}, 'shape.pth'), HEADS, "shape.pth: tensor 'out.block1.0.weight' has shape"),
        (save({**sd, 'res_block6.0.bias': torch.zeros(128)}, 'bias.pth'), HEADS, "bias.pth: tensor 'res_block6.0.bias'"),
        (eet_small, {'heads': [1, 2]}, 'EET.pth: 4 levels, but 2 heads given'),
        (eet_small, {'heads': [3, 3, 3, 3]}, 'EET.pth: the tensors describe no buildable ECEA generator'),
    ]
    for f, cfg, msg in cases:
        with pytest.raises(ConversionError, match=msg.replace('(', r'\(').replace(')', r'\)')): convert_ecea(f, cfg)
