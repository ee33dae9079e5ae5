-- Step-up approvals (issue 9, item 8): an `ask` rule may require a fresh second-factor code from the approver.
-- A step-up challenge is an mfa_challenges row bound to one pending approval: its id, and `binding`, the
-- SHA-256 of (approver, approval, tool, SHA-256 of the canonical arguments). Login challenges leave both NULL.
ALTER TABLE tool_policies ADD COLUMN step_up BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mfa_challenges ADD COLUMN approval_id TEXT;
ALTER TABLE mfa_challenges ADD COLUMN binding TEXT;
CREATE UNIQUE INDEX mfa_challenges_approval ON mfa_challenges(approval_id);
