"""Architectures: the DCGAN reference parameter counts, shapes at 28/32/64 px, DCGAN practice."""

import pytest
import torch
from torch import nn

from ganrun.models import dcgan, mlp


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_dcgan64_matches_pytorch_examples_parameter_counts():
    G, D = dcgan.make((3, 64, 64), latent_dim=100, width=64)
    assert n_params(G) == 3_576_704
    assert n_params(D) == 2_765_568


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    G, D = dcgan.make((channels, size, size), latent_dim=16, width=8)
    x = G(torch.randn(5, 16))
    assert x.shape == (5, channels, size, size)
    assert D(x).shape == (5,)
    assert x.min() >= -1 and x.max() <= 1  # tanh output


def test_dcgan_follows_dcgan_practice():
    G, D = dcgan.make((1, 64, 64), width=8)
    g_mods, d_mods = list(G.modules()), list(D.modules())
    assert isinstance(g_mods[-1], nn.Tanh)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Upsample)) for m in g_mods + d_mods)
    assert all(m.negative_slope == 0.2 for m in d_mods if isinstance(m, nn.LeakyReLU))
    assert any(isinstance(m, nn.BatchNorm2d) for m in g_mods) and any(isinstance(m, nn.BatchNorm2d) for m in d_mods)
    for m in g_mods + d_mods:  # kernel divisible by stride: no checkerboard artefacts
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            assert m.kernel_size[0] % m.stride[0] == 0
    ups = [m for m in g_mods if isinstance(m, nn.ConvTranspose2d)]
    downs = [m for m in d_mods if isinstance(m, nn.Conv2d)]
    assert sum(m.stride[0] == 2 for m in ups) == 4 and sum(m.stride[0] == 2 for m in downs) == 4


def test_dcgan_init_is_normal_0_002():
    torch.manual_seed(0)
    G, D = dcgan.make((3, 64, 64))
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    bn = torch.cat([m.weight for m in D.modules() if isinstance(m, nn.BatchNorm2d)])
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01)


