"Parity with PaddleSeg without Paddle: regenerate each fixture's seeded weights as a real .pdparams, convert, run, compare."
import pytest, torch
from rsnb.segmentation.paddle import PARITY_MODELS, parity_check, parity_fixture
from rsnb.segmentation.models import seg_model

@pytest.mark.parametrize('name', list(PARITY_MODELS))
def test_paddleseg_parity(name, tmp_path):
    torch.set_num_threads(1)
    r = parity_check(name, tmp_path)
    assert r['n_params'] == r['n_params_paddle']
    for k in [k for k in r if k.endswith('_max_rel')]:
        assert r[k] <= 1e-4, r

@pytest.mark.parametrize('name', [n for n in PARITY_MODELS if not n.startswith('c2fnet')])
def test_paddleseg_param_count_16_classes(name):
    info, _ = parity_fixture(name)
    cfg = PARITY_MODELS[name]
    m = seg_model(cfg['arch'], cfg['backbone'], 16)
    assert sum(p.numel() for p in m.parameters()) == info['n_params_16']
