"""Duplicates: near-identical images by difference hash (grouped with byte-identical files, so a split can keep every
copy on one side), and byte-identical files within and across classes and splits (the audit's count)."""
import numpy as np
import torch.nn.functional as F

NEAR_DUPLICATE_BITS = 5              # difference hashes this close (of 64 bits) put two images in one group


def difference_hash(images, size=8):
    """A 64-bit difference hash per image (uint8 N x 3 x H x W): is each pixel of an 8 x 9 grey thumbnail brighter
    than its right neighbour. Re-encoding or mild resizing changes a few bits; other images differ in about 32."""
    grey = images.float().mean(1, keepdim=True)
    small = F.interpolate(grey, size=(size, size + 1), mode="area")[:, 0]
    return (small[:, :, 1:] > small[:, :, :-1]).reshape(len(images), -1).numpy()


def duplicate_groups(images, digests, max_bits=NEAR_DUPLICATE_BITS, chunk=256):
    """A group number per image: byte-identical files (same digest) and near-identical images (difference hashes
    within `max_bits`) share one, transitively. Hashes are compared `chunk` images against all at a time."""
    n = len(images)
    parent = np.arange(n)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    packed = np.packbits(difference_hash(images), axis=1)                     # n x 8 bytes
    ones = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)   # set bits of each byte value
    pairs = []
    for start in range(0, n, chunk):
        distance = ones[packed[start:start + chunk, None, :] ^ packed[None, :, :]].sum(2)
        rows, cols = np.nonzero(distance <= max_bits)
        pairs += [(start + i, j) for i, j in zip(rows.tolist(), cols.tolist()) if start + i < j]
    first_copy = {}
    for i, digest in enumerate(digests.tolist()):
        pairs.append((first_copy.setdefault(digest, i), i))
    for i, j in pairs:
        parent[root(i)] = root(j)
    return np.array([root(i) for i in range(n)])


def identical_files(files):
    """Byte-identical files: groups (2 or more copies anywhere), and the groups that span classes or splits."""
    ok = files[files["digest"].notna()]
    copies = ok["digest"].map(ok["digest"].value_counts())
    groups = ok[copies > 1].groupby("digest")
    across_classes = [list(g["path"]) for _, g in groups if g["label"].nunique() > 1]
    across_splits = [list(g["path"]) for _, g in groups if g["split"].nunique() > 1]
    if "train" in set(files["split"]) and "test" in set(files["split"]):
        train = set(ok.loc[ok["split"] == "train", "digest"])
        leaked = int(ok.loc[ok["split"] == "test", "digest"].isin(train).sum())
    else:
        leaked = 0
    return {"groups": groups.ngroups, "files_in_groups": int(sum(len(g) for _, g in groups)),
            "across_classes": across_classes, "across_splits": across_splits, "test_files_in_train": leaked}
