//! Virtual MFA devices (IAM's CreateVirtualMFADevice, EnableMFADevice, ResyncMFADevice,
//! DeactivateMFADevice, DeleteVirtualMFADevice, ListMFADevices, ListVirtualMFADevices and the
//! MFA device tag operations) and the check of a one-time code that STS makes
//! ([`Coffer::verify_mfa_code`]).
//!
//! A device's seed is 40 random bytes, shown once (as the 64 Base32 characters AWS gives, and
//! as a QR code of its `otpauth://` URI) and sealed under the account key before it is stored;
//! it is opened only to compute codes. Codes are TOTP (RFC 6238: HMAC-SHA1, 30-second steps,
//! six digits; `coffer_crypto::otp`) on the injected clock. A code is accepted within one step
//! of now, shifted by the drift the last resync measured, and only once: its step must be later
//! than the last accepted one, and each acceptance advances that step with a compare-and-swap
//! on the device, so two requests with one code cannot both pass.
//!
//! This module must never log, return (outside CreateVirtualMFADevice) or store a seed in the
//! clear, nor read the system clock.

use coffer_crypto::otp;
use coffer_store::{MfaDeviceRecord, PrincipalKind, PrincipalRecord, Store, StoreError};

use crate::iam::{
    check_chars, merge_principal_tags, name_char, no_such, validate_iam_name, validate_path,
    validation,
};
use crate::{Caller, Coffer, CoreError, PrincipalType, SecretBytes};

/// Bytes of a new device's seed: AWS's seeds are 64 Base32 characters, i.e. 40 bytes.
const SEED_BYTES: usize = 40;
/// Steps either side of now (after the device's drift) in which a code is accepted.
pub const VERIFY_WINDOW_STEPS: i64 = 1;
/// Steps either side of now searched for the two consecutive codes of a resync (±10 minutes).
pub const RESYNC_WINDOW_STEPS: i64 = 20;
/// At most eight MFA devices per user (IAM quotas, "MFA devices in use per user").
pub const MAX_MFA_DEVICES_PER_USER: usize = 8;
/// Compare-and-swap attempts before a write gives up under contention.
const WRITE_ATTEMPTS: usize = 16;
/// The issuer authenticator apps show for a coffer device (AWS writes "Amazon Web Services").
const OTPAUTH_ISSUER: &str = "coffer";

/// STS's answer to a wrong or reused code, as `GetSessionToken` and `AssumeRole` return it
/// (quoted from real responses in lonelyplanet/aws-mfa#21, aws/aws-cli#2279 and
/// stelligent/cloudformation_templates `infrastructure/iam/README.md`; no trailing space).
pub const MFA_INVALID_CODE: &str =
    "MultiFactorAuthentication failed with invalid MFA one time pass code.";
/// STS's answer when the serial number is not an MFA device of the calling user (quoted, two
/// spaces and all, from aws/aws-cli#6325, broamski/aws-mfa#46 and the stelligent README).
pub const MFA_UNVALIDATED: &str = "MultiFactorAuthentication failed, unable to validate MFA code.  Please verify your MFA serial number is valid and associated with this user.";

/// A new virtual MFA device as `CreateVirtualMFADevice` returns it: the only time its seed
/// leaves coffer.
#[derive(Debug)]
pub struct NewVirtualMfaDevice {
    pub serial_number: String,
    /// The seed as 64 RFC 4648 Base32 characters (`Base32StringSeed`).
    pub base32_seed: SecretBytes,
    /// A PNG of the QR code of `otpauth://totp/coffer:NAME@ACCOUNT?secret=SEED&issuer=coffer`.
    pub qr_code_png: SecretBytes,
    pub tags: Vec<(String, String)>,
}

/// A virtual MFA device as `ListVirtualMFADevices` shows it (never with its seed).
#[derive(Debug, Clone)]
pub struct VirtualMfaDevice {
    pub serial_number: String,
    /// The user the device is enabled for.
    pub user: Option<PrincipalRecord>,
    pub enable_date_ms: Option<i64>,
    pub tags: Vec<(String, String)>,
}

