#!/usr/bin/env node
// Cross-check policy test files (POLICY-TESTS.md, format v1) against the
// oracle: every test of every file goes through one oracle.mjs process over
// its JSON-lines protocol, and every test whose expectation differs from the
// oracle's decision is printed.
//
//   node tests/oracle/check-file.mjs FILE_OR_DIR...
//
// Output: one line per disagreement or problem, then a summary line.
// Disagreements listed in KNOWN_DEFECTS below (documented oracle defects, see
// README.md) are printed as "known" and do not fail the run.
// Exit code: 0 when every test agrees or disagrees only where listed,
// 1 when there is any other disagreement or an oracle error, 2 when a file
// cannot be read or does not follow the format.

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { loadPolicies } from './oracle.mjs';

// Cases where the corpus follows the IAM User Guide and the oracle does not:
// file name -> test name -> defect id (README.md, "Known defects"). Keep this
// list and README.md in step; a listed case that starts to agree is reported
// too, so the list never goes stale.
const D1 = 'D1: variables replaced in 2008-10-17 / Version-less policies';
const D2 = 'D2: epoch seconds compared as milliseconds';
const D3 = 'D3: unresolved variable under a negated operator treated as no match';
const D4 = 'D4: numbers parsed by prefix, "10abc" taken as 10';
const D5 = 'D5: single IP addresses compared as text';
const D6 = 'D6: IPv4 /0 prefix matches only the address itself';
const D7 = 'D7: ${*} ${?} ${$} not replaced under operators without wildcards';
const D8 = 'D8: the account root user gets no implicit access in its own account';
const D9 = 'D9: NotIpAddress with a single address of the other IP family is false';
const D10 = 'D10: NotPrincipal excludes a caller when only its account or role is listed';
const D11 = 'D11: a session policy limits a grant made directly to the session ARN';
const D12 = 'D12: ForAnyValue:...IfExists on a missing key is false';
const D13 = 'D13: Null counts a key with an empty list of values as present';
const D14 = 'D14: a variable outside the last ARN component breaks the component split';
const D3N = 'D3: an unresolved variable in NotResource drops the statement';
const D15 = 'D15: a wildcard in the resource-type part of an ARN (`*/*`) is taken literally';
const D16 = 'D16: with no role trust policy given, an identity allow of sts:AssumeRole is enough in the same account';
const D17 = 'D17: SCPs are applied to a web identity caller as if the OIDC provider\'s account were the caller\'s account';
const KNOWN_DEFECTS = {
  'session-web-identity.json': {
    "the named service account with the STS audience": D17,
    "another service account": D17,
    "the right service account, another audience": D17,
    "StringLike on sub with amr among several values and the provider key": D17,
    "amr without the required value": D17,
    "an account principal does not name the web identity (no claims: only that statement could match)": D17
  },
  'eval-trust-policy-missing.json': {
    'assume a role with no trust policy allowing the caller': D16,
    'tag a session': D16
  },
  'ec2-guide-run-instances-optional-tag.json': {
    'CreateTags purpose=test within RunInstances': D15,
    'CreateTags purpose=test on a volume within RunInstances': D15
  },
  'ec2-guide-run-instances-require-any-tag.json': {
    'CreateTags within RunInstances': D15
  },
  'ec2-guide-run-instances-require-tags.json': {
    'CreateTags on the new instance within RunInstances': D15,
    'CreateTags on the new volume within RunInstances': D15
  },
  'ec2-guide-tag-resources.json': {
    'environment-type=test on a volume the caller owns': D15,
    "the owner tag matched against the caller's user name": D15
  },
  'eval-root-user-cross-account.json': {
    'send a message (queue policy allows the account)': D8
  },
  'eval-root-user-own-account.json': {
    'send a message': D8,
    'receive messages': D8,
    'purge the queue': D8
  },
  'eval-scp-member-account-root-user.json': {
    'start an instance': D8,
    'describe instances': D8
  },
  'eval-notprincipal-deny-other-session.json': {
    'delete the queue': D10,
    'purge the queue': D10
  },
  'eval-notprincipal-deny-other-user.json': {
    'delete the queue': D10,
    'purge the queue': D10
  },
  'eval-rp-session-arn-not-limited.json': {
    'delete a message (boundary and session policy silent; session ARN named)': D11
  },
  'diff-arn-variable-in-account-field.json': {
    "ArnLike: a topic of the caller's account matches": D14,
    "ArnNotEquals: a topic of the caller's account is excluded": D14
  },
  'diff-forany-ifexists-missing-key.json': {
    'ForAnyValue:StringEqualsIfExists with aws:TagKeys missing matches': D12,
    'ForAnyValue:StringNotEqualsIfExists with aws:TagKeys missing matches': D12
  },
  'diff-not-ip-address-other-family.json': {
    'an IPv4 request is not the IPv6 address: the Deny applies': D9,
    'an IPv6 request is not the IPv4 address: the Deny applies': D9
  },
  'diff-notresource-unresolved-variable.json': {
    'Allow with NotResource and an unresolved ${aws:username} (role session) applies': D3N,
    'Deny with NotResource and an unresolved principal tag applies': D3N
  },
  'diff-null-empty-multivalued.json': {
    'Null false guard: an empty aws:TagKeys is null, so ForAllValues does not allow': D13,
    'Null true matches an empty aws:TagKeys': D13
  },
  'var-version-2008.json': {
    '2008-10-17: ${aws:username} in Resource is literal text, not the user name': D1,
    '2008-10-17: a key pair literally named ${aws:username} matches': D1,
    '2008-10-17: ${aws:username} in a condition value is literal text': D1,
    '2008-10-17: a value that is literally ${aws:username} matches': D1,
    'no Version: ${aws:username} in Resource is literal text': D1,
    'no Version: a key pair literally named ${aws:username} matches': D1,
    'no Version: ${aws:username} in a condition value is literal text': D1,
    'no Version: a tag value that is literally ${aws:username} matches': D1
  },
  'cond-date-formats.json': {
    'aws:EpochTime (epoch seconds) after an ISO 8601 deadline': D2,
    'epoch-seconds policy value against an ISO 8601 request time (before)': D2
  },
  'var-missing-value.json': {
    'StringNotLike with an unresolved variable matches (allow applies)': D3,
    'StringNotEquals with an unresolved variable matches (deny applies)': D3,
    'ArnNotLike with an unresolved variable matches (deny applies)': D3
  },
  'cond-numeric.json': {
    'a non-numeric request value with a numeric prefix does not match': D4
  },
  'cond-ip-v6.json': {
    'single IPv6 address written in another textual form matches': D5
  },
  'cond-ip-v4.json': {
    '0.0.0.0/0 matches any IPv4 address': D6
  },
  'var-special-chars.json': {
    '${$} matches a literal dollar sign': D7,
    '${*} under StringEquals is an asterisk': D7,
    '${*} under StringEquals is not the text ${*}': D7,
    '${$}{aws:username} is the literal text ${aws:username}': D7
  }
};
const knownDefect = (file, test) => KNOWN_DEFECTS[basename(file)]?.[test];

