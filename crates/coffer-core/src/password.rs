//! `GetRandomPassword`: passwords from the CSPRNG, with AWS's character classes and options.

use coffer_crypto::{SecretBytes, random_below};

use crate::CoreError;

/// The punctuation AWS uses (the API reference lists exactly these 32 characters).
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Options of `GetRandomPassword`; `None` means AWS's default.
#[derive(Debug, Default, Clone)]
pub struct PasswordSpec {
    pub length: Option<i64>,
    pub exclude_characters: Option<String>,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub exclude_uppercase: bool,
    pub exclude_lowercase: bool,
    pub include_space: bool,
    /// Defaults to true: at least one character of every included class.
    pub require_each_included_type: Option<bool>,
}

/// Generates a password per `spec`. The result is zeroized when dropped.
pub fn generate(spec: &PasswordSpec) -> Result<SecretBytes, CoreError> {
    let length = spec.length.unwrap_or(32);
    if length < 1 {
        return Err(CoreError::Validation(format!(
            "1 validation error detected: Value '{length}' at 'passwordLength' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )));
    }
    if length > 4096 {
        return Err(CoreError::Validation(format!(
            "1 validation error detected: Value '{length}' at 'passwordLength' failed to satisfy constraint: Member must have value less than or equal to 4096"
        )));
    }
    let length = usize::try_from(length).map_err(|_| CoreError::Internal("length".into()))?;
    let excluded = spec.exclude_characters.as_deref().unwrap_or("");
    let keep =
        |set: &str| -> Vec<char> { set.chars().filter(|c| !excluded.contains(*c)).collect() };

    let mut classes: Vec<Vec<char>> = Vec::new();
    if !spec.exclude_lowercase {
        classes.push(keep("abcdefghijklmnopqrstuvwxyz"));
    }
    if !spec.exclude_uppercase {
        classes.push(keep("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
    }
    if !spec.exclude_numbers {
        classes.push(keep("0123456789"));
    }
    if !spec.exclude_punctuation {
        classes.push(keep(PUNCTUATION));
    }
    classes.retain(|c| !c.is_empty());
    let mut pool: Vec<char> = classes.iter().flatten().copied().collect();
    if spec.include_space && !excluded.contains(' ') {
        pool.push(' ');
    }
    if pool.is_empty() {
        return Err(CoreError::InvalidParameter(
            "The password can't be generated: every character type is excluded.".into(),
        ));
    }
    let require_each = spec.require_each_included_type.unwrap_or(true);
    if require_each && length < classes.len() {
        return Err(CoreError::InvalidParameter(
            "Password length is too short based on the required types.".into(),
        ));
    }

    let pick = |set: &[char]| -> Result<char, CoreError> {
        let n = u32::try_from(set.len()).map_err(|_| CoreError::Internal("set".into()))?;
        Ok(set[random_below(n)? as usize])
    };
    let mut chars: Vec<char> = Vec::with_capacity(length);
    if require_each {
        for class in &classes {
            chars.push(pick(class)?);
        }
    }
    while chars.len() < length {
        chars.push(pick(&pool)?);
    }
    // Fisher–Yates, so the required characters are not always at the front.
    for i in (1..chars.len()).rev() {
        let bound = u32::try_from(i + 1).map_err(|_| CoreError::Internal("len".into()))?;
        let j = random_below(bound)? as usize;
        chars.swap(i, j);
    }
    let password: String = chars.iter().collect();
    chars.iter_mut().for_each(|c| *c = '\0');
    Ok(SecretBytes::from(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen_str(spec: &PasswordSpec) -> String {
        generate(spec).unwrap().as_str().unwrap().to_string()
    }

    #[test]
    fn default_is_32_chars_with_every_class() {
        for _ in 0..50 {
            let p = gen_str(&PasswordSpec::default());
            assert_eq!(p.chars().count(), 32);
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| PUNCTUATION.contains(c)));
            assert!(!p.contains(' '));
        }
    }

    #[test]
    fn exclusions_are_honoured() {
        let spec = PasswordSpec {
            length: Some(200),
            exclude_characters: Some("abcXYZ012".into()),
            exclude_punctuation: true,
            ..Default::default()
        };
        let p = gen_str(&spec);
        assert!(
            !p.chars()
                .any(|c| "abcXYZ012".contains(c) || PUNCTUATION.contains(c))
        );
        let digits_only = PasswordSpec {
            length: Some(64),
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_punctuation: true,
            ..Default::default()
        };
        assert!(gen_str(&digits_only).chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn space_only_when_asked() {
        let spec = PasswordSpec {
            length: Some(4096),
            include_space: true,
            ..Default::default()
        };
        assert!(gen_str(&spec).contains(' '));
    }

    #[test]
    fn limits_and_impossible_specs() {
        let too_long = PasswordSpec {
            length: Some(4097),
            ..Default::default()
        };
        assert!(matches!(generate(&too_long), Err(CoreError::Validation(_))));
        let zero = PasswordSpec {
            length: Some(0),
            ..Default::default()
        };
        assert!(matches!(generate(&zero), Err(CoreError::Validation(_))));
        let short = PasswordSpec {
            length: Some(3),
            ..Default::default()
        };
        assert!(matches!(
            generate(&short),
            Err(CoreError::InvalidParameter(_))
        ));
        let short_ok = PasswordSpec {
            length: Some(3),
            require_each_included_type: Some(false),
            ..Default::default()
        };
        assert_eq!(gen_str(&short_ok).len(), 3);
        let nothing = PasswordSpec {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            ..Default::default()
        };
        assert!(matches!(
            generate(&nothing),
            Err(CoreError::InvalidParameter(_))
        ));
    }
}
