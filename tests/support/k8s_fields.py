"""Checks Kubernetes manifests' field names against the Kubernetes API's own models.

The models are those of the Kubernetes Python client (Debian's python3-kubernetes): every
object's `openapi_types` and `attribute_map` come from the API's OpenAPI document. Each
key of each manifest must be a field of the type at its place; a typo such as
`livenesProbe` or a field at the wrong level fails with its path and the valid names.
Fields newer than the client's API version are named in NEWER, with the version that
added them. Prints one line per problem and exits 1 if there is any.

Usage: python3 k8s_fields.py FILE.yaml...
"""

import sys

import kubernetes.client as models
import yaml

# (model, JSON field) -> the Kubernetes version that added it, after the client's API.
NEWER = {
    ("V1JobSpec", "backoffLimitPerIndex"): "1.28",
    ("V1JobSpec", "maxFailedIndexes"): "1.28",
    ("V1JobSpec", "podReplacementPolicy"): "1.28",
}

# apiVersion and kind -> model.
KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("batch/v1", "CronJob"): "V1CronJob",
}

PRIMITIVES = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}


def check(value, type_name, path, problems):
    if type_name == "object":
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list ({type_name}), found {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check(item, type_name[5:-1], f"{path}[{i}]", problems)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map ({type_name}), found {type(value).__name__}")
            return
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check(item, inner, f"{path}.{key}", problems)
        return
    if type_name in PRIMITIVES:
        if not isinstance(value, PRIMITIVES[type_name]) or (type_name == "int" and isinstance(value, bool)):
            problems.append(f"{path}: expected {type_name}, found {value!r}")
        return
    model = getattr(models, type_name, None)
    if model is None:
        return  # date-time and other formats, given as strings
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({type_name}), found {value!r}")
        return
    fields = {json: (python, model.openapi_types[python]) for python, json in model.attribute_map.items()}
    for key, item in value.items():
        if key in fields:
            check(item, fields[key][1], f"{path}.{key}", problems)
        elif (type_name, key) not in NEWER:
            names = ", ".join(sorted(fields))
            problems.append(f"{path}.{key}: not a field of {type_name} (its fields: {names})")


def main(files):
    problems = []
    for file in files:
        with open(file) as f:
            for n, doc in enumerate(yaml.safe_load_all(f)):
                if doc is None:
                    continue
                where = f"{file}#{n}"
                kind = (doc.get("apiVersion"), doc.get("kind"))
                if kind not in KINDS:
                    problems.append(f"{where}: unknown apiVersion and kind {kind}")
                    continue
                check(doc, KINDS[kind], where, problems)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
