"Change detection: model shapes, parameter counts against the original code, loss against a hand computation."
import math
import pytest
import torch
from rsnb.core import ModelError
from rsnb.change.dpcd import DPCD, count_params, channel_exchange, channel_split
from rsnb.change.baselines import FCEF, FCSiamConc, FCSiamDiff, UNetPair
from rsnb.change.loss import ChangeLoss, batch_dice_loss
from rsnb.change.train import change_model, predict_change, CHANGE_MODELS

torch.set_num_threads(1)

def test_dpcd_official_parameter_count():
    # official NJU-LHRS/offical-SGSLN DPCD() (3 bands, 32..512 channels): 6,036,375 parameters
    assert count_params(DPCD()) == 6_036_375

def test_fc_parameter_counts():
    # Daudt et al. 2018 originals (3-band dates, 2 output classes): 1.35 M / 1.55 M / 1.35 M
    assert count_params(FCEF(3, 2)) == 1_350_578
    assert count_params(FCSiamConc(3, 2)) == 1_545_986
    assert count_params(FCSiamDiff(3, 2)) == 1_350_146

@pytest.mark.parametrize('arch', list(CHANGE_MODELS))
@pytest.mark.parametrize('bands', [3, 4])
def test_shapes_any_band_count(arch, bands):
    m = change_model(arch, bands, width=8).eval()
    t1, t2 = torch.randn(1, bands, 32, 32), torch.randn(1, bands, 32, 32)
    with torch.no_grad(): out = m(t1, t2)
    c = out[0] if isinstance(out, tuple) else out
    assert c.shape == (1, 1, 32, 32)
    if arch == 'dpcd': assert out[1].shape == out[2].shape == (1, 1, 16, 16)

def test_dpcd_bad_inputs():
    m = DPCD(width=8)
    with pytest.raises(ModelError, match='divisible by 16'): m(torch.randn(1, 3, 24, 24), torch.randn(1, 3, 24, 24))
    with pytest.raises(ModelError, match='same shape'): m(torch.randn(1, 3, 32, 32), torch.randn(1, 3, 16, 16))
    with pytest.raises(ModelError, match='multiple of 4'): DPCD(width=6)

def test_exchange_and_split():
    a, b = torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1)
    ea, eb = channel_exchange(a, b)
    assert ea.flatten().tolist() == [0, 1, 0, 1] and eb.flatten().tolist() == [1, 0, 1, 0]
    e, o = channel_split(torch.arange(8.).view(1, 8, 1, 1))
    assert e.flatten().tolist() == [0, 2, 4, 6] and o.flatten().tolist() == [1, 3, 5, 7]

def test_loss_hand_computation():
    s = lambda z: 1 / (1 + math.exp(-z))
    bce = lambda ps, ys: -sum(y*math.log(p) + (1-y)*math.log(1-p) for p, y in zip(ps, ys)) / len(ps)
    dice = lambda ps, ys: 1 - (2*sum(p*y for p, y in zip(ps, ys)) + 1e-5) / (sum(ps) + sum(ys) + 1e-5)
    zc, yc = [1., -1., 0.5, -2.], [1., 0., 1., 1.]
    pc = [s(z) for z in zc]
    # aux outputs 1×1: target is the 2×2 mean of the mask = 0.75
    exp = dice(pc, yc) + bce(pc, yc) + 0.2*(dice([s(0.3)], [.75]) + bce([s(0.3)], [.75]) + dice([s(-0.7)], [.75]) + bce([s(-0.7)], [.75]))
    got = ChangeLoss()((torch.tensor(zc).view(1, 1, 2, 2), torch.tensor([[[[0.3]]]]), torch.tensor([[[[-0.7]]]])),
                       torch.tensor(yc).view(1, 2, 2).long() * 255)
    assert abs(got.item() - exp) < 1e-6

def test_batch_dice_is_batch_wide():
    p = torch.tensor([[[[0.9, 0.2]]], [[[0.6, 0.1]]]]); g = torch.tensor([[[[1., 0]]], [[[1., 1]]]])
    assert abs(batch_dice_loss(p, g).item() - 1/3) < 1e-6

def test_loss_rejects_non_binary_mask():
    with pytest.raises(ModelError, match='binary'): ChangeLoss()(torch.zeros(1, 1, 2, 2), torch.tensor([[[0, 3], [0, 0]]]))

def test_predict_change_any_size():
    p = predict_change(UNetPair(3, width=4), torch.randn(3, 37, 45), torch.randn(3, 37, 45))
    assert p.shape == (1, 37, 45) and float(p.min()) >= 0 and float(p.max()) <= 1
