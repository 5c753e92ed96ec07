//! Differential test: iamgate against an independent IAM evaluator,
//! `@cloud-copilot/iam-simulate`, run as one long-lived node process
//! (`tests/oracle/oracle.mjs`, JSON lines).
//!
//! Generates policy test files (POLICY-TESTS.md) from a seeded PRNG
//! (`IAMGATE_DIFF_SEED`, printed on every run) until `IAMGATE_DIFF_CASES`
//! requests (default 10,000) are to be compared, decides each with
//! iamgate's engine and with the oracle, and fails on any disagreement,
//! printing a minimized, self-contained test file for each kind found.
//!
//! Needs node and `npm ci --prefix tests/oracle`; the test fails without
//! them unless `IAMGATE_SKIP_DIFFERENTIAL=1` opts out explicitly.
//!
//! # Known oracle defects
//!
//! Every disagreement is settled against the IAM User Guide and kept as a
//! corpus case (`tests/corpus`). Where the oracle is wrong, the generator
//! avoids the construct, or the case is detected and excluded
//! (`defects::excluded`) and counted apart under its label:
//!
//! - D1 variables replaced in 2008-10-17 / Version-less policies: variables
//!   are generated only in 2012-10-17 documents (and minimization may not
//!   drop a `Version`). Corpus: var-version-2008.json.
//! - D2 epoch-seconds dates compared as milliseconds: dates are ISO 8601.
//! - D3 an unresolved variable under a negated operator (`StringNotEquals`,
//!   `StringNotLike`, `ArnNotLike`, ...) or in `NotResource` is taken as no
//!   match: detected and excluded. Corpus: var-missing-value.json,
//!   diff-notresource-unresolved-variable.json.
//! - D4 numbers parsed by prefix (`10abc` is 10): numbers are well formed.
//! - D5 single IP addresses compared as text: one textual form per address.
//! - D6 an IPv4 `/0` prefix matches only the address itself: no `/0`.
//! - D7 `${*}`, `${?}`, `${$}` not replaced under operators without
//!   wildcards: not generated.
//! - D8 the root user gets no implicit access to its own account: the oracle
//!   is given that access as an allow-everything identity policy
//!   (`defects::oracle_input`); the root user has no policies of its own.
//!   Corpus: eval-root-user-own-account.json, eval-root-user-cross-account.json.
//! - D9 `NotIpAddress` with a single address of the other IP family is
//!   false: `NotIpAddress` gets CIDR blocks only.
//!   Corpus: diff-not-ip-address-other-family.json.
//! - D10 `NotPrincipal` excludes a caller when any one of its identities
//!   (account, role, session, user) is listed: the caller's identities are
//!   listed all or none. Corpus: eval-notprincipal-deny-other-user.json,
//!   eval-notprincipal-deny-other-session.json.
//! - D11 the session policy limits every resource-policy grant, even one
//!   naming the session: a file with a session policy has no
//!   resource-policy Allow naming the session or `*`.
//!   Corpus: eval-rp-session-arn-not-limited.json.
//! - D12 `ForAnyValue:...IfExists` on a missing key is false: detected and
//!   excluded. Corpus: diff-forany-ifexists-missing-key.json.
//! - D13 `Null` counts a key with an empty list of values as present:
//!   detected and excluded. Corpus: diff-null-empty-multivalued.json.
//! - D14 a variable outside the last component of an `Arn*` condition value
//!   breaks the component split (the variable's own colon): variables only
//!   in the last component. Corpus: diff-arn-variable-in-account-field.json.
//!
//! Not settled by the User Guide (reported to the lead), also kept out:
//!
//! - U1 a multivalued request value under an operator without
//!   `ForAllValues:`/`ForAnyValue:` (iamgate: any value matches; oracle:
//!   never matches): multivalued keys always get a set operator and
//!   single-valued keys a single value.
//!
//! The generator also never names a role by an ARN without the role's path
//! (IAM refuses such a principal; the oracle matches roles by name).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "differential/defects.rs"]
mod defects;
#[path = "differential/generate.rs"]
mod generate;
#[path = "differential/oracle.rs"]
mod oracle;
#[path = "differential/rng.rs"]
mod rng;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use iamgate::testfile::{parse_test_file, run_file};
use serde_json::{Value, json};

