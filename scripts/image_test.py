#!/usr/bin/env python3
"""Builds the Dockerfile's runtime stage offline and checks it (issue 14).

The builder stage's base image cannot be pulled here, so this builds the
runtime stage the way the Dockerfile describes it, from the release binary
that scripts/image-test.sh built: `buildah --storage-driver vfs from
scratch`, the base's files (what distroless/static provides: CA
certificates, /etc/passwd with `nonroot`, /tmp, /home/nonroot), the binary,
and the image configuration read from the Dockerfile's runtime stage (USER,
ENTRYPOINT, CMD, STOPSIGNAL, EXPOSE, LABEL). It commits the image, pushes it
to an OCI archive, and checks

- the image configuration (buildah inspect, and the OCI archive's own
  config blob): non-root user 65532, ENTRYPOINT ["/iamgate"], CMD serving on
  0.0.0.0, STOPSIGNAL SIGTERM, the OCI annotation labels;
- the layer: no shell, the binary root-owned and not writable by its user,
  statically linked (no ELF interpreter), lean;
- the image runs: its root file system unpacked from the archive, mounted
  read-only, the binary started as the image's user with no capabilities
  (tests/e2e/deploy/sandbox.sh), `--help`, then the image's CMD (ports made
  ephemeral) answering /readyz and a decision, and exiting 0 on SIGTERM.
  Like an OCI runtime, the sandbox gives it /proc and the default devices
  (the statically linked binary reads /dev/urandom for randomness).

A step whose tool cannot run here is reported as SKIPPED with the reason;
the script fails if any check fails or if nothing could be checked.

Usage: image_test.py BINARY WORKDIR
"""

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = ROOT / "tests" / "e2e" / "deploy" / "sandbox.sh"
IMAGE = "localhost/iamgate:image-test"
LEAN_BYTES = 64 * 1024 * 1024
REQUIRED_LABELS = ("org.opencontainers.image.title", "org.opencontainers.image.description",
                   "org.opencontainers.image.licenses", "org.opencontainers.image.version",
                   "org.opencontainers.image.revision")
SHELLS = ("bin/sh", "bin/bash", "bin/dash", "bin/ash", "bin/busybox", "usr/bin/sh")
# An allowed request of the built-in demo bundle (README, "Try it").
BOB_START = {"principal": {"arn": "arn:aws:iam::111111111111:user/engineering/bob"},
             "action": "ec2:StartInstances",
             "resource": "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc",
             "context": {"aws:RequestedRegion": "us-east-1", "ec2:ResourceTag/team": "blue"}}

checked = []
failed = []
skipped = []


def check(name, ok, detail=""):
    (checked if ok else failed).append(name)
    print(f"  {'ok' if ok else 'FAILED'}: {name}" + (f" ({detail})" if detail and not ok else ""))
    return ok


def skip(name, why):
    skipped.append(name)
    print(f"  SKIPPED: {name}: {why}")


# --- The Dockerfile's runtime stage ------------------------------------------


def runtime_stage(dockerfile):
    """The instructions of the last stage, continuation lines joined, with
    ARG defaults substituted."""
    lines, cur = [], ""
    for raw in dockerfile.read_text().splitlines():
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    starts = [i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")]
    stage = lines[starts[-1]:]
    args = {}
    out = []
    for ln in stage:
        op, _, rest = ln.partition(" ")
        if op.upper() == "ARG":
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip().strip('"')
            continue
        rest = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), rest)
        out.append((op.upper(), rest.strip()))
    return out


def parse_labels(text):
    return {m.group(1): m.group(2) for m in re.finditer(r'([\w.\-]+)="([^"]*)"', text)}


