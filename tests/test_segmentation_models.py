"Shapes of every segmentation family for 3 and 4 bands, and the loss terms they return while training."
import pytest, torch
from rsnb.core import ModelError
from rsnb.segmentation.models import seg_model, ARCHS, LOSS_COEFS, SegLoss

COMBOS = [(a, 'resnet18') for a in ARCHS if a != 'hrnet'] + [('fcn', 'hrnet_w18'), ('hrnet', 'hrnet_w18')]

@pytest.mark.parametrize('arch,backbone', COMBOS)
@pytest.mark.parametrize('bands', [3, 4])
def test_shapes(arch, backbone, bands):
    torch.manual_seed(0)
    m = seg_model(arch, backbone, n_classes=5, in_chans=bands)
    x = torch.randn(1, bands, 40, 56)
    m.eval()
    with torch.no_grad(): assert m(x).shape == (1, 5, 40, 56)
    m.train()
    out = m(torch.randn(2, bands, 40, 56))
    out = out if isinstance(out, tuple) else (out,)
    assert len(out) == len(LOSS_COEFS[arch])
    loss = SegLoss(LOSS_COEFS[arch])(out, torch.randint(0, 5, (2, 40, 56)))
    loss.backward()
    assert torch.isfinite(loss)

def test_bad_combinations():
    with pytest.raises(ModelError, match='unknown segmentation model'): seg_model('segformer')
    with pytest.raises(ModelError, match="HRNet backbones go with 'fcn' or 'hrnet'"): seg_model('deeplabv3p', 'hrnet_w18')
    with pytest.raises(ModelError, match='output_stride 8 or 16'): seg_model('deeplabv3p', 'resnet18', output_stride=32)
