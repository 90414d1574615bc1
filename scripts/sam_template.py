#!/usr/bin/env python3
"""The SAM template as CloudFormation sees it: runs the SAM translator (the package `sam deploy`
uses) over infra/template.yaml, then answers one question about the result.

    sam_template.py transform             the transformed template (JSON)
    sam_template.py cycles                every dependency cycle between resources (JSON list;
                                          exit status 1 when there is one)
    sam_template.py functions [K=V ...]   each function's properties and execution role, every
                                          reference resolved: parameters (defaults, or K=V),
                                          the pseudo parameters (AWS::Region=...,
                                          AWS::AccountId=...) and the names and ARNs of the
                                          template's resources
    sam_template.py all [K=V ...]         the three at once: {"transformed", "cycles",
                                          "functions"} (one transform for the tests)

Offline: the translator gets no AWS session, and managed policies are named by ARN.
The tests in tests/tests/iam_policies.rs and tests/tests/template.rs call this script.
"""

import copy
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "infra", "template.yaml")

PSEUDO_DEFAULTS = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "entra-sync",
}


def load(path):
    """The template with its short-form tags (!Ref, !Sub ...) as plain JSON values."""
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(path)))


def transform(template, region):
    """CloudFormation's view of the SAM template, as `sam deploy` would hand it over."""
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.translator.arn_generator import ArnGenerator

    ArnGenerator.BOTO_SESSION_REGION_NAME = region
    sam = copy.deepcopy(template)
    # The build uploads each function's code; where it lands does not change the template.
    for resource in sam.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://entra-sync-build/code.zip"
    translator = Translator(managed_policy_map={}, sam_parser=Parser())
    return translator.translate(sam_template=sam, parameter_values={})


# ---------------------------------------------------------------------------------------------
# Dependency cycles


