"""training/fake_makers.py: resampled fakes are seeded JPEG and lose fine detail; the autoencoder learns and its
fakes are cached."""
import torch
from conftest import batch

from realfake.models import generators
from realfake.training import fake_makers


def uint8_images(n=8, seed=0):
    return ((batch(n, seed) + 1) * 127.5).round().to(torch.uint8)


def test_resampled_fakes_are_seeded_jpeg_and_lose_fine_detail():
    x = uint8_images(24)
    made = fake_makers.resample_fakes(x, seed=1)
    assert made.shape == x.shape and made.dtype == torch.uint8
    assert torch.equal(made, fake_makers.resample_fakes(x, seed=1)) and not torch.equal(made, x)
    detail = lambda t: (t.float()[..., 1:] - t.float()[..., :-1]).abs().mean()
    assert detail(made) < detail(x)


def test_the_autoencoder_learns_and_its_fakes_are_cached(tmp_path, monkeypatch):
    x = uint8_images(64)
    error = lambda model: (fake_makers.reconstruct(model, x).float() - x.float()).abs().mean()
    torch.manual_seed(0)
    untrained = generators.Autoencoder().eval()
    monkeypatch.setitem(fake_makers.AUTOENCODER, "epochs", 100)          # 100 steps: about a quarter of the error here
    trained = fake_makers.train_autoencoder(x, progress=False)
    assert error(trained) < 0.5 * error(untrained)
    for decoder in ("nearest", "transposed"):
        made = fake_makers.autoencoder_fakes(x[:8], decoder=decoder, progress=False)
        assert made.shape == (8, 3, 32, 32) and made.dtype == torch.uint8
    calls = []
    monkeypatch.setitem(fake_makers.FAKE_MAKERS, "resample", lambda images, **kw: calls.append(1) or images + 1)
    first = fake_makers.make_fakes("resample", x, folder=tmp_path)
    again = fake_makers.make_fakes("resample", x, folder=tmp_path)
    assert torch.equal(first, again) and len(calls) == 1 and len(list(tmp_path.iterdir())) == 1