const TOP_FIELDS = new Set([
  'description',
  'source',
  'principal',
  'policies',
  'resource_account',
  'tests',
  'expect_invalid'
]);
const TEST_FIELDS = new Set(['name', 'action', 'resource', 'context', 'expect']);
const DECISIONS = new Set(['allowed', 'explicitDeny', 'implicitDeny']);

class FormatError extends Error {}

function collectFiles(paths) {
  const files = [];
  // Folders are walked for *.json; a file named on the command line is
  // always read.
  const walk = (path, named) => {
    const st = statSync(path);
    if (st.isDirectory()) {
      for (const entry of readdirSync(path).sort()) walk(join(path, entry), false);
    } else if (named || path.endsWith('.json')) {
      files.push(path);
    }
  };
  for (const p of paths) walk(p, true);
  return files;
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Checks the file against POLICY-TESTS.md; returns the parsed document. */
function readTestFile(path) {
  let doc;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FormatError(`cannot read or parse: ${err.message}`);
  }
  if (!isObject(doc)) throw new FormatError('$: must be an object');
  for (const k of Object.keys(doc)) {
    if (!TOP_FIELDS.has(k)) throw new FormatError(`$.${k}: unknown field`);
  }
  if (!isObject(doc.principal) || typeof doc.principal.arn !== 'string') {
    throw new FormatError('$.principal.arn: required string');
  }
  if (doc.policies !== undefined && !isObject(doc.policies)) {
    throw new FormatError('$.policies: must be an object');
  }
  if (doc.expect_invalid !== undefined && doc.expect_invalid !== true) {
    throw new FormatError('$.expect_invalid: must be true when present');
  }
  if (doc.expect_invalid) {
    if (doc.tests !== undefined) throw new FormatError('$.tests: not allowed with expect_invalid');
    return doc;
  }
  if (!Array.isArray(doc.tests)) throw new FormatError('$.tests: required list');
  doc.tests.forEach((t, i) => {
    if (!isObject(t)) throw new FormatError(`$.tests[${i}]: must be an object`);
    for (const k of Object.keys(t)) {
      if (!TEST_FIELDS.has(k)) throw new FormatError(`$.tests[${i}].${k}: unknown field`);
    }
    for (const k of ['name', 'action', 'resource']) {
      if (typeof t[k] !== 'string') throw new FormatError(`$.tests[${i}].${k}: required string`);
    }
    if (t.context !== undefined && !isObject(t.context)) {
      throw new FormatError(`$.tests[${i}].context: must be an object`);
    }
    if (!DECISIONS.has(t.expect)) {
      throw new FormatError(`$.tests[${i}].expect: must be allowed, explicitDeny or implicitDeny`);
    }
  });
  return doc;
}

