"""The job roles of a synthesized cloud assembly (`cdk synth`'s output), for the embedded AWS to give its jobs.

`TemplateRoles` finds the role each AWS::Batch::JobDefinition of the templates runs its containers as (its
JobRoleArn) or carries in a tag (the workload role of `rackform run`), and creates that role in the embedded AWS with
the policies the templates give it: its own `Policies`, every AWS::IAM::Policy / AWS::IAM::ManagedPolicy that names
it in `Roles`, its `ManagedPolicyArns`. Nothing is copied by hand: a permission missing from the templates is
missing in the rehearsal, and one added to them (or a new role) is there without a change here.

References in those documents are resolved the way CloudFormation would against the embedded AWS: pseudo
parameters, the results bucket (the one AWS::S3::Bucket of the assembly) as the embedded bucket, roles, exports
between stacks (Fn::ImportValue) and SSM parameters that one stack writes and another reads
(AWS::SSM::Parameter::Value<String> template parameters, `{{resolve:ssm:...}}`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, TypeAlias

from .. import aws

STACK_ARTIFACT = "aws:cloudformation:stack"
SSM_PARAMETER_TYPE = "AWS::SSM::Parameter::Value<String>"
IAM_ROLE_NAME_MAX = 64  # https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html (RoleName)
# A value of a CloudFormation template (JSON): a string, number, list or object, nested as the template has it.
Json: TypeAlias = Any
_SUB = re.compile(r"\$\{([^}]+)\}")
_DYNAMIC_SSM = re.compile(r"\{\{resolve:ssm:([^}:]+)(?::\d+)?\}\}")


class AssemblyError(ValueError):
    """The assembly does not hold what the embedded AWS needs (synthesize the spec again)."""


def read_assembly(directory: Path) -> dict[str, dict[str, Any]]:
    """{stack name: template} of every stack in a cloud assembly, from its manifest (not every *.template.json in
    the directory: one left by an earlier synth of another spec is not part of it)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        return {name: json.loads((directory / a["properties"]["templateFile"]).read_text())
                for name, a in manifest["artifacts"].items() if a.get("type") == STACK_ARTIFACT}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AssemblyError(f"{directory} is not a cloud assembly `cdk synth` wrote ({e}); synthesize the spec "
                            "first") from None


