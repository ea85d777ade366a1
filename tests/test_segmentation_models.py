"Shapes of every segmentation family for 3 and 4 bands, and the loss terms they return while training."
import pytest, torch
from rsnb.core import ModelError
from rsnb.segmentation.models import seg_model, segmenter_from_card, ARCHS, LOSS_COEFS, SegLoss, IMPLS

COMBOS = [(a, 'resnet18') for a in ARCHS if a != 'hrnet'] + [('fcn', 'hrnet_w18'), ('hrnet', 'hrnet_w18')]

@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('arch,backbone', COMBOS)
@pytest.mark.parametrize('bands', [3, 4])
def test_shapes(arch, backbone, bands, impl):
    torch.manual_seed(0)
    m = seg_model(arch, backbone, n_classes=5, in_chans=bands, impl=impl)
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
    with pytest.raises(ModelError, match='output_stride 8 or 16'): seg_model('deeplabv3p', 'resnet18', output_stride=32, impl='smp')
    with pytest.raises(ModelError, match='output_stride must be 8, 16 or 32'): seg_model('deeplabv3p', 'resnet18', output_stride=4)
    with pytest.raises(ModelError, match='unknown implementation'): seg_model('fcn', 'resnet18', impl='mmseg')

def test_card_roundtrip():
    for card in (dict(arch='upernet', backbone='resnet18_vd', n_classes=3, impl='paddleseg', in_chans=4),
                 dict(arch='upernet', backbone='resnet18', n_classes=3, in_chans=4)):
        a = segmenter_from_card(card)
        b = segmenter_from_card(card)
        b.load_state_dict(a.state_dict())  # strict: the same architecture
        assert a.backbone.__class__.__name__ == ('ResNet' if card.get('impl') else b.backbone.__class__.__name__)