function startOracle() {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const child = spawn(process.execPath, [join(here, 'oracle.mjs')], {
    stdio: ['pipe', 'pipe', 'inherit']
  });
  const pending = new Map();
  const rl = createInterface({ input: child.stdout, crlfDelay: Infinity });
  rl.on('line', (line) => {
    const answer = JSON.parse(line);
    const resolve = pending.get(answer.id);
    if (resolve) {
      pending.delete(answer.id);
      resolve(answer);
    }
  });
  child.on('exit', (code) => {
    for (const resolve of pending.values()) {
      resolve({ error: `oracle process exited (${code})` });
    }
    pending.clear();
  });
  return {
    ask(input) {
      return new Promise((resolve) => {
        pending.set(input.id, resolve);
        child.stdin.write(JSON.stringify(input) + '\n');
      });
    },
    close() {
      child.stdin.end();
    }
  };
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length === 0) {
    console.error('usage: node tests/oracle/check-file.mjs FILE_OR_DIR...');
    process.exit(2);
  }
  let files;
  try {
    files = collectFiles(args);
  } catch (err) {
    console.error(err.message);
    process.exit(2);
  }

  const oracle = startOracle();
  const counts = {
    agree: 0,
    known: 0,
    stale: 0,
    disagree: 0,
    errors: 0,
    invalidFiles: 0,
    badFiles: 0
  };
  const jobs = [];
  let nextId = 0;

  for (const file of files) {
    let doc;
    try {
      doc = readTestFile(file);
    } catch (err) {
      counts.badFiles++;
      console.log(`BADFILE ${file}: ${err.message}`);
      continue;
    }
    if (doc.expect_invalid) {
      counts.invalidFiles++;
      let verdict;
      try {
        loadPolicies(doc.policies);
        verdict = 'the oracle accepts these policies (its validator is laxer than IAM here)';
      } catch (err) {
        verdict = `the oracle also rejects them: ${err.message}`;
      }
      console.log(`INVALID ${file}: expect_invalid; ${verdict}`);
      continue;
    }
    for (const test of doc.tests) {
      const id = nextId++;
      const input = {
        id,
        principal: doc.principal,
        policies: doc.policies ?? {},
        action: test.action,
        resource: test.resource,
        context: test.context ?? {}
      };
      if (doc.resource_account !== undefined) input.resource_account = doc.resource_account;
      jobs.push(
        oracle.ask(input).then((answer) => {
          const where = `${file} :: ${test.name}`;
          if (answer.error !== undefined) {
            counts.errors++;
            console.log(`ERROR ${where}: oracle error: ${answer.error}`);
          } else if (answer.decision === test.expect) {
            counts.agree++;
            const known = knownDefect(file, test.name);
            if (known) {
              counts.stale++;
              console.log(`STALE ${where}: listed as a known oracle defect (${known}) but agrees`);
            }
          } else {
            const known = knownDefect(file, test.name);
            if (known) {
              counts.known++;
              console.log(
                `KNOWN ${where}: expected ${test.expect}, oracle ${answer.decision} (${known})`
              );
            } else {
              counts.disagree++;
              console.log(`DISAGREE ${where}: expected ${test.expect}, oracle ${answer.decision}`);
            }
          }
        })
      );
    }
  }
  await Promise.all(jobs);
  oracle.close();

  const total = counts.agree + counts.known + counts.disagree + counts.errors;
  console.log(
    `${files.length} files, ${total} tests: ${counts.agree} agree, ` +
      `${counts.known} known oracle defects, ${counts.disagree} disagree, ` +
      `${counts.errors} oracle errors, ${counts.stale} stale known-defect entries; ` +
      `${counts.invalidFiles} expect_invalid files skipped, ` +
      `${counts.badFiles} unreadable`
  );
  if (counts.badFiles > 0) process.exitCode = 2;
  else if (counts.disagree > 0 || counts.errors > 0 || counts.stale > 0) process.exitCode = 1;
}

await main();
