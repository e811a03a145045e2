-- Account erasure (GDPR Art. 17, issue 17). The same SQL on both backends.

-- One row per erased account: the account row itself stays, pseudonymised, because
-- signed records and the audit log name its id. The primary key makes an erasure
-- happen once, even when two requests race; `organisation_id` is the organisation
-- through which it was administered, so that its administrators (and only they) learn
-- that it was already erased. Counts only, never what was erased.
CREATE TABLE account_erasures (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id),
    organisation_id TEXT NOT NULL,
    erased_by TEXT NOT NULL,
    erased_at TIMESTAMP NOT NULL,
    name_kept INTEGER NOT NULL,
    counts TEXT NOT NULL
);