use oracle::{Answer, Oracle};

const DEFAULT_SEED: u64 = 0x1a3_9a7e;
const DEFAULT_CASES: usize = 10_000;
const TESTS_PER_FILE: usize = 4;
/// How many disagreements are minimized and printed.
const MINIMIZE: usize = 40;
/// Oracle round trips allowed per minimization.
const MINIMIZE_BUDGET: usize = 1_500;

fn oracle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle")
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}=`{v}` is not a number: {e}")))
}

/// iamgate's decision for every test of a file: (outcome, reason, statements).
fn iamgate(file: &Value) -> Result<Vec<(String, String, Vec<String>)>, String> {
    let text = file.to_string();
    let compiled =
        parse_test_file(Path::new("differential.json"), &text).map_err(|e| e.to_string())?;
    Ok(run_file(&compiled)
        .cases
        .into_iter()
        .map(|c| (c.got, c.reason, c.decided_by))
        .collect())
}

/// The file with only its test number `i`.
fn single(file: &Value, i: usize) -> Value {
    let mut f = file.clone();
    f["tests"] = json!([file["tests"][i].clone()]);
    f
}

/// For a one-test file: `Some((iamgate, oracle))` when they disagree.
fn disagreement(oracle: &mut Oracle, file: &Value) -> Option<(String, String)> {
    let ours = iamgate(file).ok()?.into_iter().next()?.0;
    let test = &file["tests"][0];
    if defects::excluded(file, test).is_some() {
        return None;
    }
    let line = defects::oracle_input(file, test, 0).to_string();
    match oracle.ask(&line) {
        Answer::Decision(d) if d != ours => Some((ours, d)),
        _ => None,
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Idx(usize),
}

/// Every member and array element that minimization may try to delete,
/// shallowest first.
fn deletable(v: &Value) -> Vec<Vec<Seg>> {
    fn walk(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let protected = matches!(
                        (path.len(), k.as_str()),
                        (0, "principal" | "policies" | "tests")
                            | (1, "arn")
                            | (_, "Effect" | "Statement" | "Version")
                    ) || (matches!(path.first(), Some(Seg::Key(t)) if t == "tests")
                        && path.len() == 2);
                    path.push(Seg::Key(k.clone()));
                    if !protected || k == "context" {
                        out.push(path.clone());
                    }
                    walk(child, path, out);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    path.push(Seg::Idx(i));
                    let in_tests = matches!(path.first(), Some(Seg::Key(t)) if t == "tests");
                    if !in_tests || path.len() > 2 {
                        out.push(path.clone());
                    }
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out.sort_by_key(Vec::len);
    out
}

fn delete(v: &Value, path: &[Seg]) -> Value {
    let mut out = v.clone();
    let (last, parent) = path.split_last().expect("non-empty path");
    let mut cur = &mut out;
    for seg in parent {
        cur = match seg {
            Seg::Key(k) => &mut cur[k.as_str()],
            Seg::Idx(i) => &mut cur[*i],
        };
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            // Rebuilt rather than `remove`d, which may reorder members.
            *m = std::mem::take(m)
                .into_iter()
                .filter(|(key, _)| key != k)
                .collect();
        }
        (Seg::Idx(i), Value::Array(a)) => {
            a.remove(*i);
        }
        _ => {}
    }
    out
}

/// Deletes whatever can be deleted while iamgate and the oracle keep
/// disagreeing the same way.
fn minimize(oracle: &mut Oracle, file: &Value, want: &(String, String)) -> Value {
    let mut cur = file.clone();
    let mut budget = MINIMIZE_BUDGET;
    'pass: loop {
        for path in deletable(&cur) {
            if budget == 0 {
                break 'pass;
            }
            budget -= 1;
            let cand = delete(&cur, &path);
            if disagreement(oracle, &cand).as_ref() == Some(want) {
                cur = cand;
                continue 'pass;
            }
        }
        break;
    }
    cur
}

