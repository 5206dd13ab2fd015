"""Partial labels (strokes, issue 16): codes on disk, masked losses, crops where strokes are."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageReadError
from core.scribbles import (
    BACKGROUND,
    ROOF,
    UNLABELLED,
    merge_into_label,
    read_scribble,
    scribble_path_for,
    target_and_known,
    write_scribble,
)

torch = pytest.importorskip("torch")


def test_codes_round_trip_and_bad_files_name_themselves(tmp_path):
    codes = np.zeros((20, 30), np.uint8)
    codes[2:5, 3:9] = ROOF
    codes[10:12, :] = BACKGROUND
    path = write_scribble(tmp_path / "s.png", codes)
    assert np.array_equal(read_scribble(path, (20, 30)), codes)
    roof, known = target_and_known(codes)
    assert roof.sum() == 18 and known.sum() == 18 + 60
    with pytest.raises(ImageReadError, match="30 x 20 but the image is 31 x 20"):
        read_scribble(path, (20, 31))
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / "seven.png")
    with pytest.raises(ImageReadError, match="seven.png.*value"):
        read_scribble(tmp_path / "seven.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="junk.png"):
        read_scribble(tmp_path / "junk.png")
    assert scribble_path_for("/d", "train", "00001.jpg").as_posix() == "/d/train/scribble/00001.png"


def test_accepting_a_prediction_keeps_the_strokes():
    codes = np.zeros((4, 4), np.uint8)
    codes[0, 0], codes[3, 3] = ROOF, BACKGROUND
    prediction = np.zeros((4, 4), bool)
    prediction[3, 3] = prediction[1, 1] = True
    label = merge_into_label(codes, prediction)
    assert label[0, 0] and not label[3, 3] and label[1, 1]
    assert label.sum() == 2


@pytest.mark.parametrize("name", ["bce", "dice", "bce+dice", "focal+dice", "bce+lovasz"])
def test_masked_loss_ignores_unlabelled_pixels(name):
    """Whatever the network says and the target holds where nothing is labelled, the loss and
    its gradient are the same."""
    from core.training.losses import compute_loss

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 16, 16, generator=gen)
    target = (torch.rand(2, 1, 16, 16, generator=gen) > 0.5).float()
    known = torch.rand(2, 1, 16, 16, generator=gen) > 0.7
    results = []
    for flip in (False, True):
        lg, tg = logits.clone(), target.clone()
        if flip:  # change everything outside the labelled pixels
            lg[~known] = -lg[~known] + 3.0
            tg[~known] = 1.0 - tg[~known]
        lg.requires_grad_(True)
        loss = compute_loss(name, lg, tg, known)
        loss.backward()
        results.append((loss.item(), lg.grad[known].clone(), lg.grad[~known].clone()))
    (a, grad_a, out_a), (b, grad_b, out_b) = results
    assert a == pytest.approx(b, abs=1e-6)
    assert torch.allclose(grad_a, grad_b, atol=1e-7)
    assert float(out_a.abs().max()) == 0.0 and float(out_b.abs().max()) == 0.0


def test_without_unlabelled_pixels_the_masked_loss_is_the_plain_one():
    from core.training.losses import compute_loss

    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 8, 8, generator=gen)
    target = (torch.rand(2, 1, 8, 8, generator=gen) > 0.5).float()
    everything = torch.ones(2, 1, 8, 8, dtype=torch.bool)
    for name in ("bce", "dice", "bce+dice", "focal+dice", "bce+lovasz"):
        assert float(compute_loss(name, logits, target, everything)) == pytest.approx(
            float(compute_loss(name, logits, target)), rel=1e-5
        )


def test_crops_of_a_partly_labelled_image_are_cut_where_the_strokes_are():
    from core.training.data import ImageCache, random_crop_batch

    image = np.zeros((400, 400, 3), np.uint8)
    mask = np.zeros((400, 400), bool)
    known = np.zeros((400, 400), bool)
    known[350:360, 20:30] = True  # one small stroke in a corner
    mask[350:355, 20:30] = True
    cache = ImageCache([])
    cache._data, cache.samples = [(image, mask)], [None]
    cache._known = {0: known}
    cache._centres = {0: np.flatnonzero(known)}
    _imgs, masks, knowns = random_crop_batch(
        cache,
        [0] * 64,
        64,
        np.random.default_rng(0),
        augment=True,
        scale_jitter=0.25,
        with_known=True,
    )
    assert knowns is not None and knowns.shape == masks.shape
    assert all(k.any() for k in knowns)  # every crop holds labelled pixels
    assert not (masks & ~knowns).any()  # roof only where labelled (the stroke says so)


def test_a_batch_of_full_labels_has_no_known_map():
    from core.training.data import ImageCache, random_crop_batch

    cache = ImageCache([])
    cache._data, cache.samples = (
        [(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), bool))],
        [None],
    )
    *_rest, knowns = random_crop_batch(
        cache, [0, 0], 64, np.random.default_rng(0), augment=False, with_known=True
    )
    assert knowns is None
    assert UNLABELLED == 0


def _two_colours(size: int = 32) -> torch.Tensor:
    """A dark left half and a bright right half, ``(1, 3, size, size)`` in [0, 1]."""
    image = torch.full((1, 3, size, size), 0.2)
    image[..., size // 2 :] = 0.8
    return image


def test_the_affinity_regulariser_lets_a_prediction_cut_only_along_colour_edges():
    from core.training.losses import colour_affinity_loss

    image, size = _two_colours(), 32
    everywhere = torch.ones(1, 1, size, size)
    along_edge = torch.full((1, 1, size, size), -12.0)
    along_edge[..., size // 2 :] = 12.0  # roof exactly where the colour changes
    across = torch.full((1, 1, size, size), -12.0)
    across[..., size // 2 :, :] = 12.0  # a cut through both uniform halves
    follows = float(colour_affinity_loss(along_edge, image, everywhere))
    cuts = float(colour_affinity_loss(across, image, everywhere))
    assert follows < 1e-3 and cuts > 0.05 and cuts > 100 * follows
    uncertain = float(colour_affinity_loss(torch.zeros(1, 1, size, size), image, everywhere))
    assert uncertain == pytest.approx(0.5, abs=1e-3)  # p = 0.5 everywhere: half disagree


def test_the_affinity_regulariser_counts_only_the_weighted_pixels_and_pulls_them_in_line():
    from core.training.losses import colour_affinity_loss

    image, size = _two_colours(), 32
    logits = torch.full((1, 1, size, size), 2.0)
    logits[..., 8:10, 6:8] = -2.0  # one wrong block inside the uniform left half
    logits.requires_grad_(True)
    assert colour_affinity_loss(logits, image, torch.zeros(1, 1, size, size)).detach().item() == 0.0
    weight = torch.zeros(1, 1, size, size)
    weight[..., :, : size // 2] = 1.0  # the left half is unlabelled
    colour_affinity_loss(logits, image, weight).backward()
    grad = logits.grad[0, 0]
    assert float(grad[8:10, 6:8].max()) < 0  # descending raises the wrong block to roof
    assert float(grad[:, size // 2 + 3 :].abs().max()) < 1e-12  # the right half: not counted
