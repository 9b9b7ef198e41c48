"""`make demo`: convert every bundled example shape into ./dataset_info (a ready LLaMA-Factory dataset_dir),
validate the registry, and show how LLaMA-Factory will see one converted record."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lf_reasoning.commands.convert import ConvertOptions, convert, format_report
from lf_reasoning.llamafactory.validate import format_problems, validate_dataset_info
from lf_reasoning.record.inputs import Inputs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
OUT = ROOT / "dataset_info"


def main() -> None:
    start = time.perf_counter()
    os.chdir(ROOT)  # relative source paths in messages and rejects files
    for src in sorted(DATA.relative_to(ROOT).iterdir()):
        name = src.name.split(".")[0]
        t = time.perf_counter()
        options = ConvertOptions(Inputs((str(src),)), name, OUT.relative_to(ROOT), force=True)
        report = convert(options, log=lambda msg: print(f"  {msg}"))
        print(f"[{time.perf_counter() - t:5.2f} s] {name}")
        print("  " + format_report(report).replace("\n", "\n  "))
    print("\nlf-reasoning validate --dataset-dir dataset_info")
    print(format_problems(validate_dataset_info(OUT)))
    print(f"\ndemo finished in {time.perf_counter() - start:.1f} s; train with `dataset_dir: dataset_info`.")


if __name__ == "__main__":
    main()