/// A coarse description of a minimized disagreement, to group them.
fn signature(file: &Value, ours: &str, theirs: &str) -> String {
    let mut f: Vec<String> = vec![format!("iamgate {ours} / oracle {theirs}")];
    let arn = file["principal"]["arn"].as_str().unwrap_or_default();
    f.push(
        match arn {
            "anonymous" => "anonymous",
            a if a.ends_with(":root") => "root",
            a if a.contains(":assumed-role/") => "role session",
            _ => "user",
        }
        .to_owned(),
    );
    if let Some(p) = file["policies"].as_object() {
        f.push(format!(
            "policies: {}",
            p.keys().cloned().collect::<Vec<_>>().join(",")
        ));
    }
    let mut elements = std::collections::BTreeSet::new();
    for doc in defects::documents(file) {
        for st in defects::statements(doc) {
            for (k, v) in st.as_object().into_iter().flatten() {
                if k == "Condition" {
                    for op in v.as_object().into_iter().flatten().map(|(op, _)| op) {
                        elements.insert(op.clone());
                    }
                } else if k.starts_with("Not") {
                    elements.insert(k.clone());
                }
            }
        }
    }
    f.extend(elements);
    f.join("; ")
}

fn report_file(file: &Value, ours: &(String, String, Vec<String>), theirs: &str) -> String {
    let mut f = file.clone();
    let obj = f.as_object_mut().expect("file object");
    let mut out = serde_json::Map::new();
    out.insert(
        "description".to_owned(),
        json!(format!(
            "differential: iamgate says {} ({}; {}), the oracle says {theirs}",
            ours.0,
            ours.1,
            ours.2.join(", ")
        )),
    );
    out.insert(
        "source".to_owned(),
        json!("IAM User Guide: (settle this disagreement and cite the page)"),
    );
    for (k, v) in std::mem::take(obj) {
        out.insert(k, v);
    }
    out["tests"][0]["name"] = json!("differential case");
    out["tests"][0]["expect"] = json!(ours.0);
    serde_json::to_string_pretty(&Value::Object(out)).expect("json")
}

