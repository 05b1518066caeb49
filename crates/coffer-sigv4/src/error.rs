//! Why a request's SigV4 authentication was refused, and how AWS words it.
//!
//! Each variant knows its AWS error code ([`SigV4Error::aws_code`]) and AWS's exact message
//! ([`SigV4Error::message`]). The protocol crate puts those on the wire unchanged. The wording is
//! copied from responses that real AWS JSON services (DynamoDB, SSM, Secrets Manager, ECS, STS,
//! API Gateway) gave, as quoted in public bug reports; each message cites where it was observed.
//!
//! Messages echo what the client sent (its Authorization header, its canonical request) as AWS
//! does; they never contain a secret access key or a derived key.

/// A parameter of the `Authorization` header that AWS requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationParam {
    /// `Credential=AKID/date/region/service/aws4_request`.
    Credential,
    /// `Signature=<64 hex digits>`.
    Signature,
    /// `SignedHeaders=host;x-amz-date`.
    SignedHeaders,
}

impl AuthorizationParam {
    /// The parameter's name as it appears in the header.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Credential => "Credential",
            Self::Signature => "Signature",
            Self::SignedHeaders => "SignedHeaders",
        }
    }
}

/// One way the credential scope can disagree with the request or the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeProblem {
    /// The scope names a region this endpoint does not serve.
    Region {
        /// The region in the credential scope.
        claimed: String,
    },
    /// The scope names another service (a request signed for `kms` sent to Secrets Manager).
    Service {
        /// The service this endpoint is.
        expected: String,
    },
    /// The scope does not end in `aws4_request`.
    Terminator {
        /// The terminator the client sent.
        claimed: String,
    },
    /// The scope's date is not the date part of the request timestamp.
    Date {
        /// `YYYYMMDD` from the credential scope.
        scope_date: String,
        /// `YYYYMMDD` from `X-Amz-Date` (or `Date`).
        request_date: String,
        /// The full request timestamp, `YYYYMMDDTHHMMSSZ`.
        amz_date: String,
    },
}

impl ScopeProblem {
    fn message(&self) -> String {
        // Each part ends in ". " and parts are concatenated; the trailing space is AWS's own, e.g.
        // `{"__type":"InvalidSignatureException","message":"Credential should be scoped to a valid region. "}`
        // (an HTTP 400 body quoted verbatim in a public bug write-up). The concatenated form with all four
        // problems is DynamoDB's, quoted in dynalite's `index.js`:
        // "Credential should be scoped to a valid region, not 'c'. Credential should be scoped to correct
        // service: 'dynamodb'. Credential should be scoped with a valid terminator: 'aws4_request', not 'e'.
        // Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: 'b' !=
        // '20130609', from '20130609T095204Z'."
        match self {
            Self::Region { claimed } => {
                format!("Credential should be scoped to a valid region, not '{claimed}'. ")
            }
            Self::Service { expected } => {
                format!("Credential should be scoped to correct service: '{expected}'. ")
            }
            Self::Terminator { claimed } => {
                format!(
                    "Credential should be scoped with a valid terminator: 'aws4_request', not '{claimed}'. "
                )
            }
            Self::Date {
                scope_date,
                request_date,
                amz_date,
            } => format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
                 '{scope_date}' != '{request_date}', from '{amz_date}'. "
            ),
        }
    }
}

/// What was wrong with a presigned request's `X-Amz-Expires`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiresProblem {
    /// Not a decimal integer.
    NotANumber,
    /// Below zero.
    Negative,
    /// Above 604800 seconds (seven days), the longest a signing key is valid.
    TooLarge,
}

