#!/usr/bin/env python3
"""Deterministic load-test bundle for `iamgate serve`.

    gen_bundle.py OUT_DIR [--principals 1000] [--policies 10000] [--seed 7]

Writes an iamgate bundle (AWS CLI shapes) to OUT_DIR:

- iam/111111111111.json, iam/222222222222.json:
  `aws iam get-account-authorization-details` output. `--principals` users
  and roles (five roles per account, the rest users) split evenly over the
  two accounts; each user has a team tag, one team group, ten
  attached managed policies (one for its team, nine drawn from the
  account's pool), two inline policies, and (every other user) a
  permissions boundary. Roles have trust, inline and managed policies. The managed pool
  is sized so that the bundle holds exactly `--policies` policy documents
  (managed + inline + trust + SCPs).
- organization.json: root -> workloads OU -> prod/dev OUs -> accounts, with
  FullAWSAccess at every level and deny SCPs (regions, network teardown,
  terminate without MFA, unencrypted volumes) at several levels.
- manifest.json: the revision.
On stdout: one JSON line describing the request the load test sends (a
user of the bundle that is allowed `ec2:StopInstances` on a team instance)
and the counts, for run.sh.

Statements are EC2-shaped with conditions: tag-on-resource against
principal-tag variables, request tags, tag keys, source IP ranges, regions,
secure transport, dates, numeric volume sizes.
"""

import argparse
import json
import os
import random

ACCOUNTS = ["111111111111", "222222222222"]
MANAGEMENT = "999999999999"
TEAMS = ["blue", "green", "red", "amber", "violet", "teal", "coral", "slate",
         "indigo", "olive"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]
PROJECTS = [f"proj-{i:02d}" for i in range(40)]
INSTANCE_OPS = ["ec2:StartInstances", "ec2:StopInstances", "ec2:RebootInstances",
                "ec2:ModifyInstanceAttribute", "ec2:MonitorInstances",
                "ec2:UnmonitorInstances", "ec2:GetConsoleOutput"]
VOLUME_OPS = ["ec2:AttachVolume", "ec2:DetachVolume", "ec2:ModifyVolume",
              "ec2:CreateSnapshot", "ec2:EnableVolumeIO"]
SG_OPS = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
          "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress"]

