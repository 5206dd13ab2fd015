"""A procedural aerial scene of a suburb and its roof mask: the built-in demo data.

The scene is laid out on a street grid turned by a random angle (so roofs are not all axis
aligned), at about 0.3 m per pixel: asphalt streets with lane markings, blocks of plots with
houses (gable, hip and flat roofs; rectangular and L-shaped; terracotta, slate, brown and
concrete-grey roofs, the last the colour of the driveways), driveways and patios, lawns, the odd
pool, a few large flat-roofed buildings with car parks, cars, and trees whose crowns partly cover
roofs. Shadows fall on the ground in one sun direction. The mask marks roof pixels visible from
above (a tree over a roof is not roof in the mask).

Deterministic: the same ``seed`` and size give the same pixels. Torch-free and Qt-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core.errors import ConfigError
from core.io import ensure_folder, write_image, write_mask

MIN_SIZE, MAX_SIZE = 64, 20000
SUN = np.array([-0.55, -0.65, 0.52])  # light comes from the upper left
SUN = SUN / np.linalg.norm(SUN)
SHADOW_OFFSET = np.array([7.0, 9.0])  # (x, y) pixels a 2-storey house's shadow reaches

ROOF_COLOURS = np.array([
    (172, 84, 60), (150, 70, 52), (188, 112, 78),   # terracotta
    (78, 80, 86), (96, 100, 112), (62, 64, 70),     # slate / dark grey
    (118, 88, 66), (134, 110, 86),                  # brown
    (176, 174, 168), (160, 160, 156), (196, 192, 184),  # concrete-like greys
], dtype=np.float32)
CONCRETE = np.array((178, 176, 170), np.float32)
ASPHALT = np.array((92, 94, 98), np.float32)


@dataclass
class _Canvas:
    image: np.ndarray  # float32 (H, W, 3)
    roof: np.ndarray  # bool (H, W)
    ground_shadow: np.ndarray  # float32 (H, W), 1 = lit
    occupied: np.ndarray  # bool: buildings (shadow casters)
    rng: np.random.Generator

    @property
    def shape(self) -> tuple[int, int]:
        return self.roof.shape


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1] (random grid upsampled bicubically)."""
    h, w = shape
    gh, gw = max(2, h // scale + 2), max(2, w // scale + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    up = Image.fromarray(grid).resize((gw * scale, gh * scale), Image.Resampling.BICUBIC)
    return np.asarray(up)[:h, :w] / 1.5


def _polygon_mask(shape: tuple[int, int], points: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Rasterise a polygon into its bounding box: (slices, bool mask of the box)."""
    h, w = shape
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    img = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(img).polygon([(float(x - x0), float(y - y0)) for x, y in points], fill=1)
    return (slice(y0, y1), slice(x0, x1)), np.asarray(img, dtype=bool)


def _rect(cx: float, cy: float, half_u: float, half_v: float, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    corners = np.array([(-half_u, -half_v), (half_u, -half_v), (half_u, half_v), (-half_u, half_v)])
    return corners @ np.array([[c, s], [-s, c]]) + (cx, cy)


def _paint(canvas: _Canvas, points: np.ndarray, colour: np.ndarray, texture: float = 0.0) -> np.ndarray | None:
    hit = _polygon_mask(canvas.shape, points)
    if hit is None:
        return None
    sl, mask = hit
    region = canvas.image[sl]
    values = np.broadcast_to(colour, region.shape).copy()
    if texture:
        values += canvas.rng.normal(0, texture, region.shape[:2])[..., None]
    region[mask] = values[mask]
    return mask


def _roof(canvas: _Canvas, cx: float, cy: float, half_u: float, half_v: float, angle: float,
          kind: str, colour: np.ndarray) -> None:
    """A roof in its local frame (u along the ridge, v across), shaded face by face."""
    h, w = canvas.shape
    reach = math.hypot(half_u, half_v) + 2
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, w)
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    c, s = math.cos(angle), math.sin(angle)
    u, v = dx * c + dy * s, -dx * s + dy * c
    inside = (np.abs(u) <= half_u) & (np.abs(v) <= half_v)
    if not inside.any():
        return
    ex, ey = np.array([c, s]), np.array([-s, c])  # local axes in image coordinates
    pitch = 0.75
    if kind == "gable":
        normals = [(-ey, v < 0), (ey, v >= 0)]
    elif kind == "hip":
        d = np.stack([half_u + u, half_u - u, half_v + v, half_v - v])
        face = d.argmin(axis=0)
        normals = [(-ex, face == 0), (ex, face == 1), (-ey, face == 2), (ey, face == 3)]
    else:  # flat, with a parapet rim
        normals = [(np.zeros(2), np.ones_like(inside))]
        pitch = 0.0
    shade = np.ones(inside.shape, np.float32)
    for direction, where in normals:
        n = np.array([direction[0] * pitch, direction[1] * pitch, 1.0])
        n /= np.linalg.norm(n)
        light = 0.35 + 0.85 * max(float(n @ SUN), 0.0)
        shade[where] = light
    tex = 1.0 + 0.05 * np.sin((v if kind == "gable" else u) * 2.2 + canvas.rng.random() * 6)
    if kind == "flat":
        rim = (half_u - np.abs(u) < 2.0) | (half_v - np.abs(v) < 2.0)
        shade = np.where(rim, 1.18, 0.95 + 0.04 * canvas.rng.standard_normal(inside.shape))
        tex = 1.0
    if kind == "gable":  # a bright ridge line
        shade = np.where(np.abs(v) < 0.8, shade * 1.1, shade)
    values = colour[None, None, :] * (shade * tex)[..., None] / 1.02
    values += canvas.rng.normal(0, 4.0, values.shape[:2])[..., None]
    region = canvas.image[y0:y1, x0:x1]
    region[inside] = values[inside]
    canvas.roof[y0:y1, x0:x1] |= inside
    canvas.occupied[y0:y1, x0:x1] |= inside


def _cast_shadows(canvas: _Canvas, caster: np.ndarray, offset: np.ndarray, strength: float) -> None:
    """Darken the ground where ``caster`` shifted by ``offset`` lands (not the caster itself)."""
    ox, oy = int(round(offset[0])), int(round(offset[1]))
    h, w = caster.shape
    shifted = np.zeros_like(caster)
    shifted[max(oy, 0):h + min(oy, 0), max(ox, 0):w + min(ox, 0)] = \
        caster[max(-oy, 0):h - max(oy, 0), max(-ox, 0):w - max(ox, 0)]
    # the shadow also covers the strip between the building and its shifted copy
    steps = max(abs(ox), abs(oy))
    swept = shifted.copy()
    for i in range(1, steps):
        sx, sy = int(round(ox * i / steps)), int(round(oy * i / steps))
        swept[max(sy, 0):h + min(sy, 0), max(sx, 0):w + min(sx, 0)] |= \
            caster[max(-sy, 0):h - max(sy, 0), max(-sx, 0):w - max(sx, 0)]
    shadow = swept & ~caster
    canvas.ground_shadow[shadow] = np.minimum(canvas.ground_shadow[shadow], strength)


def _tree(canvas: _Canvas, cx: float, cy: float, radius: float, layer: np.ndarray, tint: np.ndarray) -> None:
    rng = canvas.rng
    h, w = canvas.shape
    r = int(radius * 1.5) + 2
    x0, x1, y0, y1 = max(int(cx) - r, 0), min(int(cx) + r, w), max(int(cy) - r, 0), min(int(cy) + r, h)
    if x1 <= x0 or y1 <= y0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    crown = np.zeros(yy.shape, bool)
    height = np.zeros(yy.shape, np.float32)
    for _ in range(rng.integers(3, 6)):
        bx, by = cx + rng.normal(0, radius * 0.35), cy + rng.normal(0, radius * 0.35)
        br = radius * rng.uniform(0.55, 0.85)
        d2 = ((xx - bx) ** 2 + (yy - by) ** 2) / br ** 2
        crown |= d2 <= 1
        height = np.maximum(height, np.sqrt(np.clip(1 - d2, 0, 1)))
    # light from the upper left: brighter on that side of each blob
    if min(height.shape) >= 3:
        gy, gx = np.gradient(height)
        light = np.clip(0.75 - 2.5 * (gx * SUN[0] + gy * SUN[1]) * radius / 6, 0.35, 1.25)
    else:
        light = np.full(height.shape, 0.75, np.float32)
    leaves = rng.normal(0, 0.12, yy.shape).astype(np.float32)
    colour = tint[None, None, :] * (light + leaves)[..., None]
    region = canvas.image[y0:y1, x0:x1]
    region[crown] = colour[crown]
    layer[y0:y1, x0:x1] |= crown


def _car(canvas: _Canvas, cx: float, cy: float, angle: float) -> None:
    rng = canvas.rng
    palette = np.array([(220, 220, 222), (30, 30, 34), (160, 162, 168), (150, 30, 30),
                        (40, 60, 130), (200, 190, 170), (90, 110, 90)], np.float32)
    colour = palette[rng.integers(len(palette))]
    _paint(canvas, _rect(cx, cy, 7.5, 3.6, angle), colour)
    _paint(canvas, _rect(cx + 1.2 * math.cos(angle), cy + 1.2 * math.sin(angle), 2.2, 2.8, angle),
           colour * 0.35 + 10)


def _house(canvas: _Canvas, cx: float, cy: float, angle: float, trees: list,
           street_dir: np.ndarray) -> None:
    """A house with driveway, maybe a patio and a pool, roof shape and colour at random."""
    rng = canvas.rng
    half_u, half_v = rng.uniform(15, 25), rng.uniform(11, 17)
    colour = ROOF_COLOURS[rng.integers(len(ROOF_COLOURS))] * rng.uniform(0.92, 1.08)
    kind = rng.choice(["gable", "gable", "hip", "hip", "flat"], p=[0.3, 0.15, 0.3, 0.15, 0.1])
    c, s = math.cos(angle), math.sin(angle)
    ex, ey = np.array([c, s]), np.array([-s, c])
    # driveway from the house front to the street (street_dir points from the house to the street)
    front = np.array([cx, cy]) + street_dir * half_v
    side = ex * rng.choice([-1, 1]) * (half_u - 6)
    drive_c = front + side + street_dir * 16
    _paint(canvas, _rect(*drive_c, 5.5, 18, angle) if abs(street_dir @ ey) > 0.7 else
           _rect(*drive_c, 18, 5.5, angle), CONCRETE * rng.uniform(0.92, 1.05), texture=4)
    if rng.random() < 0.35:
        _car(canvas, *(drive_c + street_dir * 6), angle + math.pi / 2 if abs(street_dir @ ey) > 0.7 else angle)
    back = np.array([cx, cy]) - street_dir * (half_v + 9)
    if rng.random() < 0.6:  # patio
        _paint(canvas, _rect(*back, rng.uniform(6, 12), 6, angle), CONCRETE * rng.uniform(0.85, 1.0), texture=3)
    if rng.random() < 0.14:  # pool
        pool_c = back - street_dir * 14 + ex * rng.uniform(-8, 8)
        _paint(canvas, _rect(*pool_c, 11, 6.5, angle), np.array((235, 235, 230), np.float32))
        _paint(canvas, _rect(*pool_c, 9, 4.5, angle), np.array((64, 176, 206), np.float32), texture=5)
    _roof(canvas, cx, cy, half_u, half_v, angle, kind, colour)
    if rng.random() < 0.3:  # L-shaped: a wing across the main roof
        wing_u, wing_v = rng.uniform(8, 12), rng.uniform(9, 14)
        sign = rng.choice([-1, 1])
        wc = np.array([cx, cy]) + ex * sign * (half_u - wing_u) - street_dir * (half_v + wing_v - 3)
        _roof(canvas, *wc, wing_v, wing_u, angle + math.pi / 2,
              "gable" if kind != "flat" else "flat", colour * rng.uniform(0.97, 1.03))
    # trees in the yard, some leaning over the roof
    for _ in range(rng.integers(0, 4)):
        t = np.array([cx, cy]) + ex * rng.uniform(-1.6, 1.6) * half_u - street_dir * rng.uniform(0.6, 2.8) * half_v
        trees.append((t, rng.uniform(6, 13)))


def make_scene(size: int = 2048, seed: int = 0, height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(image (H, W, 3) uint8, roof mask (H, W) bool)`` of a procedural suburb (module docstring)."""
    width = int(size)
    height = int(height if height is not None else size)
    for value, what in ((width, "size"), (height, "height")):
        if not MIN_SIZE <= value <= MAX_SIZE:
            raise ConfigError(f"scene {what} must be from {MIN_SIZE} to {MAX_SIZE} px, got {value}")
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-0.5, 0.5)
    # lay out on a larger canvas, then turn it and crop the middle
    side = int(math.ceil(math.hypot(width, height))) + 8
    shape = (side, side)
    base = np.array((96, 128, 70), np.float32)
    lawn = _smooth_noise(rng, shape, 48)[..., None] * np.array((14, 16, 9), np.float32)
    patches = _smooth_noise(rng, shape, 160)[..., None] * np.array((18, 14, 12), np.float32)
    image = base + lawn + patches + rng.normal(0, 6, (side, side, 1)).astype(np.float32)
    canvas = _Canvas(image=image.astype(np.float32), roof=np.zeros(shape, bool),
                     ground_shadow=np.ones(shape, np.float32), occupied=np.zeros(shape, bool), rng=rng)

    # streets: a jittered grid
    road_half = rng.uniform(9, 12)
    block_w, block_h = rng.uniform(230, 300), rng.uniform(150, 190)
    xs = np.arange(rng.uniform(-block_w, 0), side + block_w, block_w)
    ys = np.arange(rng.uniform(-block_h, 0), side + block_h, block_h)
    for y in ys:
        _paint(canvas, np.array([(0, y - road_half), (side, y - road_half), (side, y + road_half), (0, y + road_half)]),
               ASPHALT, texture=5)
    for x in xs:
        _paint(canvas, np.array([(x - road_half, 0), (x + road_half, 0), (x + road_half, side), (x - road_half, side)]),
               ASPHALT, texture=5)
    mark = np.array((214, 210, 196), np.float32)
    for y in ys:
        for x0 in np.arange(0, side, 28):
            _paint(canvas, _rect(x0 + 7, y, 6, 0.8, 0), mark)
    for x in xs:
        for y0 in np.arange(0, side, 28):
            _paint(canvas, _rect(x, y0 + 7, 0.8, 6, 0), mark)

    trees: list[tuple[np.ndarray, float]] = []
    for yi in range(len(ys) - 1):
        for xi in range(len(xs) - 1):
            bx0, bx1 = xs[xi] + road_half + 4, xs[xi + 1] - road_half - 4
            by0, by1 = ys[yi] + road_half + 4, ys[yi + 1] - road_half - 4
            if rng.random() < 0.08:  # a large flat-roofed building with a car park
                cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
                hu, hv = (bx1 - bx0) * rng.uniform(0.22, 0.32), (by1 - by0) * rng.uniform(0.25, 0.33)
                lot = _rect(cx, cy, (bx1 - bx0) / 2 - 3, (by1 - by0) / 2 - 3, 0)
                _paint(canvas, lot, ASPHALT * 1.05, texture=4)
                for lx in np.arange(bx0 + 8, bx1 - 8, 11):
                    _paint(canvas, _rect(lx, by1 - 14, 0.7, 9, 0), mark)
                    if rng.random() < 0.5:
                        _car(canvas, lx + 5.5, by1 - 14, math.pi / 2)
                colour = ROOF_COLOURS[rng.choice([3, 8, 9, 10])]
                _roof(canvas, cx, cy - 8, hu, hv, 0.0, "flat", colour)
                continue
            plot = rng.uniform(54, 64)
            for street_y, direction in ((by0, -1.0), (by1, 1.0)):
                x = bx0 + rng.uniform(2, 10)
                while x + plot <= bx1:
                    if rng.random() < 0.9:
                        jitter = rng.normal(0, 0.05) if rng.random() < 0.8 else rng.uniform(-0.4, 0.4)
                        cy = street_y - direction * rng.uniform(34, 42)
                        _house(canvas, x + plot / 2, cy, jitter, trees, np.array([0.0, direction]))
                    else:
                        trees.append((np.array([x + plot / 2, street_y - direction * 40]), rng.uniform(8, 15)))
                    x += plot
            # street trees and cars
            for _ in range(rng.integers(1, 5)):
                trees.append((np.array([rng.uniform(bx0, bx1), rng.choice([by0 + 3, by1 - 3])]), rng.uniform(6, 10)))
            for _ in range(rng.integers(0, 3)):
                _car(canvas, rng.uniform(bx0, bx1), ys[yi] + rng.choice([-1, 1]) * road_half / 2, 0.0)

    # building shadows on the ground, then trees (which also cast shadows, on roofs too)
    _cast_shadows(canvas, canvas.occupied, SHADOW_OFFSET, 0.55)
    canvas.image[~canvas.occupied] *= canvas.ground_shadow[~canvas.occupied][:, None]
    tree_layer = np.zeros(shape, bool)
    tints = np.array([(58, 88, 44), (48, 78, 40), (70, 96, 50), (54, 72, 46)], np.float32)
    for centre, radius in trees:
        _tree(canvas, centre[0], centre[1], radius, tree_layer, tints[rng.integers(len(tints))])
    tree_shadow = np.ones(shape, np.float32)
    shifted = np.zeros(shape, bool)
    ox, oy = 6, 8
    shifted[oy:, ox:] = tree_layer[:-oy, :-ox]
    tree_shadow[shifted & ~tree_layer] = 0.6
    canvas.image *= tree_shadow[..., None]
    roof = canvas.roof & ~tree_layer

    # turn the scene and crop the middle
    img = Image.fromarray(np.clip(canvas.image, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    degrees = math.degrees(angle)
    img = img.rotate(degrees, resample=Image.Resampling.BILINEAR)
    mask_img = Image.fromarray(roof.astype(np.float32)).rotate(degrees, resample=Image.Resampling.BILINEAR)
    top, left = (side - height) // 2, (side - width) // 2
    out_image = np.asarray(img)[top:top + height, left:left + width].astype(np.float32)
    out_image += rng.normal(0, 2.5, out_image.shape)
    out_mask = np.asarray(mask_img)[top:top + height, left:left + width] >= 0.5
    return np.clip(out_image, 0, 255).astype(np.uint8), np.ascontiguousarray(out_mask)


def write_demo(out_dir: str | Path, size: int = 2048, seed: int = 0) -> tuple[Path, Path]:
    """Write ``out_dir/image.png`` (RGB) and ``out_dir/labels.png`` (0/255)."""
    image, mask = make_scene(size=size, seed=seed)
    folder = ensure_folder(out_dir)
    return write_image(folder / "image.png", image), write_mask(folder / "labels.png", mask)
