"""Renders weft's Kubernetes kustomizations and validates every object.

Rendering follows kustomize for the parts the manifests use: `resources`
(files, or directories holding a kustomization.yaml) and `patches` with an
inline RFC 6902 JSON patch and a target (kind, name), applied with the
`jsonpatch` library. Anything else in a kustomization is refused, so a
manifest cannot silently use a feature this check does not render.

Kubernetes' own kinds are validated strictly (unknown fields refused) against
the OpenAPI schemas `kubernetes-validate` ships; custom resources against the
openAPIV3Schema of their CRD from the fixtures directory, made strict the
same way. Prints a JSON report: per kustomization, its objects and the
weft.toml texts its ConfigMaps carry; exits 1 on the first invalid object.

usage: k8s_validate.py DEPLOY_DIR CRD_DIR K8S_VERSION
"""
import copy
import json
import os
import sys

import jsonpatch
import jsonschema
import kubernetes_validate
import yaml

KNOWN_KEYS = {"apiVersion", "kind", "resources", "patches"}


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def render(kdir):
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise SystemExit(f"{kdir}: kustomization keys this check does not render: {sorted(unknown)}")
    objs = []
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(kdir, r))
        objs.extend(render(p) if os.path.isdir(p) else load_docs(p))
    for patch in k.get("patches", []):
        t = patch["target"]
        ops = yaml.safe_load(patch["patch"])
        hits = [o for o in objs if o["kind"] == t["kind"] and o["metadata"]["name"] == t["name"]]
        if len(hits) != 1:
            raise SystemExit(f"{kdir}: patch target {t} matches {len(hits)} objects")
        i = objs.index(hits[0])
        objs[i] = jsonpatch.apply_patch(hits[0], ops)
    return objs


def strict(schema):
    """Refuses unknown fields, as the API server's strict field validation does."""
    s = copy.deepcopy(schema)

    def walk(n):
        if isinstance(n, dict):
            if n.get("type") == "object" and "properties" in n and "additionalProperties" not in n \
                    and not n.get("x-kubernetes-preserve-unknown-fields"):
                n["additionalProperties"] = False
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(s)
    return s


def crd_schemas(crd_dir):
    out = {}
    for name in os.listdir(crd_dir):
        if not name.endswith(".yaml"):
            continue
        for crd in load_docs(os.path.join(crd_dir, name)):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                if v.get("served"):
                    out[(f"{group}/{v['name']}", kind)] = strict(v["schema"]["openAPIV3Schema"])
    return out


def validate(obj, crds, version):
    key = (obj["apiVersion"], obj["kind"])
    if key in crds:
        body = {k: v for k, v in obj.items() if k != "metadata"}
        jsonschema.validate(body, crds[key])
        if not obj.get("metadata", {}).get("name"):
            raise jsonschema.ValidationError("metadata.name is required")
        return f"CRD {obj['apiVersion']}"
    return "Kubernetes " + kubernetes_validate.validate(obj, version, strict=True)


def main():
    deploy, crd_dir, version = sys.argv[1:4]
    crds = crd_schemas(crd_dir)
    report = {}
    dirs = [os.path.join(deploy, "base")] + sorted(
        os.path.join(deploy, "overlays", d) for d in os.listdir(os.path.join(deploy, "overlays")))
    for kdir in dirs:
        objs = render(kdir)
        entry = {"objects": [], "weft_toml": [], "deployments": []}
        for o in objs:
            try:
                how = validate(o, crds, version)
            except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as e:
                print(f"{kdir}: {o['kind']}/{o['metadata']['name']}: {e.message} at {list(e.absolute_path)}",
                      file=sys.stderr)
                sys.exit(1)
            except kubernetes_validate.SchemaNotFoundError as e:
                print(f"{kdir}: {o['kind']}/{o['metadata']['name']}: no schema: {e}", file=sys.stderr)
                sys.exit(1)
            entry["objects"].append(f"{o['kind']}/{o['metadata']['name']} ({how})")
            if o["kind"] == "ConfigMap" and "weft.toml" in o.get("data", {}):
                entry["weft_toml"].append(o["data"]["weft.toml"])
            if o["kind"] == "Deployment":
                entry["deployments"].append(o)
        report[os.path.relpath(kdir, deploy)] = entry
    json.dump(report, sys.stdout)


main()
