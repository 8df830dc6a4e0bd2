-- svc-auth owns the `auth` schema (created by common::db::migrate before this runs).

CREATE TABLE auth.roles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE,
    admin_access boolean NOT NULL,
    app_access   boolean NOT NULL
);

INSERT INTO auth.roles (name, admin_access, app_access) VALUES
    ('administrator', true, true),
    ('creator', false, true),
    ('viewer', false, true);

CREATE TABLE auth.users (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email            text NOT NULL,
    password_hash    text,
    first_name       text,
    last_name        text,
    role_id          uuid REFERENCES auth.roles (id),
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'invited', 'draft', 'suspended', 'archived')),
    onboarding_state text NOT NULL DEFAULT 'EXTENSION_INSTALL'
                     CHECK (onboarding_state IN ('EXTENSION_INSTALL', 'DATA_COLLECTION', 'PROCESSING', 'COMPLETE')),
    onboarding_updated_at timestamptz NOT NULL DEFAULT now(),
    pricing_tier     text NOT NULL DEFAULT 'starter'
                     CHECK (pricing_tier IN ('starter', 'creator', 'pro', 'studio')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_access      timestamptz
);

-- Emails are unique whatever their case, as in Directus.
CREATE UNIQUE INDEX users_email_key ON auth.users (lower(email));

-- Refresh tokens are stored as SHA-256 digests: a database dump yields no usable token.
CREATE TABLE auth.refresh_sessions (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX refresh_sessions_user_idx ON auth.refresh_sessions (user_id);
CREATE INDEX refresh_sessions_expiry_idx ON auth.refresh_sessions (expires_at);

CREATE TABLE auth.invites (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code_hash  bytea NOT NULL UNIQUE,
    email      text,
    created_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    used_by    uuid REFERENCES auth.users (id) ON DELETE SET NULL
);

CREATE TABLE auth.impersonation_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    admin_id   uuid NOT NULL,
    target_id  uuid NOT NULL,
    request_id text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth.avatars (
    user_id      uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    content_type text NOT NULL,
    image        bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
