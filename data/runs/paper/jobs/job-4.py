"""Job 4: the paper-on-cpu list on one GPU for a fixed time, without Ray.

The experiment's runs after the CPU's current one (from ``all,-bn`` through Appendix C, and the
ResNet-110 case study), grouped by bnlib's own pack planner (:func:`bnlib.packs.plan_packs`),
each pack in its own process side by side on the GPU, with one shared deadline: a run that
does not finish keeps its checkpoint and resumes anywhere through
``python -m bnlib sweep --experiment paper-on-cpu`` (the device is not part of a run's address).
ResNet-110 is compiled (CUDA graphs); the ResNet-14 packs run eagerly.

usage: python3 data/runs/paper/jobs/job-4.py DATA RUNS_DIR SECONDS REPORT [PACKS, e.g. 0,2]
"""
from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from bnlib import data as data_lib  # noqa: E402
from bnlib.config import RunConfig  # noqa: E402
from bnlib.experiments import paper_on_cpu  # noqa: E402
from bnlib.packs import plan_packs  # noqa: E402
from bnlib.train import train_pack  # noqa: E402

FIRST, LAST = 3, 15  # paper_on_cpu()[3:15]: all,-bn .. Appendix C; [2] trains on the CPU meanwhile


def packs(data: str) -> list[list[RunConfig]]:
    out = []
    for pack in plan_packs(paper_on_cpu(data)[FIRST:LAST], max_runs=8):
        if pack[0].model.model != "resnet-14":
            pack = [RunConfig.from_flat(**{**c.flat(), "compile": "reduce-overhead"}) for c in pack]
        out.append(pack)
    return out


def work(index: int, data: str, runs_dir: str, deadline: float, queue) -> None:
    pack = packs(data)[index]
    dataset = data_lib.load(data)
    started = time.time()
    results = train_pack(pack, runs_dir, dataset=dataset, time_limit=max(0.0, deadline - time.time()))
    queue.put({"pack": index, "seconds": round(time.time() - started, 1),
               "runs": [{"model": c.model.model, "trainable": c.train.trainable, "bn_init": c.model.bn_init,
                         "feature_init": c.model.feature_init, "normalize": c.model.normalize, **r.to_dict()}
                        for c, r in zip(pack, results)]})


def main(data: str, runs_dir: str, seconds: float, report: str, only: str = "") -> None:
    start = time.time()
    data_lib.load(data)  # decode once, before the processes read the cache
    decode_s = time.time() - start
    plan = packs(data)
    for i, pack in enumerate(plan):
        print(f"pack {i}: {pack[0].model.model} x{len(pack)}: "
              + ", ".join(f"{c.train.trainable}/{c.model.bn_init}/{c.model.feature_init}"
                          f"{'' if c.model.normalize else '/no-norm'}" for c in pack), flush=True)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    deadline = start + seconds
    chosen = [int(i) for i in only.split(",")] if only else range(len(plan))
    procs = [ctx.Process(target=work, args=(i, data, runs_dir, deadline, queue)) for i in chosen]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    done = []
    while not queue.empty():
        done.append(queue.get())
    summary = {"decode_s": round(decode_s, 1), "seconds": seconds, "total_s": round(time.time() - start, 1),
               "exit_codes": [p.exitcode for p in procs], "packs": sorted(done, key=lambda d: d["pack"])}
    Path(report).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3], float(sys.argv[3]), *sys.argv[4:6])
