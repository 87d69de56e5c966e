"""Croissant status of a dataset folder: does ``croissant.json`` validate, and how long until the
first record of each RecordSet (what the NeurIPS datasets-track checker times).

Run in a child process by the report (``python -m methbuild.report.croissant_check FILE``), so a
slow or stuck RecordSet cannot hold the report beyond its time limit; prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def check(path: str) -> dict:
    t0 = time.perf_counter()
    try:
        import mlcroissant as mlc
    except ImportError:
        return {"available": False, "error": "mlcroissant is not installed (pip install 'methbuild[croissant]')"}
    out: dict = {"available": True, "record_sets": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = mlc.Dataset(jsonld=path)
        except Exception as exc:  # noqa: BLE001 - mlcroissant raises many kinds; the report shows the message
            out.update(valid=False, error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
            return out
        out["valid"] = True
        out["load_seconds"] = round(time.perf_counter() - t0, 3)
        for rs in ds.metadata.record_sets:
            t1 = time.perf_counter()
            entry = {"name": rs.name or rs.id}
            try:
                next(iter(ds.records(rs.uuid if hasattr(rs, "uuid") else rs.name)))
                entry["first_record_seconds"] = round(time.perf_counter() - t1, 3)
            except StopIteration:
                entry["error"] = "no record"
            except Exception as exc:  # noqa: BLE001 - shown on the page, as the checker would report it
                entry["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            out["record_sets"].append(entry)
    out["warnings"] = sorted({str(w.message).splitlines()[0][:300] for w in caught
                              if "croissant" in str(w.filename).lower() or "mlcroissant" in str(w.message).lower()})
    return out


if __name__ == "__main__":
    print(json.dumps(check(sys.argv[1])))
