"""The marching-cubes lookup table Shap-E's mesh decoder reads from its weights.

diffusers' ``MeshDecoder`` keeps the table as two buffers (``cases``: 256 x 5 triangles of
cube-edge indices, ``masks``: which of the 5 are used) that a real checkpoint loads from its
safetensors. A freshly constructed decoder holds zeros, so a tiny random-weight Shap-E would
never emit a triangle. No library exposes a table in this decoder's corner and edge numbering,
so it is derived here from the cube's geometry: on each face the sign changes pair up into
segments, the segments close into loops, and each loop is fanned into triangles whose normals
point from the inside (field > 0) outwards. Ambiguous faces always cut off their inside
corners, the same choice on both sides of a face, so the surfaces of neighbouring cubes meet
without holes.

Numbering (as ``MeshDecoder.forward`` and ``_create_flat_edge_indices`` use it): corner
``c = x + 2y + 4z``; edges 0-3 run along x at (y, z) = (0,0), (1,0), (0,1), (1,1), edges 4-7
along y at (x, z) in the same order, edges 8-11 along z at (x, y).
"""

from __future__ import annotations

import numpy as np

MAX_TRIANGLES = 5

Point = tuple[int, int, int]
CORNERS: tuple[Point, ...] = tuple((c & 1, (c >> 1) & 1, (c >> 2) & 1) for c in range(8))


def _corner(x: int, y: int, z: int) -> int:
    return x + 2 * y + 4 * z


_OFFSETS = ((0, 0), (1, 0), (0, 1), (1, 1))
EDGES: tuple[tuple[int, int], ...] = (
    *((_corner(0, a, b), _corner(1, a, b)) for a, b in _OFFSETS),
    *((_corner(a, 0, b), _corner(a, 1, b)) for a, b in _OFFSETS),
    *((_corner(a, b, 0), _corner(a, b, 1)) for a, b in _OFFSETS),
)
_EDGE_INDEX = {frozenset(edge): index for index, edge in enumerate(EDGES)}


def _faces() -> list[list[int]]:
    """The six faces, each as its four corners in cyclic order."""
    faces = []
    for axis in range(3):
        for side in (0, 1):
            corners = [c for c in range(8) if CORNERS[c][axis] == side]
            ring = [corners[0]]
            while len(ring) < 4:
                ring.append(
                    next(
                        c
                        for c in corners
                        if c not in ring
                        and sum(a != b for a, b in zip(CORNERS[c], CORNERS[ring[-1]], strict=True)) == 1
                    )
                )
            faces.append(ring)
    return faces


def _segments(inside: list[bool]) -> dict[int, list[int]]:
    """Crossing edge -> the two crossing edges it is joined to (one per face it lies on)."""
    links: dict[int, list[int]] = {}
    for ring in _faces():
        edges = [_EDGE_INDEX[frozenset((ring[k], ring[(k + 1) % 4]))] for k in range(4)]
        crossing = [k for k in range(4) if inside[ring[k]] != inside[ring[(k + 1) % 4]]]
        if len(crossing) == 2:
            pairs = [(edges[crossing[0]], edges[crossing[1]])]
        elif len(crossing) == 4:  # ambiguous face: cut off each inside corner on its own
            pairs = [(edges[k - 1], edges[k]) for k in range(4) if inside[ring[k]]]
        else:
            pairs = []
        for a, b in pairs:
            links.setdefault(a, []).append(b)
            links.setdefault(b, []).append(a)
    return links


def _loops(links: dict[int, list[int]]) -> list[list[int]]:
    loops: list[list[int]] = []
    seen: set[int] = set()
    for start in sorted(links):
        if start in seen:
            continue
        loop, previous, current = [start], -1, start
        seen.add(start)
        while True:
            following = next((n for n in links[current] if n != previous and n not in seen), None)
            if following is None:
                break
            loop.append(following)
            seen.add(following)
            previous, current = current, following
        loops.append(loop)
    return loops


def _outward(triangle: list[int], inside: list[bool]) -> list[int]:
    """The triangle with its winding flipped if its normal points into the shape."""
    corners = np.asarray(CORNERS, dtype=np.float64)
    points = [(corners[EDGES[e][0]] + corners[EDGES[e][1]]) / 2 for e in triangle]
    normal = np.cross(points[1] - points[0], points[2] - points[0])
    outwards = sum(
        corners[b] - corners[a] if inside[a] else corners[a] - corners[b] for a, b in (EDGES[e] for e in triangle)
    )
    return triangle if float(normal @ outwards) > 0 else [triangle[0], triangle[2], triangle[1]]


def triangles_for(case: int) -> list[list[int]]:
    """The triangles (as cube-edge indices) for one of the 256 inside/outside corner patterns."""
    inside = [bool((case >> c) & 1) for c in range(8)]
    triangles = []
    for loop in _loops(_segments(inside)):
        for k in range(1, len(loop) - 1):
            triangles.append(_outward([loop[0], loop[k], loop[k + 1]], inside))
    return triangles


def lookup_table() -> tuple[np.ndarray, np.ndarray]:
    """``cases`` (256, 5, 3) int64 and ``masks`` (256, 5) bool, as MeshDecoder's buffers hold them."""
    cases = np.zeros((256, MAX_TRIANGLES, 3), dtype=np.int64)
    masks = np.zeros((256, MAX_TRIANGLES), dtype=bool)
    for case in range(256):
        triangles = triangles_for(case)
        if len(triangles) > MAX_TRIANGLES:
            raise RuntimeError(f"case {case} needs {len(triangles)} triangles")
        for index, triangle in enumerate(triangles):
            cases[case, index] = triangle
            masks[case, index] = True
    return cases, masks
