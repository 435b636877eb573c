"""models/networks.py: StrongCNN's shape, size and test-time views, PatchCNN's 9 x 9 view, and the input transform
every network takes."""
import pytest
import torch
from conftest import batch

from realfake.models.checkpoints import load_model, save_model
from realfake.models.networks import StrongCNN, build_model, count_parameters, single_view
from realfake.project import ProjectError


@pytest.mark.parametrize("kwargs", [{}, {"widths": (32, 64, 96)}, {"widths": (8, 16, 24), "test_shift": 1}])
def test_strong_architecture_shape_and_size(kwargs, tmp_path):
    model = StrongCNN(**kwargs).eval()
    x = torch.randn(4, 3, 32, 32)
    assert model(x).shape == (4,) and count_parameters(model) <= 300_000
    assert isinstance(build_model("strong"), StrongCNN)
    save_model(model, tmp_path / "s.pth")                      # the shape is rebuilt from the checkpoint
    loaded, _ = load_model(tmp_path / "s.pth")
    assert loaded.config == model.config and torch.equal(loaded(x), model(x))


def test_test_flip_averages_the_image_and_its_mirror_in_eval_mode_only(tmp_path):
    torch.manual_seed(0)
    model, x = StrongCNN(test_flip=True), torch.randn(4, 3, 32, 32)
    model.train()
    assert torch.equal(model(x), model.logit(x))              # training sees each image as it is
    model.eval()
    assert torch.allclose(model(x), (model.logit(x) + model.logit(x.flip(3))) / 2)
    assert torch.allclose(model(x), model(x.flip(3)), atol=1e-6)
    save_model(model, tmp_path / "s.pth")
    assert load_model(tmp_path / "s.pth")[0].test_flip is True


def test_test_shift_averages_one_pixel_shifts_and_their_mirrors(tmp_path):
    torch.manual_seed(0)
    model, x = StrongCNN(test_flip=True, test_shift=1).eval(), torch.randn(4, 3, 32, 32)
    views = model.views(x)
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    down = views[1]                                            # moved down one pixel; reflection fills row 0
    assert torch.equal(down[:, :, 1:], x[:, :, :-1]) and torch.equal(down[:, :, 0], x[:, :, 1])
    assert torch.equal(views[5], x.flip(3)) and torch.equal(views[6], down.flip(3))
    assert torch.allclose(model(x), torch.stack([model.logit(v) for v in views]).mean(0), atol=1e-6)
    assert len(StrongCNN(test_shift=1).views(x)) == 5
    with single_view(model):                                   # one view, then both settings come back
        assert torch.equal(model(x), model.logit(x))
    assert (model.test_flip, model.test_shift) == (True, 1)
    save_model(model, tmp_path / "s.pth")
    assert load_model(tmp_path / "s.pth")[0].test_shift == 1


def test_networks_take_an_input_transform_and_refuse_an_unknown_one():
    for arch in ("cnn", "strong", "patch"):
        model = build_model(arch, input="npr").eval()
        assert model.config["input"] == "npr" and model(batch()).shape == (4,)
        assert "input" not in build_model(arch).config                  # plain RGB: older checkpoints keep their keys
    with pytest.raises(ProjectError, match="unknown input transform 'fft'"):
        build_model("cnn", input="fft")


def test_the_patch_network_sees_only_a_9_by_9_patch_per_position():
    model = build_model("patch").eval()
    x = batch(1)
    moved = x.clone()
    moved[0, :, 0, 0] += 1
    positions = lambda t: model.head(model.features(t))[0, 0]
    changed = (positions(moved) - positions(x)).abs() > 0
    assert changed[:5, :5].any() and not changed[5:].any() and not changed[:, 5:].any()
