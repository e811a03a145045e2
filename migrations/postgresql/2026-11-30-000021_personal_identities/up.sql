-- A person's identity as Swedish health care records it (issue 15): personnummer or
-- samordningsnummer, skyddad personuppgift, HSA-id. One row per user, written when
-- something is first set.
CREATE TABLE personal_identities (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id),
    -- The region the number must be unique in: the region of the person's first role
    -- when the number was recorded.
    region_id TEXT NOT NULL REFERENCES organisations(id),
    -- The 12 digits, sealed (src/secrets.rs); NULL when none is recorded.
    number_sealed TEXT,
    -- Keyed hash (HMAC under the master key) of the 12 digits, for the uniqueness check:
    -- a copy of the database alone cannot test guesses against it.
    number_mac TEXT,
    -- 1: skyddad personuppgift (protected identity).
    protected_identity INTEGER NOT NULL DEFAULT 0,
    hsa_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    updated_at TIMESTAMP NOT NULL
);
-- NULLs are distinct in both backends' unique indexes: people without a number never
-- collide.
CREATE UNIQUE INDEX personal_identities_number_per_region
    ON personal_identities(region_id, number_mac);
