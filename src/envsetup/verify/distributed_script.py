# mypy: ignore-errors
# ruff: noqa: UP031, SIM105, SIM115
# The distributed check, run INSIDE THE TARGET INTERPRETER (never imported by envsetup itself).
#
# envsetup writes this file to a temporary directory and runs ``python -I FILE CONFIG_JSON``.
# Python 3.8 syntax, only the standard library and torch.
#
# Two roles, from the config's "role":
#   "launch": start one worker per local GPU (or "processes" workers; two on a machine without
#             GPUs, with gloo), as ranks node_rank*local .. node_rank*local+local-1 of a world of
#             nnodes*local, wait for them, and pass rank 0's events on; a worker that fails or
#             dies is reported by its rank.
#   "worker": one rank, from RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (as
#             torchrun sets them, or the launcher): init_process_group, an all-reduce whose sum
#             is checked on every rank, its bandwidth, and peer-to-peer access between the
#             local GPUs; rank 0 gathers every rank's figures and reports them.
# Events are the verify protocol's lines: "@@envsetup-verify " + JSON (start / result / done).
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback

MARK = "@@envsetup-verify "


def emit(obj):
    sys.stdout.write(MARK + json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def one_line(exc):
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    return (name + ": " + text[0]) if text else name


class Fail(Exception):
    def __init__(self, detail, data=None):
        Exception.__init__(self, detail)
        self.detail = detail
        self.data = data or {}


class Skip(Exception):
    pass


def run_check(name, fn, quiet=False):
    if not quiet:
        emit({"event": "start", "name": name})
    t = time.monotonic()
    status, detail, data = "pass", "", {}
    try:
        detail, data = fn()
    except Skip as exc:
        status, detail = "skip", str(exc)
    except Fail as exc:
        status, detail, data = "fail", exc.detail, exc.data
    except Exception as exc:
        status, detail = "fail", one_line(exc)
        data = {"traceback": traceback.format_exc(limit=6)}
    if not quiet:
        emit(
            {
                "event": "result",
                "name": name,
                "status": status,
                "seconds": time.monotonic() - t,
                "detail": detail,
                "data": data,
            }
        )
    return status == "pass"


# ---------------------------------------------------------------- worker


def gather(torch, dist, device, world, busbw):
    """Every rank's host, local rank and bandwidth, with plain all_gathers (all_gather_object
    needs numpy, which a torch environment may not have)."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    figures = torch.tensor([busbw, float(local)], dtype=torch.float64, device=device)
    host = socket.gethostname().encode("utf-8")[:64]
    name = torch.zeros(64, dtype=torch.uint8)
    name[: len(host)] = torch.tensor(list(host), dtype=torch.uint8)
    name = name.to(device)
    all_figures = [torch.zeros_like(figures) for _ in range(world)]
    all_names = [torch.zeros_like(name) for _ in range(world)]
    dist.all_gather(all_figures, figures)
    dist.all_gather(all_names, name)
    out = []
    for r in range(world):
        f = all_figures[r].cpu().tolist()
        h = bytes(b for b in all_names[r].cpu().tolist() if b).decode("utf-8", "replace")
        out.append({"rank": r, "host": h, "local_rank": int(f[1]), "busbw_gbps": f[0]})
    return out


def worker(config):
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    quiet = rank != 0  # rank 0 speaks for everyone; the others only by their exit code
    state = {}

    def init():
        import datetime

        import torch
        import torch.distributed as dist

        state["torch"], state["dist"] = torch, dist
        want = config.get("backend") or "auto"
        cuda = torch.cuda.is_available() and torch.cuda.device_count() > 0
        backend = want if want != "auto" else ("nccl" if cuda else "gloo")
        if backend == "nccl":
            if not cuda:
                raise Fail("NCCL needs a GPU, and torch sees none (torch %s)" % torch.__version__)
            if not dist.is_nccl_available():
                raise Fail("this torch (%s) was built without NCCL" % torch.__version__)
            if local >= torch.cuda.device_count():
                raise Fail(
                    "LOCAL_RANK %d but torch sees %d GPU(s) here"
                    % (local, torch.cuda.device_count())
                )
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        else:
            device = torch.device("cpu")
        state["backend"], state["device"] = backend, device
        timeout = datetime.timedelta(seconds=float(config.get("timeout", 120)))
        t = time.monotonic()
        dist.init_process_group(
            backend, init_method="env://", rank=rank, world_size=world, timeout=timeout
        )
        seconds = time.monotonic() - t
        return (
            "%s, %d rank(s) over %s:%s, in %.1f s"
            % (
                backend,
                world,
                os.environ.get("MASTER_ADDR"),
                os.environ.get("MASTER_PORT"),
                seconds,
            ),
            {"backend": backend, "world_size": world, "init_seconds": seconds},
        )

    def all_reduce():
        torch, dist = state["torch"], state["dist"]
        x = torch.full((4096,), float(rank + 1), device=state["device"])
        dist.all_reduce(x)
        want = world * (world + 1) / 2.0
        got = x.cpu()
        if not bool((got == want).all()):
            raise Fail(
                "all-reduce on rank %d gave %s, not %s on every element"
                % (rank, got.unique().tolist()[:4], want)
            )
        # every rank must agree; a rank that saw a wrong sum reports it through this
        ok = torch.tensor([1.0], device=state["device"])
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        if float(ok.item()) != 1.0:
            raise Fail("a rank saw a wrong sum")
        return "sum over %d rank(s) correct on every rank" % world, {"sum": want}

    def bandwidth():
        torch, dist = state["torch"], state["dist"]
        gpu = state["device"].type == "cuda"
        nbytes = int(config.get("bytes") or ((256 << 20) if gpu else (16 << 20)))
        x = torch.ones(nbytes // 4, dtype=torch.float32, device=state["device"])

        def sync():
            if gpu:
                torch.cuda.synchronize()

        for _ in range(2):
            dist.all_reduce(x)
        sync()
        dist.barrier()
        iters, t = 0, time.monotonic()
        budget = float(config.get("seconds", 1.0))
        while True:
            dist.all_reduce(x)
            iters += 1
            if iters % 4 == 0 or not gpu:
                sync()
                el = time.monotonic() - t
                # every rank runs the same number of iterations: rank 0 decides when to stop
                flag = torch.tensor([1.0 if el >= budget else 0.0], device=state["device"])
                dist.broadcast(flag, 0)
                if float(flag.item()) == 1.0:
                    break
        sync()
        el = time.monotonic() - t
        algbw = nbytes * iters / el / 1e9
        busbw = algbw * (2.0 * (world - 1) / world) if world > 1 else algbw
        everyone = gather(torch, dist, state["device"], world, busbw)
        hosts = sorted({r["host"] for r in everyone})
        slowest = min(everyone, key=lambda r: r["busbw_gbps"])
        detail = (
            "%d MiB all-reduce x%d on %d rank(s) / %d node(s): bus bandwidth %.2f GB/s "
            "(algorithm %.2f GB/s; slowest rank %d on %s: %.2f GB/s)"
            % (
                nbytes >> 20,
                iters,
                world,
                len(hosts),
                busbw,
                algbw,
                slowest["rank"],
                slowest["host"],
                slowest["busbw_gbps"],
            )
        )
        return detail, {
            "bytes": nbytes,
            "iterations": iters,
            "seconds": el,
            "algbw_gbps": algbw,
            "busbw_gbps": busbw,
            "nodes": hosts,
            "ranks": everyone,
        }

    def p2p():
        torch = state["torch"]
        if state["device"].type != "cuda":
            raise Skip("no GPUs: peer-to-peer access is a GPU matter")
        n = torch.cuda.device_count()
        if n < 2:
            raise Skip("one GPU on this node: no peer to reach")
        matrix = [
            [i == j or bool(torch.cuda.can_device_access_peer(i, j)) for j in range(n)]
            for i in range(n)
        ]
        missing = ["%d->%d" % (i, j) for i in range(n) for j in range(n) if not matrix[i][j]]
        detail = (
            "all %d GPUs reach each other directly" % n
            if not missing
            else "no direct access for %s (NCCL goes through host memory there)"
            % ", ".join(missing)
        )
        return detail, {"matrix": matrix, "missing": missing}

    ok = run_check("dist-init", init, quiet)
    if ok:
        ok = run_check("all-reduce", all_reduce, quiet) and ok
        ok = run_check("bandwidth", bandwidth, quiet) and ok
        if local == 0:
            run_check("p2p", p2p, quiet)
        try:
            state["dist"].destroy_process_group()
        except Exception:
            pass
    if not quiet:
        emit({"event": "done"})
    sys.stdout.flush()
    os._exit(0 if ok else 1)


# ---------------------------------------------------------------- launcher


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def launch(config):
    nproc = config.get("processes")
    if not nproc:
        try:
            import torch

            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except BaseException as exc:
            emit({"event": "start", "name": "dist-init"})
            emit(
                {
                    "event": "result",
                    "name": "dist-init",
                    "status": "fail",
                    "seconds": 0,
                    "detail": "import torch failed: " + one_line(exc),
                    "data": {},
                }
            )
            emit({"event": "done"})
            return 1
        nproc = n if n > 0 else 2  # without GPUs: two CPU processes over gloo
    nproc = int(nproc)
    nnodes = int(config.get("nnodes", 1))
    node_rank = int(config.get("node_rank", 0))
    addr = config.get("master_addr") or "127.0.0.1"
    port = str(config.get("master_port") or free_port())
    me = os.path.abspath(__file__)
    wcfg = dict(config, role="worker")
    procs = []
    logs = []
    for i in range(nproc):
        logs.append(tempfile.TemporaryFile("w+"))
        env = dict(
            os.environ,
            RANK=str(node_rank * nproc + i),
            WORLD_SIZE=str(nnodes * nproc),
            LOCAL_RANK=str(i),
            LOCAL_WORLD_SIZE=str(nproc),
            MASTER_ADDR=addr,
            MASTER_PORT=port,
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-I", me, json.dumps(wcfg)],
                env=env,
                stdout=subprocess.PIPE if i == 0 and node_rank == 0 else subprocess.DEVNULL,
                stderr=logs[i],
                text=True,
            )
        )
    lead = procs[0]
    if lead.stdout is not None:
        for line in lead.stdout:  # rank 0 speaks for all: pass its events on as they come
            sys.stdout.write(line)
            sys.stdout.flush()
    codes = [p.wait() for p in procs]
    bad = [(i, c) for i, c in enumerate(codes) if c != 0]

    def last_words(i):
        logs[i].seek(0)
        tail = [ln for ln in logs[i].read().splitlines() if ln.strip()]
        return tail[-1][:300] if tail else "no output"

    if bad and codes[0] == 0:
        i, c = bad[0]
        emit({"event": "start", "name": "ranks"})
        emit(
            {
                "event": "result",
                "name": "ranks",
                "status": "fail",
                "seconds": 0,
                "detail": "local rank %d exited with %d: %s" % (i, c, last_words(i)),
                "data": {"codes": codes},
            }
        )
    elif codes[0] != 0:
        sys.stderr.write(last_words(0) + "\n")
    return 0 if not bad else 1


def main():
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    if config.get("role") == "worker":
        worker(config)
    sys.exit(launch(config))


if __name__ == "__main__":
    main()
