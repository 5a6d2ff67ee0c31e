"""Data start-up: importing the locustfile and building the data pool, for several CUSTOMER_COUNTs.

python bench/startup.py [--counts 1000 100000 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess

from bench.common import PY, ROOT, save, table

PROBE = """
import json, time
t0 = time.perf_counter()
import locustfile
t1 = time.perf_counter()
from data_generators import data_pool
pool = data_pool()
pool.customer(pool.customer_count - 1)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "pool_s": t2 - t1, "total_s": t2 - t0}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    result, rows = {}, []
    for count in args.counts:
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [PY, "-c", PROBE],
                cwd=ROOT,
                env={**os.environ, "CUSTOMER_COUNT": str(count)},
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        med = {k: round(statistics.median(r[k] for r in runs), 3) for k in ("import_s", "pool_s", "total_s")}
        result[count] = med
        rows.append([f"{count:,}", med["import_s"], med["pool_s"], med["total_s"]])
    print(table(["CUSTOMER_COUNT", "import s", "pool build s", "total s (median)"], rows))
    met = all(v["total_s"] < 1.0 for v in result.values())
    print(f"\ntarget: < 1 s each -> {'met' if met else 'NOT met'}")
    path = save("startup", {"repeat": args.repeat, "by_customer_count": result, "target_s": 1.0, "met": met})
    print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
