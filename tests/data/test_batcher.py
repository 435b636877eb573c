"""data/batcher.py: batches in order for evaluation (the last one partial), seeded shuffles with a new order
each epoch, mirror flips and per-image pixel shifts."""
import torch

from realfake.data.batcher import Batcher
from realfake.data.inputs import normalise


def small_set(n=10):
    images = torch.arange(n, dtype=torch.uint8).repeat_interleave(3 * 32 * 32).reshape(n, 3, 32, 32)
    return images, torch.arange(n) % 2


def test_batcher_in_order_for_evaluation_keeps_last_partial_batch():
    images, labels = small_set(10)
    batches = list(Batcher(images, labels, batch_size=4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    first = batches[0][0]
    assert first.dtype == torch.float32 and first.min() == -1.0 and first[3, 0, 0, 0] == 3 / 127.5 - 1
    assert torch.cat([y for _, y in batches]).tolist() == (labels.float()).tolist()


def test_batcher_shuffles_deterministically_with_a_new_order_each_epoch():
    images, labels = small_set(50)
    order = lambda b: [int(round((x[:, 0, 0, 0].add(1) * 127.5).item())) for xb, _ in b for x in xb.split(1)]
    a, b = Batcher(images, labels, 8, shuffle=True, seed=3), Batcher(images, labels, 8, shuffle=True, seed=3)
    epoch1, epoch2 = order(a), order(a)
    assert epoch1 == order(b) and epoch2 == order(b)                    # same seed, same orders
    assert sorted(epoch1) == list(range(50)) and epoch1 != epoch2      # a permutation, new each epoch
    assert order(Batcher(images, labels, 8, shuffle=True, seed=4)) != epoch1
    for x, y in a:                                                      # images stay with their labels
        assert torch.equal(((x[:, 0, 0, 0] + 1) * 127.5).round() % 2, y)


def test_batcher_flip_mirrors_about_half():
    images = torch.zeros(200, 3, 32, 32, dtype=torch.uint8)
    images[..., 0] = 255                                                # a white left column
    x = torch.cat([xb for xb, _ in Batcher(images, torch.zeros(200), 50, flip=True, seed=0)])
    mirrored = (x[:, 0, 0, -1] == 1).sum().item()
    assert 70 < mirrored < 130 and ((x[:, 0, 0, 0] == 1) ^ (x[:, 0, 0, -1] == 1)).all()


def test_batcher_shift_crops_each_image_at_its_own_offset():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    k = 2
    shifted = torch.cat([x for x, _ in Batcher(images, torch.zeros(64), 16, shift=k, seed=0)])
    padded = torch.nn.functional.pad(normalise(images), (k, k, k, k), mode="reflect")
    offsets = []
    for image, pad in zip(shifted, padded):
        matches = [(dy, dx) for dy in range(2 * k + 1) for dx in range(2 * k + 1)
                   if torch.equal(image, pad[:, dy:dy + 32, dx:dx + 32])]
        assert len(matches) == 1                       # exactly one crop of the padded image
        offsets.append(matches[0])
    assert len(set(offsets)) > 10                      # offsets drawn per image, not per batch
    again = torch.cat([x for x, _ in Batcher(images, torch.zeros(64), 16, shift=k, seed=0)])
    assert torch.equal(shifted, again)                 # seeded
