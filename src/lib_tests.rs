//! Unit tests of the composition root that span features: every feature's audit
//! entries keep no free text (`audit::text`, issue 17). They sit here, not in `audit`,
//! because the audit log is below the features and must not name them. And only the
//! owners of the tables a `Principal` is built from write them (see
//! `principal::SessionCache`): the source of every feature is scanned for others.

// One test per feature that records a record's data: the facts it keeps as values are
// fields of the record and none is free text. `not_text` names the plain strings that
// are ids, codes or hashes.

use crate::audit::text::tests_support::assert_facts_are_not_free_text as facts_hold_no_text;

#[test]
fn activities_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::activities::Activity>(
        crate::portfolio::activities::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "placement_id",
            "checklist_item_id",
            "delmal",
            "created_by",
        ],
    );
}

#[test]
fn attachments_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::attachments::Attachment>(
        crate::portfolio::attachments::AUDIT_FACTS,
        &["id", "record_id", "content_type", "sha256", "uploaded_by"],
    );
}

#[test]
fn assessments_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::assessments::Assessment>(
        crate::portfolio::assessments::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "status",
            "assessor_id",
            "placement_id",
            "delmal",
            "supersedes_id",
            "superseded_by",
            "created_by",
        ],
    );
}

#[test]
fn talks_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::talks::Talk>(
        crate::portfolio::talks::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "placement_id",
            "next_placement_id",
            "delmal",
            "status",
            "created_by",
        ],
    );
}

#[test]
fn summary_assessments_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::summaries::SummaryAssessment>(
        crate::portfolio::summaries::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "placement_id",
            "author_id",
            "status",
            "supersedes_id",
            "superseded_by",
        ],
    );
}

#[test]
fn course_confirmations_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::course_confirmation::CourseConfirmation>(
        crate::portfolio::course_confirmation::AUDIT_FACTS,
        &[
            "activity_id",
            "enrolment_id",
            "role",
            "status",
            "requested_by",
            "vetted_by",
            "content_hash",
        ],
    );
}

#[test]
fn final_assessments_record_no_free_text() {
    facts_hold_no_text::<crate::final_assessment::model::FinalAssessment>(
        crate::final_assessment::service::AUDIT_FACTS,
        &["id", "enrolment_id", "status", "content_hash", "created_by"],
    );
}

#[test]
fn external_assessors_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::vetting::ExternalAssessor>(
        crate::portfolio::vetting::AUDIT_FACTS,
        &[
            "id",
            "organisation_id",
            "status",
            "requested_by",
            "enrolment_id",
            "decided_by",
            // Codes: `not_specialist`, `no_assessment_training`, ...
            "qualification_warnings",
        ],
    );
    facts_hold_no_text::<crate::portfolio::qualifications::AssessorQualifications>(
        crate::portfolio::qualifications::AUDIT_FACTS,
        &["confirmed_by"],
    );
}

#[test]
fn signer_profiles_record_no_free_text() {
    facts_hold_no_text::<crate::accounts::signer_profiles::SignerProfile>(
        crate::accounts::signer_profiles::AUDIT_FACTS,
        &["user_id", "updated_by"],
    );
}

#[test]
fn study_plan_goals_record_no_free_text() {
    facts_hold_no_text::<crate::enrolment::goals::StudyPlanGoal>(
        crate::enrolment::goals::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "placement_id",
            "delmal",
            "status",
            "updated_by",
        ],
    );
}

#[test]
#[should_panic(expected = "free text stays out")]
fn the_check_catches_free_text_kept_as_a_fact() {
    facts_hold_no_text::<crate::portfolio::activities::Activity>(&["id", "reflection"], &["id"]);
}

#[test]
#[should_panic(expected = "free text stays out")]
fn the_check_catches_a_nullable_free_text_kept_as_a_fact() {
    facts_hold_no_text::<crate::portfolio::assessments::Assessment>(&["decline_reason"], &[]);
}

// ---- Who writes what a principal is built from -----------------------------------------
//
// The session cache stays right because the only writers of sessions, role grants and the
// users' columns a principal or its session check reads (e-mail address, status) record
// what they change on the request's `AuthChanges`. A write anywhere else would leave
// cached principals stale until their TTL: these tests name it. Not seen: generic SQL
// built at run time (`backup`'s restore, a command run with the server stopped).

