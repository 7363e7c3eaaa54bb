-- adapters/idmap/pgidmap: which NHS number a Patient logical id stands for.
CREATE TABLE patient_ids (
    id  text PRIMARY KEY,
    nhs text NOT NULL
);
