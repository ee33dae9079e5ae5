//! Telesign's replies as typed structs. Only the fields Warden reads are named; unknown fields are ignored and
//! most named ones default, so a reply that grows or omits an optional part still parses.

use serde::Deserialize;

/// `status` in every reply.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Status {
    pub code: i64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub updated_on: Option<String>,
}

/// One entry of `errors`.
#[derive(Clone, Debug, Deserialize)]
pub struct ApiError {
    pub code: i64,
    #[serde(default)]
    pub description: String,
}

/// A send (`POST /v1/messaging`) or a status poll (`GET /v1/messaging/{reference_id}`).
#[derive(Clone, Debug, Deserialize)]
pub struct MessageReply {
    pub reference_id: String,
    #[serde(default)]
    pub external_id: Option<String>,
    pub status: Status,
    #[serde(default)]
    pub errors: Vec<ApiError>,
    #[serde(default)]
    pub additional_info: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct NumberingOriginal {
    #[serde(default)]
    pub phone_number: String,
    #[serde(default)]
    pub complete_phone_number: String,
    #[serde(default)]
    pub country_code: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Cleansed {
    /// 100 exact, 101 changed, 102 restricted, 103 no match, 104 invalid, 105 bad length.
    pub cleansed_code: i64,
    #[serde(default)]
    pub country_code: String,
    #[serde(default)]
    pub phone_number: String,
    #[serde(default)]
    pub min_length: Option<i64>,
    #[serde(default)]
    pub max_length: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Cleansing {
    #[serde(default)]
    pub call: Option<Cleansed>,
    #[serde(default)]
    pub sms: Option<Cleansed>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Numbering {
    #[serde(default)]
    pub original: NumberingOriginal,
    #[serde(default)]
    pub cleansing: Cleansing,
}

/// `phone_type.code` is a string: 1 fixed line, 2 mobile, 3 prepaid, 4 toll free, 5 VOIP, 8 invalid, ...
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PhoneType {
    pub code: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Carrier {
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Country {
    #[serde(default)]
    pub iso2: Option<String>,
    #[serde(default)]
    pub iso3: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TimeZone {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub utc_offset_min: Option<String>,
    #[serde(default)]
    pub utc_offset_max: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Coordinates {
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Location {
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub county: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub zip: Option<String>,
    #[serde(default)]
    pub metro_code: Option<String>,
    #[serde(default)]
    pub country: Country,
    #[serde(default)]
    pub time_zone: TimeZone,
    #[serde(default)]
    pub coordinates: Coordinates,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Blocklisting {
    #[serde(default)]
    pub block_code: i64,
    #[serde(default)]
    pub block_description: String,
    #[serde(default)]
    pub blocked: bool,
}

/// The `contact` addon: the subscriber's name and address where the carrier shares them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub address1: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub state_province: Option<String>,
    #[serde(default)]
    pub zip_postal_code: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
}

/// `POST /v1/phoneid/{number}`.
#[derive(Clone, Debug, Deserialize)]
pub struct PhoneIdReply {
    #[serde(default)]
    pub reference_id: Option<String>,
    /// 300 completed, 301 partially completed.
    pub status: Status,
    #[serde(default)]
    pub numbering: Numbering,
    #[serde(default)]
    pub phone_type: PhoneType,
    #[serde(default)]
    pub carrier: Carrier,
    #[serde(default)]
    pub location: Location,
    #[serde(default)]
    pub blocklisting: Blocklisting,
    #[serde(default)]
    pub contact: Option<Contact>,
}

/// `verify` in the old Verify replies.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct VerifyState {
    /// VALID, INVALID, EXPIRED, MAX_ATTEMPTS_EXCEEDED or UNKNOWN.
    pub code_state: String,
    #[serde(default)]
    pub code_entered: String,
}

/// `POST /v1/verify/sms` and `GET /v1/verify/{reference_id}`.
#[derive(Clone, Debug, Deserialize)]
pub struct VerifyReply {
    pub reference_id: String,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub errors: Vec<ApiError>,
    pub status: Status,
    #[serde(default)]
    pub verify: VerifyState,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RiskScore {
    /// low, medium-low, medium, medium-high, high.
    pub level: String,
    /// allow, flag, block.
    pub recommendation: String,
    /// 0 to 1000.
    pub score: i64,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RiskInsights {
    #[serde(default)]
    pub status: Option<i64>,
    #[serde(default)]
    pub category: Vec<i64>,
    #[serde(default)]
    pub a2p: Vec<i64>,
    #[serde(default)]
    pub p2p: Vec<i64>,
    #[serde(default)]
    pub number_type: Vec<i64>,
    #[serde(default)]
    pub ip: Vec<i64>,
    #[serde(default)]
    pub email: Vec<i64>,
}

/// Score (`POST /v1/score/{number}`) and Intelligence (`POST /intelligence/phone`).
#[derive(Clone, Debug, Deserialize)]
pub struct ScoreReply {
    #[serde(default)]
    pub reference_id: Option<String>,
    pub status: Status,
    #[serde(default)]
    pub numbering: Numbering,
    #[serde(default)]
    pub phone_type: PhoneType,
    #[serde(default)]
    pub carrier: Carrier,
    pub risk: RiskScore,
    #[serde(default)]
    pub risk_insights: RiskInsights,
}
