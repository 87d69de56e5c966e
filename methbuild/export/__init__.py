"""Export a built dataset to the formats people train from: WebDataset, Parquet (HF Hub), imagefolder.

- :mod:`methbuild.export.source` — what SRC is (MetH dataset, UltraMNIST folder, crawl folder) and its rows;
- :mod:`methbuild.export.plan` — samples with typed fields, then shards cut by count *and* bytes;
- :mod:`methbuild.export.writers` — one writer class per format (``write(sample)``, ``close()``), each
  shard under a temp name renamed when complete; the image bytes are never re-encoded;
- :mod:`methbuild.export.run` — resume (done records), parallel shards (:mod:`methbuild.executor`),
  ``index.parquet``, ``metadata.csv``, ``export.json``.

Class indices (``.cls``, ``ClassLabel``, imagefolder's ``label``) are the label's position in the
sorted list of class names (numerically sorted when the names are integers), the same in every format.
"""

from methbuild.export.plan import FORMATS
from methbuild.export.run import ExportResult, export

__all__ = ["FORMATS", "ExportResult", "export"]
