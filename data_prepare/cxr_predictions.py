"""CXR ensemble predictions (18 class scores per image) as consumed by the expert-aware converters.

Two layouts are read:

* one JSON file ``{image path: {class: score}}``, what ``vila-m3 predict <image_dir> <output_json>`` (the CXR
  expert's batch verb, :func:`vila_m3_core.experts.cxr.predict_folder`) writes, keys relative to its image folder;
* a folder with one JSON per image (``<image>.json``, e.g. the reference's ``<dicom>.jpg.json``), scores as floats
  or strings such as ``"0.5123"``, optionally nested under ``"scores"``.

Thresholding and wording come from :mod:`vila_m3_core.experts.feedback`, the module inference uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.feedback import CXR_CLASSES, cxr_findings

#: the reference threshold: a class is present when its ensemble score is > 0.5
CXR_THRESHOLD = 0.5


class PredictionError(ValueError):
    """The predictions of one image are absent or unusable; the message is the drop reason."""


def _scores(data: Any) -> dict[str, float]:
    if isinstance(data, dict) and isinstance(data.get("scores"), dict):
        data = data["scores"]
    if not isinstance(data, dict):
        raise PredictionError("predictions are not a JSON object of class scores")
    missing = [name for name in CXR_CLASSES if name not in data]
    if missing:
        raise PredictionError(f"predictions lack {len(missing)} of the 18 classes")
    try:
        return {name: float(data[name]) for name in CXR_CLASSES}
    except (TypeError, ValueError) as err:
        raise PredictionError("predictions hold a non-numeric score") from err


class CXRPredictions:
    """Look up the ensemble scores of an image in a predictions file or folder.

    Args:
        path: the ``predict`` verb's JSON file or a folder of per-image JSON files.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.table: dict[str, Any] | None = None
        self.by_name: dict[str, list[str]] = {}
        if self.path.is_file():
            try:
                table = json.loads(self.path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise VilaM3Error(f"CXR predictions {self.path} are not valid JSON ({err})") from err
            if not isinstance(table, dict):
                raise VilaM3Error(f"CXR predictions {self.path} must map image paths to class scores")
            self.table = table
            for key in table:
                self.by_name.setdefault(Path(key).name, []).append(key)
                self.by_name.setdefault(Path(key).stem, []).append(key)
        elif not self.path.is_dir():
            raise VilaM3Error(f"CXR predictions {self.path} do not exist (pass the predict verb's JSON or a folder)")

    def _file_candidates(self, image: str, extra_names: Sequence[str]) -> list[Path]:
        path = Path(image)
        names = [f"{image}.json", str(path.with_suffix(".json")), f"{path.name}.json", f"{path.stem}.json"]
        names += [f"{name}.json" for name in extra_names]
        return [self.path / name for name in dict.fromkeys(names)]

    def scores(self, image: str, extra_names: Sequence[str] = ()) -> dict[str, float]:
        """The 18 class scores of ``image`` (a record's relative image path) in ``CXR_CLASSES`` order.

        Lookup: the exact path, then a unique match of its file name or stem, then ``extra_names`` (e.g. the
        CheXpert patient id).

        Raises:
            PredictionError: absent, ambiguous or unusable predictions (the message is the drop reason).
        """
        if self.table is not None:
            if image in self.table:
                return _scores(self.table[image])
            for name in (Path(image).name, Path(image).stem, *extra_names):
                keys = self.by_name.get(name, [])
                if len(set(keys)) > 1:
                    raise PredictionError("ambiguous predictions (several images share the file name)")
                if keys:
                    return _scores(self.table[keys[0]])
            raise PredictionError("prediction missing")
        for candidate in self._file_candidates(image, extra_names):
            if candidate.is_file():
                try:
                    return _scores(json.loads(candidate.read_text(encoding="utf-8")))
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    raise PredictionError("prediction file is not valid JSON") from err
        raise PredictionError("prediction missing")

    def findings(self, image: str, extra_names: Sequence[str] = ()) -> dict[str, bool]:
        """Yes/no per class with the reference threshold (``> 0.5``), in ``CXR_CLASSES`` order."""
        return cxr_findings(self.scores(image, extra_names), threshold=CXR_THRESHOLD, inclusive=False)
