"""Issue 12: services behind one seam. The EC2 inventory is EC2's bundle
data: read by EC2 code from the bundle's `ec2/` files in the same load as
the IAM policies, so a broken inventory file refuses the whole reload (the
running snapshot and its inventory keep serving) and a good one is swapped
in with its snapshot. Mapping names are the registry's: an unknown
`--default-mapping` stops the server before it serves."""

import shutil
import signal

import pytest
import requests

from conftest import ROOT, start_server, wait_for

DEMO = ROOT / "src" / "bundle" / "demo"
REGION_DIR = "ec2/111111111111/us-east-1"


def status(server):
    return requests.get(server.admin + "/v1/status", timeout=10).json()


def reload_results(server):
    text = requests.get(server.admin + "/metrics", timeout=10).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("iamgate_reloads_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels] = float(value)
    return counts


def sighup(server):
    before = reload_results(server)
    server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: reload_results(server) != before, 10), server.log()


@pytest.fixture
def demo_dir_server(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO, bundle)
    server = start_server(tmp_path, "--bundle", str(bundle), "--no-watch")
    server.bundle = bundle
    yield server
    server.stop()


def test_a_broken_inventory_file_refuses_the_reload_and_a_good_one_swaps_with_it(
        demo_dir_server):
    """issue 12"""
    server = demo_dir_server
    first = status(server)
    assert first["inventory"]["counts"]["instances"] == 4
    assert first["services"] == [{"name": "ec2", "mapping": "ec2-query"},
                                 {"name": "s3", "mapping": "s3"}]
    instances = server.bundle / REGION_DIR / "describe-instances.json"
    good = instances.read_text()

    instances.write_text("{\"Reservations\": [")
    sighup(server)
    refused = status(server)
    assert refused["revision"] == first["revision"]
    assert refused["inventory"]["counts"] == first["inventory"]["counts"]
    assert refused["inventory"]["seed_hash"] == first["inventory"]["seed_hash"]
    assert "describe-instances.json" in (refused["last_reload"] or {}).get("error", ""), refused

    # Without the file: only the development account's instance is left,
    # in the same swap as the new revision.
    instances.unlink()
    sighup(server)
    swapped = status(server)
    assert swapped["revision"] != first["revision"]
    assert swapped["inventory"]["counts"]["instances"] == 1
    assert swapped["inventory"]["seed_hash"] != first["inventory"]["seed_hash"]

    instances.write_text(good)
    sighup(server)
    assert status(server)["inventory"]["counts"]["instances"] == 4


def test_an_unknown_default_mapping_stops_the_server(tmp_path):
    """issue 12: mapping names are the registry's (`generic`, `ec2-query`, `s3`)."""
    with pytest.raises(RuntimeError) as e:
        start_server(tmp_path, "--default-mapping", "s4", wait_ready=False, timeout=10)
    message = str(e.value)
    assert "unknown service mapping `s4`" in message, message
    assert "`generic`, `ec2-query`, `s3`" in message, message