def test_spectral_norm_init_and_effect():
    torch.manual_seed(0)
    _, D = dcgan.make((1, 28, 28), width=8, spectral_norm=True)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    orig = convs[1].parametrizations.weight.original
    assert orig.std().item() == pytest.approx(0.02, rel=0.1)  # the stored weight got the DCGAN init
    D.train()
    for _ in range(20):  # power iteration converges while training
        D(torch.randn(4, 1, 28, 28))
    with torch.no_grad():
        sigma = torch.linalg.matrix_norm(convs[1].weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_dropout_and_norm_options():
    _, D = dcgan.make((1, 32, 32), width=8, d_dropout=0.5, d_norm="layer")
    mods = list(D.modules())
    assert sum(isinstance(m, nn.Dropout) for m in mods) == 3
    assert any(isinstance(m, nn.GroupNorm) for m in mods) and not any(isinstance(m, nn.BatchNorm2d) for m in mods)


def test_dcgan_refuses_unsupported_sizes():
    with pytest.raises(ValueError, match="28, 32 or 64"):
        dcgan.make((3, 48, 48))


def test_toy_data_gets_linear_output_mlp():
    G, D = dcgan.make((2,), toy_hidden=(32, 32))
    assert isinstance(G, mlp.MLPGenerator) and not any(isinstance(m, nn.Tanh) for m in G.modules())
    z = torch.randn(10, 100) * 100
    assert G(z).abs().max() > 1  # unbounded, as the toy data is
    assert D(G(z)).shape == (10,)


def test_mlp_images_and_hidden_sizes():
    G, D = mlp.make((1, 28, 28), latent_dim=10, hidden=(64, 32))
    linears = [m for m in G.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [64, 32, 784]
    x = G(torch.randn(3, 10))
    assert x.shape == (3, 1, 28, 28) and isinstance(list(G.modules())[-1], nn.Tanh)
    assert D(x).shape == (3,)


@pytest.mark.parametrize("shape", [(2,), (1, 28, 28), (3, 32, 32)])
def test_packing_judges_m_samples_jointly(shape):
    G, D = dcgan.make(shape, latent_dim=8, width=4, toy_hidden=(8,), pack=4)
    D.eval()  # BatchNorm in train mode would couple the packs through batch statistics
    x = G(torch.randn(12, 8))
    assert D(x).shape == (3,)
    first = D.D.net[1] if len(shape) == 1 else D.D.net[0]
    assert (first.in_features if len(shape) == 1 else first.in_channels) == 4 * shape[0]
    # a pack's logit depends on all its members and on nothing outside it
    y = x.clone()
    y[1] = y[1] + 1
    changed = D(y) != D(x)
    assert changed.tolist() == [True, False, False]


def test_packing_refuses_a_ragged_batch():
    _, D = mlp.make((2,), hidden=(8,), pack=3)
    with pytest.raises(ValueError, match="model.pack=3"):
        D(torch.randn(4, 2))


@pytest.mark.parametrize("maker, shape", [(mlp.make, (2,)), (dcgan.make, (1, 32, 32))])
def test_minibatch_std_sees_the_batch_spread(maker, shape):
    torch.manual_seed(0)
    kwargs = {"hidden": (8,)} if maker is mlp.make else {"width": 4}
    _, D = maker(shape, minibatch_std=True, **kwargs)
    D.eval()
    x = torch.randn(6, *shape)
    alike = x[:1].expand(6, *shape)
    # the first sample's logit changes when only the *other* samples change: D sees the batch
    assert D(alike)[0] != D(torch.cat([x[:1], x[1:]]))[0]


# ---------------------------------------------------------------- conditional models

@pytest.mark.parametrize("make, kwargs", [(dcgan.make, {"width": 4, "d_condition": "projection"}),
                                          (mlp.make, {"hidden": [16, 16]})])
def test_conditional_models_take_labels_and_they_matter(make, kwargs):
    torch.manual_seed(0)
    G, D = make((1, 28, 28), latent_dim=8, conditional=True, n_classes=10, **kwargs)
    G.eval()
    z = torch.randn(4, 8)
    y3, y7 = torch.full((4,), 3), torch.full((4,), 7)
    x3, x7 = G(z, y3), G(z, y7)
    assert x3.shape == (4, 1, 28, 28)
    assert not torch.allclose(x3, x7)  # the label changes G's output
    D.eval()
    assert D(x3, y3).shape == (4,) and not torch.allclose(D(x3, y3), D(x3, y7))
    # projection discriminator: D(x, y) = D(x) + <embed(y), features(x)>
    h = D.net[:-1](x3).flatten(2).sum(2) if make is dcgan.make else D.net[:-1](x3)
    assert torch.allclose(D(x3, y3) - D(x3), (D.embed.weight[3] * h).sum(1), atol=1e-5)
    # without labels G draws the classes in turn
    assert torch.allclose(G(z), G(z, torch.tensor([0, 1, 2, 3])))


def test_input_conditioned_d_sees_one_hot_class_planes():
    torch.manual_seed(0)
    G, D = dcgan.make((1, 28, 28), width=4, latent_dim=8, conditional=True, n_classes=10)  # d_condition=input
    assert D.embed is None and D.net[0].in_channels == 1 + 10
    x = torch.rand(3, 1, 28, 28)
    planes = D.planes(x, torch.tensor([0, 4, 9]))
    assert planes.shape == (3, 11, 28, 28) and torch.equal(planes[:, :1], x)
    for i, k in enumerate([0, 4, 9]):  # plane k is all ones for class k, every other plane zero
        assert planes[i, 1 + k].eq(1).all() and planes[i, 1:].sum() == 28 * 28
    assert D.planes(x, None)[:, 1:].eq(0).all()  # no labels: no class
    D.eval()
    assert not torch.allclose(D(x, torch.full((3,), 3)), D(x, torch.full((3,), 7)))  # the label matters
    assert torch.allclose(D(x, torch.full((3,), 3)), D.net(D.planes(x, torch.full((3,), 3))).view(-1), atol=1e-6)
    with pytest.raises(ValueError, match="model.d_condition=sideways: use input"):
        dcgan.make((1, 28, 28), width=4, conditional=True, n_classes=10, d_condition="sideways")


@pytest.mark.parametrize("d_condition", ["input", "projection"])
def test_a_class_head_reads_the_class_beside_the_same_real_or_fake_logit(d_condition):
    """D with an auxiliary class head: the same logit as D without it (same weights), and the head's logits
    on its last features summed over positions, kept after each call with labels."""
    torch.manual_seed(0)
    _, D = dcgan.make((3, 32, 32), width=4, latent_dim=8, conditional=True, n_classes=5, d_condition=d_condition,
                      class_head=True)
    _, plain = dcgan.make((3, 32, 32), width=4, latent_dim=8, conditional=True, n_classes=5,
                          d_condition=d_condition)
    plain.load_state_dict({k: v for k, v in D.state_dict().items() if not k.startswith("class_head")})
    D.eval(), plain.eval()
    x, y = torch.rand(6, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3, 4, 0])
    assert torch.allclose(D(x, y), plain(x, y), atol=1e-6) and plain.class_logits is None
    first = D.first_layer(x, y) if d_condition == "input" else D.net[0](x)
    h = D.net[1:-1](first).sum((2, 3))
    assert D.class_logits.shape == (6, 5)
    assert torch.allclose(D.class_logits, D.class_head(h), atol=1e-5)
    D(x)  # without labels: no reading kept
    assert D.class_logits is None
    with pytest.raises(ValueError, match="needs a conditional model"):
        dcgan.make((3, 32, 32), width=4, class_head=True)
    with pytest.raises(ValueError, match="2-D toy sets' MLP pair has no class head"):
        dcgan.make((2,), class_head=True)


def test_conditional_needs_classes_and_no_packing():
    with pytest.raises(ValueError, match="model.conditional=true needs a labelled dataset"):
        mlp.make((2,), conditional=True, n_classes=0)
    with pytest.raises(ValueError, match="does not combine with model.pack > 1"):
        dcgan.make((1, 28, 28), width=4, conditional=True, n_classes=10, pack=2)
    G, D = dcgan.make((1, 28, 28), width=4, conditional=False, n_classes=10)
    assert G.embed is None and D.embed is None  # n_classes alone does not make a model conditional


def test_class_rows_put_one_class_per_row():
    from ganrun.data.pictures import class_rows

    labels, per_row = class_rows(10, 60)
    assert per_row == 6 and labels.tolist() == [c for c in range(10) for _ in range(6)]
    labels, per_row = class_rows(1000, 20)
    assert per_row == 2 and labels[::2].tolist() == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    labels, per_row = class_rows(10, 5, [3, 7])
    assert labels.tolist() == [3, 3, 3, 7, 7] and per_row == 3  # exactly n: blocks of 3 and 2
    labels, per_row = class_rows(10, 4)  # fewer samples than classes: one each of the first n
    assert labels.tolist() == [0, 1, 2, 3] and per_row == 1
    assert class_rows(0, 64) == (None, 0)


# ---------------------------------------------------------------- ResNet (SNGAN)

def test_resnet_matches_the_sngan_cifar10_parameter_counts():
    from ganrun.models import resnet

    G, D = resnet.make((3, 32, 32))
    # worked out from the SNGAN appendix table (z 128, G blocks of 256, D blocks of 128):
    # G: linear 128 -> 4*4*256 (528,384) + 3 up-blocks of 1,246,976 + BN 512 + conv3 256 -> 3 (6,915)
    # D: first block 151,680 + down-block 311,680 + 2 blocks of 295,168 + linear 129
    assert sum(p.numel() for p in G.parameters()) == 528_384 + 3 * 1_246_976 + 512 + 6_915 == 4_276_739
    assert sum(p.numel() for p in D.parameters()) == 151_680 + 311_680 + 2 * 295_168 + 129 == 1_053_825
    assert all(torch.nn.utils.parametrize.is_parametrized(m) for m in D.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))  # spectral norm on every D weight
    z = torch.randn(2, 128)
    x = G(z)
    assert x.shape == (2, 3, 32, 32) and x.abs().max() <= 1 and D(x).shape == (2,)
    G64, D64 = resnet.make((1, 64, 64), g_width=8, d_width=8)
    assert G64(torch.randn(2, 128)).shape == (2, 1, 64, 64) and D64(torch.randn(2, 1, 64, 64)).shape == (2,)
    with pytest.raises(ValueError, match="dataset.image_size=32"):
        resnet.make((1, 28, 28))


