"""Link per-slice boxes into 3D findings, and measure them in millimetres.

The rules, in order:

1. Slices are visited in the order swept. A box may join a finding whose last box lies
   on the *previous swept slice* (with a step, the previous slice read, not the previous
   slice of the volume); a finding with no box on that slice is closed.
2. The box and the finding's last box must carry the same label (compared without case
   or surrounding spaces) and overlap: IoU of at least the threshold
   (``Settings.volume_link_iou``, default 0.3), or the centre of either box inside the
   other (a lesion shrinking towards its pole keeps a low IoU with its largest section).
3. When several boxes could join several findings, pairs are taken greedily by IoU, then
   by the distance between centres; each finding takes at most one box per slice and each
   box joins at most one finding. A box left over starts a new finding.
4. A finding seen on one swept slice only is kept, with ``isolated`` set.

Measures of a finding (the geometry comes from :mod:`.geometry`):

- key slice: the slice of its largest box (the earliest, on a tie);
- extent: the union of its boxes along columns and rows times the pixel spacing, and
  along slices the sum of the slab each of its swept slices stands for (the distance to
  the next swept slice), so a sphere of diameter D reads about D whatever the step;
- volume: the sum over its slices of box area x slab thickness, in ml. A box bounds the
  lesion's section, so this bounds its volume from above (a sphere reads about 4/pi of
  its true volume);
- centre: the centre of its 3D bounding box (box union on the rows and columns, midway
  between its first and last slice), mapped to patient coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .geometry import VolumeGeometry
from .results import Finding, FindingBox, SliceBox

__all__ = ["link_findings"]


@dataclass
class _Track:
    label: str
    boxes: list[tuple[int, SliceBox]] = field(default_factory=list)

    @property
    def last(self) -> tuple[int, SliceBox]:
        return self.boxes[-1]


def link_findings(
    per_slice: dict[int, list[SliceBox]],
    swept: list[int],
    geometry: VolumeGeometry,
    *,
    iou_threshold: float,
) -> list[Finding]:
    """The 3D findings in ``per_slice`` (boxes by slice index), following the module's
    rules.

    Args:
        per_slice: Boxes of each swept slice that answered (slices that failed are
            missing and break links, as a gap would).
        swept: The slice indices swept, sorted.
        geometry: Where the slices lie.
        iou_threshold: Least IoU that links two boxes (besides centre-inside).
    """
    open_tracks: list[_Track] = []
    done: list[_Track] = []
    previous: int | None = None
    for s in swept:
        boxes = per_slice.get(s)
        if boxes is None:  # a failed slice: nothing can link across it
            done += open_tracks
            open_tracks, previous = [], None
            continue
        live = [t for t in open_tracks if previous is not None and t.last[0] == previous]
        done += [t for t in open_tracks if t not in live]
        taken_tracks: set[int] = set()
        taken_boxes: set[int] = set()
        for _, _, ti, bi in sorted(_candidates(live, boxes, iou_threshold)):
            if ti in taken_tracks or bi in taken_boxes:
                continue
            live[ti].boxes.append((s, boxes[bi]))
            taken_tracks.add(ti)
            taken_boxes.add(bi)
        fresh = [
            _Track(_key(b.label), [(s, b)]) for i, b in enumerate(boxes) if i not in taken_boxes
        ]
        open_tracks = live + fresh
        previous = s
    done += open_tracks
    done.sort(key=lambda t: (t.boxes[0][0], t.boxes[0][1].box))
    slabs = geometry.slab_mm(swept)
    return [_finding(i + 1, t, geometry, slabs) for i, t in enumerate(done)]


def _candidates(
    tracks: list[_Track], boxes: list[SliceBox], threshold: float
) -> list[tuple[float, float, int, int]]:
    out = []
    for ti, track in enumerate(tracks):
        last = track.last[1]
        for bi, box in enumerate(boxes):
            if _key(box.label) != track.label:
                continue
            overlap = _iou(last.box, box.box)
            inside = _centre_inside(box.box, last.box) or _centre_inside(last.box, box.box)
            if overlap >= threshold or inside:
                out.append((-overlap, _distance(last.box, box.box), ti, bi))
    return out


def _finding(fid: int, track: _Track, geo: VolumeGeometry, slabs: dict[int, float]) -> Finding:
    slices = [s for s, _ in track.boxes]
    areas = [_area(b.box) for _, b in track.boxes]
    key = slices[areas.index(max(areas))]
    x1 = min(b.box[0] for _, b in track.boxes)
    y1 = min(b.box[1] for _, b in track.boxes)
    x2 = max(b.box[2] for _, b in track.boxes)
    y2 = max(b.box[3] for _, b in track.boxes)
    z_mm = sum(slabs[s] for s in slices)
    volume_mm3 = sum(
        a * geo.col_mm * geo.row_mm * slabs[s] for s, a in zip(slices, areas, strict=True)
    )
    # pixel edges -> pixel-centre coordinates (the centre of pixel c is at c + 0.5)
    centre = geo.to_patient((x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5, (slices[0] + slices[-1]) / 2)
    return Finding(
        id=fid,
        label=track.boxes[0][1].label,
        slice_range=(slices[0], slices[-1]),
        key_slice=key,
        boxes=[FindingBox(slice=s, box=b.box) for s, b in track.boxes],
        extent_mm=(
            round((x2 - x1) * geo.col_mm, 2),
            round((y2 - y1) * geo.row_mm, 2),
            round(z_mm, 2),
        ),
        volume_ml=round(volume_mm3 / 1000.0, 3),
        center_mm=centre,
        isolated=len(slices) == 1,
    )


def _key(label: str) -> str:
    return label.strip().lower()


def _area(b: tuple[float, float, float, float]) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = _area(a) + _area(b) - inter  # type: ignore[arg-type]
    return inter / union if union > 0 else 0.0


def _centre(b: tuple[float, ...]) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


def _centre_inside(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    cx, cy = _centre(a)
    return b[0] <= cx <= b[2] and b[1] <= cy <= b[3]


def _distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    return ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5
