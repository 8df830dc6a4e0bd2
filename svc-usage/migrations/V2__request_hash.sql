-- Each idempotency key is bound to a digest of the request it first came with (SHA-256 of
-- "<operation>\n<amount>", written by svc-usage): the same key with another request is refused
-- with 409 `idempotency_key_reused`. Keys written before this migration get the digest of their
-- own operation and amount. The column stays nullable so that a replica of the previous version
-- still writing keys during a rolling update does not fail; a NULL is read as that same digest.
ALTER TABLE usage.idempotency_keys ADD COLUMN request_hash bytea;

UPDATE usage.idempotency_keys
SET request_hash = sha256(convert_to(operation || E'\n' || amount::text, 'UTF8'))
WHERE request_hash IS NULL;