class TemplateRoles:
    """The job roles of `templates`, created in the embedded AWS through `iam` on first use."""

    def __init__(self, templates: dict[str, dict[str, Any]], *, iam: aws.BotoClient, region: str, account: str,
                 bucket: str) -> None:
        self.templates = templates
        self.iam = iam
        self.region, self.account, self.bucket = region, account, bucket
        self._roles: dict[tuple[str, str], str] = {}  # (stack, logical id) -> role name

    def _job_definition(self, job_definition_name: str) -> tuple[str, dict[str, Any]]:
        found = [(stack, props) for stack, t in self.templates.items() for r in t.get("Resources", {}).values()
                 if r.get("Type") == "AWS::Batch::JobDefinition"
                 and (props := r.get("Properties", {})).get("JobDefinitionName") == job_definition_name]
        if len(found) != 1:
            raise AssemblyError(f"the synthesized templates hold {len(found)} job definitions named "
                                f"{job_definition_name!r}, not 1; synthesize the spec again")
        return found[0]

    def workload_role_arn(self, job_definition_name: str, tag: str) -> str:
        """The embedded ARN of the role `rackform run` jobs take, which the job definition carries as `tag`."""
        stack, props = self._job_definition(job_definition_name)
        if tag not in props.get("Tags", {}):
            raise AssemblyError(f"job definition {job_definition_name!r} has no tag {tag}; synthesize the spec again")
        arn: str = self.resolve(stack, props["Tags"][tag])
        return arn

    def job_role_arn(self, job_definition_name: str) -> str:
        """The embedded ARN of the role the templates' job definition of that name runs as."""
        stack, props = self._job_definition(job_definition_name)
        arns = {json.dumps(v, sort_keys=True): v for v in _values_of("JobRoleArn", props)}
        if len(arns) != 1:
            raise AssemblyError(f"job definition {job_definition_name!r} names {len(arns)} job roles, not 1")
        arn: str = self.resolve(stack, next(iter(arns.values())))
        return arn

    # --- CloudFormation's intrinsic functions, as far as role policies use them -------------------------------------

    def resolve(self, stack: str, value: Json) -> Json:
        if isinstance(value, list):
            return [self.resolve(stack, v) for v in value]
        if isinstance(value, str):
            return _DYNAMIC_SSM.sub(lambda m: self._ssm_parameter(stack, m[1]), value)
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(fn, arg)] = value.items()
            if fn == "Ref":
                return self._ref(stack, arg)
            if fn == "Fn::GetAtt":
                logical, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self._get_att(stack, logical, attribute)
            if fn == "Fn::Join":
                separator, parts = arg
                return separator.join(str(p) for p in self.resolve(stack, parts))
            if fn == "Fn::Sub":
                return self._sub(stack, arg)
            if fn == "Fn::Select":
                index, items = self.resolve(stack, arg)
                return items[int(index)]
            if fn == "Fn::ImportValue":
                return self._import(self.resolve(stack, arg))
            if fn.startswith("Fn::"):
                raise AssemblyError(f"{stack}: {fn} in a job role's policy is not resolved by the embedded AWS")
        return {k: self.resolve(stack, v) for k, v in value.items()}

    def _resource(self, stack: str, logical: str) -> dict[str, Any]:
        try:
            resource: dict[str, Any] = self.templates[stack]["Resources"][logical]
            return resource
        except KeyError:
            raise AssemblyError(f"{stack}: no resource {logical!r} in its template") from None

    def _ref(self, stack: str, name: str) -> str:
        pseudo = {"AWS::Partition": "aws", "AWS::Region": self.region, "AWS::AccountId": self.account,
                  "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": stack}
        if name in pseudo:
            return pseudo[name]
        parameter = self.templates[stack].get("Parameters", {}).get(name)
        if parameter is not None:
            if parameter.get("Type") != SSM_PARAMETER_TYPE:
                raise AssemblyError(f"{stack}: parameter {name} ({parameter.get('Type')}) has no value here")
            value: str = self._ssm_parameter(stack, parameter["Default"])
            return value
        kind = self._resource(stack, name)["Type"]
        if kind == "AWS::S3::Bucket":
            return self._bucket(stack, name)
        if kind == "AWS::IAM::Role":
            return self._role(stack, name)
        raise AssemblyError(f"{stack}: Ref {name} ({kind}) in a job role's policy has no embedded counterpart")

    def _get_att(self, stack: str, logical: str, attribute: str) -> str:
        kind = self._resource(stack, logical)["Type"]
        if (kind, attribute) == ("AWS::S3::Bucket", "Arn"):
            return f"arn:aws:s3:::{self._bucket(stack, logical)}"
        if (kind, attribute) == ("AWS::IAM::Role", "Arn"):  # a role's path is part of its ARN
            path = self._resource(stack, logical).get("Properties", {}).get("Path", "/")
            return f"arn:aws:iam::{self.account}:role{path}{self._role(stack, logical)}"
        raise AssemblyError(f"{stack}: Fn::GetAtt {logical}.{attribute} ({kind}) has no embedded counterpart")

    def _sub(self, stack: str, arg: Json) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(stack, arg[1]))

        def one(m: re.Match[str]) -> str:
            name = m[1]
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return self._get_att(stack, *name.split(".", 1))
            return self._ref(stack, name)
        return _SUB.sub(one, text)

    def _import(self, export: str) -> Json:
        for stack, t in self.templates.items():
            for output in t.get("Outputs", {}).values():
                if "Export" in output and self.resolve(stack, output["Export"]["Name"]) == export:
                    return self.resolve(stack, output["Value"])
        raise AssemblyError(f"no stack of the assembly exports {export!r}")

    def _ssm_parameter(self, stack: str, name: str) -> Json:
        for producer, t in self.templates.items():
            for r in t.get("Resources", {}).values():
                if r.get("Type") == "AWS::SSM::Parameter" and r["Properties"].get("Name") == name:
                    return self.resolve(producer, r["Properties"]["Value"])
        raise AssemblyError(f"{stack} reads SSM parameter {name}, which no stack of the assembly writes")

    def _bucket(self, stack: str, logical: str) -> str:
        buckets = [(s, k) for s, t in self.templates.items() for k, r in t.get("Resources", {}).items()
                   if r.get("Type") == "AWS::S3::Bucket"]
        if buckets != [(stack, logical)]:
            raise AssemblyError(f"the embedded AWS holds one bucket, the results bucket; the assembly declares "
                                f"{len(buckets)}: {', '.join(f'{s}/{k}' for s, k in buckets)}")
        return self.bucket

    # --- the roles themselves ------------------------------------------------------------------------------------

    def _role(self, stack: str, logical: str) -> str:
        """The role's embedded name, creating it with its trust policy and every policy the templates attach."""
        if (stack, logical) in self._roles:
            return self._roles[(stack, logical)]
        name = f"{stack}-{logical}"
        if len(name) > IAM_ROLE_NAME_MAX:
            name = f"{name[:IAM_ROLE_NAME_MAX - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        self._roles[(stack, logical)] = name
        props = self._resource(stack, logical).get("Properties", {})
        self.iam.create_role(RoleName=name, Path=props.get("Path", "/"), AssumeRolePolicyDocument=json.dumps(
            self.resolve(stack, props["AssumeRolePolicyDocument"])))
        for policy in props.get("Policies", []):
            self._put(stack, name, policy["PolicyName"], policy["PolicyDocument"])
        for policy_id, r in self.templates[stack].get("Resources", {}).items():
            if {"Ref": logical} not in r.get("Properties", {}).get("Roles", []):
                continue
            if r["Type"] == "AWS::IAM::Policy":
                self._put(stack, name, r["Properties"]["PolicyName"], r["Properties"]["PolicyDocument"])
            elif r["Type"] == "AWS::IAM::ManagedPolicy":
                arn = self.iam.create_policy(PolicyName=f"{name}-{policy_id}"[:128], PolicyDocument=json.dumps(
                    self.resolve(stack, r["Properties"]["PolicyDocument"])))["Policy"]["Arn"]
                self.iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        for arn in self.resolve(stack, props.get("ManagedPolicyArns", [])):
            self.iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        return name

    def _put(self, stack: str, role: str, policy_name: str, document: Json) -> None:
        self.iam.put_role_policy(RoleName=role, PolicyName=self.resolve(stack, policy_name),
                                 PolicyDocument=json.dumps(self.resolve(stack, document)))


def _values_of(key: str, value: Json) -> list[Json]:
    """Every value stored under `key` anywhere in `value` (a job definition names its role in each container)."""
    if isinstance(value, dict):
        return [v for k, item in value.items() for v in ([item] if k == key else _values_of(key, item))]
    if isinstance(value, list):
        return [v for item in value for v in _values_of(key, item)]
    return []