/// Why SigV4 authentication failed. See the module docs for how the messages were sourced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor an `X-Amz-Algorithm` query parameter: the request
    /// carries no authentication at all (typically a client with no credentials configured).
    #[error("{}", self.message())]
    MissingAuthenticationToken,

    /// Both an `Authorization` header and a presigned query; AWS refuses to pick one.
    #[error("{}", self.message())]
    AmbiguousAuthentication,

    /// The `Authorization` header lacks `Credential`, `Signature` or `SignedHeaders`, or the
    /// request has neither `X-Amz-Date` nor `Date`. Also the answer to a non-SigV4 header such as
    /// SigV2's `AWS AKID:sig` or a bearer token.
    #[error("{}", self.message())]
    IncompleteAuthorization {
        /// The required parameters that are absent or empty, in AWS's order.
        missing: Vec<AuthorizationParam>,
        /// Neither `X-Amz-Date` nor `Date` was sent.
        missing_date: bool,
        /// The header as received (non-UTF-8 bytes replaced), echoed in the message.
        authorization: String,
    },

    /// A comma- or space-separated element of the `Authorization` header has no `=`; usually a
    /// stray space inside the credential (`Credential= AKID/...`).
    #[error("{}", self.message())]
    MalformedAuthorizationPair {
        /// The element without `=`.
        pair: String,
        /// The whole header as received.
        authorization: String,
    },

    /// A presigned request lacks some of its `X-Amz-*` query parameters.
    #[error("{}", self.message())]
    IncompleteQuery {
        /// The missing parameter names, in AWS's order.
        missing: Vec<&'static str>,
    },

    /// The algorithm is not `AWS4-HMAC-SHA256` (e.g. SigV4a's `AWS4-ECDSA-P256-SHA256`).
    #[error("{}", self.message())]
    UnsupportedAlgorithm {
        /// The algorithm the client named.
        algorithm: String,
    },

    /// `X-Amz-Date` is not `YYYYMMDDTHHMMSSZ`, or `Date` is not an RFC 1123 date.
    #[error("{}", self.message())]
    MalformedDate {
        /// The value received.
        value: String,
    },

    /// The credential is not `keyid/date/region/service/terminator`.
    #[error("{}", self.message())]
    MalformedCredential {
        /// The credential as received.
        credential: String,
    },

    /// `host` (or `:authority`) is not among the signed headers, so the signature would not bind
    /// the request to this endpoint.
    #[error("{}", self.message())]
    HostNotSigned,

    /// A presigned request's `X-Amz-Expires` is unusable.
    #[error("{}", self.message())]
    InvalidExpires(ExpiresProblem),

    /// The credential scope disagrees with the request date, this service or this region.
    #[error("{}", self.message())]
    ScopeMismatch(Vec<ScopeProblem>),

    /// The request was signed too long ago: the client's clock is behind, or the request is a
    /// replay.
    #[error("{}", self.message())]
    SignatureExpired {
        /// The request timestamp, `YYYYMMDDTHHMMSSZ`.
        signed_at: String,
        /// The earliest timestamp accepted now.
        earliest: String,
        /// The server's now.
        now: String,
        /// The accepted age, as AWS spells it: `5 min` (or `900 sec` for a presigned URL).
        window: String,
    },

    /// The request is dated more than five minutes in the future: the client's clock is ahead.
    #[error("{}", self.message())]
    SignatureNotYetCurrent {
        /// The request timestamp.
        signed_at: String,
        /// The latest timestamp accepted now.
        latest: String,
        /// The server's now.
        now: String,
    },

    /// `x-amz-content-sha256` is not the SHA-256 of the body received (or is `UNSIGNED-PAYLOAD`
    /// on a request that is not presigned), so the signature does not cover this body.
    #[error("{}", self.message())]
    ContentSha256Mismatch,

    /// The signature is not the one computed with the key for this access key: wrong secret, or
    /// the request was changed after signing (or canonicalised differently by the client).
    #[error("{}", self.message())]
    SignatureDoesNotMatch {
        /// The canonical request the server computed (non-UTF-8 bytes replaced), which AWS echoes
        /// so the client can compare it with its own.
        canonical_request: String,
        /// The string to sign the server computed.
        string_to_sign: String,
    },

    /// Client side only: the request cannot be signed (a credential or timestamp that cannot be
    /// written into a header). Never produced by verification.
    #[error("{}", self.message())]
    Unsignable(&'static str),
}