/// A device enabled for a user, as `ListMFADevices` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaDevice {
    pub user_name: String,
    pub serial_number: String,
    pub enable_date_ms: i64,
}

/// Which devices `ListVirtualMFADevices` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentStatus {
    Assigned,
    Unassigned,
    Any,
}

impl AssignmentStatus {
    /// The model's enum (`assignmentStatusType`); AWS's validation error otherwise.
    pub fn parse(value: &str) -> Result<Self, CoreError> {
        match value {
            "Assigned" => Ok(Self::Assigned),
            "Unassigned" => Ok(Self::Unassigned),
            "Any" => Ok(Self::Any),
            other => Err(validation(
                "assignmentStatus",
                other,
                "Member must satisfy enum value set: [Assigned, Unassigned, Any]",
            )),
        }
    }
}

// ---- AWS's messages ----
//
// The ones IAM returns for virtual MFA devices. "MFADevice entity at the same path and name
// already exists." is quoted from real AWS (a CloudTrail record and the console's error, in
// public blog posts and tests); "Authentication code for device is not valid." from real AWS
// answers users quote. The others are those of ctyun's OOS IAM, which reproduces AWS's texts
// (its tests assert them verbatim alongside the two above); moto words some differently.

fn no_such_device(serial_number: &str) -> CoreError {
    CoreError::NotFound(format!(
        "VirtualMFADevice with serial number {serial_number} does not exist."
    ))
}

fn invalid_codes() -> CoreError {
    CoreError::InvalidAuthenticationCode("Authentication code for device is not valid.".into())
}

fn not_the_users_device() -> CoreError {
    CoreError::NotFound("MFA Device invalid for user.".into())
}

fn sts_invalid_code() -> CoreError {
    CoreError::AccessDenied(MFA_INVALID_CODE.into())
}

fn sts_unvalidated() -> CoreError {
    CoreError::AccessDenied(MFA_UNVALIDATED.into())
}

fn contended(serial_number: &str) -> CoreError {
    CoreError::Internal(format!(
        "MFA device {serial_number} kept changing under concurrent requests"
    ))
}

/// `serialNumberType`: 9–256 characters of `[\w+=/:,.@-]`.
fn validate_serial(serial_number: &str) -> Result<(), CoreError> {
    check_chars(
        "serialNumber",
        serial_number,
        (9, 256),
        |c| name_char(c) || "/:".contains(c),
        "[\\w+=/:,.@-]+",
    )
}

/// `authenticationCodeType`: exactly six decimal digits.
fn validate_code(member: &str, code: &str) -> Result<(), CoreError> {
    check_chars(member, code, (6, 6), |c| c.is_ascii_digit(), "[\\d]+")
}

/// The path and name (`/PATH/NAME`) of a virtual device of `account_id` from its serial
/// number (`arn:aws:iam::ACCOUNT:mfa/PATH/NAME`); `None` for anything else, including the
/// serial numbers of hardware devices, which coffer does not have.
fn device_path_and_name<'a>(account_id: &str, serial_number: &'a str) -> Option<&'a str> {
    let rest = serial_number.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    if account != account_id {
        return None;
    }
    resource.strip_prefix("mfa").filter(|p| p.starts_with('/'))
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn uri_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The TOTP step of `now_ms`, as the signed counter the store keeps.
fn current_step(now_ms: i64) -> i64 {
    now_ms.div_euclid(otp::TOTP_STEP_MILLIS)
}

/// Whether `code` is the device's code for `step`, compared in constant time.
fn code_at(seed: &SecretBytes, step: i64, code: &str) -> bool {
    u64::try_from(step).is_ok_and(|counter| otp::hotp_matches(seed.expose(), counter, code))
}

