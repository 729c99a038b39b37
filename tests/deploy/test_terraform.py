"""deploy/terraform/ecs-service: parsed with python-hcl2, scanned with checkov, and its
README's tables of inputs and outputs compared with the code."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy.tools import DEPLOY, checkov, failed_checks, run, tool

MODULE = DEPLOY / "terraform" / "ecs-service"

_DUMP = """
import json, sys, hcl2
out = {}
for path in sys.argv[1:]:
    with open(path) as f:
        out[path.rsplit("/", 1)[-1]] = hcl2.load(f)
print(json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    files = sorted(str(p) for p in MODULE.glob("*.tf"))
    done = run(tool("python", venv="hcl2"), "-c", _DUMP, *files)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def blocks(parsed: dict[str, Any], kind: str) -> dict[str, Any]:
    """{name: body} of every `kind` block (variable, output) across the files."""
    out: dict[str, Any] = {}
    for document in parsed.values():
        for entry in document.get(kind, []):
            for name, body in entry.items():
                out[name.strip('"')] = body
    return out


def resources(parsed: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for document in parsed.values():
        for entry in document.get("resource", []):
            for kind, named in entry.items():
                for name, body in named.items():
                    out[f"{kind.strip(chr(34))}.{name.strip(chr(34))}"] = body
    return out


def test_every_file_parses_and_the_module_has_its_parts(parsed: dict[str, Any]) -> None:
    assert set(parsed) == {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}
    assert {
        "aws_cloudwatch_log_group.this",
        "aws_iam_role.task",
        "aws_iam_role_policy.task",
        "aws_iam_role.execution",
        "aws_ecs_task_definition.this",
        "aws_ecs_service.this",
        "aws_appautoscaling_target.this",
        "aws_appautoscaling_policy.iterator_age",
    } <= set(resources(parsed))


def test_stop_timeout_is_above_the_shutdown_grace(parsed: dict[str, Any]) -> None:
    variables = blocks(parsed, "variable")
    main = (MODULE / "main.tf").read_text()
    assert "stop_timeout  = var.shutdown_grace_seconds + var.stop_margin_seconds" in main
    assert "stopTimeout = local.stop_timeout" in main
    assert "--shutdown-grace ${var.shutdown_grace_seconds}" in main
    assert variables["stop_margin_seconds"]["default"] >= 10
    conditions = " ".join(v["condition"] for v in variables["stop_margin_seconds"]["validation"])
    assert "var.stop_margin_seconds >= 10" in conditions
    grace = variables["shutdown_grace_seconds"]
    assert "<= 90" in grace["validation"][0]["condition"]  # grace + 30 <= Fargate's 120


def test_the_task_role_gets_the_policy_with_placeholders_filled(parsed: dict[str, Any]) -> None:
    main = (MODULE / "main.tf").read_text()
    for token in ("AWS::AccountId", "AWS::Region", "AWS::Partition"):
        assert f'"$${{{token}}}"' in main  # HCL's escape for a literal ${...}
    from shardline.iam import ACCOUNT_PLACEHOLDER, PARTITION_PLACEHOLDER, REGION_PLACEHOLDER

    assert {ACCOUNT_PLACEHOLDER, REGION_PLACEHOLDER, PARTITION_PLACEHOLDER} == {
        "${AWS::AccountId}", "${AWS::Region}", "${AWS::Partition}"
    }  # fmt: skip
    assert resources(parsed)["aws_iam_role_policy.task"]["policy"] == "${local.task_policy}"


def test_pipeline_from_ssm_or_env_and_health_check_on_live(parsed: dict[str, Any]) -> None:
    main = (MODULE / "main.tf").read_text()
    assert 'name = "SHARDLINE_PIPELINE_TOML", valueFrom = var.pipeline_ssm_parameter_arn' in main
    assert 'name = "SHARDLINE_PIPELINE_TOML", value = var.pipeline_toml' in main
    assert "exec shardline run --config ${local.pipeline_path}" in main
    assert "/health/live" in main
    service = resources(parsed)["aws_ecs_service.this"]
    assert service["deployment_minimum_healthy_percent"] == 100
    assert service["launch_type"].strip('"') == "FARGATE"


def _readme_names(heading: str) -> set[str]:
    text = (MODULE / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))


def test_readme_documents_every_input_and_output(parsed: dict[str, Any]) -> None:
    assert _readme_names("Inputs") == set(blocks(parsed, "variable"))
    assert _readme_names("Outputs") == set(blocks(parsed, "output"))
    for name, body in blocks(parsed, "variable").items():
        assert body.get("description"), name
    for name, body in blocks(parsed, "output").items():
        assert body.get("description"), name


def test_checkov_finds_no_failed_check() -> None:
    report = checkov(MODULE, "terraform")
    assert failed_checks(report) == []
    assert report["summary"]["parsing_errors"] == 0
    passed = {c["check_id"] for c in report["results"]["passed_checks"]}
    # the checks that matter most here did run (and passed)
    assert {"CKV_AWS_336", "CKV_AWS_249", "CKV_AWS_333", "CKV_AWS_338", "CKV_AWS_111"} <= passed
