//! The one error type of the crate: AWS's message text and the AWS error code it is sent with.

use std::fmt;

/// Which AWS error code a [`ScheduleError`] is answered with.
///
/// Secrets Manager answers a member that breaks a constraint of the service model (a range,
/// a length, a pattern in `secretsmanager/2017-10-17/service-2.json`) with
/// `ValidationException` and the generic "1 validation error detected: …" text, and a rule
/// of the service itself (both `AutomaticallyAfterDays` and `ScheduleExpression`, a schedule
/// that rotates too often, a window that runs into the next one) with
/// `InvalidParameterException` (`RotateSecret` lists it in its errors; the terraform
/// provider's issues #30540 and #33329 quote AWS answering "InvalidParameterException: You
/// cannot specify both rotation frequency and schedule expression together.").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `InvalidParameterException`: a rule of Secrets Manager rotation schedules.
    InvalidParameter,
    /// `ValidationException`: a constraint of the service model.
    Validation,
}

impl ErrorCode {
    /// The AWS error code (`__type`) as sent on the wire.
    pub fn aws_code(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameter => "InvalidParameterException",
            ErrorCode::Validation => "ValidationException",
        }
    }
}

/// Rotation rules that Secrets Manager would refuse: the code to answer with and the message.
///
/// Messages never hold anything but the rules themselves (no secret names or values).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScheduleError {
    code: ErrorCode,
    message: String,
}

impl ScheduleError {
    pub(crate) fn invalid_parameter(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidParameter,
            message: message.into(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Validation,
            message: message.into(),
        }
    }

    /// The AWS error code to answer with.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message, as AWS words it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScheduleError {}
