//! `coffer policy`: the policy language offline. `validate` checks a document as IAM or
//! Secrets Manager would; `simulate` shows what given policies decide for actions and
//! resources, and which statements decided it. Neither needs a server or a data directory.
//! (To simulate a stored user's, group's or role's policies, ask the server:
//! `aws iam simulate-principal-policy`.)

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use coffer_policy::{EvaluationInput, Policy, PolicyKind, PolicySource, RequestContext, evaluate};

use crate::Failure;

const EXAMPLES: &str = "\
Examples:
  Check a policy before attaching it:
    coffer policy validate read-prod.json
    coffer policy validate --kind resource secret-policy.json

  What would this policy allow?
    coffer policy simulate --policy read-prod.json --action secretsmanager:GetSecretValue \\
        --resource arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf \\
        --context aws:SourceIp=10.1.2.3";

#[derive(Debug, Args)]
#[command(about = "Validate and simulate IAM policies offline", after_help = EXAMPLES)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check a policy document: syntax, elements, operators and size, with AWS's messages.
    Validate {
        /// The policy document (JSON).
        file: PathBuf,
        /// Where the policy is used: identity (users, groups, roles), resource (secrets) or trust (roles).
        #[arg(long, value_enum, default_value_t = KindArg::Identity)]
        kind: KindArg,
    },
    /// Decide actions on resources with the given policies and show the deciding statements.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// An identity-based policy file (repeat for several).
    #[arg(long = "policy", value_name = "FILE", required = true)]
    policies: Vec<PathBuf>,
    /// A resource-based policy file of the resource.
    #[arg(long, value_name = "FILE")]
    resource_policy: Option<PathBuf>,
    /// An action such as secretsmanager:GetSecretValue (repeat for several).
    #[arg(long = "action", value_name = "ACTION", required = true)]
    actions: Vec<String>,
    /// A resource ARN (repeat for several) [default: *].
    #[arg(long = "resource", value_name = "ARN")]
    resources: Vec<String>,
    /// The calling principal's ARN [default: a user of the resource's account; a principal of
    /// another account also needs the resource policy to allow it].
    #[arg(long, value_name = "ARN")]
    principal: Option<String>,
    /// A condition key and value, `key=value` (repeat a key for several values).
    #[arg(long = "context", value_name = "KEY=VALUE")]
    context: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Identity,
    Resource,
    Trust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))
}

fn parse(path: &PathBuf, kind: PolicyKind) -> Result<Policy, Failure> {
    let text = read(path)?;
    Policy::parse(&text, kind).map_err(|e| {
        Failure::Failed(anyhow::anyhow!(
            "{}: {}: {}",
            path.display(),
            e.code(),
            e.message()
        ))
    })
}

pub fn run(args: PolicyArgs) -> Result<(), Failure> {
    match args.command {
        PolicyCommand::Validate { file, kind } => {
            let kind = match kind {
                KindArg::Identity => PolicyKind::Identity,
                KindArg::Resource => PolicyKind::Resource,
                KindArg::Trust => PolicyKind::Trust,
            };
            let policy = parse(&file, kind)?;
            println!(
                "{}: valid ({} statement(s))",
                file.display(),
                policy.statement_count()
            );
            Ok(())
        }
        PolicyCommand::Simulate(s) => simulate(&s),
    }
}

fn simulate(s: &SimulateArgs) -> Result<(), Failure> {
    let identity = s
        .policies
        .iter()
        .map(|p| parse(p, PolicyKind::Identity).map(std::sync::Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let resource_policy = s
        .resource_policy
        .as_ref()
        .map(|p| parse(p, PolicyKind::Resource))
        .transpose()?;
    let mut context: Vec<(String, Vec<String>)> = Vec::new();
    for entry in &s.context {
        let (k, v) = entry.split_once('=').ok_or_else(|| {
            crate::usage(
                "policy",
                format!("--context takes KEY=VALUE, got {entry:?}"),
            )
        })?;
        match context
            .iter_mut()
            .find(|(ck, _)| ck.eq_ignore_ascii_case(k))
        {
            Some((_, values)) => values.push(v.to_string()),
            None => context.push((k.to_string(), vec![v.to_string()])),
        }
    }
    let resources = if s.resources.is_empty() {
        vec!["*".to_string()]
    } else {
        s.resources.clone()
    };
    let mut rows = Vec::new();
    for action in &s.actions {
        for resource in &resources {
            let resource_account = resource
                .split(':')
                .nth(4)
                .filter(|a| !a.is_empty())
                .unwrap_or("000000000000");
            let principal = s
                .principal
                .clone()
                .unwrap_or_else(|| format!("arn:aws:iam::{resource_account}:user/simulated"));
            let account = principal
                .split(':')
                .nth(4)
                .unwrap_or(resource_account)
                .to_string();
            let mut ctx = RequestContext::new(
                principal.as_str(),
                account.as_str(),
                action.as_str(),
                resource.as_str(),
                resource_account,
            );
            ctx.set_key("aws:PrincipalArn", [principal.as_str()]);
            ctx.set_key("aws:PrincipalAccount", [account.as_str()]);
            for (k, v) in &context {
                ctx.set_key(k, v.iter().cloned());
            }
            let input = EvaluationInput {
                request: &ctx,
                identity_policies: &identity,
                resource_policy: resource_policy.as_ref(),
                session_policies: None,
            };
            let evaluation = evaluate(&input);
            let decision = evaluation.decision.simulator_name();
            let statements: Vec<String> = evaluation
                .matched
                .iter()
                .map(|m| {
                    let file = match m.source {
                        PolicySource::Identity(i) => s
                            .policies
                            .get(i)
                            .map_or_else(String::new, |p| p.display().to_string()),
                        PolicySource::Resource => s
                            .resource_policy
                            .as_ref()
                            .map_or_else(String::new, |p| p.display().to_string()),
                        PolicySource::Session(_) => String::new(),
                    };
                    let which = m.sid.map_or_else(
                        || format!("statement {}", m.index + 1),
                        |sid| format!("statement {sid}"),
                    );
                    format!("{which} in {file} ({:?})", m.effect)
                })
                .collect();
            rows.push((action.clone(), resource.clone(), decision, statements));
        }
    }
    if s.output == Output::Json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(a, r, d, st)| serde_json::json!({"action": a, "resource": r, "decision": d, "statements": st}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json).map_err(anyhow::Error::from)?
        );
    } else {
        for (a, r, d, st) in &rows {
            let why = if st.is_empty() {
                "no statement matched".to_string()
            } else {
                st.join("; ")
            };
            println!("{d:<13} {a}  {r}\n              {why}");
        }
    }
    Ok(())
}
