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
    #[arg(
        long = "policy",
        value_name = "FILE",
        required_unless_present = "data_dir"
    )]
    policies: Vec<PathBuf>,
    /// Simulate the stored policies of `--principal` (a user with its groups', a group or a
    /// role) from this data directory. The server must be stopped (it holds the database);
    /// against a running server use `aws iam simulate-principal-policy`.
    #[arg(long, value_name = "DIR", requires = "principal")]
    data_dir: Option<PathBuf>,
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

struct Row {
    action: String,
    resource: String,
    decision: &'static str,
    statements: Vec<String>,
}

fn parse_context(entries: &[String]) -> Result<Vec<(String, Vec<String>)>, Failure> {
    let mut context: Vec<(String, Vec<String>)> = Vec::new();
    for entry in entries {
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
    Ok(context)
}

/// The stored principal's policies (and any `--policy` files), through the server's simulator.
fn stored_rows(
    s: &SimulateArgs,
    dir: &std::path::Path,
    context: Vec<(String, Vec<String>)>,
) -> Result<Vec<Row>, Failure> {
    let principal = s.principal.clone().unwrap_or_default();
    let account = principal
        .split(':')
        .nth(4)
        .filter(|a| a.len() == 12)
        .ok_or_else(|| {
            crate::usage(
                "policy",
                format!("--principal must be a user, group or role ARN, got {principal:?}"),
            )
        })?
        .to_string();
    let extra = s
        .policies
        .iter()
        .map(read)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let resource_policy = s.resource_policy.as_ref().map(read).transpose()?;
    let coffer =
        coffer_core::Coffer::open(dir, std::sync::Arc::new(coffer_core::clock::SystemClock))
            .map_err(|e| Failure::Failed(anyhow::anyhow!("{e}")))?;
    // The simulation runs as the account's root user, who may simulate anything in it.
    let caller = coffer_core::Caller {
        principal_arn: format!("arn:aws:iam::{account}:root"),
        account_id: account,
        principal_type: coffer_core::PrincipalType::Root,
        access_key_id: "coffer-policy-simulate".into(),
        region: "us-east-1".into(),
        source_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        secure_transport: false,
        session: None,
    };
    let simulation = coffer_core::Simulation {
        source: coffer_core::SimulationSource::Principal(principal),
        policies: extra,
        actions: s.actions.clone(),
        resources: s.resources.clone(),
        resource_policy,
        context,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    let results = runtime
        .block_on(coffer.simulate(&caller, simulation))
        .map_err(|e| Failure::Failed(anyhow::anyhow!("{e}")))?;
    Ok(results
        .into_iter()
        .map(|r| Row {
            statements: r
                .matched
                .iter()
                .map(|(id, kind)| format!("{id} ({kind})"))
                .collect(),
            action: r.action,
            resource: r.resource,
            decision: r.decision,
        })
        .collect())
}

fn simulate(s: &SimulateArgs) -> Result<(), Failure> {
    let context = parse_context(&s.context)?;
    let rows = match &s.data_dir {
        Some(dir) => stored_rows(s, dir, context)?,
        None => file_rows(s, &context)?,
    };
    print_rows(&rows, s.output)
}

fn print_rows(rows: &[Row], output: Output) -> Result<(), Failure> {
    if output == Output::Json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!({"action": r.action, "resource": r.resource, "decision": r.decision, "statements": r.statements}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json).map_err(anyhow::Error::from)?
        );
    } else {
        for r in rows {
            let why = if r.statements.is_empty() {
                "no statement matched".to_string()
            } else {
                r.statements.join("; ")
            };
            println!(
                "{:<13} {}  {}\n              {why}",
                r.decision, r.action, r.resource
            );
        }
    }
    Ok(())
}

fn file_rows(s: &SimulateArgs, context: &[(String, Vec<String>)]) -> Result<Vec<Row>, Failure> {
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
            for (k, v) in context {
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
            rows.push(Row {
                action: action.clone(),
                resource: resource.clone(),
                decision,
                statements,
            });
        }
    }
    Ok(rows)
}
