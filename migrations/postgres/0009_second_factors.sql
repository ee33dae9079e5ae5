-- Second factors (issue 9, item 7): a role may require one; a user's enrolled phone and TOTP authenticator,
-- recovery codes, and the login challenges that wait for a code. Codes are stored only as keyed HMACs; the TOTP
-- secret and the phone number only sealed with an AEAD (base64 text), beside the masked number for display.
ALTER TABLE roles ADD COLUMN require_mfa BIGINT NOT NULL DEFAULT 0;
-- Whether the user has a confirmed second factor: kept by the mfa service, read with the cached account.
ALTER TABLE users ADD COLUMN mfa_enrolled BIGINT NOT NULL DEFAULT 0;

CREATE TABLE mfa_phones (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    number_sealed TEXT NOT NULL,
    number_masked TEXT NOT NULL,
    verified_at BIGINT,
    code_hmac TEXT,
    code_expires_at BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    sends BIGINT NOT NULL DEFAULT 0,
    last_sent_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE mfa_totp (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE mfa_recovery_codes (
    code_hmac TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX mfa_recovery_codes_user ON mfa_recovery_codes(user_id);

CREATE TABLE mfa_challenges (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    mode TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    used_at BIGINT,
    code_hmac TEXT,
    code_expires_at BIGINT,
    sends BIGINT NOT NULL DEFAULT 0,
    last_sent_at BIGINT
);
CREATE INDEX mfa_challenges_user ON mfa_challenges(user_id);
