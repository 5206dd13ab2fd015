"""A procedural aerial scene of a suburb and its roof mask: the built-in demo data.

The scene is about 0.3 m per pixel, seen from straight above. A family of parallel streets at a
random angle (curving gently in most scenes) is joined by short cross streets with staggered
T-junctions, sometimes crossed by a wider straight road. Streets are asphalt with a dashed centre
line, a grass verge and a sidewalk. Houses stand along both sides of every street, turned with the
street: rectangular and L-shaped footprints, gable, hip and (rarely) flat roofs, shaded face by
face from one sun direction, in terracotta, slate, brown and concrete-grey (the last the colour of
the driveways and patios, so colour alone does not separate roofs from ground), with tile
texture, ridges, chimneys and the odd solar panel. Each plot has a lawn of its own tint, a
driveway to the street (concrete, pavers or asphalt), often a patio or deck, sometimes a pool, a
shed or a hedge, and parked cars. A few large flat-roofed buildings stand in car parks. Buildings
cast shadows on the ground (never on their own roof); trees, in yards, along streets and in
clumps, cast shadows on anything and partly cover roofs. A light blur and sensor noise finish it.

The mask marks the roof pixels visible from above: where a tree crown covers a roof the mask is 0.

Deterministic: all randomness comes from ``numpy.random.default_rng(seed)``, so the same seed and
size give the same pixels. Torch-free and Qt-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core.errors import ConfigError
from core.io import ensure_folder, write_image, write_mask

MIN_SIZE, MAX_SIZE = 64, 20000

#: Unit vector towards the sun in image coordinates (x right, y down, z up): light from the upper
#: left, so shadows fall towards the lower right.
SUN = np.array([-0.55, -0.65, 0.52])
SUN = SUN / np.linalg.norm(SUN)
_SHADOW_DIR = -SUN[:2] / np.linalg.norm(SUN[:2])
_HOUSE_SHADOW = 10.0  # px a house's shadow reaches on the ground
_BIG_SHADOW = 24.0
_TREE_SHADOW = 9.0

# ground materials (indices into _MATERIALS); drawn into one uint8 "material" image
GRASS, CONCRETE, SIDEWALK, ASPHALT, PAVERS, DECK, RIM, WATER, MARKING, SOIL, HEDGE, GRAVEL = range(
    12
)
_MATERIALS = np.array(
    [
        (96, 124, 64),  # grass
        (178, 175, 166),  # concrete (driveways, patios)
        (188, 185, 176),  # sidewalk
        (82, 84, 88),  # asphalt
        (160, 100, 80),  # brick pavers
        (140, 106, 76),  # wooden deck
        (224, 222, 214),  # pool rim
        (62, 170, 204),  # pool water
        (226, 222, 204),  # lane marking
        (138, 124, 88),  # bare soil
        (50, 78, 40),  # hedge
        (150, 146, 136),  # gravel
    ],
    np.float32,
)
# per-pixel noise (grey levels) and low-frequency variation (fraction) of each material
_FINE = np.array([7, 4, 3, 4, 6, 5, 2, 3, 3, 8, 10, 9], np.float32)
_LOW = np.array(
    [0.10, 0.05, 0.03, 0.06, 0.05, 0.05, 0.02, 0.06, 0.02, 0.10, 0.10, 0.06], np.float32
)

_ROOF_COLOURS = np.array(
    [
        (168, 88, 64),
        (152, 78, 56),
        (184, 112, 84),
        (146, 86, 68),  # terracotta
        (72, 74, 80),
        (90, 92, 100),
        (58, 60, 66),
        (104, 110, 118),  # slate / dark grey
        (114, 86, 64),
        (130, 102, 80),
        (98, 76, 60),  # brown
        (172, 170, 162),
        (184, 180, 172),
        (158, 156, 150),  # concrete-like greys
    ],
    np.float32,
)
_ROOF_WEIGHTS = np.array([3, 2, 2, 1.5, 2, 2, 1.5, 1, 1.5, 1.5, 1, 1.5, 1.5, 1.5])
_ROOF_WEIGHTS = _ROOF_WEIGHTS / _ROOF_WEIGHTS.sum()
_FLAT_COLOURS = np.array(
    [(190, 188, 182), (212, 211, 205), (112, 110, 106), (176, 166, 146), (150, 150, 146)],
    np.float32,
)
_CAR_COLOURS = np.array(
    [
        (225, 225, 228),
        (28, 28, 32),
        (160, 162, 168),
        (150, 28, 30),
        (38, 58, 128),
        (200, 192, 172),
        (86, 104, 88),
        (110, 112, 118),
    ],
    np.float32,
)
_LENS = ImageFilter.Kernel((3, 3), [1, 4, 1, 4, 16, 4, 1, 4, 1], 36)
_TREE_TINTS = np.array(
    [(60, 90, 44), (48, 76, 40), (74, 98, 50), (54, 70, 46), (86, 100, 52), (40, 62, 44)],
    np.float32,
)


_SIGNS = np.array([(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)])


@dataclass
class _RoofPart:
    centre: np.ndarray  # (x, y)
    eu: np.ndarray  # unit vector along u (the ridge of a gable)
    hu: float
    hv: float
    kind: str  # "gable", "hip" or "flat"

    def corners(self, grow: float = 0.0) -> np.ndarray:
        ev = np.array([-self.eu[1], self.eu[0]])
        hu, hv = self.hu + grow, self.hv + grow
        return self.centre + _SIGNS[:, :1] * (hu * self.eu) + _SIGNS[:, 1:] * (hv * ev)


@dataclass
class _Building:
    parts: list[_RoofPart]
    colour: np.ndarray
    height: float  # shadow length in px
    texture: str  # "tile", "shingle", "smooth" or "flat"
    extras: dict = field(default_factory=dict)


@dataclass
class _Scene:
    rng: np.random.Generator
    width: int
    height: int
    mat: ImageDraw.ImageDraw  # material ids
    var: ImageDraw.ImageDraw  # per-object brightness, 128 = neutral
    lawn: ImageDraw.ImageDraw  # per-plot lawn tint, 128 = neutral
    reserved: np.ndarray  # bool: roads and placed things, for collision tests
    buildings: list[_Building] = field(default_factory=list)
    cars: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (centre, direction)
    trees: list[tuple[float, float, float]] = field(default_factory=list)  # (x, y, radius)
    hedges: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def visible(self, point: np.ndarray, margin: float) -> bool:
        return (
            -margin <= point[0] <= self.width + margin
            and -margin <= point[1] <= self.height + margin
        )


# ---------------------------------------------------------------------------------------- helpers


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: int) -> np.ndarray:
    """Low-frequency noise, roughly in [-1, 1] (a random grid upsampled bicubically)."""
    h, w = shape
    gh, gw = h // scale + 3, w // scale + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    up = Image.fromarray(grid).resize((gw * scale, gh * scale), Image.Resampling.BICUBIC)
    oy, ox = int(rng.integers(scale)), int(rng.integers(scale))
    return np.asarray(up)[oy : oy + h, ox : ox + w] * 0.7


def _box(shape: tuple[int, int], points: np.ndarray) -> tuple[int, int, int, int] | None:
    h, w = shape
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _raster(
    shape: tuple[int, int], points: np.ndarray
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """A convex polygon rasterised in its bounding box: (slices, bool mask of the box).

    A pixel is inside when its centre is (half-plane tests against every edge).
    """
    box = _box(shape, points)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    px = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5
    py = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
    nxt = np.roll(points, -1, axis=0)
    orient = (
        1.0 if float(np.sum(points[:, 0] * nxt[:, 1] - nxt[:, 0] * points[:, 1])) >= 0 else -1.0
    )
    inside = np.ones((y1 - y0, x1 - x0), bool)
    for (ax, ay), (bx, by) in zip(points, nxt, strict=True):
        inside &= ((bx - ax) * (py - ay) - (by - ay) * (px - ax)) * orient >= 0
    return (slice(y0, y1), slice(x0, x1)), inside


def _quad(
    centre: np.ndarray, eu: np.ndarray, ev: np.ndarray, u0: float, u1: float, v0: float, v1: float
) -> np.ndarray:
    """The rectangle u0..u1 x v0..v1 in the frame (centre, eu, ev)."""
    uv = np.array([(u0, v0), (u1, v0), (u1, v1), (u0, v1)])
    return centre + uv[:, :1] * eu + uv[:, 1:] * ev


def _pts(points: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


def _free(scene: _Scene, rect: np.ndarray) -> bool:
    """True when nothing is reserved inside the rectangle ``rect`` (4 corners), sampled every 2 px."""
    a, b = rect[1] - rect[0], rect[3] - rect[0]
    na = int(math.hypot(*a) / 2) + 2
    nb = int(math.hypot(*b) / 2) + 2
    ga, gb = np.linspace(0, 1, na)[:, None, None], np.linspace(0, 1, nb)[None, :, None]
    pts = (rect[0] + ga * a + gb * b).reshape(-1, 2)
    h, w = scene.reserved.shape
    x, y = pts[:, 0].astype(np.intp), pts[:, 1].astype(np.intp)
    ok = (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (x < w) & (y < h)
    return not scene.reserved[y[ok], x[ok]].any()


def _reserve(scene: _Scene, polygon: np.ndarray) -> None:
    hit = _raster(scene.reserved.shape, polygon)
    if hit is not None:
        sl, m = hit
        scene.reserved[sl] |= m


def _draw(scene: _Scene, polygon: np.ndarray, material: int, brightness: float = 1.0) -> None:
    pts = _pts(polygon)
    scene.mat.polygon(pts, fill=material)
    scene.var.polygon(pts, fill=min(max(int(128 * brightness), 1), 255))


# ---------------------------------------------------------------------------------------- layout


@dataclass
class _Street:
    points: np.ndarray  # (N, 2) polyline
    half: float  # half width of the asphalt
    dashed: bool

    def __post_init__(self) -> None:
        seg = np.diff(self.points, axis=0)
        self.cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
        self.length = float(self.cum[-1])

    def at(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        """Point and unit tangent at arclength ``s``."""
        i = min(max(int(np.searchsorted(self.cum, s)), 1), len(self.points) - 1)
        a, b = self.points[i - 1], self.points[i]
        t = (s - self.cum[i - 1]) / max(self.cum[i] - self.cum[i - 1], 1e-9)
        tangent = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
        return a + (b - a) * t, tangent


_VERGE, _WALK = 5.0, 5.0  # grass verge and sidewalk widths (px)


def _streets(rng: np.random.Generator, width: int, height: int) -> list[_Street]:
    theta = rng.uniform(0, math.pi)
    d = np.array([math.cos(theta), math.sin(theta)])
    n = np.array([-d[1], d[0]])
    centre = np.array([width / 2, height / 2])
    reach = 0.5 * math.hypot(width, height) + 200
    spacing = rng.uniform(205, 240)
    amp = 0.0 if rng.random() < 0.3 else rng.uniform(35, 80)
    wavelength, phase = rng.uniform(1100, 2000), rng.uniform(0, 2 * math.pi)

    def bend(s: np.ndarray | float) -> np.ndarray | float:
        return amp * np.sin(2 * math.pi * np.asarray(s) / wavelength + phase)

    half = rng.uniform(10, 12)
    s = np.arange(-reach, reach + 10, 10.0)
    offsets = np.arange(rng.uniform(-spacing, 0) - reach, reach + spacing, spacing)
    streets = [
        _Street(centre + s[:, None] * d + (o + bend(s))[:, None] * n, half, True) for o in offsets
    ]
    # cross streets between neighbouring main streets, staggered (T-junctions)
    block = rng.uniform(430, 650)
    stations = np.arange(rng.uniform(-block, 0) - reach, reach + block, block)
    for o0, o1 in zip(offsets[:-1], offsets[1:], strict=True):
        for s0 in stations:
            if rng.random() < 0.72:
                s1 = s0 + rng.uniform(-60, 60)
                b = float(bend(s1))
                p0, p1 = centre + s1 * d + (o0 + b) * n, centre + s1 * d + (o1 + b) * n
                streets.append(_Street(np.linspace(p0, p1, 3), half * rng.uniform(0.9, 1.0), False))
    # sometimes a wider straight road across the grain
    if rng.random() < 0.55 and max(width, height) >= 700:
        phi = theta + rng.choice([-1, 1]) * rng.uniform(0.35, 1.1)
        e = np.array([math.cos(phi), math.sin(phi)])
        through = centre + rng.uniform(-0.3, 0.3, 2) * (width, height)
        t = np.arange(-reach * 1.4, reach * 1.4, 12.0)
        streets.append(_Street(through + t[:, None] * e, half * 1.35, True))
    return streets


def _house(scene: _Scene, street: _Street, s: float, side: int) -> float | None:
    """Try to put a house on the plot at arclength ``s`` on ``side``; its plot width, or None."""
    rng = scene.rng
    p, eu = street.at(s)
    ev = np.array([-eu[1], eu[0]]) * side  # away from the street
    edge = street.half + _VERGE + _WALK  # distance of the plot front from the street centre
    hu, hv = rng.uniform(16, 27), rng.uniform(12, 18)
    setback = rng.uniform(9, 24)
    centre = p + ev * (edge + setback + hv)
    gap = rng.uniform(7, 16)
    plot_w = 2 * hu + gap
    parts = [_RoofPart(centre, eu if rng.random() < 0.8 else ev, hu, hv, "")]
    if parts[0].eu is ev:  # ridge across the street: swap the half sizes to keep the footprint
        parts[0] = _RoofPart(centre, ev, hv, hu, "")
    if rng.random() < 0.32:  # L-shape: a wing at one end, backwards (or forwards)
        wu, wv = rng.uniform(7, 11), rng.uniform(8, 15)
        end = rng.choice([-1, 1])
        back = 1 if rng.random() < 0.75 else -1
        wing_c = centre + eu * end * (hu - wu) + ev * back * (hv + wv - 2)
        if back < 0 and setback < wv * 2 + 4:
            back = 1
            wing_c = centre + eu * end * (hu - wu) + ev * (hv + wv - 2)
        parts.append(_RoofPart(wing_c, ev, wv, wu, ""))
    footprint = [part.corners(grow=3.0) for part in parts]
    if not all(_free(scene, f) for f in footprint):
        return None
    # driveway from the house front at one end to the street
    dw = rng.uniform(5, 7)
    end = rng.choice([-1, 1])
    du = end * (hu - dw - rng.uniform(0, 5))
    front = setback + edge
    drive = _quad(p, eu, ev, du - dw, du + dw, street.half * 0.6, front + 1)
    drive_check = _quad(p, eu, ev, du - dw, du + dw, edge + 2, front - 1)
    if not _free(scene, drive_check):
        return None
    for f in footprint:
        _reserve(scene, f)
    _reserve(scene, _quad(p, eu, ev, -hu - gap / 2, hu + gap / 2, edge, front + 2 * hv + 6))

    # plot: its own lawn tint, then the paved things
    depth = rng.uniform(70, 95)
    plot = _quad(p, eu, ev, -plot_w / 2, plot_w / 2, edge, edge + depth)
    scene.lawn.polygon(_pts(plot), fill=int(rng.uniform(100, 156)))
    surface = rng.choice([CONCRETE, CONCRETE, CONCRETE, PAVERS, ASPHALT, GRAVEL])
    _draw(scene, drive, int(surface), rng.uniform(0.9, 1.08))
    if rng.random() < 0.4:
        scene.cars.append((p + eu * du + ev * (front - rng.uniform(8, 14)), ev))
    back_v = front + 2 * hv
    if rng.random() < 0.55:  # patio or deck behind the house
        pu = rng.uniform(-hu * 0.5, hu * 0.5)
        patio = _quad(
            p,
            eu,
            ev,
            pu - rng.uniform(6, 13),
            pu + rng.uniform(6, 13),
            back_v - 1,
            back_v + rng.uniform(7, 12),
        )
        _draw(
            scene,
            patio,
            int(rng.choice([CONCRETE, CONCRETE, DECK, PAVERS])),
            rng.uniform(0.88, 1.05),
        )
    if rng.random() < 0.14:  # pool
        pv = back_v + rng.uniform(16, 22)
        pu = rng.uniform(-hu * 0.4, hu * 0.4)
        pl, pw = rng.uniform(9, 14), rng.uniform(5, 7)
        rim = _quad(p, eu, ev, pu - pl - 2, pu + pl + 2, pv - pw - 2, pv + pw + 2)
        if _free(scene, rim):
            _draw(scene, rim, RIM)
            _draw(
                scene,
                _quad(p, eu, ev, pu - pl, pu + pl, pv - pw, pv + pw),
                WATER,
                rng.uniform(0.9, 1.1),
            )
            _reserve(scene, rim)
    if rng.random() < 0.12:  # shed in a back corner
        sc = p + eu * rng.choice([-1, 1]) * (plot_w / 2 - 8) + ev * (back_v + rng.uniform(20, 30))
        shed = _RoofPart(sc, eu, rng.uniform(4, 6), rng.uniform(3.5, 5), "gable")
        if _free(scene, shed.corners(1)):
            _reserve(scene, shed.corners(1))
            colour = _ROOF_COLOURS[rng.choice(len(_ROOF_COLOURS), p=_ROOF_WEIGHTS)]
            scene.buildings.append(_Building([shed], colour * rng.uniform(0.9, 1.1), 5.0, "smooth"))
    if rng.random() < 0.35:  # a hedge along one side of the plot
        hs = rng.choice([-1, 1]) * plot_w / 2
        scene.hedges.append(
            (
                p + eu * hs + ev * (edge + rng.uniform(2, 10)),
                p + eu * hs + ev * (edge + depth * rng.uniform(0.6, 1.0)),
            )
        )

    # the roof
    kind = str(rng.choice(["gable", "hip", "flat"], p=[0.5, 0.42, 0.08]))
    colour = _ROOF_COLOURS[rng.choice(len(_ROOF_COLOURS), p=_ROOF_WEIGHTS)] * rng.uniform(
        0.92, 1.08
    )
    for part in parts:
        part.kind = kind if kind != "hip" or part is parts[0] else "gable"
    extras = {}
    if kind != "flat" and rng.random() < 0.2:
        extras["solar"] = bool(rng.random() < 0.5)
    if kind != "flat" and rng.random() < 0.3:
        extras["chimney"] = (rng.uniform(-0.7, 0.7), rng.uniform(-0.6, 0.6))
    texture = "flat" if kind == "flat" else str(rng.choice(["tile", "shingle", "smooth"]))
    scene.buildings.append(
        _Building(parts, colour, _HOUSE_SHADOW * rng.uniform(0.85, 1.2), texture, extras)
    )

    # trees: in the back yard, some leaning over the roof; a street tree in the verge
    for _ in range(int(rng.integers(0, 4))):
        tc = (
            p + eu * rng.uniform(-0.5, 0.5) * plot_w + ev * (front + rng.uniform(0.3, 2.6) * 2 * hv)
        )
        scene.trees.append((float(tc[0]), float(tc[1]), rng.uniform(6, 14)))
    if rng.random() < 0.45:
        tc = p + eu * rng.uniform(-hu, hu) + ev * (street.half + _VERGE / 2)
        scene.trees.append((float(tc[0]), float(tc[1]), rng.uniform(5, 10)))
    return plot_w


def _big_building(scene: _Scene, street: _Street, s: float, side: int) -> bool:
    """A large flat-roofed building at the back of a car park facing the street."""
    rng = scene.rng
    p, eu = street.at(s)
    ev = np.array([-eu[1], eu[0]]) * side
    edge = street.half + _VERGE + _WALK
    hu, hv = rng.uniform(45, 105), rng.uniform(32, 60)
    lot_depth = rng.uniform(34, 50)
    lot = _quad(p, eu, ev, -hu - 14, hu + 14, edge + 3, edge + lot_depth + 2 * hv + 10)
    if not _free(scene, lot):
        return False
    _reserve(scene, lot)
    _draw(
        scene,
        _quad(p, eu, ev, -hu - 12, hu + 12, street.half * 0.6, edge + lot_depth + 2 * hv + 8),
        ASPHALT,
        rng.uniform(1.0, 1.15),
    )
    # parking bays along the lot, cars in some of them
    row_v = edge + lot_depth * 0.5
    for u in np.arange(-hu - 6, hu + 6, 10.0):
        scene.mat.line(
            _pts(np.array([p + eu * u + ev * (row_v - 9), p + eu * u + ev * (row_v + 9)])),
            fill=MARKING,
            width=1,
        )
        if rng.random() < 0.55:
            scene.cars.append((p + eu * (u + 5) + ev * row_v, ev))
    centre = p + ev * (edge + lot_depth + hv)
    colour = _FLAT_COLOURS[rng.integers(len(_FLAT_COLOURS))] * rng.uniform(0.95, 1.05)
    parts = [_RoofPart(centre, eu, hu, hv, "flat")]
    if rng.random() < 0.4:  # a lower wing
        wu, wv = rng.uniform(18, 30), rng.uniform(hv * 0.5, hv * 0.9)
        parts.append(
            _RoofPart(centre + eu * rng.choice([-1, 1]) * (hu + wu - 1), eu, wu, wv, "flat")
        )
        if not _free(scene, parts[-1].corners(2)):
            parts.pop()
        else:
            _reserve(scene, parts[-1].corners(2))
    units = [
        (rng.uniform(-0.8, 0.8), rng.uniform(-0.7, 0.7)) for _ in range(int(rng.integers(2, 7)))
    ]
    scene.buildings.append(
        _Building(parts, colour, _BIG_SHADOW * rng.uniform(0.8, 1.3), "flat", {"units": units})
    )
    return True


def _fill_extra_houses(scene: _Scene, target: float) -> None:
    """Small scenes: add houses in free spots until roofs cover ``target`` of the image."""
    rng = scene.rng
    for _ in range(300):
        if _roof_share(scene) >= target:
            return
        c = rng.uniform(0, 1, 2) * (scene.width, scene.height)
        a = rng.uniform(0, math.pi)
        eu = np.array([math.cos(a), math.sin(a)])
        part = _RoofPart(
            c, eu, rng.uniform(16, 26), rng.uniform(12, 17), str(rng.choice(["gable", "hip"]))
        )
        if _free(scene, part.corners(3)):
            _reserve(scene, part.corners(3))
            colour = _ROOF_COLOURS[rng.choice(len(_ROOF_COLOURS), p=_ROOF_WEIGHTS)]
            scene.buildings.append(
                _Building(
                    [part],
                    colour * rng.uniform(0.92, 1.08),
                    _HOUSE_SHADOW,
                    str(rng.choice(["tile", "shingle", "smooth"])),
                )
            )


def _roof_share(scene: _Scene) -> float:
    total = 0.0
    for b in scene.buildings:
        for part in b.parts:
            box = _box(scene.reserved.shape, part.corners())
            if box is not None:  # area of the part clipped to the image, roughly
                x0, y0, x1, y1 = box
                full = _box((10**9, 10**9), part.corners() + 10**6)
                fa = (full[2] - full[0]) * (full[3] - full[1])
                total += 4 * part.hu * part.hv * (x1 - x0) * (y1 - y0) / max(fa, 1)
    return total / (scene.width * scene.height)


# ---------------------------------------------------------------------------------------- render


def _uniform_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean noise with unit standard deviation (uniform, much faster than normal)."""
    return (rng.random(shape, dtype=np.float32) - 0.5) * np.float32(math.sqrt(12))


