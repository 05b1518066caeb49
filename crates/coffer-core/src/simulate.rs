//! The IAM policy simulator (`SimulatePrincipalPolicy`, `SimulateCustomPolicy`, and
//! `coffer policy simulate`): the decision the policy engine would make for each action and
//! resource, with the statements that made it. It decides nothing for real requests and
//! changes nothing.

use std::sync::Arc;

use coffer_policy::{EvaluationInput, Policy, PolicySource, RequestContext, evaluate};
use coffer_store::{PrincipalKind, Store};

use crate::policies::{self, Kind};
use crate::{Caller, Coffer, CoreError};

/// Whose policies to simulate.
#[derive(Debug)]
pub enum SimulationSource {
    /// The policies of a user (with its groups'), group or role, by ARN.
    Principal(String),
    /// Only the given identity policies.
    Custom,
}

/// One simulation request.
#[derive(Debug)]
pub struct Simulation {
    pub source: SimulationSource,
    /// Extra identity policies (`PolicyInputList`).
    pub policies: Vec<String>,
    pub actions: Vec<String>,
    /// Resource ARNs; `*` when empty.
    pub resources: Vec<String>,
    pub resource_policy: Option<String>,
    /// `ContextEntries`: condition keys and their values.
    pub context: Vec<(String, Vec<String>)>,
}

/// A decision for one action on one resource.
#[derive(Debug, PartialEq, Eq)]
pub struct SimulationResult {
    pub action: String,
    pub resource: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`, as IAM writes them.
    pub decision: &'static str,
    /// `(source policy id, source policy type)` of each statement that matched.
    pub matched: Vec<(String, &'static str)>,
}

fn parse_principal_arn(arn: &str) -> Option<(String, PrincipalKind, String)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let (kind, path_name) = resource.split_once('/')?;
    let kind = match kind {
        "user" => PrincipalKind::User,
        "group" => PrincipalKind::Group,
        "role" => PrincipalKind::Role,
        _ => return None,
    };
    Some((
        account.to_string(),
        kind,
        path_name.rsplit('/').next()?.to_string(),
    ))
}

impl<S: Store> Coffer<S> {
    pub async fn simulate(
        &self,
        caller: &Caller,
        sim: Simulation,
    ) -> Result<Vec<SimulationResult>, CoreError> {
        if sim.actions.is_empty() {
            return Err(CoreError::Validation(
                "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null".into(),
            ));
        }
        let mut sources: Vec<(String, String)> = Vec::new();
        let mut principal_arn = format!("arn:aws:iam::{}:root", caller.account_id);
        let mut user_name = None;
        match &sim.source {
            SimulationSource::Principal(arn) => {
                self.authorize(caller, "iam:SimulatePrincipalPolicy", arn)
                    .await?;
                let (account, kind, name) = parse_principal_arn(arn)
                    .filter(|(a, _, _)| *a == caller.account_id)
                    .ok_or_else(|| CoreError::InvalidParameter(format!("Invalid ARN: could not be parsed as a user, group or role of this account: {arn}")))?;
                let principal = self
                    .store
                    .get_principal(&account, kind, &name)
                    .await?
                    .ok_or_else(|| {
                        CoreError::NotFound(format!(
                            "The {} with name {name} cannot be found.",
                            kind.as_str()
                        ))
                    })?;
                sources = self
                    .identity_documents(&account, kind, &principal.name)
                    .await?;
                principal_arn = principal.arn();
                if kind == PrincipalKind::User {
                    user_name = Some(principal.name);
                }
            }
            SimulationSource::Custom => {
                self.authorize(caller, "iam:SimulateCustomPolicy", "*")
                    .await?
            }
        }
        for (i, doc) in sim.policies.iter().enumerate() {
            sources.push((format!("PolicyInputList.{}", i + 1), doc.clone()));
        }
        let mut identity: Vec<Arc<Policy>> = Vec::with_capacity(sources.len());
        for (_, doc) in &sources {
            identity.push(Arc::new(policies::parse(doc, Kind::Identity)?));
        }
        let resource_policy = match &sim.resource_policy {
            Some(text) => Some(policies::parse(text, Kind::Resource)?),
            None => None,
        };
        let resources = if sim.resources.is_empty() {
            vec!["*".to_string()]
        } else {
            sim.resources.clone()
        };
        let mut out = Vec::new();
        for action in &sim.actions {
            for resource in &resources {
                let resource_account = resource
                    .split(':')
                    .nth(4)
                    .filter(|a| !a.is_empty())
                    .unwrap_or(&caller.account_id);
                let mut ctx = RequestContext::new(
                    principal_arn.as_str(),
                    caller.account_id.as_str(),
                    action.as_str(),
                    resource.as_str(),
                    resource_account,
                );
                ctx.set_key("aws:PrincipalArn", [principal_arn.as_str()]);
                ctx.set_key("aws:PrincipalAccount", [caller.account_id.as_str()]);
                if let Some(u) = &user_name {
                    ctx.set_key("aws:username", [u.as_str()]);
                }
                for (k, v) in &sim.context {
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
                let matched = evaluation
                    .matched
                    .iter()
                    .map(|m| match m.source {
                        PolicySource::Identity(i) => {
                            let id = sources
                                .get(i)
                                .map_or_else(|| format!("policy {}", i + 1), |(id, _)| id.clone());
                            // IAM's SourcePolicyType values.
                            let kind = if id.starts_with("arn:aws:iam::aws:") {
                                "aws-managed"
                            } else if id.starts_with("arn:") {
                                "user-managed"
                            } else if id.starts_with("PolicyInputList") {
                                "none"
                            } else {
                                "user"
                            };
                            (id, kind)
                        }
                        PolicySource::Resource => ("ResourcePolicy".to_string(), "resource"),
                        PolicySource::Session(i) => (format!("session {}", i + 1), "none"),
                    })
                    .collect();
                out.push(SimulationResult {
                    action: action.clone(),
                    resource: resource.clone(),
                    decision,
                    matched,
                });
            }
        }
        Ok(out)
    }
}