impl SigV4Error {
    /// The AWS error code (`__type` in JSON protocols, `Code` in query/XML).
    #[must_use]
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteAuthorization { .. }
            | Self::MalformedAuthorizationPair { .. }
            | Self::IncompleteQuery { .. }
            | Self::UnsupportedAlgorithm { .. }
            | Self::MalformedDate { .. }
            | Self::MalformedCredential { .. }
            | Self::InvalidExpires(_) => "IncompleteSignatureException",
            Self::AmbiguousAuthentication
            | Self::HostNotSigned
            | Self::ScopeMismatch(_)
            | Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::ContentSha256Mismatch
            | Self::SignatureDoesNotMatch { .. } => "InvalidSignatureException",
            Self::Unsignable(_) => "InternalFailure",
        }
    }

    /// The HTTP status AWS JSON services answer with: 400 for all of these (DynamoDB per dynalite's
    /// recorded responses; Secrets Manager's `MissingAuthenticationTokenException` is a 400 in
    /// aws/aws-sdk-cpp#2407; ECS's `InvalidSignatureException` a 400 in
    /// teralytics/prometheus-ecs-discovery#7). REST services such as API Gateway use 403 instead.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Unsignable(_) => 500,
            _ => 400,
        }
    }

    /// AWS's exact message for this error.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            // Secrets Manager: "Exception name: MissingAuthenticationTokenException / Error message:
            // Missing Authentication Token" (aws/aws-sdk-cpp#2407). DynamoDB says "Request is missing
            // Authentication Token" instead; we answer as Secrets Manager does.
            Self::MissingAuthenticationToken => "Missing Authentication Token".to_owned(),
            // DynamoDB, recorded in dynalite's `index.js`.
            Self::AmbiguousAuthentication => {
                "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.".to_owned()
            }
            // "Authorization header requires 'Credential' parameter. Authorization header requires
            // 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.
            // Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.
            // Authorization=..." (SSM in aws/aws-sdk-js#4285, SES in brendanhay/amazonka#316,
            // API Gateway in aws/chalice#828).
            Self::IncompleteAuthorization { missing, missing_date, authorization } => {
                let mut message = String::new();
                for param in missing {
                    message.push_str(&format!("Authorization header requires '{}' parameter. ", param.name()));
                }
                if *missing_date {
                    message.push_str("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ");
                }
                message.push_str("Authorization=");
                message.push_str(authorization);
                message
            }
            // Cloud9 in iann0036/cloud9-sync#10, DynamoDB in awslabs/fhir-works-on-aws-deployment#379.
            Self::MalformedAuthorizationPair { pair, authorization } => {
                format!("'{pair}' not a valid key=value pair (missing equal-sign) in Authorization header: '{authorization}'.")
            }
            // DynamoDB, recorded in dynalite's `index.js`.
            Self::IncompleteQuery { missing } => {
                let mut message = String::new();
                for param in missing {
                    message.push_str(&format!("AWS query-string parameters must include '{param}'. "));
                }
                message.push_str("Re-examine the query-string parameters.");
                message
            }
            // DynamoDB, recorded in dynalite's `index.js` (the trailing space is AWS's).
            Self::UnsupportedAlgorithm { algorithm } => {
                format!("Unsupported AWS 'algorithm': '{algorithm}' (only AWS4-HMAC-SHA256 for now). ")
            }
            // DynamoDB, recorded in dynalite's `index.js`.
            Self::MalformedDate { value } => {
                format!("Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601")
            }
            // DynamoDB (dynalite) and CloudWatch Logs (fluent-bit's `flb_aws_error` test fixture).
            Self::MalformedCredential { credential } => format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
            ),
            // Observed as a 403 InvalidSignatureException from an AWS endpoint when a client
            // omitted Host from the signed headers; older DynamoDB said "'Host' must be a ...".
            Self::HostNotSigned => "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
            // S3's wording for the same checks (AuthorizationQueryParametersError); the JSON
            // services' wording is not documented.
            Self::InvalidExpires(problem) => match problem {
                ExpiresProblem::NotANumber => "X-Amz-Expires should be a number".to_owned(),
                ExpiresProblem::Negative => "X-Amz-Expires must be non-negative".to_owned(),
                ExpiresProblem::TooLarge => "X-Amz-Expires must be less than a week (in seconds) that is 604800".to_owned(),
            },
            Self::ScopeMismatch(problems) => problems.iter().map(ScopeProblem::message).collect(),
            // Secrets Manager: "Signature expired: 20251105T220858Z is now earlier than
            // 20251106T132108Z (20251106T132608Z - 5 min.)" (boto/botocore#3587).
            Self::SignatureExpired { signed_at, earliest, now, window } => {
                format!("Signature expired: {signed_at} is now earlier than {earliest} ({now} - {window}.)")
            }
            // "Signature not yet current: 20181120T211543Z is still later than 20181120T211529Z
            // (20181120T211029Z + 5 min.)" (serverless/enterprise#11).
            Self::SignatureNotYetCurrent { signed_at, latest, now } => {
                format!("Signature not yet current: {signed_at} is still later than {latest} ({now} + 5 min.)")
            }
            // S3's wording (XAmzContentSHA256Mismatch); JSON services document none.
            Self::ContentSha256Mismatch => "The provided 'x-amz-content-sha256' header does not match what was computed.".to_owned(),
            // Secrets Manager, with the canonical request and string to sign appended exactly so
            // (aws/aws-sdk-net#3978; same layout from Cognito Sync in aws/aws-sdk-cpp#17, which
            // shows the closing "'\n").
            Self::SignatureDoesNotMatch { canonical_request, string_to_sign } => format!(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
                 Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String \
                 for this request should have been\n'{canonical_request}'\n\nThe String-to-Sign should have been\n\
                 '{string_to_sign}'\n"
            ),
            Self::Unsignable(reason) => format!("The request cannot be signed: {reason}"),
        }
    }
}
