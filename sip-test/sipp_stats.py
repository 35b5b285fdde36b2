#!/usr/bin/env python3
"""Check a SIPp run's final counters against expectations.

Usage: sipp_stats.py DIR CHECK...

DIR holds `stat.csv` (written by `-trace_stat -stf stat.csv`) and, optionally,
one `*_counts.csv` (written by `-trace_counts`). A CHECK is `NAME OP NUMBER`
with OP one of == != >= <= > <, for example `SuccessfulCall(C)==200`,
`Retransmissions(C)>0` or `2_404_Retrans==0`. NAME is a column of the last
row of stat.csv or of the counts file. A NAME may contain `*` to sum every
matching counts column (`*_Timeout==0`).

Prints one line: the values seen (on success) or what failed, and exits 0
when every check holds, 1 otherwise, 2 when the files are missing.
"""
import csv
import fnmatch
import glob
import operator
import os
import re
import sys

OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
CHECK = re.compile(r"^(.+?)(==|!=|>=|<=|>|<)(-?\d+)$")


def last_row(path: str) -> dict:
    """The header zipped with the last data row of a `;`-separated SIPp CSV."""
    with open(path, newline="", encoding="latin-1") as fh:
        rows = [r for r in csv.reader(fh, delimiter=";") if r]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: sipp_stats.py DIR CHECK...", file=sys.stderr)
        return 2
    folder = sys.argv[1]
    stat_path = os.path.join(folder, "stat.csv")
    if not os.path.exists(stat_path):
        print("no stat.csv: SIPp did not run or wrote no statistics")
        return 2
    values = last_row(stat_path)
    counts = {}
    for path in glob.glob(os.path.join(folder, "*_counts.csv")):
        counts.update(last_row(path))
    merged = dict(counts)
    merged.update(values)

    seen, failed = [], []
    for check in sys.argv[2:]:
        m = CHECK.match(check.replace(" ", ""))
        if not m:
            print(f"bad check {check!r}")
            return 2
        name, op, want = m.group(1), m.group(2), int(m.group(3))
        if "*" in name:
            keys = [k for k in counts if fnmatch.fnmatchcase(k, name)]
            if not keys:
                failed.append(f"{name} matches no counter")
                continue
            got = sum(int(counts[k] or 0) for k in keys)
        elif name in merged:
            try:
                got = int(merged[name])
            except ValueError:
                failed.append(f"{name}={merged[name]!r} is not a number")
                continue
        else:
            failed.append(f"{name} missing")
            continue
        seen.append(f"{name}={got}")
        if not OPS[op](got, want):
            failed.append(f"{name}={got}, want {op}{want}")
    if failed:
        print("; ".join(failed))
        return 1
    print(" ".join(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