/// The first step `n` of `candidates` (later than `last`) whose codes are `code1` at `n` and
/// `code2` at `n + 1`; every candidate is computed, so the time taken does not tell which
/// matched.
fn consecutive_pair(
    seed: &SecretBytes,
    candidates: impl Iterator<Item = i64>,
    last: i64,
    code1: &str,
    code2: &str,
) -> Option<i64> {
    let mut found = None;
    for n in candidates {
        let first = code_at(seed, n, code1);
        let second = code_at(seed, n + 1, code2);
        if first && second && n > last && found.is_none() {
            found = Some(n);
        }
    }
    found
}

/// Candidate steps around `center`, nearest first (`center`, `center - 1`, `center + 1`, …).
fn nearest_first(center: i64, radius: i64) -> impl Iterator<Item = i64> {
    std::iter::once(center).chain((1..=radius).flat_map(move |d| [center - d, center + d]))
}

impl<S: Store> Coffer<S> {
    /// The device named by a serial number of the caller's account, if it exists.
    async fn device(
        &self,
        account_id: &str,
        serial_number: &str,
    ) -> Result<Option<MfaDeviceRecord>, CoreError> {
        match device_path_and_name(account_id, serial_number) {
            Some(key) => Ok(self.store.get_mfa_device(account_id, key).await?),
            None => Ok(None),
        }
    }

    /// Authorizes `action` on the device's ARN (the serial number as given when there is no
    /// such device, so a denied caller cannot probe) and returns the device.
    async fn authorized_device(
        &self,
        caller: &Caller,
        action: &str,
        serial_number: &str,
    ) -> Result<MfaDeviceRecord, CoreError> {
        validate_serial(serial_number)?;
        let device = self.device(&caller.account_id, serial_number).await?;
        let arn = device
            .as_ref()
            .map_or_else(|| serial_number.to_string(), MfaDeviceRecord::serial_number);
        self.authorize(caller, action, &arn).await?;
        device.ok_or_else(|| no_such_device(serial_number))
    }

    fn open_seed(
        &self,
        account_key: &coffer_crypto::SymmetricKey,
        device: &MfaDeviceRecord,
    ) -> Result<SecretBytes, CoreError> {
        self.keyring.open_mfa_seed(
            account_key,
            &device.account_id,
            &device.serial_number(),
            &device.sealed_seed,
        )
    }

