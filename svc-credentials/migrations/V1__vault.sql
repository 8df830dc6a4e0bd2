-- The credentials vault. Every sealed column holds {"enc": "v<N>:<nonce>:<tag>:<ciphertext>"}
-- and has a *_key_version column beside it: the version it is sealed under, written together
-- with it. NULL there means a record imported from the original service (the version is read
-- from the text); rotation re-seals those too.

-- The key versions this vault has seen, with a one-way fingerprint of each key, so that a version
-- whose key was swapped in the configuration stops start-up instead of failing every reveal.
CREATE TABLE credentials.key_versions (
    version integer PRIMARY KEY CHECK (version > 0),
    fingerprint text NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);

CREATE TABLE credentials.creator_profiles (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    platform text NOT NULL,
    username text NOT NULL,
    credentials jsonb,
    credentials_key_version integer,
    scrape_enabled boolean NOT NULL DEFAULT false,
    scrape_frequency text,
    last_scraped_at timestamptz,
    scrape_status text NOT NULL DEFAULT 'idle'
        CHECK (scrape_status IN ('idle', 'running', 'success', 'error')),
    profile_data jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, platform, username)
);
CREATE INDEX creator_profiles_user ON credentials.creator_profiles (user_id, created_at);

-- One captured browser session per creator profile; a new capture replaces it.
CREATE TABLE credentials.platform_sessions (
    id uuid PRIMARY KEY,
    creator_profile_id uuid NOT NULL UNIQUE
        REFERENCES credentials.creator_profiles (id) ON DELETE CASCADE,
    platform text NOT NULL,
    cookies jsonb NOT NULL,
    cookies_key_version integer,
    user_agent text NOT NULL,
    captured_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    last_used_at timestamptz
);
CREATE INDEX platform_sessions_platform ON credentials.platform_sessions (platform);

CREATE TABLE credentials.hitl_sessions (
    id uuid PRIMARY KEY,
    creator_profile_id uuid NOT NULL
        REFERENCES credentials.creator_profiles (id) ON DELETE CASCADE,
    platform text NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'completed', 'expired', 'failed')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    notes text
);
CREATE UNIQUE INDEX hitl_sessions_one_pending
    ON credentials.hitl_sessions (creator_profile_id) WHERE status = 'pending';

-- Other secrets of a user: download credentials, API keys, tokens.
CREATE TABLE credentials.vault_entries (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    creator_profile_id uuid REFERENCES credentials.creator_profiles (id) ON DELETE CASCADE,
    name text NOT NULL,
    kind text NOT NULL
        CHECK (kind IN ('login', 'download', 'api_key', 'cookies', 'token', 'other')),
    platform text,
    secret jsonb NOT NULL,
    secret_key_version integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    rotated_at timestamptz
);
CREATE INDEX vault_entries_user ON credentials.vault_entries (user_id, created_at);

-- Who saw which secret, when, and through which path. Never the secret. Append-only.
CREATE TABLE credentials.reveal_audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revealed_at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL CHECK (actor IN ('user', 'system')),
    actor_user_id uuid,
    impersonated_by uuid,
    owner_user_id uuid NOT NULL,
    subject_table text NOT NULL,
    subject_id uuid NOT NULL,
    field text NOT NULL,
    path text NOT NULL,
    key_version integer NOT NULL,
    request_id text NOT NULL
);
CREATE INDEX reveal_audit_subject ON credentials.reveal_audit (subject_id, revealed_at);
CREATE INDEX reveal_audit_owner ON credentials.reveal_audit (owner_user_id, revealed_at);

CREATE FUNCTION credentials.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credentials.reveal_audit is append-only';
END
$$;
CREATE TRIGGER reveal_audit_append_only
    BEFORE UPDATE OR DELETE ON credentials.reveal_audit
    FOR EACH ROW EXECUTE FUNCTION credentials.refuse_audit_change();
CREATE TRIGGER reveal_audit_no_truncate
    BEFORE TRUNCATE ON credentials.reveal_audit
    FOR EACH STATEMENT EXECUTE FUNCTION credentials.refuse_audit_change();
