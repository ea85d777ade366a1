"Parity of rsnb's DPCD with SGSLN's original, from the fixture of tools/parity/dpcd.py (torch only, no original code)."
import json
from pathlib import Path
import pytest
import torch
from rsnb.convert import ConversionError
from rsnb.change.convert import convert_dpcd, seeded_state_dict, parity_figures, parity_ok, DPCD_RULES
from rsnb.change.dpcd import DPCD
from rsnb.change.cli import load_change_model
from rsnb.weights import save_model

FX = Path(__file__).parent/'fixtures'/'parity'/'dpcd'
IO = torch.load(FX/'io.pt', weights_only=True)

def manifest(tag): return json.loads((FX/f'manifest_{tag}.json').read_text())

def official_files(tmp_path, sd):
    "The seeded weights in both forms the official train.py writes."
    best, ck = tmp_path/'best_f1_epoch1.pth', tmp_path/'checkpoint_epoch1.pth'
    torch.save(sd, best)
    p = torch.nn.Parameter(torch.zeros(4)); opt = torch.optim.AdamW([p], lr=2e-4, weight_decay=1e-3)
    p.sum().backward(); opt.step()
    torch.save({'net': sd, 'optimizer': opt.state_dict()}, ck)
    return best, ck

@pytest.mark.parametrize('tag,width', [('small', 8), ('full', 32)])
def test_outputs_exact(tmp_path, tag, width):
    for f in official_files(tmp_path, seeded_state_dict(manifest(tag))):
        m, card = convert_dpcd(f)
        assert (card['arch'], card['width'], card['n_in'], card['task']) == ('dpcd', width, 3, 'change')
        assert not m.training
        with torch.no_grad(): out = dict(zip(('change', 'seg1', 'seg2'), m(IO['t1'], IO['t2'])))
        figs = parity_figures(out, {k: IO[f'{tag}_{k}'] for k in out})
        assert parity_ok(figs), figs   # bit-exact where the fixture was made; parity_ok allows another CPU's summation order
        assert all(v['max_abs_ref'] > 0.1 for v in figs.values()), figs   # the outputs are not trivially zero

def test_full_manifest_matches_rsnb():
    "Every tensor of the official full-size state dict maps onto DPCD() with the same shape, and nothing is left over."
    man, tsd = manifest('full'), DPCD().state_dict()
    assert len(man) == len(tsd) == 218
    from rsnb.convert import map_key
    mapped = {map_key(k, DPCD_RULES): tuple(v['shape']) for k, v in man.items()}
    assert mapped == {k: tuple(v.shape) for k, v in tsd.items()}
    assert sum(v.numel() for k, v in tsd.items() if 'running' not in k and 'num_batches' not in k) == 6_036_375

def test_card_rebuilds_through_change_cli(tmp_path):
    best, _ = official_files(tmp_path, seeded_state_dict(manifest('small')))
    m, card = convert_dpcd(best, {'stats': {'mean': [0., 0, 0], 'std': [1., 1, 1]}})
    save_model(m, tmp_path/'mydpcd', card)
    m2, card2 = load_change_model(tmp_path/'mydpcd')
    with torch.no_grad(): a, b = m(IO['t1'], IO['t2'])[0], m2(IO['t1'], IO['t2'])[0]
    assert torch.equal(a, b) and card2['stats']['std'] == [1., 1, 1]

def test_bad_inputs(tmp_path):
    sd = seeded_state_dict(manifest('small'))
    def save(obj, name): torch.save(obj, tmp_path/name); return tmp_path/name
    best = save(sd, 'best.pth')
    (tmp_path/'cut.pth').write_bytes(best.read_bytes()[:4000])
    cases = [
        (tmp_path/'cut.pth', {}, 'cut.pth: not a readable torch checkpoint'),
        (tmp_path/'absent.pth', {}, 'absent.pth: not found'),
        (save({'encoder.weight': torch.zeros(2)}, 'other.pth'), {}, 'other.pth: not an SGSLN DPCD checkpoint'),
        (save({**sd, 'dpfa1.extra': torch.zeros(1)}, 'extra.pth'), {}, "extra.pth: tensor 'dpfa1.extra'"),
        (save({k: v for k, v in sd.items() if k != 'conv_out_change.bias'}, 'miss.pth'), {},
         "miss.pth: rsnb parameter 'change_head.7.bias' is not filled"),
        (save({**sd, 'en_block5.cbam.channel_conv.weight': torch.zeros(1, 2, 3)}, 'shape.pth'), {},
         "shape.pth: tensor 'en_block5.cbam.channel_conv.weight' has shape (1, 2, 3)"),
        (best, {'width': 32}, 'best.pth: the checkpoint has width=8'),
        (best, {'n_in': 4}, 'best.pth: the checkpoint has n_in=3'),
    ]
    for f, cfg, msg in cases:
        with pytest.raises(ConversionError, match=msg.replace('(', r'\(').replace(')', r'\)')): convert_dpcd(f, cfg)
