"""Run under the old torch (2.0.1): what it sees in each file named on the command line.

Prints one JSON object: `dtypes` (the dtype names this torch has) and, per path,
`weights_only` (whether `torch.load(weights_only=True)` accepts it; `refusal` says why not)
and `view` (torch_view.view of it, loading fully; `view_error` when even that fails).
Only ever run on files ckpt wrote from the committed fixtures, never on attack files.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

import torch  # noqa: E402

import torch_view  # noqa: E402


def main() -> None:
    report = {
        "torch": torch.__version__,
        "dtypes": sorted(
            torch_view.dtype_name(value) for value in vars(torch).values() if isinstance(value, torch.dtype)
        ),
        "files": {},
    }
    for name in sys.argv[1:]:
        entry: dict = {"weights_only": True, "refusal": None, "view": None, "view_error": None}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.load(name, weights_only=True, map_location="cpu")
        except Exception as error:  # noqa: BLE001 - any refusal is reported
            entry["weights_only"] = False
            entry["refusal"] = f"{type(error).__name__}: {error}"[:400]
        try:
            entry["view"] = torch_view.view(Path(name))
        except Exception as error:  # noqa: BLE001
            entry["view_error"] = f"{type(error).__name__}: {error}"[:400]
        report["files"][name] = entry
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