def _render_ground(scene: _Scene, mat: np.ndarray, var: np.ndarray, lawn: np.ndarray) -> np.ndarray:
    rng = scene.rng
    shape = mat.shape
    low_a = _smooth_noise(rng, shape, 24)
    low_b = _smooth_noise(rng, shape, 96)
    low_c = _smooth_noise(rng, shape, 300)
    grass = (mat == GRASS).astype(np.float32)
    tint = (lawn.astype(np.float32) - 128.0) * (grass / 128.0)
    # lawns: per-plot tint and dry patches; elsewhere each material's own variation
    dry = np.clip(0.5 * low_c + 0.35 * low_b + 0.25 * tint - 0.15, 0, 1) * (0.6 * grass)
    bright = var.astype(np.float32) * np.float32(1 / 128.0)
    bright *= 1 + _LOW[mat] * (0.6 * low_a + 0.6 * low_b) + 0.1 * tint
    bright *= 1 - dry
    image = _MATERIALS[mat]
    image *= bright[..., None]
    image += (_uniform_noise(rng, shape) * _FINE[mat])[..., None]
    image += dry[..., None] * np.array((150, 140, 92), np.float32)
    return image


def _hedges(scene: _Scene) -> None:
    rng = scene.rng
    for a, b in scene.hedges:
        scene.mat.line(_pts(np.array([a, b])), fill=HEDGE, width=int(rng.integers(3, 5)))


