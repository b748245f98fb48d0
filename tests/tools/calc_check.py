#!/usr/bin/env python3
"""Opens a CSV export the way its readers do -- LibreOffice Calc, UTF-8,
formula evaluation on -- and checks it reads cell for cell with no live
formula.

Usage: calc_check.py FILE.csv OUTDIR

Converts FILE.csv to xlsx with soffice (the CSV import filter: comma
separated, double-quoted, UTF-8, formulas evaluated), reads it back with
openpyxl, and compares every cell with the CSV parsed by Python's csv
module. Prints one JSON line {"rows", "cells", "formulas", "mismatches"}
and exits 0 when there is no formula and no mismatch, 1 otherwise.
"""

import csv
import json
import os
import subprocess
import sys

import openpyxl

FILTER = "CSV:44,34,76,1,,,false,false,false,false,false,-1,true"


def main() -> int:
    src, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    subprocess.run(
        ["soffice", "--headless", "--norestore", f"-env:UserInstallation=file://{outdir}/profile",
         f"--infilter={FILTER}", "--convert-to", "xlsx", "--outdir", outdir, src],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
    )
    xlsx = os.path.join(outdir, os.path.splitext(os.path.basename(src))[0] + ".xlsx")
    wb = openpyxl.load_workbook(xlsx, data_only=False)
    ws = wb.active
    with open(src, newline="", encoding="utf-8-sig") as f:
        want = list(csv.reader(f))
    formulas = 0
    mismatches = []
    cells = 0
    for r, row in enumerate(want, start=1):
        for c, text in enumerate(row, start=1):
            cell = ws.cell(row=r, column=c)
            cells += 1
            if cell.data_type == "f":
                formulas += 1
                mismatches.append((r, c, text, str(cell.value)))
                continue
            got = cell.value
            if got is None:
                got = ""
            if isinstance(got, (int, float)) and not isinstance(got, bool):
                try:
                    same = float(text) == float(got)
                except ValueError:
                    same = False
            else:
                # Calc keeps text as is; line breaks come back as LF.
                same = str(got).replace("\r\n", "\n") == text.replace("\r\n", "\n").replace("\r", "\n") \
                    or str(got) == text
            if not same:
                mismatches.append((r, c, text, str(got)))
    print(json.dumps({"rows": len(want), "cells": cells, "formulas": formulas,
                      "mismatches": len(mismatches), "first": mismatches[:5]}))
    return 0 if formulas == 0 and not mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
