# mypy: ignore-errors
# ruff: noqa: UP031
# The verify checks, run INSIDE THE TARGET INTERPRETER (never imported by envsetup itself).
#
# envsetup reads this file as text and runs it with ``python -I -c SOURCE CONFIG_JSON``.
# It must stay self-contained: Python 3.8 syntax, only the standard library and torch.
#
# Protocol: for each check named in the config it prints, flushed, one line
#   @@envsetup-verify {"event": "start", "name": ...}
# before running it and one line
#   @@envsetup-verify {"event": "result", "name": ..., "status": "pass"|"fail"|"skip",
#                      "seconds": ..., "detail": ..., "data": {...}}
# after. Anything else on stdout/stderr (warnings from torch) is noise to the reader. envsetup
# enforces each check's deadline from its "start" line and kills this process on a hang.
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

MARK = "@@envsetup-verify "


def emit(obj):
    sys.stdout.write(MARK + json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


class Skip(Exception):
    pass


class Fail(Exception):
    def __init__(self, detail, data=None):
        Exception.__init__(self, detail)
        self.detail = detail
        self.data = data or {}


def one_line(exc):
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    name = type(exc).__name__
    return (name + ": " + first) if first else name


class State:
    def __init__(self, config):
        self.config = config
        self.requested = config.get("device", "auto")
        self.torch = None
        self.import_error = None
        self.device = None  # "cpu" | "cuda" | "mps" once usable
        self.device_error = None

    def get_torch(self):
        if self.torch is None and self.import_error is None:
            try:
                import torch

                self.torch = torch
            except BaseException as exc:  # a planted or broken torch can raise anything
                self.import_error = one_line(exc)
        if self.torch is None:
            raise Skip("torch did not import (" + str(self.import_error) + ")")
        return self.torch

    def get_device(self):
        if self.device is None and self.device_error is None:
            torch = self.get_torch()
            try:
                self.device = select_device(torch, self.requested)
            except Fail as exc:
                self.device_error = exc.detail
        if self.device is None:
            raise Skip("device " + self.requested + " is not usable (see the device check)")
        return self.device


# ---------------------------------------------------------------- device selection


def cuda_reason(torch):
    """Why CUDA is not usable, in words, with what to do."""
    ver = torch.__version__
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return (
            "torch " + ver + " is a CPU-only build (torch.version.cuda is None): "
            "install a CUDA build of torch (envsetup install)"
        )
    built = (
        ("CUDA " + str(torch.version.cuda))
        if torch.version.cuda
        else ("ROCm " + str(torch.version.hip))
    )
    why = ""
    try:
        torch.cuda.init()
    except BaseException as exc:
        why = ": " + one_line(exc)
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is not None:
        why += " (CUDA_VISIBLE_DEVICES=" + repr(vis) + ")"
    return (
        "torch "
        + ver
        + " is built for "
        + built
        + " but sees no usable GPU"
        + why
        + "; run envsetup doctor"
    )


def select_device(torch, requested):
    if requested == "cpu":
        return "cpu"
    if requested in ("cuda", "auto"):
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            return "cuda"
        if requested == "cuda":
            raise Fail(cuda_reason(torch))
    mps = getattr(torch.backends, "mps", None)
    if requested in ("mps", "auto"):
        if mps is not None and mps.is_available():
            return "mps"
        if requested == "mps":
            if mps is None or not mps.is_built():
                raise Fail("torch " + torch.__version__ + " was built without MPS support")
            raise Fail("MPS is built in but not available (needs macOS 12.3+ on Apple silicon)")
    return "cpu"


def sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


# ---------------------------------------------------------------- numerics

# Relative error allowed against a float64 CPU reference, per dtype (a few ulps of the dtype
# times the accumulation depth of the small problems used here).
TOL = {"float64": 1e-10, "float32": 1e-4, "tf32": 5e-3, "float16": 1e-2, "bfloat16": 4e-2}


def rel_err(torch, got, ref):
    got = got.detach().to("cpu", torch.float64)
    ref = ref.detach().to("cpu", torch.float64)
    if got.shape != ref.shape:
        raise Fail("shape " + str(tuple(got.shape)) + " != " + str(tuple(ref.shape)))
    if not bool(torch.isfinite(got).all()):
        return float("nan")
    denom = float(ref.norm())
    return float((got - ref).norm()) / (denom if denom > 0 else 1.0)


def expect_close(torch, what, got, ref, tol, errs):
    err = rel_err(torch, got, ref)
    errs[what] = err
    if not (err <= tol):  # NaN never passes
        raise Fail(
            what
            + ": relative error "
            + ("NaN/inf in result" if err != err else "%.3g" % err)
            + " > tolerance %.0e" % tol,
            {"errors": errs},
        )


def leaf(t, device, dtype):
    return t.detach().to(device, dtype).clone().requires_grad_()


def f32_tol(torch, device):
    if device == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return TOL["tf32"]
    return TOL["float32"]


# ---------------------------------------------------------------- the checks


def check_import(st):
    t = time.monotonic()
    with contextlib.suppress(Skip):  # the failure is kept in st.import_error
        st.get_torch()
    if st.torch is None:
        raise Fail("import torch failed: " + str(st.import_error))
    torch = st.torch
    where = os.path.dirname(getattr(torch, "__file__", "") or "")
    data = {"torch": torch.__version__, "path": where, "import_seconds": time.monotonic() - t}
    return "torch " + torch.__version__ + " from " + where, data


def dist_info(name):
    try:
        import importlib.metadata as md
    except ImportError:  # Python 3.7 and older
        return None
    try:
        d = md.distribution(name)
    except Exception:
        return None
    return {"version": d.version, "requires": list(d.requires or [])}


def marker_env():
    impl = sys.implementation
    iver = "%d.%d.%d" % impl.version[:3]
    return {
        "implementation_name": impl.name,
        "implementation_version": iver,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def check_versions(st):
    torch = st.get_torch()
    data = {
        "torch": {
            "runtime": torch.__version__,
            "cuda": torch.version.cuda,
            "hip": getattr(torch.version, "hip", None),
            "git": getattr(torch.version, "git_version", None),
            "dist": dist_info("torch"),
        },
        "marker_env": marker_env(),
    }
    for name in ("torchvision", "torchaudio", "triton", "pytorch-triton-rocm"):
        info = dist_info(name)
        if info is None:
            data[name] = None
            continue
        module = "triton" if "triton" in name else name
        try:
            mod = __import__(module)
            info["runtime"] = getattr(mod, "__version__", None)
            info["import_error"] = None
        except BaseException as exc:
            info["runtime"] = None
            info["import_error"] = one_line(exc)
        data[name] = info
    # The verdict (with packaging, against the plan) is made by envsetup from this data.
    return "collected", data


def check_device(st):
    torch = st.get_torch()
    try:
        dev = st.get_device()
    except Skip:
        raise Fail(str(st.device_error)) from None
    data = {"device": dev, "requested": st.requested}
    if dev == "cpu":
        data["threads"] = torch.get_num_threads()
        data["name"] = platform.processor() or platform.machine()
        return "CPU, %d threads" % data["threads"], data
    if dev == "mps":
        data["names"] = ["Apple MPS"]
        return "MPS (Apple GPU)", data
    n = torch.cuda.device_count()
    names = [torch.cuda.get_device_name(i) for i in range(n)]
    caps = [torch.cuda.get_device_capability(i) for i in range(n)]
    archs = list(torch.cuda.get_arch_list())
    hip = getattr(torch.version, "hip", None)
    data.update(
        {
            "count": n,
            "names": names,
            "capabilities": ["%d.%d" % c for c in caps],
            "arch_list": archs,
            "hip": hip,
            "cuda": torch.version.cuda,
        }
    )
    problems = []
    notes = []
    if hip:
        for i in range(n):
            gcn = getattr(torch.cuda.get_device_properties(i), "gcnArchName", "")
            base = gcn.split(":")[0]
            if base and base not in archs:
                problems.append(
                    "GPU %d (%s) is %s, not in this build's %s" % (i, names[i], base, archs)
                )
    else:
        for i, (major, minor) in enumerate(caps):
            sm = "sm_%d%d" % (major, minor)
            ok, how = arch_supported(archs, major, minor)
            if not ok:
                problems.append(
                    "GPU %d (%s, %s) has no kernel image in this build (it has %s): install a "
                    "build that includes %s" % (i, names[i], sm, ", ".join(archs), sm)
                )
            elif how:
                notes.append("GPU %d: %s" % (i, how))
    expected = st.config.get("expected_gpus")
    if expected is not None:
        if sorted(expected) != sorted(names):
            problems.append(
                "torch sees %d GPU(s) %s but the driver (NVML) lists %d %s"
                % (n, names, len(expected), list(expected))
            )
        else:
            notes.append("matches NVML")
    else:
        notes.append(st.config.get("expected_note") or "not compared with NVML")
    if problems:
        raise Fail("; ".join(problems), data)
    kind = "ROCm " + str(hip) if hip else "CUDA " + str(torch.version.cuda)
    detail = "%s, %d GPU(s): %s" % (
        kind,
        n,
        ", ".join("%s (%s)" % (nm, c) for nm, c in zip(names, data["capabilities"])),
    )
    return detail + ("; " + "; ".join(notes) if notes else ""), data


def arch_supported(archs, major, minor):
    if "sm_%d%d" % (major, minor) in archs:
        return True, ""
    for a in archs:  # a cubin runs on the same major with an equal or higher minor
        if a.startswith("sm_") and a[3:].isdigit():
            v = int(a[3:])
            if v // 10 == major and v % 10 <= minor:
                return True, "runs %s kernels (binary compatible)" % a
    for a in archs:  # PTX is JIT-compiled for any newer GPU
        if a.startswith("compute_") and a[8:].isdigit() and int(a[8:]) <= major * 10 + minor:
            return True, "runs %s PTX through the JIT (slow first start)" % a
    return False, ""


def check_tensor_ops(st):
    torch = st.get_torch()
    dev = st.get_device()
    g = torch.Generator().manual_seed(1234)
    f64 = torch.float64
    f32 = torch.float32
    tol = f32_tol(torch, dev)
    errs = {}
    a = torch.randn(256, 192, generator=g, dtype=f64)
    b = torch.randn(192, 128, generator=g, dtype=f64)
    da, db = a.to(dev, f32), b.to(dev, f32)
    expect_close(torch, "matmul", da @ db, a @ b, tol, errs)
    x = torch.randn(100000, generator=g, dtype=f64) + 0.5
    dx = x.to(dev, f32)
    expect_close(torch, "sum", dx.sum(), x.sum(), TOL["float32"] * 10, errs)
    expect_close(torch, "mean", dx.mean(), x.mean(), TOL["float32"] * 10, errs)
    expect_close(torch, "max", dx.max(), x.max(), TOL["float32"], errs)
    m = torch.randn(64, 300, generator=g, dtype=f64)
    expect_close(torch, "softmax", torch.softmax(m.to(dev, f32), 1), torch.softmax(m, 1), tol, errs)
    expect_close(torch, "exp*sin", (dx.exp() * dx.sin()), x.exp() * x.sin(), TOL["float32"], errs)
    # The device's own random generator: uniform values in [0, 1), mean close to 0.5.
    torch.manual_seed(0)
    r = torch.rand(1000000, device=dev)
    sync(torch, dev)
    lo, hi, mean = float(r.min()), float(r.max()), float(r.mean())
    if not (lo >= 0.0 and hi < 1.0 and abs(mean - 0.5) < 0.01):
        raise Fail(
            "torch.rand on %s: min %g max %g mean %g (expected [0,1), ~0.5)" % (dev, lo, hi, mean),
            {"errors": errs},
        )
    worst = max(errs, key=lambda k: errs[k])
    return "matmul, reductions, softmax, elementwise, rand on %s: worst rel. error %.1e (%s)" % (
        dev,
        errs[worst],
        worst,
    ), {"errors": errs}


def check_autograd(st):
    torch = st.get_torch()
    dev = st.get_device()
    notes = []
    g = torch.Generator().manual_seed(7)
    gc_dev = dev if dev != "mps" else "cpu"  # MPS has no float64
    if gc_dev != dev:
        notes.append("gradcheck on cpu (MPS has no float64)")
    x = torch.randn(4, 5, generator=g, dtype=torch.float64).to(gc_dev).requires_grad_()
    w = torch.randn(5, 3, generator=g, dtype=torch.float64).to(gc_dev).requires_grad_()

    def fn(x, w):
        return torch.tanh(x @ w).sin() * x.sum(1, keepdim=True)

    if not torch.autograd.gradcheck(fn, (x, w), eps=1e-6, atol=1e-5, raise_exception=False):
        raise Fail("torch.autograd.gradcheck failed in float64 on " + gc_dev)
    # A small MLP: gradients on the device (float32) against a float64 CPU reference.
    sizes = [(32, 64), (64, 64), (64, 10)]
    params = [
        (
            torch.randn(i, o, generator=g, dtype=torch.float64) / i**0.5,
            torch.randn(o, generator=g, dtype=torch.float64) * 0.1,
        )
        for i, o in sizes
    ]
    inp = torch.randn(16, 32, generator=g, dtype=torch.float64)
    target = torch.randint(0, 10, (16,), generator=g)

    def run(device, dtype):
        ps = [(leaf(W, device, dtype), leaf(B, device, dtype)) for W, B in params]
        h = inp.to(device, dtype)
        for k, (W, B) in enumerate(ps):
            h = h @ W + B
            if k < len(ps) - 1:
                h = torch.nn.functional.gelu(h)
        loss = torch.nn.functional.cross_entropy(h, target.to(device))
        loss.backward()
        return loss, [t.grad for pair in ps for t in pair]

    ref_loss, ref_grads = run("cpu", torch.float64)
    loss, grads = run(dev, torch.float32)
    errs = {}
    tol = f32_tol(torch, dev) * 10
    expect_close(torch, "mlp loss", loss, ref_loss, tol, errs)
    for i, (gd, gr) in enumerate(zip(grads, ref_grads)):
        expect_close(torch, "mlp grad %d" % i, gd, gr, tol, errs)
    return "gradcheck (float64) and MLP backward on %s: worst rel. error %.1e%s" % (
        dev,
        max(errs.values()),
        ("; " + "; ".join(notes)) if notes else "",
    ), {"errors": errs}


def cudnn_versions(torch):
    c = getattr(torch._C, "_cudnn", None)
    if c is None:
        return None, None
    runtime = compiled = None
    if hasattr(c, "getRuntimeVersion"):
        runtime = tuple(c.getRuntimeVersion())
    if hasattr(c, "getCompileVersion"):
        compiled = tuple(c.getCompileVersion())
    return runtime, compiled


def check_cudnn(st):
    torch = st.get_torch()
    dev = st.get_device()
    data = {}
    note = ""
    if dev == "cuda" and not getattr(torch.version, "hip", None):
        if not torch.backends.cudnn.is_available():
            raise Fail("cuDNN is not available to torch " + torch.__version__)
        try:
            data["version"] = torch.backends.cudnn.version()
        except RuntimeError as exc:  # torch's own compatibility check names the conflict
            raise Fail(one_line(exc)) from None
        runtime, compiled = cudnn_versions(torch)
        data["runtime"], data["compiled"] = runtime, compiled
        if runtime and compiled:
            rs, cs = ".".join(map(str, runtime)), ".".join(map(str, compiled))
            if runtime[0] != compiled[0] or runtime[:2] < compiled[:2]:
                raise Fail(
                    "cuDNN runtime %s differs from the %s torch was built with: a "
                    "system cuDNN (LD_LIBRARY_PATH?) shadows the bundled one" % (rs, cs),
                    data,
                )
            note = "cuDNN %s" % rs + (
                ""
                if runtime[:2] == compiled[:2]
                else " (built with %s, newer minor is compatible)" % cs
            )
    elif dev == "cuda":
        note = "MIOpen (ROCm)"
    else:
        note = "cuDNN not used on " + dev
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
    w = torch.randn(8, 3, 3, 3, generator=g, dtype=torch.float64)
    go = torch.randn(2, 8, 16, 16, generator=g, dtype=torch.float64)

    def run(device, dtype):
        xd = leaf(x, device, dtype)
        wd = leaf(w, device, dtype)
        y = torch.nn.functional.conv2d(xd, wd, padding=1)
        y.backward(go.to(device, dtype))
        return y, xd.grad, wd.grad

    ref = run("cpu", torch.float64)
    got = run(dev, torch.float32)
    errs = {}
    tol = f32_tol(torch, dev) * 10
    for what, a, b in zip(("forward", "grad input", "grad weight"), got, ref):
        expect_close(torch, "conv2d " + what, a, b, tol, errs)
    data["errors"] = errs
    return "conv2d forward/backward on %s: worst rel. error %.1e; %s" % (
        dev,
        max(errs.values()),
        note,
    ), data


def check_amp(st):
    torch = st.get_torch()
    dev = st.get_device()
    if dev == "cuda":
        dtypes = [torch.float16]
        if torch.cuda.is_bf16_supported():
            dtypes.append(torch.bfloat16)
    elif dev == "mps":
        dtypes = [torch.float16]
    else:
        dtypes = [torch.bfloat16]
    g = torch.Generator().manual_seed(11)
    a = torch.randn(128, 256, generator=g, dtype=torch.float64)
    b = torch.randn(256, 64, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(64, 32).to(dev)
    errs = {}
    done = []
    for dt in dtypes:
        name = str(dt).replace("torch.", "")
        with torch.autocast(device_type=dev, dtype=dt):
            y = a.to(dev, torch.float32) @ b.to(dev, torch.float32)
            z = lin(y)
        if y.dtype != dt:
            raise Fail("autocast(%s) left matmul in %s" % (name, y.dtype))
        z.float().sum().backward()
        if lin.weight.grad is None or not bool(torch.isfinite(lin.weight.grad).all()):
            raise Fail("autocast(%s): backward gave no finite gradient" % name)
        lin.zero_grad()
        expect_close(torch, name + " matmul", y, a @ b, TOL[name], errs)
        done.append(name)
    return "autocast %s on %s: worst rel. error %.1e" % ("/".join(done), dev, max(errs.values())), {
        "errors": errs,
        "dtypes": done,
    }


def compiler_problem(torch, dev):
    """The missing piece for torch.compile, in words, or None."""
    if dev == "cpu":
        default = "clang++" if sys.platform == "darwin" else "g++"
        cxx = os.environ.get("CXX") or default
        if shutil.which(cxx) is None:
            src = "CXX=" + cxx if os.environ.get("CXX") else cxx
            return (
                "no C++ compiler: %s not found (torch.compile on the CPU needs one: "
                "install g++, or point CXX at a working compiler)" % src
            )
        return None
    if dev == "cuda":
        try:
            import triton  # noqa: F401
        except BaseException as exc:
            return (
                "Triton is missing or broken (%s): torch.compile on the GPU needs it; "
                "install the triton version torch requires" % one_line(exc)
            )
        cc = os.environ.get("CC")
        if cc and shutil.which(cc) is None:
            return "no C compiler: CC=%s not found (Triton builds its launcher with it)" % cc
        if not cc and not (shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")):
            return "no C compiler (gcc/cc/clang) on PATH: Triton builds its launcher with it"
    return None


def check_compile(st):
    torch = st.get_torch()
    dev = st.get_device()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 64, generator=g).to(dev)
    y = torch.randn(64, 64, generator=g).to(dev)

    def fn(x, y):
        return torch.sin(x) * y + torch.cos(y).sum(0)

    mod = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 8))
    mod = mod.to(dev)
    inp = torch.randn(16, 32, generator=g).to(dev)
    timings = {}
    errs = {}
    try:
        t = time.monotonic()
        got = torch.compile(fn, backend="inductor")(x, y)
        sync(torch, dev)
        timings["function"] = time.monotonic() - t
        t = time.monotonic()
        got_m = torch.compile(mod, backend="inductor")(inp)
        sync(torch, dev)
        timings["module"] = time.monotonic() - t
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        cause = compiler_problem(torch, dev)
        msg = one_line(exc)
        raise Fail(
            ("torch.compile failed: " + cause + " [" + msg + "]")
            if cause
            else ("torch.compile failed: " + msg),
            {"error": msg},
        ) from None
    tol = f32_tol(torch, dev) * 10
    expect_close(torch, "compiled function", got, fn(x, y), tol, errs)
    with torch.no_grad():
        expect_close(torch, "compiled module", got_m, mod(inp), tol, errs)
    backend = "C++ (" + (os.environ.get("CXX") or "g++") + ")" if dev == "cpu" else "Triton"
    return "inductor/%s: function %.1f s, module %.1f s; matches eager (rel. error %.1e)" % (
        backend,
        timings["function"],
        timings["module"],
        max(errs.values()),
    ), {"seconds": timings, "errors": errs}


def timed_loop(torch, dev, step, budget):
    step()  # warm-up
    sync(torch, dev)
    n = 0
    t = time.monotonic()
    while True:
        step()
        n += 1
        if n % 4 == 0 or dev == "cpu":
            sync(torch, dev)
            el = time.monotonic() - t
            if el >= budget:
                return n, el


def check_bench_matmul(st):
    torch = st.get_torch()
    dev = st.get_device()
    size = 1024 if dev == "cpu" else 8192
    dtypes = [torch.float32] if dev == "cpu" else [torch.float32, torch.bfloat16, torch.float16]
    if dev == "cuda" and not torch.cuda.is_bf16_supported():
        dtypes.remove(torch.bfloat16)
    figures = {}
    for dt in dtypes:
        a = torch.randn(size, size, device=dev, dtype=dt)
        b = torch.randn(size, size, device=dev, dtype=dt)
        n, el = timed_loop(torch, dev, lambda a=a, b=b: a @ b, 1.0)
        figures[str(dt).replace("torch.", "")] = 2.0 * size**3 * n / el / 1e12
    text = ", ".join("%s %.2f" % kv for kv in figures.items())
    return "matmul %dx%d on %s: %s TFLOP/s" % (size, size, dev, text), {
        "tflops": figures,
        "size": size,
        "device": dev,
        "names": device_names(torch, dev),
    }


def check_bench_memory(st):
    torch = st.get_torch()
    dev = st.get_device()
    nbytes = (256 << 20) if dev == "cpu" else (2 << 30)
    src = torch.empty(nbytes // 4, device=dev, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    n, el = timed_loop(torch, dev, lambda: dst.copy_(src), 1.0)
    gbs = 2.0 * nbytes * n / el / 1e9  # a copy reads and writes every byte
    return "copy of %d MiB on %s: %.1f GB/s" % (nbytes >> 20, dev, gbs), {
        "gbps": gbs,
        "device": dev,
        "names": device_names(torch, dev),
    }


def device_names(torch, dev):
    if dev == "cuda":
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


# ---------------------------------------------------------------- the stack


# The libraries of the stack are the installed distributions that require one of these.
STACK_ROOTS = ("torch", "torchvision", "torchaudio")
# Top-level names some distributions ship by mistake: never the library's own code.
NOT_LIBRARY = ("test", "tests", "testing", "doc", "docs", "example", "examples", "benchmarks")
# Files that hold compiled code (a broken build shows there, as an undefined symbol).
COMPILED = (".so", ".pyd", ".dylib", ".dll")

# Run in a child interpreter: import torch, then each module in turn, one marked line per event.
STACK_CHILD = r"""
import json, sys, time
MARK = "@@envsetup-stack "
def out(obj):
    sys.stdout.write("\n" + MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()
def first_line(exc):
    text = str(exc).strip().splitlines()
    return type(exc).__name__ + (": " + text[0] if text else "")
out({"event": "start", "module": "torch"})
try:
    import torch
except BaseException as exc:
    out({"event": "error", "module": "torch", "error": first_line(exc)})
    sys.exit(0)
out({"event": "ok", "module": "torch"})
for name in json.loads(sys.argv[1]):
    out({"event": "start", "module": name})
    try:
        __import__(name)
    except BaseException as exc:
        out({"event": "error", "module": name, "error": first_line(exc)})
    else:
        out({"event": "ok", "module": name})
out({"event": "done"})
"""
STACK_MARK = "@@envsetup-stack "


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(text):
    # "Name[extra] (>=1.0) ; marker": the name is the leading run of name characters.
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text or "")
    return canonical(m.group(1)) if m else ""


def top_modules(dist):
    """The importable top-level modules a distribution installs."""
    names = []
    text = dist.read_text("top_level.txt")
    if text:
        names = [line.strip().replace("\\", "/").split("/")[0] for line in text.splitlines()]
    else:
        import importlib.machinery as machinery

        suffixes = tuple(machinery.SOURCE_SUFFIXES + machinery.EXTENSION_SUFFIXES)
        for f in dist.files or []:
            parts = f.parts
            if not parts or parts[0] in ("..", "") or parts[0].endswith((".dist-info", ".data")):
                continue
            if len(parts) == 1 and parts[0].endswith(suffixes):
                names.append(parts[0].split(".")[0])
            elif len(parts) == 2 and parts[1].split(".")[0] == "__init__":
                names.append(parts[0])
    out = []
    for n in names:
        if n and n.isidentifier() and n not in NOT_LIBRARY and n not in out:
            out.append(n)
    return out


def has_compiled(dist):
    return any(str(f).lower().endswith(COMPILED) for f in dist.files or [])


def stack_libraries():
    """[(name, version, [modules], compiled)] of the installed distributions that require torch,
    torchvision or torchaudio (in any extra too: transformers needs torch only in its extras),
    the first of each name on sys.path, as import finds them."""
    import importlib.util

    try:
        import importlib.metadata as md
    except ImportError:
        raise Skip("reading the installed distributions needs Python 3.8+") from None
    seen = set()
    found = []
    for dist in md.distributions():
        try:
            name = dist.metadata["Name"] or ""
            requires = dist.requires or []
        except Exception:  # unreadable metadata: nothing to go on
            continue
        key = canonical(name)
        if not key or key in seen:
            continue
        seen.add(key)
        if key == "torch":
            continue
        wants = set(requirement_name(r) for r in requires)
        if not wants.intersection(STACK_ROOTS):
            continue
        try:
            named = top_modules(dist)
        except Exception:  # an unreadable RECORD
            named = []
        modules = []
        for m in named:
            try:
                if importlib.util.find_spec(m) is not None:
                    modules.append(m)
            except (ImportError, ValueError):
                modules.append(m)  # the import itself will say what is wrong
        # A stale name in top_level.txt is passed over; none found at all is a broken install,
        # and the import says so.
        found.append((name, dist.version, modules or named, has_compiled(dist)))
    found.sort(key=lambda x: canonical(x[0]))
    return found


class StackChild:
    """One child interpreter importing modules; its marked lines arrive on a queue."""

    def __init__(self, modules):
        import queue

        self.lines = queue.Queue()
        self.tail = []
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", STACK_CHILD, json.dumps(modules)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.thread = threading.Thread(target=self.read)
        self.thread.daemon = True
        self.thread.start()

    def read(self):
        try:
            for line in self.proc.stdout:
                if line.startswith(STACK_MARK):
                    with contextlib.suppress(ValueError):
                        event = json.loads(line[len(STACK_MARK) :])
                        if event.get("event") == "start":
                            self.tail = []  # only what this import printed explains its end
                        self.lines.put(event)
                elif line.strip():
                    self.tail = [*self.tail, line.strip()][-5:]
        finally:
            self.lines.put(None)

    def next_event(self, deadline):
        import queue

        try:
            return self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            return "timeout"

    def end(self):
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self.proc.stdout.close()

    def exit_words(self):
        code = self.proc.poll()
        if code is None:
            with contextlib.suppress(Exception):
                code = self.proc.wait(timeout=5)
        if code is not None and code < 0:
            import signal

            try:
                how = "was killed by " + signal.Signals(-code).name
            except ValueError:
                how = "was killed by signal %d" % -code
        else:
            how = "exited with code %s" % code
        last = self.tail[-1] if self.tail else ""
        return "the interpreter " + how + (" (" + last[:200] + ")" if last else "")


def import_modules(modules, per_import, budget):
    """{module: ("ok" | "error" | "hung" | "crashed" | "unchecked", detail, seconds)}: each
    module imported in a child interpreter after torch, each held to ``per_import`` seconds; a
    hang or a crash ends that child and the modules after it go on in a new one."""
    results = {}
    pending = list(modules)
    end_by = time.monotonic() + budget
    while pending:
        if time.monotonic() >= end_by:
            for m in pending:
                results[m] = (
                    "unchecked",
                    "not imported: the stack check's %g s ran out" % budget,
                    0.0,
                )
            break
        child = StackChild(pending)
        current, started, torch_ok = None, time.monotonic(), False
        deadline = started + per_import * 2  # the interpreter's start and torch's import
        try:
            while True:
                ev = child.next_event(min(deadline, end_by))
                if ev == "timeout":
                    where = current or "torch"
                    if where == "torch":
                        raise Fail(
                            "import torch in a new interpreter did not finish within %g s"
                            % (per_import * 2)
                        )
                    took = time.monotonic() - started
                    results[where] = ("hung", "did not finish in %.0f s (killed)" % took, took)
                    break
                if ev is None:  # the child died
                    if not torch_ok:
                        raise Fail(
                            "import torch in a new interpreter failed: " + child.exit_words()
                        )
                    lost = current or next(m for m in pending if m not in results)
                    results[lost] = ("crashed", child.exit_words(), time.monotonic() - started)
                    break
                kind, mod = ev.get("event"), ev.get("module")
                if kind == "start":
                    current, started = mod, time.monotonic()
                    deadline = started + (per_import * 2 if mod == "torch" else per_import)
                elif kind == "error" and mod == "torch":
                    raise Fail("import torch in a new interpreter failed: " + str(ev.get("error")))
                elif kind == "ok" and mod == "torch":
                    torch_ok = True
                elif kind in ("ok", "error"):
                    results[mod] = (kind, str(ev.get("error") or ""), time.monotonic() - started)
                    current = None
                elif kind == "done":
                    break
        finally:
            child.end()
        pending = [m for m in pending if m not in results]
    return results


def torch_build(torch):
    if torch.version.cuda:
        return "CUDA " + str(torch.version.cuda)
    if getattr(torch.version, "hip", None):
        return "ROCm " + str(torch.version.hip)
    return "CPU"


BROKEN_BUILD = ("undefined symbol", "symbol not found", "dll load failed", "procedure could not")


def stack_advice(torch, name, version, error, compiled):
    tv = torch.__version__
    m = re.match(r"ModuleNotFoundError: No module named '(torchvision|torchaudio)'", error)
    if m:
        extra = "vision" if m.group(1) == "torchvision" else "audio"
        return "it needs %s, which is not installed: envsetup install --with %s" % (
            m.group(1),
            extra,
        )
    if error.startswith("ModuleNotFoundError"):
        return "reinstall it with what it needs (pip install --force-reinstall %s==%s)" % (
            name,
            version,
        )
    if compiled or any(w in error.lower() for w in BROKEN_BUILD):
        return (
            "install the %s build made for torch %s (%s), or rebuild it against this torch "
            "(pip install --force-reinstall --no-deps --no-build-isolation --no-binary %s %s==%s)"
            % (name, tv, torch_build(torch), name, name, version)
        )
    return "install a %s release that supports torch %s (or reinstall it)" % (name, tv)


def check_stack(st):
    torch = st.get_torch()
    libs = stack_libraries()
    if not libs:
        return "no installed library requires torch, torchvision or torchaudio", {"libraries": {}}
    per_import = float(st.config.get("stack_import_timeout") or 60.0)
    budget = float(st.config.get("stack_budget") or 240.0)
    modules = []
    for _, _, mods, _ in libs:
        modules.extend(m for m in mods if m not in modules)
    t = time.monotonic()
    results = import_modules(modules, per_import, budget)
    problems = []
    libraries = {}
    shown = []
    empty = []
    for name, version, mods, compiled in libs:
        info = {"version": version, "modules": mods, "compiled": compiled, "errors": {}}
        libraries[name] = info
        if not mods:
            empty.append("%s %s" % (name, version))
            continue
        bad = [(m, results[m]) for m in mods if m in results and results[m][0] != "ok"]
        if not bad:
            shown.append("%s %s" % (name, version))
            continue
        for m, (kind, detail, _) in bad:
            info["errors"][m] = {"kind": kind, "error": detail}
        m, (kind, detail, _) = bad[0]
        what = "import %s" % m
        if kind == "hung":
            problems.append(
                '%s %s: %s %s; see where it stops with python -X importtime -c "import %s", '
                "or reinstall it" % (name, version, what, detail, m)
            )
        elif kind == "unchecked":
            problems.append("%s %s: %s" % (name, version, detail))
        else:
            problems.append(
                "%s %s: %s failed: %s; %s"
                % (
                    name,
                    version,
                    what,
                    detail,
                    stack_advice(torch, name, version, detail, compiled),
                )
            )
    data = {"libraries": libraries, "seconds": time.monotonic() - t}
    if problems:
        raise Fail("; ".join(problems), data)
    detail = "imported %d: %s" % (len(shown), ", ".join(shown)) if shown else "nothing imported"
    if empty:
        detail += "; no module to import in " + ", ".join(empty)
    return detail, data


# ---------------------------------------------------------------- the workload

# A short real training run, the way the tutorials end: a small BERT-like classifier built from
# a config (transformers; its batches through an in-memory datasets.Dataset, mapped, when
# datasets is installed), else a small CNN on 28x28 images. The task is synthetic but learnable
# (the label is a function of the input) and seeded, so the loss falls every time.
WL_VOCAB, WL_SEQ, WL_MARKER = 128, 32, 5  # a sequence is positive when it holds the marker
WL_BATCH, WL_STEPS, WL_EVAL = 16, 60, 64
HF_OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")  # set by envsetup


def wl_tokens(torch, n, gen):
    ids = torch.randint(WL_MARKER + 1, WL_VOCAB, (n, WL_SEQ), generator=gen)
    ids[:, 0] = 1  # the classifier token
    has = torch.rand(n, generator=gen) < 0.5
    pos = torch.randint(1, WL_SEQ, (n,), generator=gen)
    ids[has, pos[has]] = WL_MARKER
    return ids


def wl_label_batch(batch):
    # The map step, as in the tutorials' tokenize-and-label: the labels come from the tokens.
    return {
        "labels": [int(WL_MARKER in ids) for ids in batch["input_ids"]],
        "attention_mask": [[1] * len(ids) for ids in batch["input_ids"]],
    }


def wl_images(torch, n, gen):
    labels = torch.randint(0, 10, (n,), generator=gen)
    images = torch.randn(n, 1, 28, 28, generator=gen) * 0.5
    for k in range(10):  # class k: a bright band at rows 4+2k, 5+2k
        images[labels == k, :, 4 + 2 * k : 6 + 2 * k, :] += 1.5
    return images, labels


def wl_cnn(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )


def missing(exc, name):
    return isinstance(exc, ImportError) and getattr(exc, "name", None) == name


def wl_setup(torch):
    """(what, make_model, dataset, eval batch, loss(model, batch), uses, schedule maker)."""
    gen = torch.Generator().manual_seed(0)
    try:
        import transformers
    except ImportError as exc:
        if not missing(exc, "transformers"):
            raise Fail("transformers is installed but does not import: " + one_line(exc)) from None
        transformers = None
    if transformers is None:
        images, labels = wl_images(torch, WL_BATCH * WL_STEPS, gen)
        ev_images, ev_labels = wl_images(torch, WL_EVAL, gen)
        dataset = torch.utils.data.TensorDataset(images, labels)

        def loss_fn(model, batch):
            return torch.nn.functional.cross_entropy(model(batch[0]).float(), batch[1])

        return ("CNN on 28x28 images", lambda: wl_cnn(torch), dataset, (ev_images, ev_labels),
                loss_fn, ["torch"], None)  # fmt: skip
    config = transformers.BertConfig(
        vocab_size=WL_VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=WL_SEQ,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2,
    )

    def make_model():
        return transformers.AutoModelForSequenceClassification.from_config(config)

    ids = wl_tokens(torch, WL_BATCH * WL_STEPS, gen)
    ev = wl_tokens(torch, WL_EVAL, gen)
    uses = ["transformers " + transformers.__version__]
    try:
        import datasets
    except ImportError as exc:
        if not missing(exc, "datasets"):
            raise Fail("datasets is installed but does not import: " + one_line(exc)) from None
        datasets = None
    if datasets is not None:
        with contextlib.suppress(Exception):
            datasets.disable_progress_bars()
        dataset = datasets.Dataset.from_dict({"input_ids": ids.tolist()})
        dataset = dataset.map(wl_label_batch, batched=True)
        dataset = dataset.with_format("torch", columns=["input_ids", "attention_mask", "labels"])
        uses.append("datasets " + datasets.__version__)
    else:
        dataset = torch.utils.data.TensorDataset(ids, (ids == WL_MARKER).any(1).long())
    ev_batch = {
        "input_ids": ev,
        "attention_mask": torch.ones_like(ev),
        "labels": (ev == WL_MARKER).any(1).long(),
    }

    def loss_fn(model, batch):
        if not isinstance(batch, dict):  # a TensorDataset's (input_ids, labels)
            batch = {"input_ids": batch[0], "attention_mask": torch.ones_like(batch[0]),
                     "labels": batch[1]}  # fmt: skip
        return model(**batch).loss

    def schedule(opt, warmup, total):
        return transformers.get_linear_schedule_with_warmup(opt, warmup, total)

    return ("BERT-like classifier (transformers, from a config)", make_model, dataset, ev_batch,
            loss_fn, uses, schedule)  # fmt: skip


def to_device(batch, dev):
    if isinstance(batch, dict):
        return {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
    return [v.to(dev, non_blocking=True) for v in batch]


def amp_setup(torch, dev):
    """(autocast dtype or None, GradScaler or None, words). On a CUDA GPU: bf16 where it has it,
    else fp16 with a GradScaler. On the CPU and MPS the run stays in float32: bf16 autocast on a
    CPU made this model ten times slower (113 vs 1155 samples/s, avx512_bf16 CPU); the amp
    check proves autocast itself on every device."""
    if dev != "cuda":
        return None, None, "float32"
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None, "bf16 autocast"
    amp = getattr(torch, "amp", None)
    # torch.amp.GradScaler("cuda") from torch 2.3; torch.cuda.amp.GradScaler() before
    new = hasattr(amp, "GradScaler")
    scaler = amp.GradScaler("cuda") if new else torch.cuda.amp.GradScaler()
    return torch.float16, scaler, "fp16 autocast with GradScaler"


def peak_memory_mib(torch, dev):
    """(MiB, what was measured): the GPU's peak allocation, else the process's peak RSS."""
    if dev == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20, "peak CUDA memory allocated"
    if dev == "mps":
        return torch.mps.driver_allocated_memory() / 2**20, "MPS driver memory"
    try:
        import resource
    except ImportError:  # Windows: the process's peak working set
        import ctypes
        from ctypes import wintypes

        class Counters(ctypes.Structure):
            _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
                (n, ctypes.c_size_t)
                for n in ("PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                          "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage",
                          "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage")
            ]  # fmt: skip

        c = Counters()
        c.cb = ctypes.sizeof(Counters)
        k32 = ctypes.windll.kernel32
        ctypes.windll.psapi.GetProcessMemoryInfo(k32.GetCurrentProcess(), ctypes.byref(c), c.cb)
        return c.PeakWorkingSetSize / 2**20, "peak process working set"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "peak process RSS"


def torch_load(torch, path, dev):
    try:
        return torch.load(path, map_location=dev, weights_only=True)
    except TypeError:  # torch before 1.13 has no weights_only
        return torch.load(path, map_location=dev)


def eval_loss(torch, model, loss_fn, batch, dev):
    model.eval()
    with torch.no_grad():
        loss = float(loss_fn(model, to_device(batch, dev)))
    model.train()
    return loss


def check_workload(st):
    torch = st.get_torch()
    dev = st.get_device()
    budget = float(st.config.get("workload_budget") or 60.0)
    t0 = time.monotonic()
    torch.manual_seed(0)
    what, make_model, dataset, ev_batch, loss_fn, uses, schedule = wl_setup(torch)
    model = make_model().to(dev)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    workers = 2
    # Each worker fetches a whole batch at once (one slice of the Arrow table, not 16 rows).
    sampler = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(dataset, generator=torch.Generator().manual_seed(0)),
        batch_size=WL_BATCH,
        drop_last=True,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=dev == "cuda",
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    warmup = 4
    if schedule is not None:
        sched = schedule(opt, warmup, WL_STEPS)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=WL_STEPS)
    dtype, scaler, amp_words = amp_setup(torch, dev)
    loss_first = eval_loss(torch, model, loss_fn, ev_batch, dev)
    if not hasattr(torch, "compile"):
        raise Fail("torch %s has no torch.compile (it came in 2.0)" % torch.__version__)
    compiled = torch.compile(model)
    losses = []
    steps = 0
    stopped = False
    t_first = None
    marks = []  # when each step ended
    t_train = time.monotonic()
    try:
        for batch in loader:
            batch = to_device(batch, dev)
            ctx = (
                torch.autocast(dev, dtype=dtype) if dtype is not None else contextlib.nullcontext()
            )
            with ctx:
                loss = loss_fn(compiled, batch)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))  # waits for the step
            steps += 1
            marks.append(time.monotonic())
            if t_first is None:
                t_first = time.monotonic()  # the first step compiles: timed apart
            elif time.monotonic() - t_first > budget:
                stopped = True
                break
    except Fail:
        raise
    except Exception as exc:
        mod = type(exc).__module__ or ""
        compiling = mod.startswith(("torch._dynamo", "torch._inductor"))
        cause = compiler_problem(torch, dev) if compiling else None
        raise Fail(
            "training step %d failed: %s%s"
            % (steps + 1, one_line(exc), "; " + cause if cause else ""),
            {"steps": steps, "losses": losses},
        ) from None
    sync(torch, dev)
    t_end = time.monotonic()
    first_step = (t_first or t_end) - t_train
    # Samples per second at the median step (after the first, which compiles): a busy machine's
    # stalls do not count; the mean over all of them is kept beside it.
    durations = sorted(b - a for a, b in zip(marks, marks[1:]))
    median = durations[len(durations) // 2] if durations else 0.0
    samples_per_s = WL_BATCH / median if median > 0 else 0.0
    span = t_end - (t_first or t_end)
    samples_per_s_mean = len(durations) * WL_BATCH / span if span > 0 else 0.0
    loss_last = eval_loss(torch, model, loss_fn, ev_batch, dev)
    # A checkpoint saved and loaded back into a new model gives the same outputs.
    with tempfile.TemporaryDirectory(prefix="envsetup-workload-") as tmp:
        path = os.path.join(tmp, "checkpoint.pt")
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "step": steps}  # fmt: skip
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        torch.save(state, path)
        back = torch_load(torch, path, dev)
        fresh = make_model().to(dev)
        fresh.load_state_dict(back["model"])
        opt2 = torch.optim.AdamW(fresh.parameters(), lr=3e-3)
        opt2.load_state_dict(back["optimizer"])
        size_mib = os.path.getsize(path) / 2**20
    model.eval()
    fresh.eval()
    with torch.no_grad():
        probe = to_device(ev_batch, dev)
        if isinstance(probe, dict):
            probe = dict(probe)
            probe.pop("labels")
            a, b = model(**probe).logits, fresh(**probe).logits
        else:
            a, b = model(probe[0]), fresh(probe[0])
    memory, memory_kind = peak_memory_mib(torch, dev)
    data = {
        "model": what,
        "uses": uses,
        "device": dev,
        "steps": steps,
        "batch_size": WL_BATCH,
        "loss_first": loss_first,
        "loss_last": loss_last,
        "losses": losses,
        "samples_per_s": samples_per_s,
        "samples_per_s_mean": samples_per_s_mean,
        "first_step_s": first_step,
        "peak_memory_mib": memory,
        "peak_memory_kind": memory_kind,
        "amp": amp_words,
        "workers": workers,
        "pin_memory": dev == "cuda",
        "checkpoint_mib": size_mib,
        "budget_s": budget,
        "offline": {k: os.environ.get(k) for k in HF_OFFLINE},
        "stopped_by_budget": stopped,
        "seconds": time.monotonic() - t0,
    }
    if not torch.equal(a, b):
        raise Fail(
            "the checkpoint loaded back gives other outputs (max difference %.3g)"
            % float((a.float() - b.float()).abs().max()),
            data,
        )
    if not (loss_last < loss_first):  # NaN never passes
        raise Fail(
            "the loss did not fall in %d steps%s: %.4f at the start, %.4f at the end"
            % (steps, " (the %g s budget ended the run)" % budget if stopped else "",
               loss_first, loss_last),
            data,
        )  # fmt: skip
    detail = (
        "%s on %s, %s: %d steps, loss %.3f -> %.3f, %.0f samples/s, peak %.0f MiB, %.1f s "
        "(first step, compiling: %.1f s); torch.compile, AdamW + schedule, clipping, "
        "%d DataLoader workers%s, checkpoint reloads identically"
        % (what, dev, amp_words, steps, loss_first, loss_last, samples_per_s, memory,
           data["seconds"], first_step, workers, " (pinned)" if dev == "cuda" else "")
    )  # fmt: skip
    return detail, data


CHECKS = {
    "import": check_import,
    "versions": check_versions,
    "stack": check_stack,
    "device": check_device,
    "tensor-ops": check_tensor_ops,
    "autograd": check_autograd,
    "cudnn": check_cudnn,
    "amp": check_amp,
    "compile": check_compile,
    "bench-matmul": check_bench_matmul,
    "bench-memory": check_bench_memory,
    "workload": check_workload,
}


def main():
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    st = State(config)
    for name in config.get("checks", list(CHECKS)):
        emit({"event": "start", "name": name})
        t = time.monotonic()
        status, detail, data = "pass", "", {}
        try:
            fn = CHECKS.get(name)
            if fn is None:
                raise Fail("unknown check " + repr(name))
            detail, data = fn(st)
        except Skip as exc:
            status, detail = "skip", str(exc)
        except Fail as exc:
            status, detail, data = "fail", exc.detail, exc.data
        except Exception as exc:
            status, detail = "fail", one_line(exc)
            data = {"traceback": traceback.format_exc(limit=6)}
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
    emit({"event": "done"})


if __name__ == "__main__":
    main()
