#![forbid(unsafe_code)]
//! The `iamgate` binary: argument parsing and exit codes only.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use iamgate::commands;
use iamgate::policy::PolicyKind;

/// iamgate: decides exactly as AWS IAM would, fast enough for every request.
#[derive(Debug, Parser)]
#[command(name = "iamgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run policy test files (files and folders; folders are walked for *.json).
    Test {
        /// Test files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also print a line for every passing test.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Evaluate one request against the policies of a policy test file.
    Eval {
        /// Policy test file whose principal and policies to use.
        #[arg(long)]
        policies: PathBuf,
        /// Caller ARN (default: the file's principal).
        #[arg(long)]
        principal: Option<String>,
        /// Action, e.g. ec2:RunInstances.
        #[arg(long)]
        action: String,
        /// Resource ARN, or `*`.
        #[arg(long, default_value = "*")]
        resource: String,
        /// Context key=value (repeatable; a key given twice is multivalued).
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
        /// Account that owns the resource when its ARN has none.
        #[arg(long)]
        resource_account: Option<String>,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate policies: errors, warnings and security warnings.
    Validate {
        /// Policy documents, or policy test files (all their policies).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// What plain policy documents are attached as.
        #[arg(long, value_enum, default_value_t = Kind::Identity)]
        kind: Kind,
        /// Print findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time every request of a policy test file against its compiled policies.
    Bench {
        /// Policy test file.
        file: PathBuf,
        /// Milliseconds spent timing each request.
        #[arg(long, default_value_t = 300)]
        time_ms: u64,
        /// Print results as JSON (name, median_ns, p99_ns per request).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Identity,
    Boundary,
    Session,
    Resource,
    Scp,
    Rcp,
}

impl From<Kind> for PolicyKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Identity => PolicyKind::Identity,
            Kind::Boundary => PolicyKind::Boundary,
            Kind::Session => PolicyKind::Session,
            Kind::Resource => PolicyKind::Resource,
            Kind::Scp => PolicyKind::Scp,
            Kind::Rcp => PolicyKind::Rcp,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match &cli.command {
        Command::Test { paths, verbose } => commands::test::run(paths, *verbose, &mut out),
        Command::Eval {
            policies,
            principal,
            action,
            resource,
            context,
            resource_account,
            json,
        } => commands::eval::run(
            &commands::eval::EvalArgs {
                policies,
                principal: principal.as_deref(),
                action,
                resource,
                context,
                resource_account: resource_account.as_deref(),
                json: *json,
            },
            &mut out,
        ),
        Command::Validate { files, kind, json } => {
            commands::validate::run(files, (*kind).into(), *json, &mut out)
        }
        Command::Bench {
            file,
            time_ms,
            json,
        } => commands::bench::run(file, Duration::from_millis(*time_ms), *json, &mut out),
    };
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("iamgate: {e}");
            ExitCode::from(2)
        }
    }
}