def _visible_points(scene: _Scene, street: _Street, margin: float) -> list[tuple[float, float]]:
    p = street.points
    keep = (
        (p[:, 0] >= -margin)
        & (p[:, 0] <= scene.width + margin)
        & (p[:, 1] >= -margin)
        & (p[:, 1] <= scene.height + margin)
    )
    keep[:-1] |= keep[1:]  # keep the neighbours of visible points so segments reach the edge
    keep[1:] |= keep[:-1].copy()
    return _pts(p[keep])


def _roads(scene: _Scene, streets: list[_Street], which: str) -> None:
    for st in streets:
        pts = _visible_points(scene, st, 40)
        if len(pts) < 2:
            continue
        if which == "walks":
            scene.mat.line(pts, fill=SIDEWALK, width=int(2 * (st.half + _VERGE + _WALK)))
            scene.var.line(pts, fill=128, width=int(2 * (st.half + _VERGE + _WALK)))
        elif which == "verges":
            scene.mat.line(pts, fill=GRASS, width=int(2 * (st.half + _VERGE)))
        else:
            scene.mat.line(pts, fill=ASPHALT, width=int(2 * st.half))
            scene.var.line(pts, fill=128, width=int(2 * st.half))
    if which != "asphalt":
        return
    for st in streets:
        if not st.dashed:
            continue
        for s0 in np.arange(4.0, st.length - 12, 26.0):
            a, _ = st.at(s0)
            if not scene.visible(a, 20):
                continue
            b, _ = st.at(s0 + 11)
            scene.mat.line(_pts(np.array([a, b])), fill=MARKING, width=2)