@pytest.mark.parametrize("shape, width", [((1, 28, 28), 64), ((3, 32, 32), 40), ((3, 64, 64), 32), ((1, 32, 32), 40)])
def test_auto_width_matches_the_default_runs_step_cost(shape, width):
    from torch.utils.flop_counter import FlopCounterMode

    from ganrun.models.dcgan import auto_width, step_cost

    assert auto_width(shape) == width
    G, D = dcgan.make(shape, width="auto")
    assert G.net[-2].in_channels == width  # G's last conv: width channels in
    with FlopCounterMode(display=False) as counter:  # the formula against torch's own count of one image
        D(G(torch.randn(1, 100)))
    assert counter.get_total_flops() == 2 * step_cost(shape[0], shape[-1], width)


def test_auto_width_is_settled_said_and_kept(caplog):
    import logging

    from ganrun.models.build import settle_width

    node = {"_target_": "ganrun.models.dcgan.make", "width": "auto"}
    with caplog.at_level(logging.INFO):
        assert settle_width(dict(node), (3, 32, 32))["width"] == 40
    assert "model.width=auto: 40 for 3x32x32 images" in caplog.text
    assert settle_width({**node, "width": 24}, (3, 32, 32))["width"] == 24  # a number given is kept
    with pytest.raises(ValueError, match="model.width=wide: use a number of channels such as 64, or auto"):
        dcgan.make((3, 32, 32), width="wide")


