//! `--two-nodes SECONDS`: the logging scenario split over two server processes on one
//! database (issue 19: "the bench's logging scenario split over both nodes loses
//! nothing"). Half the clients send to each node. Every tenth request of a client is a
//! load balancer's retry: the request its twin client on the other node sent just
//! before (or is about to send), with the same `Idempotency-Key` and body. Afterwards
//! the database must hold each acknowledged activity exactly once, with both of its
//! delmål links; the run exits 1 otherwise. Also printed: each node's rate and CPU time
//! per request.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use eportfolio::db::{DbConn, DbPool};
use eportfolio::schema::{activities, record_delmal};
use serde_json::json;

use crate::client::{self, Pace, Req};
use crate::seed::Trainee;
use crate::server::Server;

/// Which request a node's client `c` sends as its `n`th: its own, or (every tenth)
/// the other node's `n - 1`th of the same client, again.
fn logical(node: usize, c: usize, n: usize) -> (usize, usize, usize) {
    if n % 10 == 9 {
        (1 - node, c, n - 1)
    } else {
        (node, c, n)
    }
}

pub(crate) struct TwoNodes<'a> {
    pub(crate) nodes: [&'a Server; 2],
    pub(crate) clients: usize,
    pub(crate) seconds: u64,
    pub(crate) trainees: &'a [Trainee],
    /// The bench's own pool on the database, to count what was stored.
    pub(crate) pool: &'a DbPool,
}

impl TwoNodes<'_> {
    /// Drives both nodes together, then checks the database. True when nothing acknowledged
    /// is missing and nothing is stored twice.
    pub(crate) fn run(&self) -> bool {
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        );
        let trainees = self.trainees;
        let request = |(origin, c, n): (usize, usize, usize)| {
            let t = &trainees[(c * 7919 + n * 31 + origin * 17) % trainees.len()];
            let name = format!("Kurs2 {nonce} {origin}-{c}-{n}");
            Req::post(&format!("/api/v1/enrolments/{}/activities", t.enrolment))
                .auth(&t.token)
                .header("Idempotency-Key", &format!("bench2-{nonce}-{origin}-{c}-{n}"))
                .json(json!({"kind": "course", "title": name, "start_date": "2026-10-06", "delmal": ["BT1", "BT7"]}))
                .tagged(name)
        };
        let per_node = (self.clients / 2).max(1);
        let drive = |node: usize| {
            let server = self.nodes[node];
            let addr = server.base.trim_start_matches("http://").to_string();
            let cpu = server.cpu_seconds();
            let m = client::drive(
                &addr,
                per_node,
                self.seconds as f64,
                Pace::Saturate,
                0,
                &|c, n| Some(request(logical(node, c, n))),
            );
            (m, server.cpu_seconds() - cpu)
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| drive(0));
            let b = s.spawn(|| drive(1));
            (a.join(), b.join())
        });
        let (Ok(a), Ok(b)) = (a, b) else {
            eprintln!("two nodes: a client thread panicked");
            return false;
        };
        for (node, (m, cpu)) in [&a, &b].into_iter().enumerate() {
            let n = m.latencies_ms.len().max(1) as f64;
            println!(
                "node {node}: {} requests in {:.1} s ({:.0}/s), {} errors {:?}, p99 {:.1} ms, cpu {:.3} ms per request",
                m.latencies_ms.len(),
                m.seconds,
                m.latencies_ms.len() as f64 / m.seconds.max(0.001),
                m.errors,
                m.error_statuses,
                m.latencies_ms
                    .get(((n - 1.0) * 0.99).round() as usize)
                    .copied()
                    .unwrap_or(0.0),
                cpu * 1000.0 / n
            );
        }
        let acknowledged: HashSet<String> =
            a.0.acknowledged
                .iter()
                .chain(&b.0.acknowledged)
                .cloned()
                .collect();
        let answers = a.0.acknowledged.len() + b.0.acknowledged.len();
        match self.stored(&nonce) {
            Ok(stored) => report(&acknowledged, answers, &stored),
            Err(e) => {
                eprintln!("two nodes: cannot read what was stored: {e}");
                false
            }
        }
    }

    /// Each stored activity of this run (by title) with how many rows and links it has.
    fn stored(&self, nonce: &str) -> Result<HashMap<String, (usize, usize)>, String> {
        let mut pooled = self.pool.get().map_err(|e| e.to_string())?;
        let conn: &mut DbConn = &mut pooled;
        let rows: Vec<(String, String)> = activities::table
            .filter(activities::title.like(format!("Kurs2 {nonce} %")))
            .select((activities::id, activities::title))
            .load(conn)
            .map_err(|e| e.to_string())?;
        let ids: Vec<&String> = rows.iter().map(|(id, _)| id).collect();
        let mut links: HashMap<String, usize> = HashMap::new();
        for chunk in ids.chunks(500) {
            let found: Vec<String> = record_delmal::table
                .filter(record_delmal::record_id.eq_any(chunk))
                .select(record_delmal::record_id)
                .load(conn)
                .map_err(|e| e.to_string())?;
            for id in found {
                *links.entry(id).or_default() += 1;
            }
        }
        let mut stored: HashMap<String, (usize, usize)> = HashMap::new();
        for (id, title) in rows {
            let entry = stored.entry(title).or_default();
            entry.0 += 1;
            entry.1 += links.get(&id).copied().unwrap_or(0);
        }
        Ok(stored)
    }
}

/// Prints the verdict; true when every acknowledged activity is stored once with its two
/// delmål links, and nothing is stored that was answered with an error.
fn report(
    acknowledged: &HashSet<String>,
    answers: usize,
    stored: &HashMap<String, (usize, usize)>,
) -> bool {
    let lost = acknowledged
        .iter()
        .filter(|t| !stored.contains_key(*t))
        .count();
    let twice = stored.values().filter(|(rows, _)| *rows > 1).count();
    let unlinked = stored
        .values()
        .filter(|(rows, links)| *links != 2 * rows)
        .count();
    let unanswered = stored.keys().filter(|t| !acknowledged.contains(*t)).count();
    println!(
        "two nodes: {answers} successful answers for {} distinct activities ({} answered twice: retries on the other node); stored {}: lost {lost}, stored twice {twice}, without both delmål links {unlinked}, stored but never acknowledged {unanswered}",
        acknowledged.len(),
        answers - acknowledged.len(),
        stored.len()
    );
    lost == 0 && twice == 0 && unlinked == 0 && unanswered == 0
}