    /// `CreateVirtualMFADevice`: a new device with a fresh seed, returned this once.
    pub async fn create_virtual_mfa_device(
        &self,
        caller: &Caller,
        name: &str,
        path: Option<&str>,
        tags: Vec<(String, String)>,
    ) -> Result<NewVirtualMfaDevice, CoreError> {
        // The model gives the name no maximum; AWS's is 128 (as ctyun's OOS IAM reproduces it).
        validate_iam_name("virtualMFADeviceName", name, 128)?;
        let path = path.unwrap_or("/");
        validate_path(path)?;
        let account_id = &caller.account_id;
        let serial_number = format!("arn:aws:iam::{account_id}:mfa{path}{name}");
        if serial_number.chars().count() > 256 {
            // Every other MFA operation takes the serial number, which may not be longer.
            return Err(validation(
                "serialNumber",
                &serial_number,
                "Member must have length less than or equal to 256",
            ));
        }
        self.authorize(caller, "iam:CreateVirtualMFADevice", &serial_number)
            .await?;
        let mut device_tags = Vec::new();
        merge_principal_tags(&mut device_tags, tags)?;
        let exists = || {
            CoreError::ResourceExists(
                "MFADevice entity at the same path and name already exists.".into(),
            )
        };
        let path_and_name = format!("{path}{name}");
        if self
            .store
            .get_mfa_device(account_id, &path_and_name)
            .await?
            .is_some()
        {
            return Err(exists());
        }

        let mut raw = vec![0u8; SEED_BYTES];
        coffer_crypto::fill_random(&mut raw)?;
        let seed = SecretBytes::new(raw);
        let base32_seed = SecretBytes::from(otp::base32_encode(seed.expose()));
        let base32_text = base32_seed
            .as_str()
            .ok_or_else(|| CoreError::Internal("a Base32 seed is not text".into()))?;
        // AWS's URI: `otpauth://totp/Amazon%20Web%20Services:NAME@ACCOUNT?secret=…&issuer=
        // Amazon%20Web%20Services` (a CLI-made device's QR code decoded with zbarimg, and
        // authenticator exports of AWS devices); the API reference abbreviates it to
        // `otpauth://totp/$virtualMFADeviceName@$AccountName?secret=$Base32String`.
        let uri = SecretBytes::from(format!(
            "otpauth://totp/{OTPAUTH_ISSUER}:{}@{account_id}?secret={base32_text}&issuer={OTPAUTH_ISSUER}",
            uri_component(name)
        ));
        let qr_code_png = crate::qr::qr_png(uri.expose())?;

        let account_key = self.account_key(account_id).await?;
        let record = MfaDeviceRecord {
            account_id: account_id.clone(),
            path: path.to_string(),
            name: name.to_string(),
            sealed_seed: self.keyring.seal_mfa_seed(
                &account_key,
                account_id,
                &serial_number,
                &seed,
            )?,
            user_name: None,
            enabled_ms: None,
            last_counter: 0,
            drift_steps: 0,
            tags: device_tags.clone(),
            created_ms: self.clock.now_millis(),
            revision: 1,
        };
        self.store
            .insert_mfa_device(record)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => exists(),
                other => other.into(),
            })?;
        Ok(NewVirtualMfaDevice {
            serial_number,
            base32_seed,
            qr_code_png,
            tags: device_tags,
        })
    }

    /// The common start of EnableMFADevice and ResyncMFADevice: the request's members checked
    /// in AWS's shapes, and the user authorized for `action` and found.
    async fn code_pair_request(
        &self,
        caller: &Caller,
        action: &str,
        user_name: &str,
        serial_number: &str,
        codes: [&str; 2],
    ) -> Result<coffer_store::PrincipalRecord, CoreError> {
        validate_iam_name("userName", user_name, 128)?;
        validate_serial(serial_number)?;
        validate_code("authenticationCode1", codes[0])?;
        validate_code("authenticationCode2", codes[1])?;
        self.existing_principal(caller, action, PrincipalKind::User, user_name)
            .await
    }

    /// `EnableMFADevice`: associates a device with a user once two consecutive codes of it
    /// ("two consecutive authentication codes", IAM user guide) are presented within the
    /// window. The codes are consumed.
    pub async fn enable_mfa_device(
        &self,
        caller: &Caller,
        user_name: &str,
        serial_number: &str,
        code1: &str,
        code2: &str,
    ) -> Result<(), CoreError> {
        let user = self
            .code_pair_request(
                caller,
                "iam:EnableMFADevice",
                user_name,
                serial_number,
                [code1, code2],
            )
            .await?;
        let account_id = &caller.account_id;
        for _ in 0..WRITE_ATTEMPTS {
            let device = self
                .device(account_id, serial_number)
                .await?
                .ok_or_else(|| no_such_device(serial_number))?;
            if device.user_name.is_some() {
                return Err(CoreError::ResourceExists(
                    "MFA Device is already in use.".into(),
                ));
            }
            // The user may have gone meanwhile (the store re-checks when it writes).
            if self
                .store
                .get_principal(account_id, PrincipalKind::User, &user.name)
                .await?
                .is_none()
            {
                return Err(no_such(PrincipalKind::User, user_name));
            }
            if self
                .store
                .user_mfa_devices(account_id, &user.name)
                .await?
                .len()
                >= MAX_MFA_DEVICES_PER_USER
            {
                return Err(CoreError::LimitExceeded(format!(
                    "Cannot exceed quota for MFADevicesPerUser: {MAX_MFA_DEVICES_PER_USER}"
                )));
            }
            let account_key = self.account_key(account_id).await?;
            let seed = self.open_seed(&account_key, &device)?;
            let now_ms = self.clock.now_millis();
            let now = current_step(now_ms);
            // Both codes within one step of now: the pair starts at now - 1 or now.
            let Some(n) = consecutive_pair(
                &seed,
                [now - 1, now].into_iter(),
                device.last_counter,
                code1,
                code2,
            ) else {
                return Err(invalid_codes());
            };
            let expected = device.revision;
            let enabled = MfaDeviceRecord {
                user_name: Some(user.name.clone()),
                enabled_ms: Some(now_ms),
                last_counter: n + 1,
                drift_steps: 0,
                revision: expected + 1,
                ..device
            };
            match self.store.update_mfa_device(expected, enabled).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(contended(serial_number))
    }

    /// `ResyncMFADevice`: finds two consecutive codes of the device within ±10 minutes and
    /// keeps how far its clock is from ours, which later checks apply. The codes are consumed.
    pub async fn resync_mfa_device(
        &self,
        caller: &Caller,
        user_name: &str,
        serial_number: &str,
        code1: &str,
        code2: &str,
    ) -> Result<(), CoreError> {
        let user = self
            .code_pair_request(
                caller,
                "iam:ResyncMFADevice",
                user_name,
                serial_number,
                [code1, code2],
            )
            .await?;
        let account_id = &caller.account_id;
        for _ in 0..WRITE_ATTEMPTS {
            let device = self
                .device(account_id, serial_number)
                .await?
                .ok_or_else(|| no_such_device(serial_number))?;
            if !enabled_for(&device, &user.name) {
                return Err(not_the_users_device());
            }
            let account_key = self.account_key(account_id).await?;
            let seed = self.open_seed(&account_key, &device)?;
            let now = current_step(self.clock.now_millis());
            let Some(n) = consecutive_pair(
                &seed,
                nearest_first(now, RESYNC_WINDOW_STEPS),
                device.last_counter,
                code1,
                code2,
            ) else {
                return Err(invalid_codes());
            };
            let expected = device.revision;
            let synced = MfaDeviceRecord {
                last_counter: n + 1,
                // The second code is the one the device shows now.
                drift_steps: n + 1 - now,
                revision: expected + 1,
                ..device
            };
            match self.store.update_mfa_device(expected, synced).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(contended(serial_number))
    }

    /// `DeactivateMFADevice`: the device stays, no longer associated with the user.
    pub async fn deactivate_mfa_device(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
        serial_number: &str,
    ) -> Result<(), CoreError> {
        if let Some(name) = user_name {
            validate_iam_name("userName", name, 128)?;
        }
        validate_serial(serial_number)?;
        let name = self.subject_user(caller, user_name)?;
        let user = self
            .existing_principal(caller, "iam:DeactivateMFADevice", PrincipalKind::User, name)
            .await?;
        for _ in 0..WRITE_ATTEMPTS {
            let device = self
                .device(&caller.account_id, serial_number)
                .await?
                .ok_or_else(|| no_such_device(serial_number))?;
            if !enabled_for(&device, &user.name) {
                return Err(not_the_users_device());
            }
            let expected = device.revision;
            // The last accepted step stays, so a code cannot be used again after re-enabling.
            let released = MfaDeviceRecord {
                user_name: None,
                enabled_ms: None,
                drift_steps: 0,
                revision: expected + 1,
                ..device
            };
            match self.store.update_mfa_device(expected, released).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(contended(serial_number))
    }

    /// `DeleteVirtualMFADevice`: only a device no user has enabled.
    pub async fn delete_virtual_mfa_device(
        &self,
        caller: &Caller,
        serial_number: &str,
    ) -> Result<(), CoreError> {
        let mut device = self
            .authorized_device(caller, "iam:DeleteVirtualMFADevice", serial_number)
            .await?;
        for _ in 0..WRITE_ATTEMPTS {
            if device.user_name.is_some() {
                return Err(CoreError::DeleteConflict(
                    "MFA VirtualDevice in use. Must deactivate first.".into(),
                ));
            }
            let path_and_name = format!("{}{}", device.path, device.name);
            match self
                .store
                .delete_mfa_device(&caller.account_id, &path_and_name, device.revision)
                .await
            {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => {
                    device = self
                        .device(&caller.account_id, serial_number)
                        .await?
                        .ok_or_else(|| no_such_device(serial_number))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(contended(serial_number))
    }

    /// `ListMFADevices`: the devices enabled for a user (the calling user when unnamed; the
    /// root user, which has none in coffer, when the root user calls without a name).
    pub async fn list_mfa_devices(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
    ) -> Result<Vec<MfaDevice>, CoreError> {
        if let Some(name) = user_name {
            validate_iam_name("userName", name, 128)?;
        }
        if user_name.is_none() && caller.principal_type == PrincipalType::Root {
            self.authorize(caller, "iam:ListMFADevices", &caller.principal_arn)
                .await?;
            return Ok(Vec::new());
        }
        let name = self.subject_user(caller, user_name)?;
        let user = self
            .existing_principal(caller, "iam:ListMFADevices", PrincipalKind::User, name)
            .await?;
        Ok(self
            .store
            .user_mfa_devices(&caller.account_id, &user.name)
            .await?
            .into_iter()
            .map(|d| MfaDevice {
                user_name: user.name.clone(),
                serial_number: d.serial_number(),
                enable_date_ms: d.enabled_ms.unwrap_or(d.created_ms),
            })
            .collect())
    }

    /// `ListVirtualMFADevices`: the account's devices by assignment status, ordered by path
    /// and name.
    pub async fn list_virtual_mfa_devices(
        &self,
        caller: &Caller,
        status: AssignmentStatus,
    ) -> Result<Vec<VirtualMfaDevice>, CoreError> {
        // No resource-level permissions for this action (service authorization reference).
        self.authorize(caller, "iam:ListVirtualMFADevices", "*")
            .await?;
        let mut out = Vec::new();
        for d in self.store.list_mfa_devices(&caller.account_id).await? {
            let assigned = d.user_name.is_some();
            let wanted = match status {
                AssignmentStatus::Assigned => assigned,
                AssignmentStatus::Unassigned => !assigned,
                AssignmentStatus::Any => true,
            };
            if !wanted {
                continue;
            }
            let user = match &d.user_name {
                Some(name) => {
                    self.store
                        .get_principal(&caller.account_id, PrincipalKind::User, name)
                        .await?
                }
                None => None,
            };
            out.push(VirtualMfaDevice {
                serial_number: d.serial_number(),
                user,
                enable_date_ms: d.enabled_ms,
                tags: d.tags,
            });
        }
        Ok(out)
    }

    /// Applies `change` to a device's tags under `action`, with compare-and-swap.
    async fn retag_device(
        &self,
        caller: &Caller,
        action: &str,
        serial_number: &str,
        change: impl Fn(&mut Vec<(String, String)>) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        let mut device = self
            .authorized_device(caller, action, serial_number)
            .await?;
        for _ in 0..WRITE_ATTEMPTS {
            let expected = device.revision;
            let mut updated = device.clone();
            change(&mut updated.tags)?;
            updated.revision = expected + 1;
            match self.store.update_mfa_device(expected, updated).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => {
                    device = self
                        .device(&caller.account_id, serial_number)
                        .await?
                        .ok_or_else(|| no_such_device(serial_number))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(contended(serial_number))
    }

    /// `TagMFADevice`: adds or overwrites tags (at most 50).
    pub async fn tag_mfa_device(
        &self,
        caller: &Caller,
        serial_number: &str,
        tags: Vec<(String, String)>,
    ) -> Result<(), CoreError> {
        self.retag_device(caller, "iam:TagMFADevice", serial_number, |existing| {
            merge_principal_tags(existing, tags.clone())
        })
        .await
    }

    /// `UntagMFADevice`: removes the tags with these keys (in any case).
    pub async fn untag_mfa_device(
        &self,
        caller: &Caller,
        serial_number: &str,
        keys: &[String],
    ) -> Result<(), CoreError> {
        self.retag_device(caller, "iam:UntagMFADevice", serial_number, |existing| {
            existing.retain(|(k, _)| !keys.iter().any(|r| r.eq_ignore_ascii_case(k)));
            Ok(())
        })
        .await
    }

    /// `ListMFADeviceTags`.
    pub async fn list_mfa_device_tags(
        &self,
        caller: &Caller,
        serial_number: &str,
    ) -> Result<Vec<(String, String)>, CoreError> {
        Ok(self
            .authorized_device(caller, "iam:ListMFADeviceTags", serial_number)
            .await?
            .tags)
    }

    /// Checks a one-time code of the MFA device `serial_number` that must be enabled for the IAM
    /// user `user_name` of `account_id`, and consumes it (a code is accepted once).
    pub async fn verify_mfa_code(
        &self,
        account_id: &str,
        user_name: &str,
        serial_number: &str,
        code: &str,
    ) -> Result<(), CoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            let device = self
                .device(account_id, serial_number)
                .await?
                .filter(|d| enabled_for(d, user_name))
                .ok_or_else(sts_unvalidated)?;
            if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(sts_invalid_code());
            }
            let account_key = self.account_key(account_id).await?;
            let seed = self.open_seed(&account_key, &device)?;
            let center = current_step(self.clock.now_millis()) + device.drift_steps;
            let mut matched = None;
            for step in nearest_first(center, VERIFY_WINDOW_STEPS) {
                let ok = code_at(&seed, step, code);
                if ok && step > device.last_counter && matched.is_none() {
                    matched = Some(step);
                }
            }
            let Some(step) = matched else {
                return Err(sts_invalid_code());
            };
            let expected = device.revision;
            let consumed = MfaDeviceRecord {
                last_counter: step,
                revision: expected + 1,
                ..device
            };
            match self.store.update_mfa_device(expected, consumed).await {
                Ok(()) => return Ok(()),
                // Another request changed the device (perhaps consuming this very code):
                // decide again on what it wrote.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(contended(serial_number))
    }
}

/// Whether the device is enabled for the user (names compare without regard to case).
fn enabled_for(device: &MfaDeviceRecord, user_name: &str) -> bool {
    device.enabled_ms.is_some()
        && device
            .user_name
            .as_deref()
            .is_some_and(|u| u.to_lowercase() == user_name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_numbers_name_devices_of_the_account_only() {
        let a = "111122223333";
        assert_eq!(
            device_path_and_name(a, "arn:aws:iam::111122223333:mfa/phone"),
            Some("/phone")
        );
        assert_eq!(
            device_path_and_name(a, "arn:aws:iam::111122223333:mfa/team/phone"),
            Some("/team/phone")
        );
        for other in [
            "arn:aws:iam::444455556666:mfa/phone",
            "arn:aws:iam::111122223333:user/phone",
            "arn:aws:iam::111122223333:mfaphone",
            "GAHT12345678",
            "arn:aws:iam::111122223333",
        ] {
            assert_eq!(device_path_and_name(a, other), None, "{other}");
        }
    }

    #[test]
    fn model_validation_of_serials_and_codes() {
        assert!(validate_serial("arn:aws:iam::111122223333:mfa/phone").is_ok());
        assert!(validate_serial("GAHT12345678").is_ok());
        for bad in ["short", "arn:aws:iam::1:mfa/has space", &"x".repeat(257)] {
            assert!(
                matches!(validate_serial(bad), Err(CoreError::Validation(_))),
                "{bad}"
            );
        }
        assert!(validate_code("authenticationCode1", "012345").is_ok());
        for bad in ["12345", "1234567", "12a456", "", "١٢٣٤٥٦"] {
            assert!(
                matches!(
                    validate_code("authenticationCode1", bad),
                    Err(CoreError::Validation(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn candidates_come_nearest_first() {
        assert_eq!(nearest_first(10, 2).collect::<Vec<_>>(), [10, 9, 11, 8, 12]);
        assert_eq!(nearest_first(10, 0).collect::<Vec<_>>(), [10]);
    }

    #[test]
    fn uri_components_are_percent_encoded() {
        assert_eq!(uri_component("phone-1_a.b~c"), "phone-1_a.b~c");
        assert_eq!(uri_component("a+b=c,d@e"), "a%2Bb%3Dc%2Cd%40e");
    }
}
