"""Safe scale-in in the synthesized stack: the EMR configurations output (application masters on CORE nodes,
Spark decommission with block migration) and the node-report writer policy for the EMR instance role.

Synthesized once for the module; expected values come from the sources the stack reads (sparkscale.emr_setup,
cdk.json's clusters), never from generated logical IDs."""

from __future__ import annotations

import json

import pytest
from sparkscale.emr_setup import safe_scale_in_configurations
from stack_testlib import Synth, synth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(outdir=tmp_path_factory.mktemp("cdk.out"))


def test_the_stack_outputs_the_safe_scale_in_configurations(s: Synth) -> None:
    output = s.doc["Outputs"]["SafeScaleInConfigurations"]
    configurations = json.loads(output["Value"])  # a plain JSON string: no token in it
    assert configurations == safe_scale_in_configurations()
    by_classification = {c["Classification"]: c["Properties"] for c in configurations}
    assert by_classification["yarn-site"] == {
        "yarn.node-labels.enabled": "true",
        "yarn.node-labels.am.default-node-label-expression": "CORE",
    }
    spark = by_classification["spark-defaults"]
    for key in (
        "spark.decommission.enabled",
        "spark.storage.decommission.enabled",
        "spark.storage.decommission.shuffleBlocks.enabled",
        "spark.storage.decommission.rddBlocks.enabled",
    ):
        assert spark[key] == "true", key
    # Spark's YARN allocator ignores decommissioning nodes while the external shuffle service is on
    assert spark["spark.shuffle.service.enabled"] == "false"
    assert spark["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert "--configurations" in output["Description"]
