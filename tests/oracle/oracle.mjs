#!/usr/bin/env node
// iamgate's independent IAM oracle: a long-lived process around
// @cloud-copilot/iam-simulate (AGPL, test-only, never linked into iamgate).
//
// Protocol (see README.md): one JSON object per line on stdin, one JSON
// object per line on stdout, in the same order, flushed after each line.
//
//   in : {"id": any, "principal": {"arn": ..., "role_arn"?: ..., "tags"?: {...}},
//         "policies": {...test-file "policies" object...},
//         "resource_account"?: "...", "action": "...", "resource": "...",
//         "context": {...}}
//   out: {"id": same, "decision": "allowed"|"explicitDeny"|"implicitDeny"}
//     or {"id": same, "error": "message"}
//
// A line that is not valid JSON, or a request the simulator refuses, gets an
// {"error": ...} answer; the process never exits because of one bad line.
//
// This module can also be imported: `evaluate(input)` returns the answer
// object without the id.

import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import {
  loadPolicy,
  validateIdentityPolicy,
  validateResourceControlPolicy,
  validateResourcePolicy,
  validateServiceControlPolicy
} from '@cloud-copilot/iam-policy';

// The simulator's public entry point (runSimulation) reshapes the request in
// ways the policy-test format does not: it drops context keys that the
// action's service model does not list, coerces values by the key's declared
// type, and expands a wildcard request resource into several simulations. The
// test format means "exactly this request context, exactly this resource", so
// the oracle calls the simulator's core `authorize` directly, the same
// function runSimulation calls after its reshaping. Those modules are not in
// the package's export map, so they are imported by file URL.
const simulateIndex = import.meta.resolve('@cloud-copilot/iam-simulate');
const internal = (path) => import(new URL(path, simulateIndex).href);
const { authorize } = await internal('./core_engine/CoreSimulatorEngine.js');
const { DiscoveryContextKeyConstraints } = await internal(
  './context_keys/discoveryContextKeyConstraints.js'
);
const { AwsRequestImpl } = await internal('./request/request.js');
const { RequestContextImpl } = await internal('./requestContext.js');
const { anonymousPrincipal } = await internal('./simulation_engine/simulation.js');

// RCPFullAWSAccess is attached to every root, OU and account and cannot be
// detached; runSimulation adds it to every RCP level, and so does the oracle.
const RCP_FULL_AWS_ACCESS = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: '*', Action: '*', Resource: '*' }]
};

const DECISIONS = {
  Allowed: 'allowed',
  ExplicitlyDenied: 'explicitDeny',
  ImplicitlyDenied: 'implicitDeny'
};

const POLICY_FIELDS = new Set(['identity', 'boundary', 'session', 'resource', 'scps', 'rcps']);
const PRINCIPAL_FIELDS = new Set(['arn', 'role_arn', 'tags']);
const INPUT_FIELDS = new Set([
  'id',
  'principal',
  'policies',
  'resource_account',
  'action',
  'resource',
  'context'
]);

class InputError extends Error {}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function checkFields(value, allowed, where) {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) {
      throw new InputError(`unknown field ${where}.${key}`);
    }
  }
}

/**
 * What a principal ARN says about the caller, or an InputError.
 * Returns {kind, account, name?, roleArn?}.
 */
export function parsePrincipal(principal) {
  if (!isObject(principal)) {
    throw new InputError('principal must be an object');
  }
  checkFields(principal, PRINCIPAL_FIELDS, 'principal');
  const arn = principal.arn;
  if (typeof arn !== 'string') {
    throw new InputError('principal.arn must be a string');
  }
  if (principal.tags !== undefined && !isObject(principal.tags)) {
    throw new InputError('principal.tags must be an object');
  }
  if (arn === 'anonymous') {
    return { kind: 'anonymous' };
  }
  let m = /^arn:([^:]+):iam::(\d{12}):user\/(?:.*\/)?([^/]+)$/.exec(arn);
  if (m) {
    return { kind: 'user', partition: m[1], account: m[2], name: m[3] };
  }
  m = /^arn:([^:]+):iam::(\d{12}):root$/.exec(arn);
  if (m) {
    return { kind: 'root', partition: m[1], account: m[2] };
  }
  m = /^arn:([^:]+):sts::(\d{12}):assumed-role\/([^/]+)\/([^/]+)$/.exec(arn);
  if (m) {
    const roleArn = principal.role_arn ?? `arn:${m[1]}:iam::${m[2]}:role/${m[3]}`;
    if (typeof roleArn !== 'string') {
      throw new InputError('principal.role_arn must be a string');
    }
    return { kind: 'role-session', partition: m[1], account: m[2], roleArn };
  }
  m = /^arn:([^:]+):sts::(\d{12}):federated-user\/([^/]+)$/.exec(arn);
  if (m) {
    return { kind: 'federated-user', partition: m[1], account: m[2] };
  }
  // A web identity caller (AssumeRoleWithWebIdentity): the OIDC provider's
  // ARN, which only a `Federated` principal entry names.
  m = /^arn:([^:]+):iam::(\d{12}):oidc-provider\/.+$/.exec(arn);
  if (m) {
    return { kind: 'web-identity', partition: m[1], account: m[2] };
  }
  throw new InputError(`unsupported principal.arn: ${arn}`);
}

