//! Policy documents as the service accepts them. Full parsing and evaluation belong to the
//! policy engine; until it is wired in, a document must at least be a JSON object with a
//! `Statement`, so that nothing is stored that the engine would later refuse to read.

use crate::CoreError;

/// Where a document is used; decides whether `Principal` is required or prohibited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Identity,
    Trust,
}

fn malformed(message: &str) -> CoreError {
    CoreError::MalformedPolicy(message.to_string())
}

/// Checks a policy document for its use.
pub(crate) fn validate(document: &str, kind: Kind) -> Result<(), CoreError> {
    let value: serde_json::Value =
        serde_json::from_str(document).map_err(|_| malformed("Syntax errors in policy."))?;
    let object = value
        .as_object()
        .ok_or_else(|| malformed("Syntax errors in policy."))?;
    let Some(statement) = object.get("Statement") else {
        return Err(malformed("Missing required field Statement"));
    };
    let statements: Vec<&serde_json::Value> = match statement {
        serde_json::Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for s in statements {
        let has_principal = s.get("Principal").is_some() || s.get("NotPrincipal").is_some();
        match kind {
            Kind::Identity if has_principal => {
                return Err(malformed("Policy document should not specify a principal."));
            }
            Kind::Trust if !has_principal => {
                return Err(malformed("Missing required field Principal"));
            }
            _ => {}
        }
    }
    Ok(())
}