def image_spec(dockerfile):
    spec = {"labels": {}, "expose": [], "copies": []}
    for op, rest in runtime_stage(dockerfile):
        if op == "FROM":
            spec["base"] = rest.split()[0]
        elif op == "LABEL":
            spec["labels"].update(parse_labels(rest))
        elif op == "USER":
            spec["user"] = rest
        elif op == "EXPOSE":
            spec["expose"] += rest.split()
        elif op == "STOPSIGNAL":
            spec["stopsignal"] = rest
        elif op == "ENTRYPOINT":
            spec["entrypoint"] = json.loads(rest)
        elif op == "CMD":
            spec["cmd"] = json.loads(rest)
        elif op == "COPY":
            spec["copies"].append(rest.split())
        else:
            raise SystemExit(f"Dockerfile runtime stage: {op} is not modelled by this test")
    return spec


# --- The base's files (what distroless/static:nonroot provides) ---------------


def stage_base(staging):
    """The files of gcr.io/distroless/static-debian12:nonroot that iamgate
    can use: CA certificates, users and groups, /tmp and the home of
    `nonroot`."""
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "etc" / "ssl" / "certs").mkdir(parents=True)
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if not ca.exists():
        raise SystemExit("no CA bundle at /etc/ssl/certs/ca-certificates.crt (install ca-certificates)")
    shutil.copy(ca, staging / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    (staging / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
    (staging / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")
    (staging / "tmp").mkdir()
    os.chmod(staging / "tmp", 0o1777)
    (staging / "home" / "nonroot").mkdir(parents=True)


# --- buildah ------------------------------------------------------------------


def buildah(work, *args, check_rc=True):
    cmd = ["buildah", "--storage-driver", "vfs", "--root", str(work / "storage"),
           "--runroot", str(work / "run"), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout.strip()


def build_image(binary, spec, work):
    """Builds and commits the image; returns the OCI archive path."""
    staging = work / "base"
    stage_base(staging)
    # Idempotent: drop what a previous run left.
    for cid in buildah(work, "containers", "--quiet", check_rc=False).split():
        buildah(work, "rm", cid, check_rc=False)
    buildah(work, "rmi", "--force", IMAGE, check_rc=False)
    ctr = buildah(work, "from", "--name", "iamgate-image-test", "scratch")
    try:
        buildah(work, "copy", "--chown", "0:0", ctr, str(staging / "etc"), "/etc")
        buildah(work, "copy", "--chown", "0:0", ctr, str(staging / "tmp"), "/tmp")
        buildah(work, "copy", "--chown", "65532:65532", ctr, str(staging / "home"), "/home")
        copies = [c for c in spec["copies"] if c[0].startswith("--from=")]
        assert copies and copies[0][-1] == "/iamgate", spec["copies"]
        buildah(work, "copy", "--chown", "0:0", "--chmod", "0755", ctr, str(binary),
                copies[0][-1])
        cfg = ["config", "--user", spec["user"], "--entrypoint", json.dumps(spec["entrypoint"]),
               "--cmd", json.dumps(spec["cmd"]), "--stop-signal", spec["stopsignal"],
               "--workingdir", "/"]
        for port in spec["expose"]:
            cfg += ["--port", port if "/" in port else f"{port}/tcp"]
        for k, v in spec["labels"].items():
            cfg += ["--label", f"{k}={v}"]
        buildah(work, *cfg, ctr)
        buildah(work, "commit", "--format", "oci", ctr, IMAGE)
    finally:
        buildah(work, "rm", ctr, check_rc=False)
    archive = work / "iamgate.oci.tar"
    archive.unlink(missing_ok=True)
    buildah(work, "push", IMAGE, f"oci-archive:{archive}:iamgate:image-test")
    return archive


# --- The OCI archive ----------------------------------------------------------


def read_archive(archive):
    """(config, [layer tar bytes]) from an OCI image archive, verifying the
    digest of every blob it reads."""
    with tarfile.open(archive) as t:
        def blob(digest):
            algo, hexd = digest.split(":")
            data = t.extractfile(f"blobs/{algo}/{hexd}").read()
            if hashlib.sha256(data).hexdigest() != hexd:
                raise RuntimeError(f"blob {digest} does not match its digest")
            return data
        index = json.loads(t.extractfile("index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        layers = []
        for layer in manifest["layers"]:
            data = blob(layer["digest"])
            if layer["mediaType"].endswith("+gzip"):
                data = gzip.decompress(data)
            layers.append(data)
    return config, layers


def is_static_elf(path):
    """True if the ELF file has no program interpreter (PT_INTERP)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def check_config(source, cfg, spec):
    c = cfg.get("config", cfg)
    print(f"{source}:")
    check(f"{source}: user is the non-root 65532", c.get("User") == "65532:65532", c.get("User"))
    check(f"{source}: entrypoint", c.get("Entrypoint") == ["/iamgate"], c.get("Entrypoint"))
    cmd = c.get("Cmd") or []
    check(f"{source}: cmd serves on 0.0.0.0", cmd[:1] == ["serve"] and all(
        a.startswith("0.0.0.0:") for a in cmd[2::2]) and cmd == spec["cmd"], cmd)
    check(f"{source}: stop signal", c.get("StopSignal") == "SIGTERM", c.get("StopSignal"))
    labels = c.get("Labels") or {}
    check(f"{source}: OCI labels", all(labels.get(k) for k in REQUIRED_LABELS)
          and labels == {**labels, **spec["labels"]}, labels)
    check(f"{source}: exposed ports", sorted(c.get("ExposedPorts") or {})
          == sorted(f"{p}/tcp" for p in spec["expose"]), c.get("ExposedPorts"))
    check(f"{source}: no environment beyond PATH",
          all(e.startswith("PATH=") for e in c.get("Env") or []), c.get("Env"))


def check_layers(layers, rootfs):
    """Checks the files and unpacks them into rootfs."""
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    members = {}
    for data in layers:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for m in t.getmembers():
                members[m.name.lstrip("./")] = m
            t.extractall(rootfs, filter="fully_trusted")
    # Mount points an OCI runtime creates in the container's root.
    for d in ("proc", "dev"):
        (rootfs / d).mkdir(exist_ok=True)
    print("layer:")
    binary = members.get("iamgate")
    check("layer: /iamgate is root-owned, 0755", binary is not None and binary.uid == 0
          and binary.mode & 0o7777 == 0o755, binary and (binary.uid, oct(binary.mode)))
    check("layer: no shell", not any(s in members for s in SHELLS),
          [s for s in SHELLS if s in members])
    check("layer: CA certificates", "etc/ssl/certs/ca-certificates.crt" in members)
    check("layer: passwd names the user", "nonroot:x:65532:65532:"
          in (rootfs / "etc" / "passwd").read_text())
    size = (rootfs / "iamgate").stat().st_size
    check(f"layer: binary is lean ({size / 1e6:.1f} MB)", size < LEAN_BYTES, size)
    check("layer: binary is statically linked", is_static_elf(rootfs / "iamgate"))


# --- Running it ---------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sandbox_reason():
    if os.geteuid() != 0:
        return "needs root to build a read-only mount namespace"
    for tool in ("unshare", "setpriv", "chroot"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    p = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if p.returncode != 0:
        return f"no mount namespaces here: {p.stderr.strip()}"
    return None


def http(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def run_image(rootfs, cfg, work):
    c = cfg.get("config", cfg)
    uid = c["User"].split(":")[0]
    view = work / "view"
    view.mkdir(exist_ok=True)
    env = dict(os.environ, SANDBOX_VIEW=str(view))
    base = [str(SANDBOX), str(rootfs), uid, "-"]
    print("run (read-only root, uid %s, no capabilities):" % uid)
    p = subprocess.run(base + c["Entrypoint"] + ["--help"], capture_output=True, text=True,
                       env=env, timeout=60)
    check("run: --help", p.returncode == 0 and "serve" in p.stdout, p.stderr[-2000:])
    # Nothing in the image is writable: asked to write a file, iamgate refuses
    # to start, saying why.
    p = subprocess.run(base + c["Entrypoint"] + [
        "serve", "--decision-log", "/tmp/decisions.jsonl", "--grpc-listen", "127.0.0.1:0",
        "--http-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        capture_output=True, text=True, env=env, timeout=60)
    check("run: the root file system is read-only", p.returncode != 0
          and "Read-only file system" in p.stderr, p.stderr[-2000:])

    # The image's CMD with its ports made ephemeral (0.0.0.0 kept).
    args = [re.sub(r"^0\.0\.0\.0:\d+$", lambda m: f"0.0.0.0:{free_port()}", a) for a in c["Cmd"]]
    log = open(work / "serve.log", "w")
    proc = subprocess.Popen(base + c["Entrypoint"] + args, stdout=subprocess.PIPE, stderr=log,
                            text=True, env=dict(env, RUST_LOG="info"))
    try:
        addrs = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and addrs is None:
            line = proc.stdout.readline()
            if not line:
                if proc.poll() is not None:
                    break
                continue
            try:
                addrs = json.loads(line).get("listening")
            except ValueError:
                pass
        if not check("run: serve starts with the image's CMD", addrs is not None,
                     (work / "serve.log").read_text()[-2000:]):
            return
        check("run: listens on all interfaces", all(a.startswith("0.0.0.0:")
                                                    for a in addrs.values()), addrs)
        admin = "http://127.0.0.1:" + addrs["admin"].rsplit(":", 1)[1]
        api = "http://127.0.0.1:" + addrs["http"].rsplit(":", 1)[1]
        ready = None
        while time.monotonic() < deadline:
            ready = http(admin + "/readyz")
            if ready[0] == 200:
                break
            time.sleep(0.1)
        check("run: /readyz answers 200", ready and ready[0] == 200, ready)
        status, body = http(api + "/v1/authorize", BOB_START)
        check("run: decides", status == 200 and json.loads(body).get("decision") == "allowed", body)
        st = Path(f"/proc/{proc.pid}/status").read_text()
        check("run: process uid is the image's user",
              re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", st, re.M) is not None, st)
        check("run: no effective capabilities", re.search(r"^CapEff:\s+0+$", st, re.M) is not None)
        proc.send_signal(getattr(signal, c["StopSignal"]))
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None
        check(f"run: exits 0 on {c['StopSignal']}", rc == 0, rc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    binary, work = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    work.mkdir(parents=True, exist_ok=True)
    spec = image_spec(ROOT / "Dockerfile")
    print(f"Dockerfile runtime stage: FROM {spec['base']}, USER {spec['user']}, "
          f"ENTRYPOINT {spec['entrypoint']}, CMD {spec['cmd']}")
    check("Dockerfile: runtime base is distroless/static or scratch",
          spec["base"] == "scratch" or "distroless/static" in spec["base"], spec["base"])

    cfg = layers = None
    if shutil.which("buildah") is None:
        skip("buildah image build", "buildah is not installed")
    else:
        try:
            archive = build_image(binary, spec, work)
            print(f"built {IMAGE}, pushed to {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
            inspect = json.loads(buildah(work, "inspect", "--type", "image", IMAGE))
            check_config("buildah inspect", inspect["OCIv1"], spec)
            cfg, layers = read_archive(archive)
            check_config("OCI archive config", cfg, spec)
        except RuntimeError as e:
            skip("buildah image build", f"buildah cannot run here: {e}")
    if layers is None:
        # No image: check the same root file system built by hand.
        print("no image was built: checking the runtime stage's files staged directly")
        stage_base(work / "base")
        shutil.copy(binary, work / "base" / "iamgate")
        os.chmod(work / "base" / "iamgate", 0o755)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            t.add(work / "base", arcname=".")
        layers = [buf.getvalue()]
        cfg = {"config": {"User": spec["user"], "Entrypoint": spec["entrypoint"],
                          "Cmd": spec["cmd"], "StopSignal": spec["stopsignal"]}}
    check_layers(layers, work / "rootfs")

    why = sandbox_reason()
    if why:
        skip("running the image's root file system", why)
    else:
        run_image(work / "rootfs", cfg, work)

    print(f"\nimage test: {len(checked)} checks passed, {len(failed)} failed, "
          f"{len(skipped)} skipped")
    if failed:
        print("failed: " + "; ".join(failed))
        return 1
    if not checked:
        print("nothing could be checked")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