/**
 * The context keys that follow from the principal (POLICY-TESTS.md):
 * aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType, aws:username,
 * aws:PrincipalTag/*. The simulator derives none of them itself.
 */
export function derivedPrincipalKeys(principal, parsed) {
  const keys = {};
  switch (parsed.kind) {
    case 'anonymous':
      keys['aws:PrincipalType'] = 'Anonymous';
      return keys; // anonymous requests carry no principal ARN, account or tags
    case 'user':
      keys['aws:PrincipalArn'] = principal.arn;
      keys['aws:PrincipalType'] = 'User';
      keys['aws:username'] = parsed.name;
      break;
    case 'root':
      keys['aws:PrincipalArn'] = principal.arn;
      keys['aws:PrincipalType'] = 'Account';
      break;
    case 'role-session':
      keys['aws:PrincipalArn'] = parsed.roleArn;
      keys['aws:PrincipalType'] = 'AssumedRole';
      break;
    case 'federated-user':
      keys['aws:PrincipalArn'] = principal.arn;
      keys['aws:PrincipalType'] = 'FederatedUser';
      break;
    case 'web-identity':
      return keys; // no AWS principal: no aws:Principal* keys
  }
  keys['aws:PrincipalAccount'] = parsed.account;
  for (const [tagKey, tagValue] of Object.entries(principal.tags ?? {})) {
    if (typeof tagValue !== 'string') {
      throw new InputError(`principal.tags.${tagKey} must be a string`);
    }
    keys[`aws:PrincipalTag/${tagKey}`] = tagValue;
  }
  return keys;
}

function contextScalar(value, where) {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  throw new InputError(`${where} must be a string, number, boolean or an array of those`);
}

/** Derived keys, then the test's context on top (matched case-insensitively). */
export function buildContext(principal, parsed, context) {
  if (context !== undefined && !isObject(context)) {
    throw new InputError('context must be an object');
  }
  const merged = new Map(); // lower-case key -> [key, value]
  for (const [key, value] of Object.entries(derivedPrincipalKeys(principal, parsed))) {
    merged.set(key.toLowerCase(), [key, value]);
  }
  for (const [key, value] of Object.entries(context ?? {})) {
    const converted = Array.isArray(value)
      ? value.map((v, i) => contextScalar(v, `context.${key}[${i}]`))
      : contextScalar(value, `context.${key}`);
    merged.set(key.toLowerCase(), [key, converted]);
  }
  return Object.fromEntries(merged.values());
}

function validationMessage(where, errors) {
  return `${where}: ${errors.map((e) => e.message ?? JSON.stringify(e)).join('; ')}`;
}

function load(policy, name, validate, problems) {
  if (!isObject(policy)) {
    problems.push(`${name}: a policy document must be a JSON object`);
    return undefined;
  }
  const errors = validate(policy);
  if (errors.length > 0) {
    problems.push(validationMessage(name, errors));
    return undefined;
  }
  return loadPolicy(policy, { name });
}

const asList = (v) => (Array.isArray(v) ? v : [v]);
const isStar = (v) => asList(v).length === 1 && asList(v)[0] === '*';

/**
 * True for the AWS-managed RCPFullAWSAccess document (Allow, Principal "*",
 * Action "*", Resource "*", nothing else). Test files may list it on an RCP
 * level the way SCP levels list FullAWSAccess; the simulator's RCP validator
 * rejects it (customer RCPs may only Deny) and the oracle adds it to every
 * level anyway, so it is skipped rather than validated.
 */
function isRcpFullAwsAccess(policy) {
  if (!isObject(policy) || policy.Statement === undefined) return false;
  const allowed = new Set(['Sid', 'Effect', 'Principal', 'Action', 'Resource']);
  return asList(policy.Statement).every(
    (st) =>
      isObject(st) &&
      Object.keys(st).every((k) => allowed.has(k)) &&
      st.Effect === 'Allow' &&
      (st.Principal === '*' || (isObject(st.Principal) && isStar(st.Principal.AWS ?? []))) &&
      isStar(st.Action) &&
      isStar(st.Resource)
  );
}

function loadLevels(levels, kind, validate, problems, extra) {
  if (levels === undefined) return [];
  if (!Array.isArray(levels) || !levels.every(Array.isArray)) {
    problems.push(`policies.${kind} must be a list of levels, each a list of policies`);
    return [];
  }
  return levels.map((level, i) => {
    const policies = [];
    if (extra) policies.push(loadPolicy(extra, { name: `policies.${kind}[${i}]:RCPFullAWSAccess` }));
    level.forEach((policy, j) => {
      if (extra && isRcpFullAwsAccess(policy)) return;
      const loaded = load(policy, `policies.${kind}[${i}][${j}]`, validate, problems);
      if (loaded) policies.push(loaded);
    });
    return { orgIdentifier: `${kind}-level-${i}`, policies };
  });
}

