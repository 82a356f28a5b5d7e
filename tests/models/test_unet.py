import pytest
import torch

from segclr.models import ChannelProjectionHead, PoolProjectionHead, SimSiamPredictor, UNet, count_parameters


@pytest.mark.parametrize("depth, base, norm", [(2, 4, "batch"), (3, 8, "instance"), (4, 4, "group")])
def test_encoder_contract_matches_feature_info(depth, base, norm):
    net = UNet(1, 3, base_channels=base, depth=depth, norm=norm)
    x = torch.randn(2, 1, 32, 48)
    feats = net.encode(x)
    assert len(feats) == depth + 1 == len(net.feature_info)
    for f, info in zip(feats, net.feature_info):
        assert f.shape == (2, info.channels, 32 // info.reduction, 48 // info.reduction)
    assert net.decode(feats).shape == (2, 3, 32, 48)
    assert net(x).shape == (2, 3, 32, 48)


def test_input_not_divisible_gives_clear_error():
    net = UNet(1, 2, base_channels=4, depth=4)
    with pytest.raises(ValueError, match=r"100x64 is not divisible by 2\*\*depth = 16.*height 96 or 112"):
        net(torch.zeros(1, 1, 100, 64))


@pytest.mark.parametrize("k, side", [(1, 8), (2, 4)])
def test_channel_head_keeps_layout_and_shapes(k, side):
    head = ChannelProjectionHead(32, (side, side), reduced_channels=k, hidden_dim=16, out_dim=8)
    assert head(torch.randn(5, 32, side, side)).shape == (5, 8)
    # the MLP input is k*h*w: spatial layout is flattened, not pooled
    assert head.mlp[0].in_features == k * side * side
    with pytest.raises(ValueError, match="built for"):
        head(torch.randn(5, 32, side * 2, side * 2))


def test_pool_head_and_predictor_shapes():
    head = PoolProjectionHead(32, hidden_dim=16, out_dim=8)
    z = head(torch.randn(5, 32, 7, 9))  # any spatial size
    assert z.shape == (5, 8)
    assert SimSiamPredictor(8, 4)(z).shape == (5, 8)


def test_channel_head_is_position_sensitive_pool_head_is_not():
    torch.manual_seed(0)
    x = torch.randn(4, 16, 4, 4)
    shifted = torch.roll(x, shifts=1, dims=-1)
    ch = ChannelProjectionHead(16, (4, 4), 1, 16, 8).eval()
    pool = PoolProjectionHead(16, 16, 8).eval()
    assert torch.allclose(pool(x), pool(shifted), atol=1e-5)
    assert not torch.allclose(ch(x), ch(shifted), atol=1e-3)


def test_count_parameters():
    assert count_parameters(torch.nn.Linear(3, 2)) == 8
