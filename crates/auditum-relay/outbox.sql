-- The outbox table `auditum relay postgres --table audit_outbox` reads. Insert each audit event
-- in the same transaction as the change it records.
CREATE TABLE audit_outbox (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- the event id (any type; read as text)
    event      jsonb NOT NULL,                              -- the event, as `auditum append --file` reads it
    created_at timestamptz NOT NULL DEFAULT now()           -- occurred_at when the event has none
);
CREATE INDEX audit_outbox_created_at ON audit_outbox (created_at);

-- Optional: wake the relays the moment a transaction that wrote to the outbox commits
-- (without it they look every --poll).
CREATE FUNCTION audit_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('audit_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER audit_outbox_notify AFTER INSERT ON audit_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION audit_outbox_notify();
