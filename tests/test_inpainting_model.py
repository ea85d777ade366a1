"ECEA generator/discriminator: full-size parameter counts, bug fixes vs the faithful variant, compositing, losses."
import math
import numpy as np
import pytest
import torch
from rsnb.core import ModelError
from rsnb.inpainting.model import ECEAGenerator, PatchDiscriminator, TokenFuse, cheb_clamp, composite
from rsnb.inpainting.losses import ECEALoss, masked_l1, gram
from rsnb.inpainting.edges import cshe

torch.set_num_threads(1)
n_params = lambda m: sum(p.numel() for p in m.parameters())

def small(**kw):
    return ECEAGenerator(3, img_size=32, dims=(8, 16), depths=(1, 1), heads=(1, 1), ps_hidden=8, ps_res=1, mid_res=1, **kw)

def test_full_size_parameter_counts():
    gf, g = ECEAGenerator(faithful=True), ECEAGenerator()
    # the faithful model's token mixers alone (two at level 1, one at levels 2 and 3), counted by hand
    tok = 2*(8192*4096 + 4096) + (2048*1024 + 1024) + (512*256 + 256)
    chan = 2*(128*64 + 64) + (256*128 + 128) + (512*256 + 256)
    assert n_params(gf) - n_params(g) == tok - chan - 512  # the original's last bottleneck conv has no bias
    assert n_params(gf) == 125_846_169 and n_params(g) == 56_680_857
    assert n_params(PatchDiscriminator(3, cond=False)) == 16*(3*64 + 64*128 + 128*256 + 256*512 + 512) + 961

def test_level_config_of_the_paper():
    g = ECEAGenerator()
    assert [len(s.blocks) for s in g.enc] == [1, 2, 3, 4]
    assert [s.blocks[0].attn.heads for s in g.enc] == [1, 2, 4, 8]
    assert [s.pos.shape[1:] for s in g.enc] == [(4096, 64), (1024, 128), (256, 256), (64, 512)]

def test_faithful_output_range_and_fixed_range():
    torch.manual_seed(0)
    x, m, e = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float(), torch.rand(2, 1, 32, 32)
    for faithful, top in ((True, math.tanh(1)), (False, 1.0)):
        g = small(faithful=faithful).eval()
        with torch.no_grad():
            g.head.tail[-1].bias.fill_(40.)
            y, _ = g(x, m, e)
        assert abs(y.max().item() - top) < 1e-4

def test_cheb_modes():
    o = torch.randn(3, 40, 6)
    assert torch.equal(cheb_clamp(o, mode='as_code'), o)
    c = cheb_clamp(o, mode='mean')
    mu, sd = o.mean(1, keepdim=True), o.std(1, unbiased=False, keepdim=True)
    assert ((c - mu).abs() <= sd + 1e-6).all() and not torch.equal(c, o)
    with pytest.raises(ModelError, match='unknown mode'): cheb_clamp(o, mode='x')

def test_composite_bit_exact():
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64); y = torch.rand_like(x)
    m = (torch.rand(2, 1, 16, 16) > 0.7).to(x.dtype)
    c = composite(x, y, m)
    keep = (m == 0).expand_as(x)
    assert torch.equal(c[keep], x[keep]) and torch.equal(c[~keep], y[~keep])

def test_generator_input_errors():
    g = small().eval()
    with pytest.raises(ModelError, match='built for 3 bands'): g(torch.rand(1, 4, 32, 32), torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ModelError, match='not divisible'): ECEAGenerator(img_size=100)
    with pytest.raises(ModelError, match='double'): ECEAGenerator(dims=(64, 100, 256, 512))

def test_one_gan_step_is_finite():
    g, d = small(), PatchDiscriminator(3, nf=8)
    x, m = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.6).float()
    y, eh = g(x, m, torch.rand(2, 1, 32, 32))
    tot, parts = ECEALoss(None)(y, eh, x, torch.rand(2, 1, 32, 32), d(y, m))
    tot.backward()
    assert math.isfinite(tot.item()) and all(p.grad is not None for p in g.parameters() if p.requires_grad)

def test_masked_l1_and_gram():
    a, b = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1., 2.], [3., 4.]]]])
    assert masked_l1(a, b).item() == 2.5
    assert masked_l1(a, b, torch.tensor([[[[0., 1.], [0., 0.]]]])).item() == 2.
    f = torch.ones(1, 2, 3, 3)
    assert torch.allclose(gram(f), torch.full((1, 2, 2), 9/18))

def test_cshe_square_edges_only_on_border():
    sq = np.zeros((1, 40, 40), np.float32); sq[:, 10:30, 10:30] = 1
    e = cshe(sq)
    ring = np.zeros((40, 40), bool); ring[8:32, 8:32] = True; ring[12:28, 12:28] = False
    assert e.max() == 1 and e[~ring].max() == 0 and (e[10:30, 9] > 0).all()

def test_cheb_gradient_finite_for_constant_channels():
    # the first CPU run diverged to NaN at ~step 270: sqrt(0) in the std has an infinite gradient
    o = torch.ones(1, 4, 3, requires_grad=True)
    cheb_clamp(o).sum().backward()
    assert torch.isfinite(o.grad).all()
