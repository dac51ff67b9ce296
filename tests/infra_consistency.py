"""Proves that infra/ agrees with the code and docs/aws.md, by parsing the Terraform (python-hcl2).

- every function crate is the artifact of a Lambda, whose zip is where `make package` writes it
  (the rollup crate is two functions: the scheduled rollup and the shard queue's worker);
- every environment variable docs/aws.md marks as required for a function is set on it;
- every scheduled rollup job has a schedule;
- the API Gateway routes are the router's routes;
- every IAM action docs/aws.md lists for a function is granted to its role, and nothing more;
- every alarm on tally's own metrics watches a metric (and dimension) that function publishes.

Run: `.venv/bin/python tests/infra_consistency.py` (make infra-check does).
"""

import os
import re
import shutil
import sys
import tempfile
import unittest

import hcl2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Jobs run on demand by an operator rather than on a schedule.
ON_DEMAND_JOBS = {"backfill"}


def unwrap(v):
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v


def load(infra):
    merged = {}
    for name in sorted(os.listdir(infra)):
        if name.endswith(".tf"):
            with open(os.path.join(infra, name)) as f:
                for key, blocks in hcl2.load(f).items():
                    merged.setdefault(key, []).extend(blocks)
    return merged


def local(tf, name):
    for block in tf.get("locals", []):
        if name in block:
            return unwrap(block[name])
    raise KeyError(f"local.{name} is not defined")


def resources(tf, kind):
    out = {}
    for block in tf.get("resource", []):
        out.update(block.get(kind, {}))
    return out


def data(tf, kind):
    out = {}
    for block in tf.get("data", []):
        out.update(block.get(kind, {}))
    return out


def readme_functions():
    """Function name -> (required env vars, IAM actions) from the table of functions in docs/aws.md."""
    with open(os.path.join(ROOT, "docs", "aws.md")) as f:
        text = f.read()
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.fullmatch(r"`\w+`", cells[0]):
            continue
        name = cells[0].strip("`")
        env = {m.group(1) for m in re.finditer(r"`(TALLY_\w+)`(?! \(optional\))", cells[3])}
        actions = set(re.findall(r"`([a-z0-9]+:[A-Za-z*]+)`", cells[4]))
        out[name] = (env, actions)
    return out


ROUTE = re.compile(r'\.route\(\s*"([^"]+)",\s*get\(')


def router_routes():
    """(public routes, routes behind the token) of the router: http.rs's /v1 block needs the token;
    its other routes and the console's (console.rs) are public."""
    with open(os.path.join(ROOT, "src", "serve", "http.rs")) as f:
        text = f.read()
    with open(os.path.join(ROOT, "src", "serve", "console.rs")) as f:
        console = f.read()
    v1_block = text[text.index("let v1 = Router::new()") :]
    v1_block = v1_block[: v1_block.index(";")]
    v1 = ROUTE.findall(v1_block)
    top = ROUTE.findall(text.replace(v1_block, "")) + ROUTE.findall(console)
    return {f"GET {p}" for p in top}, {f"GET /v1{p}" for p in v1}


def jobs():
    with open(os.path.join(ROOT, "src", "rollup", "jobs.rs")) as f:
        text = f.read()
    body = text[text.index("pub enum Job {") :]
    body = body[: body.index("\n}")]
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", v).lower() for v in re.findall(r"^    ([A-Z]\w*)", body, re.M)}


def published_metrics():
    """(function, namespace, metric, dimension value) of the EMF lines each function prints."""
    out = set()
    for crate in os.listdir(os.path.join(ROOT, "functions")):
        path = os.path.join(ROOT, "functions", crate, "src", "lib.rs")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            text = f.read()
        for ns in re.findall(r'"Namespace": "(\w+)"', text):
            for metric in re.findall(r'"Metrics": \[\{"Name": "(\w+)"', text):
                for fn in re.findall(r'"Function": "(\w+)"', text):
                    out.add((crate, ns, metric, fn))
    return out


