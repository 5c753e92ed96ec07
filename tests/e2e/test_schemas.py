"""Issue 14 (operators' bundle tools): the JSON Schemas under schemas/ that
editors use as people type. Every policy test file of the project (corpus,
conformance, the demo bundle's tests) and every file of the demo bundle
validates against its schema; a typo the binary refuses is caught by the
schema too; and `$schema` is accepted by the binary."""

import fnmatch
import json
import pathlib
import shutil
import subprocess

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from conftest import BINARY, ROOT

SCHEMAS = ROOT / "schemas"
DEMO = ROOT / "src" / "bundle" / "demo"
POLICY_TEST = SCHEMAS / "policy-test.v1.json"


def _retrieve(uri):
    path = pathlib.Path(uri.removeprefix("file://"))
    return Resource.from_contents(_load_schema(path))


def _load_schema(path):
    schema = json.loads(path.read_text())
    # Relative `$ref`s resolve against the schema's own file, as in editors.
    schema["$id"] = path.resolve().as_uri()
    return schema


REGISTRY = Registry(retrieve=_retrieve)


def validator(schema_path):
    return Draft202012Validator(_load_schema(schema_path), registry=REGISTRY)


def errors(schema_path, doc):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(schema_path).iter_errors(doc)]


# Which schema a bundle file follows (the globs an editor maps; `*` spans
# folders, as in fnmatch).
BUNDLE_SCHEMAS = [
    ("manifest.json", "bundle/manifest.json"),
    ("organization.json", "bundle/organization.json"),
    ("organization/*.json", "bundle/organization-call.json"),
    ("resource-policies.json", "bundle/resource-policies.json"),
    ("iam/*.json", "bundle/iam-account.json"),
    ("tests/*.json", "policy-test.v1.json"),
]


def bundle_schema(bundle, path):
    rel = path.relative_to(bundle).as_posix()
    for pattern, schema in BUNDLE_SCHEMAS:
        if fnmatch.fnmatchcase(rel, pattern):
            return SCHEMAS / schema
    return None


def test_every_schema_is_a_valid_2020_12_schema():
    """issue 14: the published schemas themselves."""
    found = sorted(SCHEMAS.rglob("*.json"))
    assert len(found) >= 7, found
    for path in found:
        Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_every_policy_test_file_validates():
    """issue 14: corpus, conformance and the demo bundle's tests."""
    files = [*sorted((ROOT / "tests" / "corpus").rglob("*.json")),
             *sorted((ROOT / "tests" / "conformance").rglob("*.json")),
             *sorted((DEMO / "tests").glob("*.json"))]
    assert len(files) > 150, len(files)
    bad = {}
    for path in files:
        errs = errors(POLICY_TEST, json.loads(path.read_text()))
        if errs:
            bad[str(path.relative_to(ROOT))] = errs
    assert not bad, json.dumps(bad, indent=1)


def test_the_demo_bundle_validates():
    """issue 14: every demo bundle file with a schema (ec2/ is CLI output
    without one)."""
    checked = 0
    for path in sorted(DEMO.rglob("*.json")):
        schema = bundle_schema(DEMO, path)
        if schema is None:
            assert path.relative_to(DEMO).parts[0] == "ec2", path
            continue
        assert not errors(schema, json.loads(path.read_text())), path
        checked += 1
    assert checked >= 7, checked


def test_cli_shaped_organization_files_validate(tmp_path):
    """issue 14: the organization/ folder's call outputs."""
    calls = {
        "describe-organization.json": {"Organization": {
            "Id": "o-aa111bb222", "Arn": "arn:aws:organizations::999999999999:organization/o-aa111bb222",
            "FeatureSet": "ALL", "MasterAccountId": "999999999999"}},
        "list-roots.json": {"Roots": [{"Id": "r-ab12", "Name": "Root", "PolicyTypes": []}]},
        "parents/r-ab12/list-accounts-for-parent.json": {"Accounts": [
            {"Id": "111122223333", "Name": "prod", "Email": "a@example.com", "Status": "ACTIVE"}]},
        "policies/p-1/describe-policy.json": {"Policy": {
            "PolicySummary": {"Id": "p-1", "Type": "SERVICE_CONTROL_POLICY", "AwsManaged": False},
            "Content": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}},
        "policies/p-1/list-targets-for-policy.json": {"Targets": [
            {"TargetId": "r-ab12", "Type": "ROOT", "Name": "Root"}]},
    }
    for rel, doc in calls.items():
        path = tmp_path / "organization" / rel
        assert bundle_schema(tmp_path, path).name == "organization-call.json", rel
        assert not errors(bundle_schema(tmp_path, path), doc), rel
    assert errors(SCHEMAS / "bundle/organization-call.json", {"Root": []})


TYPOS = [
    # (what, file, edit as (from, to), schema, error fragment)
    ("a misspelled test member", "tests/corpus/cond-bool.json",
     '"expect"', '"expcet"', POLICY_TEST),
    ("a misspelled decision", "tests/corpus/cond-bool.json",
     '"allowed"', '"allow"', POLICY_TEST),
    ("a misspelled policy element", "tests/corpus/cond-bool.json",
     '"Effect"', '"Efect"', POLICY_TEST),
]


@pytest.mark.parametrize("what,rel,old,new,schema", TYPOS, ids=[t[0] for t in TYPOS])
def test_a_typo_is_caught_by_the_schema_and_the_binary(tmp_path, what, rel, old, new, schema):
    """issue 14: the schema refuses what `iamgate test` refuses."""
    text = (ROOT / rel).read_text()
    assert old in text
    typo = text.replace(old, new, 1)
    assert not errors(schema, json.loads(text))
    assert errors(schema, json.loads(typo)), what
    path = tmp_path / "typo.json"
    path.write_text(typo)
    out = subprocess.run([str(BINARY), "test", str(path)], capture_output=True, text=True)
    assert out.returncode == 2, out.stdout


def test_a_bundle_typo_is_caught_by_the_schema_and_the_binary(tmp_path):
    """issue 14: organization.json's `Polices` would drop every SCP."""
    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO, bundle)
    org = json.loads((bundle / "organization.json").read_text())
    org["Polices"] = org.pop("Policies")
    (bundle / "organization.json").write_text(json.dumps(org))
    errs = errors(SCHEMAS / "bundle/organization.json", org)
    assert any("Polices" in e for e in errs), errs
    out = subprocess.run([str(BINARY), "bundle", "check", str(bundle)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Polices" in out.stdout, out.stdout


def test_schema_member_is_accepted(tmp_path):
    """issue 14: `$schema` in a policy test file and organization.json."""
    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO, bundle)
    for rel, schema in [("tests/bob.json", "../../schemas/policy-test.v1.json"),
                        ("organization.json", "../schemas/bundle/organization.json")]:
        doc = json.loads((bundle / rel).read_text())
        doc = {"$schema": schema, **doc}
        (bundle / rel).write_text(json.dumps(doc))
        assert not errors(bundle_schema(bundle, bundle / rel), doc), rel
    out = subprocess.run([str(BINARY), "bundle", "check", str(bundle)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    out = subprocess.run([str(BINARY), "test", str(bundle / "tests")],
                         capture_output=True, text=True)
    count = sum(len(json.loads(f.read_text()).get("tests", [])) for f in (DEMO / "tests").glob("*.json"))
    assert (out.returncode, out.stdout) == (0, f"{count} passed, 0 failed\n"), out.stdout