def references(value):
    """The logical ids a value refers to (Ref, Fn::GetAtt, Fn::Sub), in both branches of an If."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text, variables = (inner[0], inner[1]) if isinstance(inner, list) else (inner, {})
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    name = name.split(".")[0]
                    if name not in variables:
                        found.add(name)
                found |= references(variables)
            else:
                found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found


def dependencies(template):
    """Edges resource -> resource it needs first (references and DependsOn)."""
    resources = template.get("Resources", {})
    edges = {}
    for name, resource in resources.items():
        needs = references({k: v for k, v in resource.items() if k not in ("Type", "Metadata")})
        depends = resource.get("DependsOn", [])
        needs |= set([depends] if isinstance(depends, str) else depends)
        edges[name] = sorted(n for n in needs if n in resources and n != name)
    return edges


def cycles(template):
    import networkx

    graph = networkx.DiGraph()
    for name, needs in dependencies(template).items():
        graph.add_node(name)
        graph.add_edges_from((name, n) for n in needs)
    return sorted(sorted(c) for c in networkx.simple_cycles(graph))


# ---------------------------------------------------------------------------------------------
# Resolving references


class Unresolvable(Exception):
    pass


# What `!Ref AWS::NoValue` resolves to: the property or list element is left out.
NO_VALUE = object()


class Resolver:
    def __init__(self, template, overrides):
        self.template = template
        self.values = dict(PSEUDO_DEFAULTS)
        for name, spec in template.get("Parameters", {}).items():
            if "Default" in spec:
                self.values[name] = str(spec["Default"])
        self.values.update(overrides)
        self.resources = template.get("Resources", {})
        self.conditions = {}

    def p(self, name):
        return self.values[name]

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.template["Conditions"][name])
        return self.conditions[name]

    def truth(self, value):
        (fn, args), = value.items()
        if fn == "Fn::Equals":
            a, b = (self.resolve(x) for x in args)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.truth(args[0])
        if fn == "Fn::And":
            return all(self.truth(x) for x in args)
        if fn == "Fn::Or":
            return any(self.truth(x) for x in args)
        if fn == "Condition":
            return self.condition(args)
        raise Unresolvable(f"condition function {fn}")

    def attribute(self, name, attr):
        resource = self.resources.get(name)
        if resource is None:
            if name in self.template.get("Parameters", {}):
                raise Unresolvable(f"parameter {name} has no default: pass {name}=...")
            raise Unresolvable(f"no resource {name}")
        kind, props = resource["Type"], resource.get("Properties", {})
        region, account, partition = self.p("AWS::Region"), self.p("AWS::AccountId"), self.p("AWS::Partition")
        if kind == "AWS::DynamoDB::Table":
            table = self.resolve(props["TableName"])
            # A stream's ARN ends in a label DynamoDB picks when it enables the stream.
            return {
                "Ref": table,
                "Arn": f"arn:{partition}:dynamodb:{region}:{account}:table/{table}",
                "StreamArn": f"arn:{partition}:dynamodb:{region}:{account}:table/{table}/stream/*",
            }[attr]
        if kind == "AWS::SQS::Queue":
            queue = self.resolve(props["QueueName"])
            return {
                "Ref": f"https://sqs.{region}.amazonaws.com/{account}/{queue}",
                "Arn": f"arn:{partition}:sqs:{region}:{account}:{queue}",
                "QueueName": queue,
            }[attr]
        if kind == "AWS::Events::EventBus":
            bus = self.resolve(props["Name"])
            return {"Ref": bus, "Name": bus, "Arn": f"arn:{partition}:events:{region}:{account}:event-bus/{bus}"}[attr]
        if kind == "AWS::Logs::LogGroup":
            group = self.resolve(props["LogGroupName"])
            return {"Ref": group, "Arn": f"arn:{partition}:logs:{region}:{account}:log-group:{group}:*"}[attr]
        if kind == "AWS::Lambda::Function":
            function = self.resolve(props["FunctionName"])
            return {"Ref": function, "Arn": f"arn:{partition}:lambda:{region}:{account}:function:{function}"}[attr]
        if kind == "AWS::IAM::Role":
            return {"Arn": f"arn:{partition}:iam::{account}:role/{name}"}[attr]
        raise Unresolvable(f"{attr} of {name} ({kind})")

    def resolve(self, value):
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (fn, args), = value.items()
            if fn == "Ref":
                if args == "AWS::NoValue":
                    return NO_VALUE
                if args in self.values:
                    return self.values[args]
                return self.attribute(args, "Ref")
            if fn == "Fn::GetAtt":
                name, attr = args if isinstance(args, list) else args.split(".", 1)
                return self.attribute(name, attr)
            if fn == "Fn::Sub":
                text, variables = (args[0], args[1]) if isinstance(args, list) else (args, {})
                variables = {k: self.resolve(v) for k, v in variables.items()}

                def one(match):
                    name = match.group(1)
                    if name.startswith("!"):
                        return "${" + name[1:] + "}"
                    if name in variables:
                        return str(variables[name])
                    if name in self.values:
                        return str(self.values[name])
                    if "." in name:
                        return str(self.attribute(*name.split(".", 1)))
                    return str(self.attribute(name, "Ref"))

                return re.sub(r"\$\{([^}]*)\}", one, text)
            if fn == "Fn::If":
                cond, yes, no = args
                return self.resolve(yes if self.condition(cond) else no)
            if fn == "Fn::Join":
                sep, parts = args
                return sep.join(str(p) for p in self.resolve(parts))
            if fn.startswith("Fn::") or fn == "Condition":
                raise Unresolvable(fn)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def functions(template, transformed, overrides):
    """Per SAM function: the Lambda function's properties and its role's policies, resolved.

    `own` are the statements the template writes in the function's Policies (SAM names them
    <Function>RolePolicy<N>); `service` the inline policies SAM adds for Lambda's own use
    (an on-failure destination, for example); `managed` the managed policy ARNs."""
    resolver = Resolver(transformed, overrides)
    out = {}
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        function = transformed["Resources"][name]
        role_name = function["Properties"]["Role"]["Fn::GetAtt"][0]
        role = transformed["Resources"][role_name]["Properties"]
        own = re.compile(re.escape(name) + r"RolePolicy[0-9]+$")
        policies = [
            {"name": p["PolicyName"], "document": resolver.resolve(p["PolicyDocument"])}
            for p in role.get("Policies", [])
        ]
        properties = {k: v for k, v in function["Properties"].items() if k not in ("Role", "Code")}
        out[name] = {
            "role": role_name,
            "properties": resolver.resolve(properties),
            "own": [p for p in policies if own.match(p["name"])],
            "service": [p for p in policies if not own.match(p["name"])],
            "managed": resolver.resolve(role.get("ManagedPolicyArns", [])),
        }
    return out


def main(argv):
    if not argv or argv[0] not in ("transform", "cycles", "functions", "all"):
        print(__doc__, file=sys.stderr)
        return 2
    overrides = dict(a.split("=", 1) for a in argv[1:])
    region = overrides.get("AWS::Region", PSEUDO_DEFAULTS["AWS::Region"])
    template = load(TEMPLATE)
    transformed = transform(template, region)
    if argv[0] == "transform":
        json.dump(transformed, sys.stdout, indent=1, sort_keys=True)
        return 0
    if argv[0] == "all":
        json.dump(
            {
                "transformed": transformed,
                "cycles": cycles(transformed),
                "functions": functions(template, transformed, overrides),
            },
            sys.stdout,
            sort_keys=True,
        )
        return 0
    if argv[0] == "cycles":
        found = cycles(transformed)
        json.dump(found, sys.stdout)
        if found:
            print(f"\n{len(found)} dependency cycle(s): {found}", file=sys.stderr)
            return 1
        return 0
    json.dump(functions(template, transformed, overrides), sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
