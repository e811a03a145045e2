//! No statement a platform considered delivered is lost: one whose learner had no
//! enrolment yet is kept as `unmatched` (`unknown_learner`), and becomes an activity when
//! that learner enrols. The enrolment feature publishes `enrolment.created` (it knows
//! nothing of xAPI); this subscriber, in the same transaction, matches the kept
//! statements of the new trainee again.

use diesel::prelude::*;

use super::StatementStatus;
use crate::auth::principal::org_chain;
use crate::db::DbConn;
use crate::error::AppError;
use crate::events::{EventKind, StoredEvent};
use crate::ids::OrganisationId;
use crate::schema::{enrolments, users, xapi_account_links, xapi_statements};

use super::statements::{try_resolve, StatementRecord};
use super::{Learner, XapiStatement};

const UNKNOWN_LEARNER: &str = "unknown_learner";

/// Only new enrolments, and only while some statement waits for its learner.
pub fn listens(conn: &mut DbConn, kind: EventKind) -> Result<bool, AppError> {
    if kind != EventKind::EnrolmentCreated {
        return Ok(false);
    }
    let waiting = xapi_statements::table
        .filter(xapi_statements::status.eq(StatementStatus::Unmatched))
        .filter(xapi_statements::reason.eq(UNKNOWN_LEARNER))
        .select(xapi_statements::id);
    let any: Option<String> = crate::on_backend!(conn, |c| waiting.first(c).optional())?;
    Ok(any.is_some())
}

/// Matches again the statements kept as `unknown_learner` that name the new trainee
/// (by e-mail, or by an account linked to them) and that clients of the enrolment's
/// organisation or the organisations above it sent (those whose trainees they may
/// name). Those that match now become activities, audited as the service's own doing;
/// the others stay in the work list with their reason.
pub fn on_event(conn: &mut DbConn, event: &StoredEvent) -> Result<(), AppError> {
    if event.kind != EventKind::EnrolmentCreated {
        return Ok(());
    }
    let Some(enrolment) = &event.enrolment_id else {
        return Ok(());
    };
    let (trainee, organisation): (String, OrganisationId) = enrolments::table
        .find(enrolment)
        .select((enrolments::trainee_id, enrolments::organisation_id))
        .first(conn)?;
    let chain = org_chain(conn, &organisation)?;
    let email: String = users::table
        .find(&trainee)
        .select(users::email)
        .first(conn)?;
    let mut learners = vec![Learner::Mbox(email.trim().to_lowercase()).describe()];
    let accounts: Vec<(String, String)> = xapi_account_links::table
        .filter(xapi_account_links::user_id.eq(&trainee))
        .filter(xapi_account_links::organisation_id.eq_any(&chain))
        .select((xapi_account_links::home_page, xapi_account_links::name))
        .load(conn)?;
    learners.extend(
        accounts
            .into_iter()
            .map(|(home_page, name)| Learner::Account { home_page, name }.describe()),
    );
    let waiting: Vec<StatementRecord> = xapi_statements::table
        .filter(xapi_statements::organisation_id.eq_any(&chain))
        .filter(xapi_statements::status.eq(StatementStatus::Unmatched))
        .filter(xapi_statements::reason.eq(UNKNOWN_LEARNER))
        .filter(xapi_statements::learner.eq_any(&learners))
        .order((xapi_statements::received_at, xapi_statements::id))
        .select(StatementRecord::as_select())
        .load(conn)?;
    let mut trees = super::OrgTrees::default();
    for record in waiting {
        // Still unmatched (another mapping missing, say): it stays listed with why. A
        // statement this build no longer reads stays for an administrator, rather than
        // refusing the enrolment.
        match try_resolve(
            conn,
            &mut trees,
            event.created_at.0,
            None,
            &XapiStatement::from(record),
        ) {
            Ok(_) | Err(AppError::Unprocessable(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