def _prism_shadow(draw: ImageDraw.ImageDraw, corners: np.ndarray, offset: np.ndarray) -> None:
    """The ground shadow of a box standing on ``corners``: footprint swept by ``offset``."""
    shifted = corners + offset
    draw.polygon(_pts(shifted), fill=255)
    for i in range(4):
        j = (i + 1) % 4
        draw.polygon(_pts(np.array([corners[i], corners[j], shifted[j], shifted[i]])), fill=255)


def _paint_roof(
    image: np.ndarray, roof: np.ndarray, rng: np.random.Generator, b: _Building, part: _RoofPart
) -> None:
    h, w = roof.shape
    box = _box((h, w), part.corners(1.0))
    if box is None:
        return
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx + 0.5 - part.centre[0], yy + 0.5 - part.centre[1]
    eu = part.eu
    ev = np.array([-eu[1], eu[0]])
    u, v = dx * eu[0] + dy * eu[1], dx * ev[0] + dy * ev[1]
    au, av = np.abs(u), np.abs(v)
    inside = (au <= part.hu) & (av <= part.hv)
    if not inside.any():
        return
    pitch = math.radians(rng.uniform(28, 40))
    sp, cp = math.sin(pitch), math.cos(pitch)

    def light(direction: np.ndarray) -> float:
        n = np.array([direction[0] * sp, direction[1] * sp, cp])
        return 0.5 + 0.6 * max(float(n @ SUN), 0.0)

    flat_light = 0.5 + 0.6 * SUN[2]
    to_eave = np.minimum(part.hu - au, part.hv - av)
    if part.kind == "gable":
        shade = np.where(v < 0, light(-ev), light(ev)) / flat_light
        slope = part.hv - av  # distance down from the ridge... up from the eave
        ridge = av < 0.9
    elif part.kind == "hip":
        end = (part.hu - au) < (part.hv - av)
        shade = (
            np.where(
                end, np.where(u < 0, light(-eu), light(eu)), np.where(v < 0, light(-ev), light(ev))
            )
            / flat_light
        )
        slope = to_eave
        ridge = (np.abs((part.hu - au) - (part.hv - av)) < 0.8) | (
            (av < 0.9) & (au < part.hu - part.hv)
        )
    else:
        shade = np.full(u.shape, 1.0, np.float32)
        slope = to_eave
        ridge = np.zeros(u.shape, bool)
    colour = b.colour
    tex = np.ones(u.shape, np.float32)
    if b.texture == "tile":
        period = rng.uniform(2.4, 3.2)
        tex += 0.07 * np.sin(2 * math.pi * slope / period)
        tex += 0.03 * np.sin(2 * math.pi * (u if part.kind != "hip" else u + v) / 1.7)
    elif b.texture == "shingle":
        tex += 0.05 * np.sin(2 * math.pi * slope / 2.0)
    noise = rng.standard_normal(u.shape).astype(np.float32)
    blotch = np.asarray(
        Image.fromarray(
            rng.standard_normal((max(2, (y1 - y0) // 8 + 2), max(2, (x1 - x0) // 8 + 2))).astype(
                np.float32
            )
        ).resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
    )
    values = colour[None, None, :] * (shade * tex * (1 + 0.04 * blotch))[..., None]
    values += (noise * (6.0 if b.texture == "flat" else 4.0))[..., None]
    if part.kind == "flat":
        rim = to_eave < 2.2
        inner = (to_eave >= 2.2) & (to_eave < 3.4)
        values[rim] *= 1.15
        # the parapet's shadow on the inside, on the sun-away sides
        sun_u, sun_v = float(-_SHADOW_DIR @ eu), float(-_SHADOW_DIR @ ev)
        away = inner & (
            ((part.hu - au < 3.4) & (u * sun_u > 0)) | ((part.hv - av < 3.4) & (v * sun_v > 0))
        )
        values[away] *= 0.8
        for cu, cv in b.extras.get("units", []):  # roof-top units
            uc, vc = cu * (part.hu - 8), cv * (part.hv - 8)
            unit = (np.abs(u - uc) < 3.5) & (np.abs(v - vc) < 2.5)
            values[unit] = (205, 205, 200)
            sh = (
                ~unit
                & (np.abs(u - uc - 2.0 * (_SHADOW_DIR @ eu)) < 3.5)
                & (np.abs(v - vc - 2.0 * (_SHADOW_DIR @ ev)) < 2.5)
            )
            values[sh & inside] *= 0.7
    else:
        values[ridge] *= 1.1
        values[to_eave < 1.0] *= 0.82
        if "solar" in b.extras:
            side = 1 if b.extras["solar"] else -1
            pu = (au < part.hu * 0.62) & (v * side > part.hv * 0.18) & (v * side < part.hv * 0.85)
            grid = (np.mod(u, 5.0) < 0.8) | (np.mod(v, 3.4) < 0.7)
            values[pu] = (
                np.where(grid[pu][:, None], (70, 78, 96), (34, 42, 66)) * shade[pu][:, None]
            )
        if "chimney" in b.extras:
            cu, cv = b.extras["chimney"]
            uc, vc = cu * part.hu, cv * part.hv
            ch = (np.abs(u - uc) < 1.8) & (np.abs(v - vc) < 1.8)
            sh = (
                ~ch
                & (np.abs(u - uc - 2.5 * (_SHADOW_DIR @ eu)) < 1.8)
                & (np.abs(v - vc - 2.5 * (_SHADOW_DIR @ ev)) < 1.8)
            )
            values[sh] *= 0.6
            values[ch] = (120, 100, 90)
    region = image[y0:y1, x0:x1]
    region[inside] = values[inside]
    roof[y0:y1, x0:x1] |= inside


def _paint_car(
    image: np.ndarray,
    rng: np.random.Generator,
    centre: np.ndarray,
    direction: np.ndarray,
    shade: np.ndarray,
) -> None:
    colour = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] * rng.uniform(0.9, 1.05)
    ev = np.array([-direction[1], direction[0]])
    shape = image.shape[:2]
    parts = [
        (_quad(centre + _SHADOW_DIR * 2.2, direction, ev, -7.5, 7.5, -3.4, 3.4), None),
        (_quad(centre, direction, ev, -7.5, 7.5, -3.3, 3.3), colour),
        (_quad(centre, direction, ev, 1.5, 4.0, -2.6, 2.6), colour * 0.25 + 15),  # windscreen
        (_quad(centre, direction, ev, -5.0, -3.6, -2.5, 2.5), colour * 0.3 + 12),  # rear window
    ]
    for polygon, fill in parts:
        hit = _raster(shape, polygon)
        if hit is None:
            continue
        sl, m = hit
        region = image[sl]
        if fill is None:
            region[m] *= 0.55
        else:
            region[m] = fill * shade[sl][m][:, None]


def _paint_tree(
    image: np.ndarray,
    layer: np.ndarray,
    rng: np.random.Generator,
    x: float,
    y: float,
    radius: float,
) -> None:
    h, w = layer.shape
    r = int(radius * 1.6) + 2
    x0, x1, y0, y1 = max(int(x) - r, 0), min(int(x) + r, w), max(int(y) - r, 0), min(int(y) + r, h)
    if x1 <= x0 or y1 <= y0:
        return
    yy = np.arange(y0, y1, dtype=np.float32)[:, None]
    xx = np.arange(x0, x1, dtype=np.float32)[None, :]
    crown = np.zeros((y1 - y0, x1 - x0), bool)
    height = np.zeros((y1 - y0, x1 - x0), np.float32)
    conifer = rng.random() < 0.15
    blobs = 1 if conifer else int(rng.integers(3, 7))
    for _ in range(blobs):
        spread = 0.0 if conifer else radius * 0.38
        bx, by = x + rng.normal(0, spread), y + rng.normal(0, spread)
        br = radius * (0.8 if conifer else rng.uniform(0.5, 0.8))
        d2 = (xx - bx) ** 2 + (yy - by) ** 2
        d2 *= 1.0 / br**2
        crown |= d2 <= 1
        np.maximum(height, np.sqrt(np.maximum(1 - d2, 0)) * br, out=height)
    if not crown.any():
        return
    if min(height.shape) >= 2:
        gy, gx = np.gradient(height)
        lit = np.clip(0.78 + 0.9 * -(gx * SUN[0] + gy * SUN[1]), 0.4, 1.3)
    else:
        lit = np.full(height.shape, 0.8, np.float32)
    leaves = rng.standard_normal(((y1 - y0 + 1) // 2, (x1 - x0 + 1) // 2)).astype(np.float32)
    leaves = np.repeat(np.repeat(leaves, 2, 0), 2, 1)[: y1 - y0, : x1 - x0]
    tint = _TREE_TINTS[rng.integers(len(_TREE_TINTS))] * (0.8 if conifer else rng.uniform(0.9, 1.1))
    shade = lit * (1 + 0.16 * leaves) * (0.75 + 0.25 * np.clip(height / max(radius * 0.5, 1), 0, 1))
    region = image[y0:y1, x0:x1]
    region[crown] = (tint[None, None, :] * shade[..., None])[crown]
    layer[y0:y1, x0:x1] |= crown


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    h, w = mask.shape
    out = np.zeros_like(mask)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


# ---------------------------------------------------------------------------------------- API


def _check_size(value: int, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"scene {what} must be a whole number of pixels, got {value!r}") from None
    if number != value or not MIN_SIZE <= number <= MAX_SIZE:
        raise ConfigError(f"scene {what} must be from {MIN_SIZE} to {MAX_SIZE} px, got {value}")
    return number


def make_scene(
    size: int = 2048, seed: int = 0, height: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(image (H, W, 3) uint8 RGB, roof mask (H, W) bool)`` of a procedural suburb.

    ``size`` is the width (and the height unless ``height`` is given), in pixels, from 64 to
    20000. The same ``seed`` and sizes always give the same pixels. See the module docstring.
    """
    width = _check_size(size, "size")
    height = _check_size(height if height is not None else size, "height")
    rng = np.random.default_rng(seed)
    mat_img = Image.new("L", (width, height), GRASS)
    var_img = Image.new("L", (width, height), 128)
    lawn_img = Image.new("L", (width, height), 128)
    corridor = Image.new("L", (width, height), 0)
    scene = _Scene(
        rng,
        width,
        height,
        ImageDraw.Draw(mat_img),
        ImageDraw.Draw(var_img),
        ImageDraw.Draw(lawn_img),
        np.zeros((height, width), bool),
    )

    streets = _streets(rng, width, height)
    cdraw = ImageDraw.Draw(corridor)
    for st in streets:
        pts = _visible_points(scene, st, 60)
        if len(pts) < 2:
            continue
        cdraw.line(pts, fill=1, width=int(2 * (st.half + _VERGE + _WALK)) + 2)
    scene.reserved |= np.asarray(corridor, dtype=bool)
    _roads(scene, streets, "walks")
    _roads(scene, streets, "verges")

    # a few large buildings first (about one per 0.8 megapixel), then houses along every street
    n_big = rng.poisson(width * height / 800_000)
    for _ in range(n_big * 4):
        if n_big <= 0:
            break
        st = streets[int(rng.integers(len(streets)))]
        s = rng.uniform(0, st.length)
        if scene.visible(st.at(s)[0], -40) and _big_building(
            scene, st, s, int(rng.choice([-1, 1]))
        ):
            n_big -= 1
    for st in streets:
        for side in (1, -1):
            s = rng.uniform(0, 25)
            while s < st.length:
                if not scene.visible(st.at(s)[0], 90):
                    s += 40.0
                    continue
                plot = None if rng.random() < 0.07 else _house(scene, st, s, side)
                s += plot if plot is not None else rng.uniform(10, 20)
    _fill_extra_houses(scene, 0.09)

    # park trees and clumps in whatever grass is left
    n_free = int(width * height / 2600)
    free_xy = rng.uniform(0, 1, (n_free, 2)) * (width, height)
    for x, y in free_xy:
        if not scene.reserved[int(y), int(x)]:
            for _ in range(int(rng.integers(1, 4)) if rng.random() < 0.3 else 1):
                scene.trees.append(
                    (x + rng.normal(0, 10), y + rng.normal(0, 10), rng.uniform(6, 15))
                )

    _hedges(scene)
    _roads(scene, streets, "asphalt")
    mat = np.asarray(mat_img)
    image = _render_ground(scene, mat, np.asarray(var_img), np.asarray(lawn_img))

    # building shadows on the ground
    shadow_img = Image.new("L", (width, height), 0)
    sdraw = ImageDraw.Draw(shadow_img)
    for b in scene.buildings:
        for part in b.parts:
            _prism_shadow(sdraw, part.corners(), _SHADOW_DIR * b.height)
    shadow_img = shadow_img.filter(ImageFilter.BoxBlur(1))
    shade = 1.0 - 0.5 * np.asarray(shadow_img, dtype=np.float32) / 255.0
    image *= shade[..., None]
    for centre, direction in scene.cars:
        _paint_car(image, rng, centre, direction, shade)
    for st in streets:  # cars on the streets, in their lanes
        for s in np.arange(rng.uniform(0, 120), st.length, 120.0):
            if rng.random() < 0.35:
                p, t = st.at(s + rng.uniform(0, 60))
                if scene.visible(p, 10):
                    lane = rng.choice([-1, 1])
                    n = np.array([-t[1], t[0]])
                    _paint_car(image, rng, p + n * lane * st.half * 0.48, t * lane, shade)

    roof = np.zeros((height, width), bool)
    for b in scene.buildings:
        for part in b.parts:
            _paint_roof(image, roof, rng, b, part)

    trees = np.zeros((height, width), bool)
    for x, y, r in scene.trees:
        if scene.visible(np.array([x, y]), 2 * r):
            _paint_tree(image, trees, rng, x, y, r)
    off = _SHADOW_DIR * _TREE_SHADOW
    tree_shadow = _shift(trees, int(round(off[0])), int(round(off[1]))) & ~trees
    soft = np.asarray(
        Image.fromarray(tree_shadow.astype(np.uint8) * 255).filter(ImageFilter.BoxBlur(1)),
        dtype=np.float32,
    )
    image *= (1.0 - 0.42 * soft / 255.0)[..., None]
    mask = roof & ~trees

    # optics (a blur of about 0.6 px) and sensor noise
    np.clip(image, 0, 255, out=image)
    out = Image.fromarray(image.astype(np.uint8)).filter(_LENS)
    final = np.asarray(out, dtype=np.float32)
    final += _uniform_noise(rng, (height, width, 1)) * 1.8
    final += _uniform_noise(rng, (height, width, 3)) * 1.4
    np.clip(final, 0, 255, out=final)
    return final.astype(np.uint8), np.ascontiguousarray(mask)


def write_demo(out_dir: str | Path, size: int = 2048, seed: int = 0) -> tuple[Path, Path]:
    """Write ``out_dir/image.png`` (RGB) and ``out_dir/labels.png`` (0/255); return both paths.

    Raises :class:`core.errors.ConfigError` for a size outside 64..20000 before writing anything.
    """
    image, mask = make_scene(size=size, seed=seed)
    folder = ensure_folder(out_dir)
    return write_image(folder / "image.png", image), write_mask(folder / "labels.png", mask)
