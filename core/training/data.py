"""Training data: each image decoded once, random crops, augmentation, batches cut ahead.

See ``core.training`` for the recipe: crops with little roof drawn again (``balance``), the same
scale, flip and rotation for image and mask, colour jitter, blur and noise on the image only, and
on a GPU batches cut and augmented ahead in threads, each from its own seeded generator.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.dataset import Sample, require_labels
from core.errors import ImageReadError
from core.ground_resolution import (
    prediction_scale,
    resample_pair,
    sample_resolution,
    scaled_size,
)
from core.input_stretch import identity_table, stretch
from core.io import image_size, read_image, read_image_and_mask
from core.predict import predict_probabilities
from core.scribbles import read_scribble, target_and_known
from core.training.config import MIN_SIDE, TrainConfig


def has_full_label(sample: Sample) -> bool:
    return sample.label_path is not None and Path(sample.label_path).is_file()


def has_strokes(sample: Sample) -> bool:
    path = getattr(sample, "scribble_path", None)
    return path is not None and Path(path).is_file()


#: Labelled pixels kept per partly labelled image to draw crop centres from.
_MAX_CROP_CENTRES = 20_000


class ImageCache:
    """Decodes each image and its label once and keeps them as uint8 / bool arrays.

    An image with a full label (``label_path``) is learnt from everywhere; one with strokes only
    (``scribble_path``, :mod:`core.scribbles`) from its labelled pixels: :meth:`known` is then
    the map of labelled pixels (None for a full label) and :meth:`centres` a sample of them,
    around which its crops are cut.
    """

    def __init__(
        self,
        samples: list[Sample],
        input_stretch: str = "none",
        ground_resolution: float | None = None,
    ):
        self.samples = samples
        self.input_stretch = input_stretch
        #: The model's ground resolution (cm per pixel): an image whose own is known is
        #: resampled to it when decoded (:mod:`core.ground_resolution`); None: as they are.
        self.ground_resolution = ground_resolution
        self._scales: dict[int, float] = {}
        self._data: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(samples)
        self._known: dict[int, np.ndarray] = {}
        self._centres: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        item = self._data[index]
        if item is None:
            sample = self.samples[index]
            scale = self.scale(index)
            if has_full_label(sample) or not has_strokes(sample):
                image, mask = read_image_and_mask(sample.image_path, sample.label_path)
                if scale != 1.0:
                    image, mask = resample_pair(image, mask, scale)
            else:
                image = read_image(sample.image_path)
                codes = read_scribble(sample.scribble_path, image.shape[:2])
                if scale != 1.0:
                    image, codes = resample_pair(image, codes, scale)
                mask, known = target_and_known(codes)
                if not known.any():
                    raise ImageReadError(
                        "the stroke file has no labelled pixel", sample.scribble_path
                    )
                self._known[index] = known
                points = np.flatnonzero(known)
                if len(points) > _MAX_CROP_CENTRES:
                    points = np.random.default_rng(index).choice(
                        points, _MAX_CROP_CENTRES, replace=False
                    )
                self._centres[index] = points
            if min(image.shape[:2]) < MIN_SIDE:
                raise ImageReadError(
                    f"image is {image.shape[1]} x {image.shape[0]}; training needs at least "
                    f"{MIN_SIDE} px a side",
                    sample.image_path,
                )
            if self.input_stretch == "percentile":
                image = stretch(image)
            item = (image, mask)
            self._data[index] = item
        return item

    def scale(self, index: int) -> float:
        """How much image ``index`` is enlarged (> 1) or shrunk when decoded, to the model's
        ground resolution (1.0: its own resolution is unknown or the same)."""
        if self.ground_resolution is None:
            return 1.0
        if index not in self._scales:
            sample = self.samples[index]
            self._scales[index] = prediction_scale(
                self.ground_resolution, sample_resolution(sample), sample.image_path
            )
        return self._scales[index]

    def size(self, index: int) -> tuple[int, int]:
        """Width and height of image ``index`` as training sees it (its header only)."""
        w, h = image_size(self.samples[index].image_path)
        return scaled_size(w, h, self.scale(index))

    def partly_labelled(self) -> list[int]:
        """The images learnt from their strokes (no full label)."""
        return [i for i, s in enumerate(self.samples) if not has_full_label(s) and has_strokes(s)]

    def add_pseudo_labels(self, index: int, probability: np.ndarray, confidence: float) -> int:
        """Label the unlabelled pixels of partly labelled image ``index`` the model is sure of:
        roof where ``probability >= confidence``, background where it is ``<= 1 - confidence``
        (the strokes keep their labels). Returns how many pixels it labelled."""
        image, mask = self.get(index)
        known = self._known[index]
        roof = (probability >= confidence) & ~known
        ground = (probability <= 1.0 - confidence) & ~known
        mask = mask.copy()
        mask[roof] = True
        mask[ground] = False
        self._data[index] = (image, mask)
        self._known[index] = known | roof | ground
        return int(np.count_nonzero(roof) + np.count_nonzero(ground))

    def known(self, index: int) -> np.ndarray | None:
        """The labelled pixels of a partly labelled image (None: every pixel is labelled)."""
        self.get(index)
        return self._known.get(index)

    def centres(self, index: int) -> np.ndarray | None:
        """Flat indices of labelled pixels to centre crops on (None for a full label)."""
        self.get(index)
        return self._centres.get(index)


def _resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize a square crop and its mask to ``size`` (bilinear; the mask thresholded at 0.5)."""
    from PIL import Image

    im = np.asarray(
        Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.BILINEAR)
    )
    soft = Image.fromarray(np.ascontiguousarray(mask).astype(np.uint8) * 255)
    ma = np.asarray(soft.resize((size, size), Image.BILINEAR)) >= 128
    return im, ma


