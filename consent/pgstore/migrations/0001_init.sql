-- consent/pgstore: sharing agreements, consumer groups, consents to view.
-- The agreement body is the JSON AgreementJSON writes (the admin API's
-- shape); provider is copied out for ForProvider.
CREATE TABLE consent_agreements (
    id       text PRIMARY KEY,
    provider text NOT NULL,
    body     jsonb NOT NULL,
    created  timestamptz NOT NULL,
    updated  timestamptz NOT NULL
);
CREATE INDEX consent_agreements_provider ON consent_agreements (provider);

CREATE TABLE consent_groups (
    name    text PRIMARY KEY,
    members text[] NOT NULL
);

-- A consent to view, replaced whole on revocation; re-read on every
-- request, so never cached.
CREATE TABLE consent_view (
    id         text PRIMARY KEY,
    patient_id text NOT NULL,
    body       jsonb NOT NULL
);