/// The one file allowed to write each table (for `users`: its e-mail address and status;
/// inserting a new account touches no session).
const AUTH_TABLE_OWNERS: [(&str, &str); 3] = [
    ("sessions", "src/auth/sessions.rs"),
    ("user_roles", "src/auth/roles.rs"),
    ("users", "src/auth/credentials.rs"),
];

/// Left out of the scan: separate programs that seed a database no server uses yet
/// (`src/bin/bench`), and this file's own examples.
fn scanned(path: &str) -> bool {
    !path.starts_with("src/bin/") && path != "src/lib_tests.rs"
}

/// `(line, table)` of every write in `text` to a table of `AUTH_TABLE_OWNERS` that only
/// its owner may make.
fn auth_table_writes(text: &str) -> Vec<(usize, &'static str)> {
    // Comments out (a `//` inside a string cuts the rest of its line: harmless here).
    let code: String = text
        .lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n");
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    for op in [
        "insert_into(",
        "insert_or_ignore_into(",
        "replace_into(",
        "update(",
        "delete(",
    ] {
        for (at, _) in code.match_indices(op) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue; // `do_update(`, `.delete(` of something else
            }
            let rest = code[at + op.len()..].trim_start();
            let rest = rest
                .strip_prefix("crate::schema::")
                .or_else(|| rest.strip_prefix("schema::"))
                .unwrap_or(rest);
            let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
            for (table, _) in AUTH_TABLE_OWNERS {
                if !rest.starts_with(&format!("{table}::")) {
                    continue;
                }
                let restricted = match table {
                    // A new account has no session to cache; its address and status may
                    // change only through the owner. A changeset struct may set either.
                    "users" => {
                        op == "delete("
                            || (op == "update("
                                && (["users::email.eq", "users::status.eq", "users::id.eq"]
                                    .iter()
                                    .any(|c| statement.contains(c))
                                    || statement.contains(".set(&")))
                    }
                    _ => true,
                };
                if restricted {
                    found.push((line_of(at), table));
                }
            }
        }
    }
    // SQL written out in a string.
    let lower = code.to_lowercase();
    for (table, _) in AUTH_TABLE_OWNERS {
        let mut verbs = vec![format!("update {table} "), format!("delete from {table}")];
        if table != "users" {
            verbs.push(format!("insert into {table}"));
        }
        for verb in verbs {
            for (at, _) in lower.match_indices(&verb) {
                found.push((line_of(at), table));
            }
        }
    }
    found.sort();
    found
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_their_owners_write_the_tables_a_principal_is_built_from() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 50, "the scan found the sources");
    let mut offenders = Vec::new();
    for file in files {
        let path = file
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        if !scanned(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (line, table) in auth_table_writes(&text) {
            let owner = AUTH_TABLE_OWNERS
                .iter()
                .find(|(t, _)| *t == table)
                .map_or("", |(_, o)| *o);
            if path != owner {
                offenders.push(format!(
                    "{path}:{line} writes `{table}`: call a function of {owner}, which records \
                     the change for the session cache"
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

#[test]
fn the_scan_sees_writes_to_the_principal_tables() {
    let text = r#"
        diesel::update(
            sessions::table.find(id),
        ).set(sessions::revoked_at.eq(now)).execute(c)?;
        // diesel::delete(user_roles::table) in a comment is not a write
        diesel::insert_into(crate::schema::user_roles::table).values(&row).execute(c)?;
        diesel::insert_into(users::table).values(&new_account).execute(c)?;
        diesel::update(users::table.find(id)).set(users::display_name.eq(n)).execute(c)?;
        diesel::update(users::table.find(id))
            .set((users::version.eq(2), users::status.eq("disabled")))
            .execute(c)?;
        sql_query("DELETE FROM sessions WHERE user_id = $1").execute(c)?;
        x.on_conflict(id).do_update().set(sessions::last_used_at.eq(now));
    "#;
    assert_eq!(
        auth_table_writes(text),
        vec![
            (2, "sessions"),
            (6, "user_roles"),
            (9, "users"),
            (12, "sessions")
        ]
    );
}

#[test]
fn erasure_keeps_course_confirmations_by_the_status_portfolio_stores() {
    assert_eq!(
        crate::privacy::erasure::CONFIRMED_COURSE,
        crate::portfolio::course_confirmation::CONFIRMED.as_str()
    );
}

#[test]
fn erasure_keeps_confirmed_talks_by_the_status_portfolio_stores() {
    assert_eq!(
        crate::privacy::erasure::CONFIRMED_TALK,
        crate::portfolio::talks::TalkStatus::Confirmed.as_str()
    );
}
