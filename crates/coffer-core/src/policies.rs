//! Policy documents as the service accepts them. Full parsing and evaluation belong to the
//! policy engine; until it is wired in, a document must at least be a JSON object with a
//! `Statement`, so that nothing is stored that the engine would later refuse to read.

use crate::CoreError;

fn malformed(message: &str) -> CoreError {
    CoreError::MalformedPolicy(message.to_string())
}

/// Checks an identity-based policy document.
pub(crate) fn validate_identity_policy(document: &str) -> Result<(), CoreError> {
    let value: serde_json::Value =
        serde_json::from_str(document).map_err(|_| malformed("Syntax errors in policy."))?;
    let object = value
        .as_object()
        .ok_or_else(|| malformed("Syntax errors in policy."))?;
    if !object.contains_key("Statement") {
        return Err(malformed("Missing required field Statement"));
    }
    Ok(())
}