#[test]
fn iamgate_agrees_with_the_oracle() {
    if std::env::var("IAMGATE_SKIP_DIFFERENTIAL").is_ok_and(|v| v == "1") {
        // Written to the process's stderr, past the test harness's capture,
        // so that the skip shows in every run.
        let notice = "\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!  IAMGATE_SKIP_DIFFERENTIAL=1: the differential test against the    !!\n\
             !!  IAM oracle was SKIPPED. iamgate's decisions were NOT compared.    !!\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes());
        return;
    }
    let setup = "run `npm ci --prefix tests/oracle` (needs node), or set \
                 IAMGATE_SKIP_DIFFERENTIAL=1 to skip this test explicitly";
    if let Err(e) = std::process::Command::new("node").arg("--version").output() {
        panic!("the differential test needs `node` on PATH ({e}): {setup}");
    }
    let dir = oracle_dir();
    if !dir
        .join("node_modules/@cloud-copilot/iam-simulate/package.json")
        .is_file()
    {
        panic!(
            "the oracle's packages are not installed in {}: {setup}",
            dir.join("node_modules").display()
        );
    }

    let seed = env_number("IAMGATE_DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_number("IAMGATE_DIFF_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    println!(
        "differential: seed {seed:#x} (IAMGATE_DIFF_SEED), {cases} cases (IAMGATE_DIFF_CASES)"
    );
    let start = Instant::now();

    // The oracle starts (node takes a moment) while cases are generated.
    let mut oracle = Oracle::start(&dir).unwrap_or_else(|e| panic!("{e}: {setup}"));

    // Generate until `cases` requests are to be compared, and decide each
    // with iamgate.
    let mut rng = rng::Rng::new(seed);
    let mut files = Vec::new();
    let mut ours = Vec::new(); // per file, per test
    let mut lines = Vec::new();
    let mut index = Vec::new(); // oracle line -> (file, test)
    let mut excluded: BTreeMap<&str, usize> = BTreeMap::new();
    let mut generated = 0;
    while lines.len() < cases {
        let n = TESTS_PER_FILE.min(cases - lines.len());
        let file = generate::test_file(&mut rng, n);
        let decided = iamgate(&file).unwrap_or_else(|e| {
            panic!(
                "generated an invalid file: {e}\n{}",
                serde_json::to_string_pretty(&file).unwrap()
            )
        });
        let fi = files.len();
        for (ti, test) in file["tests"].as_array().unwrap().iter().enumerate() {
            if let Some(defect) = defects::excluded(&file, test) {
                *excluded.entry(defect).or_default() += 1;
                continue;
            }
            lines.push(defects::oracle_input(&file, test, lines.len()).to_string());
            index.push((fi, ti));
        }
        generated += n;
        files.push(file);
        ours.push(decided);
    }
    let generated_in = start.elapsed();

    // Ask the oracle.
    let asked = Instant::now();
    let answers = oracle.ask_all(lines);
    let oracle_in = asked.elapsed();

    // Compare.
    let mut distribution: BTreeMap<String, usize> = BTreeMap::new();
    let mut oracle_distribution: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut disagreements = Vec::new();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (&(fi, ti), answer) in index.iter().zip(&answers) {
        let mine = &ours[fi][ti];
        *distribution.entry(mine.0.clone()).or_default() += 1;
        match answer {
            Answer::Error(e) => errors.push(format!(
                "oracle error: {e}\n{}",
                serde_json::to_string_pretty(&single(&files[fi], ti)).unwrap()
            )),
            Answer::Decision(d) => {
                *oracle_distribution.entry(d.clone()).or_default() += 1;
                if *d != mine.0 {
                    *by_kind
                        .entry(format!("iamgate {} ({}) / oracle {d}", mine.0, mine.1))
                        .or_default() += 1;
                    disagreements.push((fi, ti, d.clone()));
                }
            }
        }
    }
    let compared = index.len();
    let share = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| {
                format!(
                    "{k} {v} ({:.1}%)",
                    100.0 * *v as f64 / compared.max(1) as f64
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "differential: {compared} cases compared; iamgate: {}",
        share(&distribution)
    );
    println!("differential: oracle: {}", share(&oracle_distribution));
    println!(
        "differential: {generated} generated; excluded (known oracle defects): {}",
        if excluded.is_empty() {
            "none".to_owned()
        } else {
            excluded
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );

    // Minimize the first disagreements and group them.
    let minimizing = Instant::now();
    let mut groups: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (fi, ti, theirs) in disagreements.iter().take(MINIMIZE) {
        let mine = &ours[*fi][*ti];
        let one = single(&files[*fi], *ti);
        let want = (mine.0.clone(), theirs.clone());
        let small = minimize(&mut oracle, &one, &want);
        let small_ours = iamgate(&small)
            .ok()
            .and_then(|v| v.into_iter().next())
            .unwrap_or_else(|| mine.clone());
        let sig = signature(&small, &want.0, &want.1);
        let entry = groups
            .entry(sig)
            .or_insert_with(|| (0, report_file(&small, &small_ours, theirs)));
        entry.0 += 1;
    }
    println!(
        "differential: generated and decided by iamgate in {:.2?}, oracle in {:.2?}, \
         minimized in {:.2?}; total {:.2?}",
        generated_in,
        oracle_in,
        minimizing.elapsed(),
        start.elapsed()
    );

    for e in errors.iter().take(3) {
        println!("{e}");
    }
    if !disagreements.is_empty() {
        println!("\ndifferential: disagreements by kind:");
        for (k, v) in &by_kind {
            println!("  {v:6}  {k}");
        }
        println!(
            "\ndifferential: {} kinds among the first {} disagreements, minimized:",
            groups.len(),
            disagreements.len().min(MINIMIZE)
        );
        for (sig, (count, text)) in &groups {
            println!("\n--- {count} x {sig}\n{text}");
        }
    }
    assert!(
        errors.is_empty(),
        "the oracle refused {} generated cases (a generator bug)",
        errors.len()
    );
    assert!(
        disagreements.is_empty(),
        "iamgate and the oracle disagree on {} of {compared} cases (seed {seed:#x}); \
         settle each kind against the IAM User Guide",
        disagreements.len()
    );
    if compared >= 1_000 {
        for outcome in ["allowed", "explicitDeny", "implicitDeny"] {
            let n = distribution.get(outcome).copied().unwrap_or(0);
            assert!(
                n * 10 >= compared,
                "the generator is unbalanced: only {n} of {compared} cases are {outcome}"
            );
        }
    }
}
