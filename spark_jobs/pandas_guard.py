"""Keep pandas out of the jobs that use only pyarrow.

pyarrow imports pandas the first time it converts any Python or numpy object (``pa.array``,
``pa.scalar``, a compute call with a scalar argument), only to check whether the object is a pandas
one. That import costs about 0.2 s, which is a large part of a small incremental run's split or
ETL worker. These jobs never use pandas, so their entry points block its import before pyarrow
runs; pyarrow then behaves as when pandas is not installed, with the same results.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec


class _PandasBlocker:
    """A meta path finder that makes ``import pandas`` fail as if pandas were not installed.

    (``sys.modules["pandas"] = None`` is not enough: pyarrow's compiled import returns the None.)
    """

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (pandas is blocked in this job)", name=name)
        return None


def block_pandas_import() -> bool:
    """Make ``import pandas`` fail in this process from now on.

    Call it only from a job's ``__main__``: it holds for the whole process. Returns False and
    changes nothing when pandas is already imported.
    """
    if "pandas" in sys.modules or any(isinstance(f, _PandasBlocker) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _PandasBlocker())
    return True