# The request run.sh sends: this user (account 0, index BENCH_USER) stops a
# team instance in us-east-1.
BENCH_USER = 42
BENCH_INSTANCE = "i-0a1b2c3d4e5f60718"
BENCH_SOURCE_IP = "10.20.30.40"


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def pick(self, seq, k=None):
        if k is None:
            return self.r.choice(seq)
        return self.r.sample(seq, k)

    def hexid(self, n=17):
        return "".join(self.r.choice("0123456789abcdef") for _ in range(n))

    def region_arn(self):
        return self.pick(REGIONS + ["*"])

    # ── statement templates ────────────────────────────────────────────
    def s_read(self, acct, sid):
        s = {"Sid": sid, "Effect": "Allow",
             "Action": self.pick(["ec2:Describe*", "ec2:Get*", "ec2:List*",
                                  "ec2:DescribeInstances", "ec2:DescribeVolumes",
                                  "ec2:SearchTransitGatewayRoutes"], self.r.randint(1, 3)),
             "Resource": "*"}
        if self.r.random() < 0.5:
            s["Condition"] = {"StringEquals": {
                "aws:RequestedRegion": self.pick(REGIONS, self.r.randint(1, 3))}}
        return s

    def s_team_instances(self, acct, sid, team=None):
        ops = self.pick(INSTANCE_OPS, self.r.randint(2, 5))
        cond = {"StringEquals": {"ec2:ResourceTag/team":
                                 "${aws:PrincipalTag/team}" if team is None else team}}
        if self.r.random() < 0.5:
            cond["Bool"] = {"aws:SecureTransport": "true"}
        return {"Sid": sid, "Effect": "Allow", "Action": ops,
                "Resource": f"arn:aws:ec2:{self.region_arn()}:{acct}:instance/*",
                "Condition": cond}

    def s_specific_instances(self, acct, sid):
        return {"Sid": sid, "Effect": "Allow",
                "Action": self.pick(INSTANCE_OPS, self.r.randint(1, 3)),
                "Resource": [f"arn:aws:ec2:{self.pick(REGIONS)}:{acct}:instance/i-0{self.hexid(16)}"
                             for _ in range(self.r.randint(1, 6))]}

    def s_launch(self, acct, sid):
        team = self.pick(TEAMS)
        return {"Sid": sid, "Effect": "Allow", "Action": "ec2:RunInstances",
                "Resource": [f"arn:aws:ec2:*:{acct}:instance/*",
                             f"arn:aws:ec2:*:{acct}:volume/*",
                             f"arn:aws:ec2:*:{acct}:network-interface/*"],
                "Condition": {
                    "StringEquals": {"aws:RequestTag/team": team},
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "project", "env"]},
                    "StringLike": {"ec2:InstanceType": self.pick(["t3.*", "m5.*", "c6i.*", "r6g.*"], 2)},
                }}

    def s_launch_images(self, acct, sid):
        return {"Sid": sid, "Effect": "Allow", "Action": "ec2:RunInstances",
                "Resource": [f"arn:aws:ec2:*::image/ami-{self.hexid(8)}",
                             f"arn:aws:ec2:*:{acct}:subnet/subnet-{self.hexid(8)}",
                             f"arn:aws:ec2:*:{acct}:security-group/*",
                             f"arn:aws:ec2:*:{acct}:key-pair/*"]}

    def s_volumes(self, acct, sid):
        return {"Sid": sid, "Effect": "Allow",
                "Action": self.pick(VOLUME_OPS, self.r.randint(1, 3)),
                "Resource": [f"arn:aws:ec2:{self.region_arn()}:{acct}:volume/*",
                             f"arn:aws:ec2:{self.region_arn()}:{acct}:instance/*"],
                "Condition": {"StringLike": {"aws:ResourceTag/project": f"{self.pick(PROJECTS)}*"}}}

    def s_create_volume(self, acct, sid):
        return {"Sid": sid, "Effect": "Allow", "Action": "ec2:CreateVolume",
                "Resource": f"arn:aws:ec2:*:{acct}:volume/*",
                "Condition": {"NumericLessThanEquals": {"ec2:VolumeSize": str(self.pick([100, 500, 1000]))},
                              "Bool": {"ec2:Encrypted": "true"}}}

    def s_security_groups(self, acct, sid):
        return {"Sid": sid, "Effect": "Allow", "Action": self.pick(SG_OPS, self.r.randint(1, 4)),
                "Resource": f"arn:aws:ec2:{self.region_arn()}:{acct}:security-group/*",
                "Condition": {"IpAddress": {"aws:SourceIp": [f"10.{self.r.randint(0, 255)}.0.0/16",
                                                             "192.168.0.0/16"]},
                              "StringEquals": {"aws:ResourceTag/env": self.pick(["dev", "staging", "prod"])}}}

    def s_snapshots(self, acct, sid):
        return {"Sid": sid, "Effect": "Allow",
                "Action": ["ec2:CreateSnapshot", "ec2:DeleteSnapshot", "ec2:CopySnapshot"],
                "Resource": [f"arn:aws:ec2:*:{acct}:snapshot/*", f"arn:aws:ec2:*:{acct}:volume/*"],
                "Condition": {"DateLessThan": {"aws:CurrentTime": "2031-01-01T00:00:00Z"},
                              "StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}}

    def s_tags(self, acct, sid):
        return {"Sid": sid, "Effect": "Allow", "Action": ["ec2:CreateTags"],
                "Resource": f"arn:aws:ec2:*:{acct}:*/*",
                "Condition": {"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateVolume"]}}}

    def s_deny_other_team_terminate(self, acct, sid):
        return {"Sid": sid, "Effect": "Deny",
                "Action": ["ec2:TerminateInstances", "ec2:DeleteVolume"],
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}}

    def s_deny_outside_network(self, acct, sid):
        return {"Sid": sid, "Effect": "Deny", "Action": "ec2:*", "Resource": "*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16",
                                                                "172.16.0.0/12"]},
                              "Bool": {"aws:ViaAWSService": "false"}}}

    def s_deny_specific(self, acct, sid):
        return {"Sid": sid, "Effect": "Deny",
                "Action": self.pick(["ec2:DeleteVpc", "ec2:DeleteSubnet", "ec2:DeleteRouteTable",
                                     "ec2:DeleteInternetGateway", "ec2:ModifyVpcAttribute",
                                     "ec2:DeleteFlowLogs"], self.r.randint(1, 3)),
                "Resource": f"arn:aws:ec2:*:{acct}:*"}

    def s_not_action(self, acct, sid):
        return {"Sid": sid, "Effect": "Deny",
                "NotAction": ["ec2:Describe*", "ec2:Get*", "iam:GetUser", "sts:GetCallerIdentity"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:RequestedRegion": self.pick(["ap-east-1", "me-south-1", "af-south-1"])}}}

    def managed_doc(self, acct):
        templates = [self.s_read, self.s_team_instances, self.s_specific_instances,
                     self.s_launch, self.s_launch_images, self.s_volumes,
                     self.s_create_volume, self.s_security_groups, self.s_snapshots,
                     self.s_tags, self.s_deny_other_team_terminate,
                     self.s_deny_outside_network, self.s_deny_specific, self.s_not_action]
        n = self.r.randint(2, 4)
        return doc(*[self.pick(templates)(acct, f"S{i}") for i in range(n)])


def managed(name, arn, document):
    return {"PolicyName": name, "PolicyId": "ANPA" + arn.split("/")[-1].upper()[:17],
            "Arn": arn, "Path": "/", "DefaultVersionId": "v1", "AttachmentCount": 0,
            "IsAttachable": True,
            "PolicyVersionList": [{"Document": document, "VersionId": "v1",
                                   "IsDefaultVersion": True}]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--principals", type=int, default=1000)
    ap.add_argument("--policies", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    g = Gen(a.seed)
    os.makedirs(os.path.join(a.out, "iam"), exist_ok=True)

    roles_per_acct = 5
    per_acct_users = a.principals // len(ACCOUNTS) - roles_per_acct
    groups = TEAMS  # one group per team and account
    inline_per_user = 2
    scps = []  # filled below; counted in the total

    # ── organization.json ───────────────────────────────────────────────
    full = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    org = {
        "ManagementAccountId": MANAGEMENT,
        "Roots": [{"Id": "r-load"}],
        "OrganizationalUnits": [
            {"Id": "ou-load-workload", "ParentId": "r-load", "Name": "workloads"},
            {"Id": "ou-load-prod0001", "ParentId": "ou-load-workload", "Name": "production"},
            {"Id": "ou-load-dev00001", "ParentId": "ou-load-workload", "Name": "development"},
        ],
        "Accounts": [
            {"Id": ACCOUNTS[0], "ParentId": "ou-load-prod0001", "Name": "prod"},
            {"Id": ACCOUNTS[1], "ParentId": "ou-load-dev00001", "Name": "dev"},
            {"Id": MANAGEMENT, "ParentId": "r-load", "Name": "management"},
        ],
        "Policies": [
            {"Id": "p-FullAWSAccess", "Type": "SERVICE_CONTROL_POLICY",
             "Content": json.dumps(full, separators=(",", ":")),
             "Targets": ["r-load", "ou-load-workload", "ou-load-prod0001", "ou-load-dev00001",
                         ACCOUNTS[0], ACCOUNTS[1], MANAGEMENT]},
            {"Id": "p-ProtectNetwork", "Type": "SERVICE_CONTROL_POLICY",
             "Content": doc({"Sid": "NoNetworkTeardown", "Effect": "Deny",
                             "Action": ["ec2:DeleteVpc", "ec2:DeleteFlowLogs", "ec2:DeleteTransitGateway"],
                             "Resource": "*"}),
             "Targets": ["r-load"]},
            {"Id": "p-Regions", "Type": "SERVICE_CONTROL_POLICY",
             "Content": doc({"Sid": "OnlyApprovedRegions", "Effect": "Deny", "NotAction": ["iam:*", "sts:*", "organizations:*"],
                             "Resource": "*",
                             "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"]}}}),
             "Targets": ["ou-load-workload"]},
            {"Id": "p-ProdTerminateMfa", "Type": "SERVICE_CONTROL_POLICY",
             "Content": doc({"Sid": "TerminateNeedsMfa", "Effect": "Deny", "Action": "ec2:TerminateInstances",
                             "Resource": "*",
                             "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
                            {"Sid": "NoUntaggedLaunch", "Effect": "Deny", "Action": "ec2:RunInstances",
                             "Resource": "arn:aws:ec2:*:*:instance/*",
                             "Condition": {"Null": {"aws:RequestTag/team": "true"}}}),
             "Targets": ["ou-load-prod0001"]},
            {"Id": "p-DevEncrypted", "Type": "SERVICE_CONTROL_POLICY",
             "Content": doc({"Sid": "EncryptedVolumesOnly", "Effect": "Deny", "Action": "ec2:CreateVolume",
                             "Resource": "*", "Condition": {"Bool": {"ec2:Encrypted": "false"}}}),
             "Targets": ["ou-load-dev00001"]},
            {"Id": "p-ProdNoPublicIps", "Type": "SERVICE_CONTROL_POLICY",
             "Content": doc({"Sid": "NoPublicIps", "Effect": "Deny", "Action": ["ec2:AllocateAddress", "ec2:AssociateAddress"],
                             "Resource": "*"}),
             "Targets": [ACCOUNTS[0]]},
        ],
    }
    scps = org["Policies"]

    fixed = per_acct_users * len(ACCOUNTS) * inline_per_user + len(ACCOUNTS) * roles_per_acct * 2 + len(scps)
    pool_total = a.policies - fixed
    if pool_total < len(ACCOUNTS) * (len(TEAMS) + 20):
        raise SystemExit("too few policies for this many users")
    pool_per_acct = [pool_total // len(ACCOUNTS) + (1 if i < pool_total % len(ACCOUNTS) else 0)
                     for i in range(len(ACCOUNTS))]

    bench = None
    counts = {"users": 0, "roles": 0, "policies": len(scps)}
    for ai, acct in enumerate(ACCOUNTS):
        policies = []
        # Special managed policies: a boundary and one operator policy per team.
        boundary_arn = f"arn:aws:iam::{acct}:policy/EngineerBoundary"
        policies.append(managed("EngineerBoundary", boundary_arn, doc(
            {"Sid": "Ec2InApprovedRegions", "Effect": "Allow", "Action": ["ec2:*", "sts:GetCallerIdentity"],
             "Resource": "*",
             "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2", "eu-west-1"]}}},
            {"Sid": "NoIamChanges", "Effect": "Deny", "Action": ["iam:Create*", "iam:Put*", "iam:Attach*"], "Resource": "*"})))
        team_arns = {}
        for team in TEAMS:
            arn = f"arn:aws:iam::{acct}:policy/teams/{team}/InstanceOperator"
            team_arns[team] = arn
            policies.append(managed(f"InstanceOperator-{team}", arn, doc(
                {"Sid": "OperateTeamInstances", "Effect": "Allow",
                 "Action": ["ec2:StartInstances", "ec2:StopInstances", "ec2:RebootInstances"],
                 "Resource": f"arn:aws:ec2:*:{acct}:instance/*",
                 "Condition": {"StringEquals": {"ec2:ResourceTag/team": "${aws:PrincipalTag/team}"},
                               "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
                g.s_read(acct, "Read"),
                g.s_deny_other_team_terminate(acct, "NoForeignTerminate"))))
        pool = []
        for i in range(pool_per_acct[ai] - len(policies)):
            arn = f"arn:aws:iam::{acct}:policy/pool/Ec2Policy{i:05d}"
            pool.append(arn)
            policies.append(managed(f"Ec2Policy{i:05d}", arn, g.managed_doc(acct)))

        group_list = []
        for team in groups:
            group_list.append({
                "Path": "/teams/", "GroupName": f"team-{team}", "GroupId": f"AGPA{acct}{team.upper():>8}"[:21],
                "Arn": f"arn:aws:iam::{acct}:group/teams/team-{team}",
                # No inline group policies: iamgate counts (and compiles) a
                # group's inline policies once per member, which would make
                # its policy count differ from this generator's.
                "GroupPolicyList": [],
                "AttachedManagedPolicies": [{"PolicyName": p.split("/")[-1], "PolicyArn": p}
                                            for p in g.pick(pool, 2)],
            })

        users = []
        for ui in range(per_acct_users):
            team = TEAMS[ui % len(TEAMS)]
            name = f"user-{ui:04d}"
            path = f"/eng/{team}/"
            arn = f"arn:aws:iam::{acct}:user{path}{name}"
            attached = [team_arns[team]] + g.pick(pool, 9)
            u = {
                "Path": path, "UserName": name, "UserId": f"AIDA{acct[:4]}{ui:013d}",
                "Arn": arn, "CreateDate": "2024-01-01T00:00:00Z",
                "UserPolicyList": [
                    {"PolicyName": "Personal", "PolicyDocument": g.managed_doc(acct)},
                    {"PolicyName": "Guardrails", "PolicyDocument": doc(
                        g.s_deny_outside_network(acct, "CorpNetworkOnly"),
                        g.s_deny_specific(acct, "NoTeardown"))},
                ],
                "GroupList": [f"team-{team}"],
                "AttachedManagedPolicies": [{"PolicyName": p.split("/")[-1], "PolicyArn": p} for p in attached],
                "Tags": [{"Key": "team", "Value": team},
                         {"Key": "cost-center", "Value": f"cc-{g.r.randint(100, 999)}"}],
            }
            if ui % 2 == 0:
                u["PermissionsBoundary"] = {"PermissionsBoundaryType": "Policy",
                                            "PermissionsBoundaryArn": boundary_arn}
            users.append(u)
            if ai == 0 and ui == BENCH_USER:
                bench = {"principal": arn, "team": team, "account": acct,
                         "region": "us-east-1", "instance": BENCH_INSTANCE,
                         "source_ip": BENCH_SOURCE_IP,
                         "action": "ec2:StopInstances",
                         "resource": f"arn:aws:ec2:us-east-1:{acct}:instance/{BENCH_INSTANCE}"}

        roles = []
        for ri in range(roles_per_acct):
            rname = f"svc-automation-{ri}"
            roles.append({
                "Path": "/service/", "RoleName": rname, "RoleId": f"AROA{acct[:4]}{ri:013d}",
                "Arn": f"arn:aws:iam::{acct}:role/service/{rname}",
                "AssumeRolePolicyDocument": doc({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}),
                "RolePolicyList": [{"PolicyName": "Automation", "PolicyDocument": g.managed_doc(acct)}],
                "AttachedManagedPolicies": [{"PolicyName": p.split("/")[-1], "PolicyArn": p} for p in g.pick(pool, 3)],
                "Tags": [{"Key": "team", "Value": g.pick(TEAMS)}],
            })

        details = {"UserDetailList": users, "GroupDetailList": group_list,
                   "RoleDetailList": roles, "Policies": policies}
        with open(os.path.join(a.out, "iam", f"{acct}.json"), "w") as f:
            json.dump(details, f, separators=(",", ":"))
        counts["users"] += len(users)
        counts["roles"] += len(roles)
        counts["policies"] += (len(policies) + len(users) * inline_per_user
                               + 2 * len(roles))

    with open(os.path.join(a.out, "organization.json"), "w") as f:
        json.dump(org, f, indent=1)
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump({"revision": f"load-{a.principals}pr-{a.policies}p-s{a.seed}",
                   "description": "iamgate load benchmark bundle (benches/load/gen_bundle.py)"}, f)
    bench["counts"] = counts
    print(json.dumps(bench))


if __name__ == "__main__":
    main()