def _crop_origin(h: int, w: int, side: int, rng: np.random.Generator) -> tuple[int, int]:
    return int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))


def _crop_around(
    centres: np.ndarray, h: int, w: int, side: int, rng: np.random.Generator
) -> tuple[int, int]:
    """A crop origin that puts a random labelled pixel somewhere inside the crop."""
    cy, cx = divmod(int(centres[rng.integers(len(centres))]), w)
    y = cy - int(rng.integers(side))
    x = cx - int(rng.integers(side))
    return min(max(y, 0), h - side), min(max(x, 0), w - side)


def random_crop_batch(
    cache: ImageCache,
    indices: list[int],
    crop: int,
    rng: np.random.Generator,
    augment: bool,
    scale_jitter: float = 0.0,
    balance: float = 0.0,
    min_roof: float = 0.05,
    with_known: bool = False,
    coarsen: float = 0.0,
    zoom_out: float = 1.0,
):
    """A batch ``(N, crop, crop, 3) uint8`` and ``(N, crop, crop) bool`` of random crops (and,
    ``with_known``, the ``(N, crop, crop) bool`` labelled pixels, or None when every pixel of
    the batch is labelled).

    With ``augment``: a random scale (``scale_jitter``), flip and 90-degree rotation, the same
    for image and mask. With ``balance``: a crop with less than ``min_roof`` roof is drawn again
    with probability ``balance`` (at most three times). A partly labelled image's crop is cut
    around one of its labelled pixels (and not redrawn for balance). With ``coarsen``: that
    share of the crops have their image (not their mask) shrunk by a random factor of 1.25 to
    :data:`COARSEN_MAX` and enlarged back, as imagery of a coarser flight looks once resampled
    to the model's ground resolution. With ``zoom_out`` above 1: the scale is drawn from
    ``1 - scale_jitter`` up to ``zoom_out`` (log-uniform), so a crop may cover up to
    ``zoom_out`` times its side and be shrunk to it, roofs looking as they do in a coarser
    flight; a fully labelled image smaller than that side is mirrored at its edges
    (:func:`mirror_padded`), a partly labelled one caps the side at its own."""
    images = np.empty((len(indices), crop, crop, 3), np.uint8)
    masks = np.empty((len(indices), crop, crop), bool)
    knowns: np.ndarray | None = None
    for row, index in enumerate(indices):
        image, mask = cache.get(index)
        known = cache.known(index)
        h, w = mask.shape
        side = crop
        if augment and (scale_jitter > 0 or zoom_out > 1):
            lo, hi = math.log(1 - scale_jitter), math.log(max(1 + scale_jitter, zoom_out))
            side = int(round(crop * math.exp(rng.uniform(lo, hi))))
            if zoom_out > 1 and known is None and side > min(h, w):
                image, mask = mirror_padded(image, side), mirror_padded(mask, side)
                h, w = mask.shape
            side = max(MIN_SIDE // 2, min(side, h, w))
        if known is not None:
            y, x = _crop_around(cache.centres(index), h, w, side, rng)
        else:
            y, x = _crop_origin(h, w, side, rng)
            for _ in range(3):
                if balance <= 0 or mask[y : y + side, x : x + side].mean() >= min_roof:
                    break
                if rng.random() >= balance:
                    break
                y, x = _crop_origin(h, w, side, rng)
        im, ma = image[y : y + side, x : x + side], mask[y : y + side, x : x + side]
        kn = known[y : y + side, x : x + side] if known is not None else None
        if augment:
            k, flip = int(rng.integers(4)), rng.random() < 0.5
            im, ma = _orient(im, k, flip), _orient(ma, k, flip)
            if kn is not None:
                kn = _orient(kn, k, flip)
        if side != crop:
            im, ma = _resize_pair(im, ma, crop)
            if kn is not None:
                kn = _resize_nearest(kn, crop)
        if augment and coarsen > 0 and rng.random() < coarsen:
            im = coarsened(im, math.exp(rng.uniform(math.log(1.25), math.log(COARSEN_MAX))))
        images[row] = im
        masks[row] = ma
        if known is not None and knowns is None:
            knowns = np.ones((len(indices), crop, crop), bool)
        if knowns is not None:
            knowns[row] = kn if kn is not None else True
    if with_known:
        return images, masks, knowns
    return images, masks


def mirror_padded(array: np.ndarray, side: int) -> np.ndarray:
    """``array`` (H, W[, C]) mirrored at its edges, evenly on both sides, to at least ``side``
    px each way (a mirrored image with its mirrored mask is still a correctly labelled one)."""
    pad_h, pad_w = max(side - array.shape[0], 0), max(side - array.shape[1], 0)
    pads = [(pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)]
    return np.pad(array, pads + [(0, 0)] * (array.ndim - 2), mode="symmetric")


#: The coarsest a crop is made by ``coarsen``: a quarter of its resolution (1.2 m from 0.3 m).
COARSEN_MAX = 4.0


def coarsened(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` (H, W, 3 uint8) shrunk by ``factor`` (Pillow's antialiased bilinear filter) and
    enlarged back to its size: the detail a ``factor`` times coarser ground resolution keeps."""
    from PIL import Image

    h, w = image.shape[:2]
    small = scaled_size(w, h, 1 / factor)
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR))


def _orient(array: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate by ``k`` quarter turns, then flip left-right when ``flip`` (the same random
    orientation for image, mask and labelled pixels)."""
    if k:
        array = np.rot90(array, k)
    return array[:, ::-1] if flip else array


def _resize_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(mask).astype(np.uint8) * 255)
    return np.asarray(im.resize((size, size), Image.NEAREST)) >= 128


#: RGB <-> YIQ (hue rotation turns the I/Q plane around the luma axis).
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def photometric_jitter(
    x: torch.Tensor, rng: np.random.Generator, strength: float = 1.0
) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue per image of an ``(N, 3, H, W)`` batch in
    [0, 1], then a slight blur (15 % of images) or Gaussian noise (20 %); geometry is untouched,
    so the mask stays valid. Returns a new tensor in [0, 1]."""
    n = x.shape[0]
    dev, dt = x.device, x.dtype
    mats = []
    for _ in range(n):
        angle = rng.uniform(-0.15, 0.15) * strength  # hue, radians
        sat = 1 + rng.uniform(-0.25, 0.25) * strength
        c, s_ = math.cos(angle), math.sin(angle)
        rot = np.array([[1, 0, 0], [0, sat * c, -sat * s_], [0, sat * s_, sat * c]])
        mats.append(_YIQ2RGB @ rot @ _RGB2YIQ)
    mat = torch.as_tensor(np.stack(mats), dtype=dt, device=dev)
    y = torch.einsum("nij,njhw->nihw", mat, x)
    bright = torch.as_tensor(1 + rng.uniform(-0.2, 0.2, n) * strength, dtype=dt, device=dev)
    contrast = torch.as_tensor(1 + rng.uniform(-0.2, 0.2, n) * strength, dtype=dt, device=dev)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * contrast.view(n, 1, 1, 1) + mean * bright.view(n, 1, 1, 1)
    blur = rng.random(n) < 0.15 * strength
    noise = (~blur) & (rng.random(n) < 0.2 * strength)
    for i in np.flatnonzero(blur):
        sigma = rng.uniform(0.4, 1.0)
        k = torch.exp(-(torch.arange(-1, 2, dtype=dt, device=dev) ** 2) / (2 * sigma**2))
        k = (k[:, None] * k[None, :]) / k.sum() ** 2
        y[i] = F.conv2d(
            F.pad(y[i : i + 1], (1, 1, 1, 1), mode="replicate"),
            k.expand(3, 1, 3, 3).contiguous(),
            groups=3,
        )[0]
    for i in np.flatnonzero(noise):
        gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**31)))
        y[i] += (torch.randn(y[i].shape, generator=gen) * rng.uniform(0.005, 0.03)).to(dev, dt)
    return y.clamp_(0.0, 1.0).contiguous(memory_format=torch.channels_last)


def to_input_tensor(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``(N, H, W, 3) uint8`` (numpy or a CPU tensor, pinned for a fast copy to a GPU) ->
    ``(N, 3, H, W)`` float in [0, 1] on ``device``, channels-last memory."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.require(images, requirements=["C", "W"]))
    tensor = images.to(device, non_blocking=True)
    return (
        tensor.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)
    )


@dataclass
class PreparedBatch:
    """One training batch cut and augmented on the CPU, not yet on the device."""

    images: torch.Tensor  # (N, crop, crop, 3) uint8
    masks: torch.Tensor  # (N, crop, crop) bool
    known: torch.Tensor | None  # (N, crop, crop) bool labelled pixels; None: all of them
    rng: np.random.Generator  # the batch's own generator, for what follows on the device


class BatchLoader:
    """Cuts and augments training batches, ``threads`` batches ahead in background threads (0:
    in the calling thread, when asked).

    Each batch has its own random generator seeded from the run's, so the batches are the same
    whatever the number of threads and however they are scheduled. numpy copies and Pillow's
    resize release the GIL, so the threads overlap with the training step; on a GPU that keeps
    the device from waiting for the CPU. With ``pin`` the batches are in pinned memory, which a
    GPU copies from asynchronously.
    """

    def __init__(
        self, cache: ImageCache, crop: int, config: TrainConfig, threads: int, pin: bool = False
    ) -> None:
        self.cache, self.crop, self.config, self.pin = cache, crop, config, pin
        self.depth = threads
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="rooftop-batches") if threads else None
        )

    def _prepare(self, indices: list[int], seed: int) -> PreparedBatch:
        cfg = self.config
        rng = np.random.default_rng(seed)
        images, masks, known = random_crop_batch(
            self.cache,
            indices,
            self.crop,
            rng,
            cfg.augment,
            cfg.scale_jitter,
            cfg.balance,
            cfg.min_roof,
            with_known=True,
            coarsen=cfg.coarsen,
            zoom_out=cfg.zoom_out,
        )
        images_t, masks_t = torch.from_numpy(images), torch.from_numpy(masks)
        known_t = torch.from_numpy(known) if known is not None else None
        if self.pin:
            images_t, masks_t = images_t.pin_memory(), masks_t.pin_memory()
            known_t = known_t.pin_memory() if known_t is not None else None
        return PreparedBatch(images_t, masks_t, known_t, rng)

    def epoch(self, plan: list[tuple[list[int], int]]) -> Iterator[PreparedBatch]:
        """The batches of ``plan`` (indices and seed of each), in order. Batches prepared ahead
        and not taken (the caller stopped) are dropped."""
        if self._pool is None:
            for indices, seed in plan:
                yield self._prepare(indices, seed)
            return
        pending: deque[Future[PreparedBatch]] = deque()
        upcoming = iter(plan)
        try:
            for indices, seed in upcoming:
                pending.append(self._pool.submit(self._prepare, indices, seed))
                if len(pending) > self.depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def add_pseudo_labels(
    model: torch.nn.Module, cache: ImageCache, device: torch.device, config: TrainConfig
) -> int:
    """Self-training: each partly labelled image of ``cache`` also learns from the pixels
    ``model`` is sure of (``config.pseudo_labels``); returns how many pixels were labelled."""
    added = 0
    for index in cache.partly_labelled():
        image, _mask = cache.get(index)  # already stretched as the model expects
        probability = predict_probabilities(
            model, image, device=device, precision=config.precision, stretch_table=identity_table()
        )
        added += cache.add_pseudo_labels(index, probability, config.pseudo_labels)
    model.train()
    return added


#: From this many training images on, validation holds out at least two.
MIN_SAMPLES_FOR_TWO_VAL = 8


def split_validation(
    samples: list[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Random ``fraction`` of the training samples for validation (at least one when > 0, two
    from :data:`MIN_SAMPLES_FOR_TWO_VAL` images on).

    When some images have full labels and others strokes only, validation is drawn from the
    fully labelled ones (at most half of them, so training keeps some), since a full label
    scores the whole image; with strokes only, held-out strokes validate.
    """
    if fraction <= 0 or len(samples) < 2:
        return list(samples), []
    rng = np.random.default_rng(seed)
    full = [i for i, s in enumerate(samples) if has_full_label(s)]
    pool = full if full and len(full) < len(samples) else list(range(len(samples)))
    least = 2 if len(samples) >= MIN_SAMPLES_FOR_TWO_VAL else 1  # one tile alone is too noisy
    n_val = min(len(samples) - 1, max(least, int(round(len(samples) * fraction))))
    if pool is full:
        n_val = min(n_val, max(1, len(full) // 2))
    order = rng.permutation(len(pool))
    val_idx = {pool[i] for i in order[:n_val].tolist()}
    train = [s for i, s in enumerate(samples) if i not in val_idx]
    val = [s for i, s in enumerate(samples) if i in val_idx]
    return train, val


def labelled_samples(samples: list[Sample]) -> list[Sample]:
    """The samples training can learn from: every one must have a full label, unless some have
    strokes: then those with a full label or strokes (the others are not labelled yet)."""
    if not any(has_strokes(s) for s in samples):
        require_labels(samples, "training")
        return list(samples)
    return [s for s in samples if has_full_label(s) or has_strokes(s)]
