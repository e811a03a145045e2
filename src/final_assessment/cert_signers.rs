//! Who fills each signature line the forms name. The final assessment's signers sign the
//! decision; the forms name roles (huvudansvarig handledare, extern bedömare,
//! verksamhetschef, ...), filled here from the decision's signers and the enrolment's
//! assignments. A committee fills the lines the catalogue says it replaces with its chair
//! (or with every member when no chair was named), so no line stays blank for want of a
//! name the portfolio has.

use super::certificates::{name_of, SignatureLine};
use super::forms::FormSet;
use super::service::{FinalAssessment, Mode, SignerRole};
use crate::db::DbConn;
use crate::enrolment::service::{Assignment, AssignmentRole, Enrolment};
use crate::error::AppError;

/// A person as a signature line prints them.
#[derive(Debug, Clone)]
pub(super) struct Person {
    pub user_id: String,
    pub name: String,
}

pub(super) struct Signers {
    /// The final assessment's mode; `None` before there is a decision.
    mode: Option<Mode>,
    /// The decision's signers by their role in it.
    decided_by: Vec<(SignerRole, Person)>,
    main_supervisor: Option<Person>,
    head_of_department: Option<Person>,
    committee_replaces: Vec<String>,
}

/// Who held `role` on the enrolment: the assignment holding today, else the latest.
fn holder(e: &Enrolment, role: AssignmentRole) -> Option<&Assignment> {
    let mut held: Vec<&Assignment> = e.assignments.iter().filter(|a| a.role == role).collect();
    held.sort_by_key(|a| (a.active, a.valid_from));
    held.last().copied()
}

fn person(conn: &mut DbConn, a: Option<&Assignment>) -> Result<Option<Person>, AppError> {
    a.map(|a| {
        Ok(Person {
            user_id: a.user_id.clone(),
            name: name_of(conn, &a.user_id)?,
        })
    })
    .transpose()
}

impl Signers {
    pub fn load(
        conn: &mut DbConn,
        f: Option<&FinalAssessment>,
        e: &Enrolment,
        set: &FormSet,
    ) -> Result<Signers, AppError> {
        Ok(Signers {
            mode: f.map(|f| f.mode),
            decided_by: f
                .map(|f| f.signers.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    (
                        s.role,
                        Person {
                            user_id: s.user_id.to_string(),
                            name: s.name.clone(),
                        },
                    )
                })
                .collect(),
            main_supervisor: person(conn, holder(e, AssignmentRole::MainSupervisor))?,
            head_of_department: person(conn, holder(e, AssignmentRole::HeadOfDepartment))?,
            committee_replaces: set.committee_replaces.clone(),
        })
    }

    fn decided(&self, role: SignerRole) -> Option<&Person> {
        self.decided_by
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, p)| p)
    }

    /// The committee as the certificate lists it: chair first, then the members.
    pub fn committee_line(&self) -> Option<String> {
        if self.mode != Some(Mode::Committee) {
            return None;
        }
        let chair = self.decided(SignerRole::CommitteeChair);
        let members: Vec<&str> = self
            .decided_by
            .iter()
            .filter(|(r, _)| *r == SignerRole::CommitteeMember)
            .map(|(_, p)| p.name.as_str())
            .collect();
        Some(match chair {
            Some(c) => format!("{} (ordförande); ledamöter: {}", c.name, members.join(", ")),
            None => format!("ledamöter: {}", members.join(", ")),
        })
    }

    /// The line for a signer the form names `role`.
    pub fn line(&self, role: &str) -> SignatureLine {
        let filled = |p: Option<&Person>| SignatureLine {
            role: role.to_string(),
            name: p.map(|p| p.name.clone()),
            user_id: p.map(|p| p.user_id.clone()),
            // Filled from the signer profile once all lines are known (`with_profiles`).
            specialty: None,
            workplace: None,
        };
        if self.mode == Some(Mode::Committee) && self.committee_replaces.iter().any(|r| r == role) {
            if let Some(chair) = self.decided(SignerRole::CommitteeChair) {
                return SignatureLine {
                    role: format!("{role} (kompetenskommitténs ordförande)"),
                    ..filled(Some(chair))
                };
            }
            let members: Vec<&str> = self
                .decided_by
                .iter()
                .map(|(_, p)| p.name.as_str())
                .collect();
            return SignatureLine {
                role: format!("{role} (kompetenskommittén)"),
                name: Some(members.join(", ")),
                user_id: None,
                specialty: None,
                workplace: None,
            };
        }
        let lower = role.to_lowercase();
        if lower.contains("verksamhetschef") {
            return filled(self.head_of_department.as_ref());
        }
        if lower.contains("huvudansvarig handledare") {
            return filled(
                self.decided(SignerRole::MainSupervisor)
                    .or(self.main_supervisor.as_ref()),
            );
        }
        if lower == "extern bedömare" || lower == "one more specialist" {
            return filled(self.decided(SignerRole::ExternalAssessor));
        }
        filled(None)
    }

    /// The main supervisor of the enrolment (for forms a handledare signs).
    pub fn main_supervisor(&self) -> Option<&Person> {
        self.main_supervisor.as_ref()
    }
}
