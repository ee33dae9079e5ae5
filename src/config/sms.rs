//! SMS, Telesign and second-factor settings.
//!
//! `SMS_PROVIDER` picks where messages go: `console` (development default: the text is printed on standard
//! output, as web frameworks print e-mails in development), `telesign`, or `none`. Production refuses `console`
//! (a finding) and defaults to `none`, so a server that never sends SMS needs no setting at all.

use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::SecretString;

use super::{
    Environment, Finding,
    parse::{bounded, list},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsProviderKind {
    /// No provider: SMS routes and SMS second factors answer 503 with a clear message.
    Disabled,
    /// Print each message on standard output (development only).
    Console,
    Telesign,
}

/// Telesign account and hosts. The hosts are configurable so tests and the demo point them at `warden
/// telesign-mock`.
#[derive(Clone)]
pub struct TelesignConfig {
    pub customer_id: String,
    pub api_key: SecretString,
    pub sender_id: Option<String>,
    /// Messaging, PhoneID, Score and the old Verify API (`TELESIGN_API_URL`).
    pub api_url: String,
    /// The new Verify API (`TELESIGN_VERIFY_URL`).
    pub verify_url: String,
    /// Intelligence, the successor of Score (`TELESIGN_INTELLIGENCE_URL`).
    pub intelligence_url: String,
    /// Per-request timeout (`TELESIGN_TIMEOUT_SECONDS`).
    pub timeout: Duration,
    /// Where Telesign posts delivery receipts (`TELESIGN_CALLBACK_URL`), normally
    /// `{WARDEN_PUBLIC_URL}/api/sms/callback`; unset sends no `callback_url`.
    pub callback_url: Option<String>,
}

#[derive(Clone)]
pub struct SmsConfig {
    pub provider: SmsProviderKind,
    /// Set exactly when `provider` is `Telesign`.
    pub telesign: Option<TelesignConfig>,
    /// Country calling codes SMS may go to (`SMS_ALLOWED_COUNTRIES`, e.g. `1,44`): the guard against SMS
    /// pumping to premium destinations.
    pub allowed_countries: Vec<String>,
    /// Messages one user may send per hour (`SMS_USER_PER_HOUR`).
    pub user_per_hour: u32,
    /// Messages one destination number may receive per hour, from everyone (`SMS_NUMBER_PER_HOUR`).
    pub number_per_hour: u32,
    /// Distinct destination numbers one user may reach per day (`SMS_USER_NUMBERS_PER_DAY`).
    pub user_numbers_per_day: u32,
    /// Number lookups (PhoneID, risk) one user may make per hour (`SMS_LOOKUPS_PER_HOUR`).
    pub lookups_per_hour: u32,
}

const TELESIGN_API_URL: &str = "https://rest-api.telesign.com";
const TELESIGN_VERIFY_URL: &str = "https://verify.telesign.com";
const TELESIGN_INTELLIGENCE_URL: &str = "https://detect.telesign.com";

impl SmsConfig {
    pub(super) fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        environment: Environment,
    ) -> anyhow::Result<SmsConfig> {
        let provider = match get("SMS_PROVIDER")
            .map(|p| p.to_ascii_lowercase())
            .as_deref()
        {
            None if environment == Environment::Production => SmsProviderKind::Disabled,
            None | Some("console") => SmsProviderKind::Console,
            Some("telesign") => SmsProviderKind::Telesign,
            Some("none") | Some("disabled") => SmsProviderKind::Disabled,
            Some(other) => bail!("SMS_PROVIDER must be console, telesign or none, not {other:?}"),
        };
        let telesign = if provider == SmsProviderKind::Telesign {
            let customer_id = get("TELESIGN_CUSTOMER_ID")
                .context("SMS_PROVIDER=telesign needs TELESIGN_CUSTOMER_ID")?;
            let api_key =
                get("TELESIGN_API_KEY").context("SMS_PROVIDER=telesign needs TELESIGN_API_KEY")?;
            let url = |key: &str, default: &str| -> anyhow::Result<String> {
                let url = get(key).unwrap_or_else(|| default.to_string());
                if !(url.starts_with("http://") || url.starts_with("https://"))
                    || !url.bytes().all(|b| b.is_ascii_graphic())
                {
                    bail!("{key} must be an http:// or https:// URL, not {url:?}");
                }
                Ok(url.trim_end_matches('/').to_string())
            };
            Some(TelesignConfig {
                customer_id,
                api_key: SecretString::from(api_key),
                sender_id: get("TELESIGN_SENDER_ID"),
                api_url: url("TELESIGN_API_URL", TELESIGN_API_URL)?,
                verify_url: url("TELESIGN_VERIFY_URL", TELESIGN_VERIFY_URL)?,
                intelligence_url: url("TELESIGN_INTELLIGENCE_URL", TELESIGN_INTELLIGENCE_URL)?,
                timeout: Duration::from_secs(bounded(get, "TELESIGN_TIMEOUT_SECONDS", 10, 1, 120)?),
                callback_url: get("TELESIGN_CALLBACK_URL")
                    .map(|_| url("TELESIGN_CALLBACK_URL", ""))
                    .transpose()?,
            })
        } else {
            None
        };
        let allowed_countries = list(get("SMS_ALLOWED_COUNTRIES").or_else(|| Some("1".into())));
        if let Some(bad) = allowed_countries
            .iter()
            .find(|c| c.is_empty() || c.len() > 3 || !c.bytes().all(|b| b.is_ascii_digit()))
        {
            bail!("SMS_ALLOWED_COUNTRIES lists country calling codes like 1,44,49, not {bad:?}");
        }
        Ok(SmsConfig {
            provider,
            telesign,
            allowed_countries,
            user_per_hour: bounded(get, "SMS_USER_PER_HOUR", 10, 1, 100_000)?,
            number_per_hour: bounded(get, "SMS_NUMBER_PER_HOUR", 10, 1, 100_000)?,
            user_numbers_per_day: bounded(get, "SMS_USER_NUMBERS_PER_DAY", 5, 1, 100_000)?,
            lookups_per_hour: bounded(get, "SMS_LOOKUPS_PER_HOUR", 30, 1, 100_000)?,
        })
    }

    /// What production refuses.
    pub(super) fn findings(&self, out: &mut Vec<Finding>) {
        if self.provider == SmsProviderKind::Console {
            out.push(Finding {
                variable: "SMS_PROVIDER",
                message: "is console, which prints messages (and their codes) on standard output; use telesign, or none".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn sms(pairs: &[(&str, &str)], environment: Environment) -> anyhow::Result<SmsConfig> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        SmsConfig::from_lookup(&|k: &str| map.get(k).map(|v| v.to_string()), environment)
    }

    #[test]
    fn development_defaults_to_the_console_and_production_to_none() {
        let dev = sms(&[], Environment::Development).unwrap();
        assert_eq!(dev.provider, SmsProviderKind::Console);
        assert_eq!(dev.allowed_countries, vec!["1".to_string()]);
        let prod = sms(&[], Environment::Production).unwrap();
        assert_eq!(prod.provider, SmsProviderKind::Disabled);
        let mut findings = Vec::new();
        sms(&[("SMS_PROVIDER", "console")], Environment::Production)
            .unwrap()
            .findings(&mut findings);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].variable, "SMS_PROVIDER");
    }

    #[test]
    fn telesign_needs_its_account_and_sane_urls() {
        let err = sms(&[("SMS_PROVIDER", "telesign")], Environment::Development)
            .err()
            .unwrap();
        assert!(err.to_string().contains("TELESIGN_CUSTOMER_ID"), "{err}");
        let base = [
            ("SMS_PROVIDER", "telesign"),
            (
                "TELESIGN_CUSTOMER_ID",
                "FFFFFFFF-EEEE-DDDD-1234-AB1234567890",
            ),
            ("TELESIGN_API_KEY", "VGVzdCBLZXk="),
        ];
        let ok = sms(&base, Environment::Development).unwrap();
        let t = ok.telesign.unwrap();
        assert_eq!(t.api_url, TELESIGN_API_URL);
        let mut bad = base.to_vec();
        bad.push(("TELESIGN_API_URL", "ftp://x"));
        assert!(sms(&bad, Environment::Development).is_err());
        let mut countries = base.to_vec();
        countries.push(("SMS_ALLOWED_COUNTRIES", "US"));
        assert!(sms(&countries, Environment::Development).is_err());
    }
}
