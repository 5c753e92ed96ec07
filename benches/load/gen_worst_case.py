#!/usr/bin/env python3
"""The engine's worst case as a policy test file, for `iamgate bench`.

    gen_worst_case.py N > worst-N.json
    iamgate bench worst-N.json --json

One principal with N identity policies whose statements share an action
and differ only in condition values (issue 12): policy i allows
`ec2:StartInstances` on instances tagged `team = team<i>` and denies it on
instances tagged `team = frozen<i>`. Without an index on condition values
every decision scans all N allow or deny statements of the action.

Three requests, one per outcome, on a team in the middle of the range:
allowed (`team<N/2>`), explicitDeny (`frozen<N/2>`) and implicitDeny (a
team no policy names). `iamgate test` checks the expectations too.
"""

import json
import sys


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.exit("usage: gen_worst_case.py N")
    n = int(sys.argv[1])
    resource = "arn:aws:ec2:us-east-1:111122223333:instance/*"
    policies = []
    for i in range(n):
        policies.append({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TeamInstances",
                    "Effect": "Allow",
                    "Action": "ec2:StartInstances",
                    "Resource": resource,
                    "Condition": {"StringEquals": {"ec2:ResourceTag/team": f"team{i}"}},
                },
                {
                    "Sid": "FrozenInstances",
                    "Effect": "Deny",
                    "Action": "ec2:StartInstances",
                    "Resource": resource,
                    "Condition": {"StringEquals": {"ec2:ResourceTag/team": f"frozen{i}"}},
                },
            ],
        })
    mid = n // 2
    instance = "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0"

    def request(name: str, team: str, expect: str) -> dict:
        return {
            "name": name,
            "action": "ec2:StartInstances",
            "resource": instance,
            "context": {"ec2:ResourceTag/team": team},
            "expect": expect,
        }

    doc = {
        "description": f"{n} identity policies that differ only in condition values",
        "source": "issue 12: the worst case under a microsecond",
        "principal": {"arn": "arn:aws:iam::111122223333:user/alice"},
        "policies": {"identity": policies},
        "tests": [
            request("allowed", f"team{mid}", "allowed"),
            request("implicitDeny", "nobody", "implicitDeny"),
            request("explicitDeny", f"frozen{mid}", "explicitDeny"),
        ],
    }
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