/** Load and validate every policy; throws InputError listing every problem. */
export function loadPolicies(policies) {
  if (policies === undefined) policies = {};
  if (!isObject(policies)) throw new InputError('policies must be an object');
  checkFields(policies, POLICY_FIELDS, 'policies');
  const problems = [];
  const identity = policies.identity ?? [];
  if (!Array.isArray(identity)) problems.push('policies.identity must be a list');
  const identityPolicies = (Array.isArray(identity) ? identity : [])
    .map((p, i) => load(p, `policies.identity[${i}]`, validateIdentityPolicy, problems))
    .filter(Boolean);
  const boundary =
    policies.boundary === undefined
      ? undefined
      : load(policies.boundary, 'policies.boundary', validateIdentityPolicy, problems);
  const session =
    policies.session === undefined
      ? undefined
      : load(policies.session, 'policies.session', validateIdentityPolicy, problems);
  const resource =
    policies.resource === undefined
      ? undefined
      : load(policies.resource, 'policies.resource', validateResourcePolicy, problems);
  const scps = loadLevels(policies.scps, 'scps', validateServiceControlPolicy, problems);
  const rcps = loadLevels(
    policies.rcps,
    'rcps',
    validateResourceControlPolicy,
    problems,
    RCP_FULL_AWS_ACCESS
  );
  if (problems.length > 0) {
    throw new InputError(`invalid policy: ${problems.join(' | ')}`);
  }
  return { identityPolicies, boundary, session, resource, scps, rcps };
}

function resourceAccount(input, parsed) {
  if (input.resource_account !== undefined) {
    if (typeof input.resource_account !== 'string') {
      throw new InputError('resource_account must be a string');
    }
    return input.resource_account;
  }
  const parts = input.resource.split(':');
  if (parts.length >= 6 && parts[0] === 'arn' && parts[4] !== '') {
    return parts[4];
  }
  // "*" or an ARN without an account: the caller's own account.
  return parsed.account ?? '';
}

/** Evaluate one request; returns {decision} or {error}. Never throws. */
export function evaluate(input) {
  try {
    if (!isObject(input)) throw new InputError('input must be a JSON object');
    checkFields(input, INPUT_FIELDS, 'input');
    if (typeof input.action !== 'string' || input.action.split(':').length !== 2) {
      throw new InputError('action must be a "service:Action" string');
    }
    if (typeof input.resource !== 'string' || input.resource === '') {
      throw new InputError('resource must be a non-empty string');
    }
    const parsed = parsePrincipal(input.principal);
    const loaded = loadPolicies(input.policies);
    const context = buildContext(input.principal, parsed, input.context);
    const principal = parsed.kind === 'anonymous' ? anonymousPrincipal : input.principal.arn;
    // A request for "*" is matched literally: only a policy Resource of "*"
    // covers it (and a NotResource naming an ARN does not exclude it), as IAM
    // does for actions without resource-level permissions. The simulator's
    // "wildcardOnlyAction" flag gives exactly that behaviour; without it the
    // simulator would treat "*" as "some resource matching any pattern".
    const literalStar = input.resource === '*';
    const request = new AwsRequestImpl(
      principal,
      { resource: input.resource, accountId: resourceAccount(input, parsed) },
      input.action,
      new RequestContextImpl(context),
      literalStar
    );
    const analysis = authorize({
      request,
      sessionPolicy: loaded.session,
      identityPolicies: loaded.identityPolicies,
      serviceControlPolicies: loaded.scps,
      resourceControlPolicies: loaded.rcps,
      resourcePolicy: loaded.resource,
      permissionBoundaries: loaded.boundary ? [loaded.boundary] : undefined,
      vpcEndpointPolicies: undefined,
      simulationParameters: {
        simulationMode: 'Strict',
        discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([])
      },
      serviceSettings: { s3: { blockPublicAccess: undefined } }
    });
    const decision = DECISIONS[analysis.result];
    if (!decision) throw new Error(`unexpected simulator result ${analysis.result}`);
    return { decision };
  } catch (err) {
    const prefix = err instanceof InputError ? '' : 'simulator failed: ';
    return { error: prefix + (err?.message ?? String(err)) };
  }
}

function serve() {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  // One answer per input line, in input order, written as soon as it is
  // computed (node writes to pipes synchronously on Linux and keeps write
  // order everywhere), so an interactive client never waits on a buffer.
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    let id = null;
    let answer;
    try {
      const input = JSON.parse(line);
      if (isObject(input) && 'id' in input) id = input.id;
      answer = evaluate(input);
    } catch (err) {
      answer = { error: `bad JSON line: ${err.message}` };
    }
    process.stdout.write(JSON.stringify({ id, ...answer }) + '\n');
  });
  process.stdout.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  serve();
}