def test_g_width_sizes_g_alone_and_is_checked(caplog):
    import logging

    from ganrun.models.build import settle_width

    G, D = dcgan.make((1, 28, 28), width=64, g_width=16)
    G64, D64 = dcgan.make((1, 28, 28), width=64)
    assert [m.out_channels for m in G.net if isinstance(m, torch.nn.ConvTranspose2d)] == [32, 16, 1]
    assert [m.out_channels for m in G64.net if isinstance(m, torch.nn.ConvTranspose2d)] == [128, 64, 1]
    assert sum(p.numel() for p in D.parameters()) == sum(p.numel() for p in D64.parameters())  # D untouched
    assert G(torch.randn(3, 100)).shape == (3, 1, 28, 28) and D(G(torch.randn(3, 100))).shape == (3,)
    node = {"_target_": "ganrun.models.dcgan.make", "width": "auto", "g_width": 16}
    with caplog.at_level(logging.INFO):
        assert settle_width(dict(node), (1, 28, 28))["width"] == 64
    assert "model.width=auto: 64 for D on 1x28x28 images, beside G's model.g_width=16" in caplog.text
    for bad in (0, "wide"):
        with pytest.raises(ValueError, match="g_width=.* must be whole numbers >= 1"):
            dcgan.make((1, 28, 28), g_width=bad)
    with pytest.raises(ValueError, match="model.g_width=16 sizes a DCGAN on images"):
        dcgan.make((2,), g_width=16)
