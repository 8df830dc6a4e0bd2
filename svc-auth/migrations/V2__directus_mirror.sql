-- Directus mode mirrors users from a running Directus: remember when each was last read, and let
-- role ids follow Directus' own uuids so that tokens and /users/me agree.
ALTER TABLE auth.users ADD COLUMN mirrored_at timestamptz;

ALTER TABLE auth.users
    DROP CONSTRAINT users_role_id_fkey,
    ADD CONSTRAINT users_role_id_fkey FOREIGN KEY (role_id) REFERENCES auth.roles (id) ON UPDATE CASCADE;