def problems(infra):
    tf = load(infra)
    found = []
    functions = local(tf, "functions")
    crates = sorted(d for d in os.listdir(os.path.join(ROOT, "functions")) if os.path.exists(os.path.join(ROOT, "functions", d, "Cargo.toml")))
    artifacts = sorted({unwrap(unwrap(spec).get("artifact")) for spec in functions.values()})
    if artifacts != crates:
        found.append(f"artifacts of the functions in Terraform {artifacts} differ from crates in functions/ {crates}")

    lam = unwrap(resources(tf, "aws_lambda_function").get("function", {}))
    filename = unwrap(lam.get("filename"))
    if filename != "${var.lambda_zip_dir}/tally-${each.value.artifact}/bootstrap.zip":
        found.append(f"Lambda filename {filename!r} is not make package's tally-<function>/bootstrap.zip")
    zip_dir = None
    for block in tf.get("variable", []):
        if "lambda_zip_dir" in block:
            zip_dir = unwrap(unwrap(block["lambda_zip_dir"]).get("default"))
    if zip_dir != "../target/lambda":
        found.append(f"var.lambda_zip_dir defaults to {zip_dir!r}, not make package's ../target/lambda")
    with open(os.path.join(ROOT, "Makefile")) as f:
        makefile = f.read()
    for crate in crates:
        if f"--package tally-{crate}" not in makefile:
            found.append(f"make package does not build tally-{crate}")

    documented = readme_functions()
    policies = data(tf, "aws_iam_policy_document")
    for name, spec in functions.items():
        spec = unwrap(spec)
        env_set = set(unwrap(spec.get("environment", {})) or {})
        if name not in documented:
            found.append(f"docs/aws.md does not document function {name}")
            continue
        required, actions = documented[name]
        for var in sorted(required - env_set):
            found.append(f"function {name} requires {var}, which Terraform does not set")
        granted = set()
        for statement in unwrap(policies.get(name, {})).get("statement", []):
            statement = unwrap(statement)
            granted |= set(unwrap(statement.get("actions", [])) if isinstance(unwrap(statement.get("actions")), list) else [unwrap(statement.get("actions"))])
        for action in sorted(actions - granted):
            found.append(f"function {name}: docs/aws.md lists {action}, which its role is not granted")
        for action in sorted(granted - actions):
            found.append(f"function {name}: its role is granted {action}, which docs/aws.md does not list")

    scheduled = set()
    for spec in local(tf, "rollup_jobs").values():
        scheduled.add(unwrap(unwrap(spec).get("payload", {})).get("job"))
    for job in sorted(jobs() - ON_DEMAND_JOBS - scheduled):
        found.append(f"rollup job {job!r} has no schedule")

    public, private = router_routes()
    if set(local(tf, "jwt_routes")) != private:
        found.append(f"API Gateway routes behind the JWT {sorted(local(tf, 'jwt_routes'))} differ from the router's /v1 routes {sorted(private)}")
    if set(local(tf, "public_routes")) != public:
        found.append(f"API Gateway routes without the JWT {sorted(local(tf, 'public_routes'))} differ from the router's public ones {sorted(public)}")
    published = {(ns, metric, fn) for (_, ns, metric, fn) in published_metrics()}
    for name, alarm in local(tf, "alarms").items():
        alarm = unwrap(alarm)
        if unwrap(alarm.get("namespace")) != "tally":
            continue
        key = ("tally", unwrap(alarm.get("metric")), unwrap(unwrap(alarm.get("dimensions", {})).get("Function")))
        if key not in published:
            found.append(f"alarm {name} watches {key}, which no function publishes")
    return found


class InfraConsistency(unittest.TestCase):
    def test_infra_agrees_with_code_and_docs(self):
        self.assertEqual(problems(os.path.join(ROOT, "infra")), [])

    def test_a_broken_copy_is_caught(self):
        with tempfile.TemporaryDirectory() as tmp:
            broken = os.path.join(tmp, "infra")
            shutil.copytree(os.path.join(ROOT, "infra"), broken)
            path = os.path.join(broken, "lambda.tf")
            with open(path) as f:
                text = f.read()
            # Remove the rollup's table variable and a granted action.
            text = text.replace("        TALLY_TABLE           = aws_dynamodb_table.periods.name\n", "", 1)
            with open(path, "w") as f:
                f.write(text)
            iam = os.path.join(broken, "iam.tf")
            with open(iam) as f:
                text = f.read()
            with open(iam, "w") as f:
                f.write(text.replace('"sqs:GetQueueAttributes"', '"sqs:GetQueueAttributes", "sqs:PurgeQueue"', 1))
            alarms = os.path.join(broken, "alarms.tf")
            with open(alarms) as f:
                text = f.read()
            with open(alarms, "w") as f:
                f.write(text.replace('metric = "TouchedHoursWaiting"', 'metric = "TouchedHoursPending"', 1))
            found = problems(broken)
            self.assertIn("function rollup requires TALLY_TABLE, which Terraform does not set", found)
            self.assertIn("function ingest: its role is granted sqs:PurgeQueue, which docs/aws.md does not list", found)
            self.assertIn("alarm rollup-falling-behind watches ('tally', 'TouchedHoursPending', 'rollup'), which no function publishes", found)


if __name__ == "__main__":
    result = unittest.main(argv=[sys.argv[0], "-v"], exit=False).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
