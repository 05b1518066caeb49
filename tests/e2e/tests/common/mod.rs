//! Shared by the integration tests that speak KMS: an `aws-sdk-kms` client for a spawned
//! server (a dev-dependency, so it cannot live in the harness library).

use std::time::Duration;

use aws_sdk_kms as kms;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use coffer_e2e::Server;

/// A KMS client for the server, configured like the harness's Secrets Manager client: static
/// credentials, fixed endpoint and region, nothing from the environment.
pub fn kms_client(server: &Server) -> kms::Client {
    let config = kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(server.region.clone()))
        .endpoint_url(&server.endpoint)
        .credentials_provider(Credentials::new(
            &server.credentials.access_key_id,
            &server.credentials.secret_access_key,
            None,
            None,
            "coffer-e2e",
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .retry_config(RetryConfig::disabled())
        .build();
    kms::Client::from_conf(config)
}
