//! Requests for restores into protected targets, and their approvals.
//!
//! A request is a plan (the `lifeboat` command line that will run, and the
//! protected target it reaches) with the plan's hash. Approvals come from
//! distinct approvers, never the requester, each bound to the hash: a plan
//! that changed after approval matches no approval. A request not approved
//! in time expires. The daemon runs an approved plan once and records how
//! it ended. Kept in the daemon's state directory (`requests.json`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::users::{AccessError, Authenticated};

/// What can go wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] AccessError),
    /// No such request.
    #[error("no request {0:?}")]
    Unknown(String),
    /// The approver is the requester.
    #[error("a request cannot be approved by the person who made it")]
    SelfApproval,
    /// This approver approved already.
    #[error("{0} approved this request already: it needs another person")]
    AlreadyApproved(String),
    /// The approval names another plan.
    #[error(
        "the plan changed: its hash is {current}, the approval named {given}; nothing was approved"
    )]
    PlanChanged {
        /// The plan's hash now.
        current: String,
        /// The hash approved.
        given: String,
    },
    /// Too late.
    #[error("the request expired at {0}; make a new one")]
    Expired(DateTime<Utc>),
    /// Not waiting for approval any more.
    #[error("the request is {0}, not waiting for approval")]
    NotPending(String),
    /// The plan is not something a request can hold.
    #[error("{0}")]
    BadPlan(String),
}

/// The command a request runs, and what it reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The `lifeboat` arguments, from the verb on (`restore postgres …`).
    pub command: Vec<String>,
    /// The protected source it reaches, if known.
    #[serde(default)]
    pub source: Option<String>,
}

impl Plan {
    /// The command as it may be logged and shown (passwords left out).
    pub fn shown(&self) -> String {
        self.command
            .iter()
            .map(|a| shell_word(&lifeboat_postgres::sql::loggable_argument(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// BLAKE3 of the plan's JSON, hex: what approvals are bound to.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        blake3::hash(&json).to_hex().to_string()
    }
}

/// `s` as one shell word: single-quoted when it holds anything a shell
/// would split or expand.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Where a request stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting for approvals.
    Pending,
    /// Approved; the daemon runs it next.
    Approved,
    /// The daemon runs it.
    Running,
    /// It ran.
    Done,
    /// Not approved in time.
    Expired,
}

impl State {
    /// Its name.
    pub fn name(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Running => "running",
            State::Done => "done",
            State::Expired => "expired",
        }
    }
}

/// One approval.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub by: String,
    /// When.
    pub time: DateTime<Utc>,
    /// The plan hash approved.
    pub hash: String,
}

/// A request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    /// Its id.
    pub id: String,
    /// What runs.
    pub plan: Plan,
    /// The plan's hash when it was made.
    pub hash: String,
    /// Who asked.
    pub requester: String,
    /// When.
    pub created: DateTime<Utc>,
    /// Approved by then, or expired.
    pub expires: DateTime<Utc>,
    /// Approvals needed.
    pub required: u32,
    /// Approvals given.
    pub approvals: Vec<Approval>,
    /// Where it stands.
    pub state: State,
    /// Break-glass: run without approval, by an admin, for this reason
    /// (marked for review).
    #[serde(default)]
    pub break_glass: Option<String>,
    /// How the run ended: exit code.
    #[serde(default)]
    pub exit: Option<i32>,
    /// When it ended.
    #[serde(default)]
    pub finished: Option<DateTime<Utc>>,
}

impl Request {
    /// The approvals in words: `1/2 (ann)`.
    pub fn approvals_text(&self) -> String {
        let by: Vec<&str> = self.approvals.iter().map(|a| a.by.as_str()).collect();
        let names = if by.is_empty() {
            String::new()
        } else {
            format!(" ({})", by.join(", "))
        };
        format!("{}/{}{names}", self.valid_approvals(), self.required)
    }

    /// Approvals that still match the plan.
    pub fn valid_approvals(&self) -> usize {
        let h = self.plan.hash();
        self.approvals.iter().filter(|a| a.hash == h).count()
    }
}

/// The requests of one state directory.
#[derive(Clone, Debug)]
pub struct RequestStore {
    path: PathBuf,
}

type Result<T> = std::result::Result<T, RequestError>;

/// One read-modify-write of the file at a time within the daemon (its API
/// and its loop both write it).
static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn writing() -> std::sync::MutexGuard<'static, ()> {
    WRITING.lock().unwrap_or_else(|p| p.into_inner())
}

impl RequestStore {
    /// The store in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        RequestStore {
            path: state_dir.join("requests.json"),
        }
    }

    fn load(&self) -> Result<Vec<Request>> {
        Ok(super::users::read_json(&self.path)?.unwrap_or_default())
    }

    fn save(&self, all: &[Request]) -> Result<()> {
        Ok(super::users::write_json(&self.path, &all)?)
    }

    /// Every request, newest last, expired ones marked so.
    pub fn list(&self, now: DateTime<Utc>) -> Result<Vec<Request>> {
        let mut all = self.load()?;
        for r in &mut all {
            if r.state == State::Pending && now >= r.expires {
                r.state = State::Expired;
            }
        }
        Ok(all)
    }

    /// One request.
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Result<Request> {
        self.list(now)?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| RequestError::Unknown(id.into()))
    }

    /// Records a request by `requester`. With `break_glass`, it is approved
    /// at once (the caller checks that the requester may break glass).
    pub fn create(
        &self,
        plan: Plan,
        requester: &str,
        required: u32,
        ttl: chrono::Duration,
        break_glass: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Request> {
        let _writing = writing();
        if !matches!(
            plan.command.first().map(String::as_str),
            Some("restore" | "recover" | "forget")
        ) {
            return Err(RequestError::BadPlan(
                "a request holds a `restore …`, `recover …` or `forget …` command".into(),
            ));
        }
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).map_err(|e| AccessError::Hash(e.to_string()))?;
        let r = Request {
            id: hex::encode(id),
            hash: plan.hash(),
            plan,
            requester: requester.into(),
            created: now,
            expires: now + ttl,
            required: required.max(1),
            approvals: Vec::new(),
            state: if break_glass.is_some() {
                State::Approved
            } else {
                State::Pending
            },
            break_glass,
            exit: None,
            finished: None,
        };
        let mut all = self.load()?;
        all.push(r.clone());
        self.save(&all)?;
        Ok(r)
    }

    /// Approves request `id` by `approver` for the plan with `hash`.
    pub fn approve(
        &self,
        id: &str,
        approver: &Authenticated,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Request> {
        let _writing = writing();
        let mut all = self.load()?;

        let r = all
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| RequestError::Unknown(id.into()))?;
        if r.state == State::Pending && now >= r.expires {
            return Err(RequestError::Expired(r.expires));
        }
        if r.state != State::Pending {
            return Err(RequestError::NotPending(r.state.name().into()));
        }
        if approver.name == r.requester {
            return Err(RequestError::SelfApproval);
        }
        if r.approvals.iter().any(|a| a.by == approver.name) {
            return Err(RequestError::AlreadyApproved(approver.name.clone()));
        }
        let current = r.plan.hash();
        if hash != current || current != r.hash {
            return Err(RequestError::PlanChanged {
                current,
                given: hash.into(),
            });
        }
        r.approvals.push(Approval {
            by: approver.name.clone(),
            time: now,
            hash: hash.into(),
        });
        if r.valid_approvals() >= r.required as usize {
            r.state = State::Approved;
        }
        let out = r.clone();
        self.save(&all)?;
        Ok(out)
    }

    /// Takes the approved requests to run: each is marked running and
    /// returned once. A request whose plan no longer matches its approvals
    /// (edited in the file) is never run.
    pub fn take_approved(&self) -> Result<(Vec<Request>, Vec<Request>)> {
        let _writing = writing();
        let mut all = self.load()?;
        let (mut run, mut voided) = (Vec::new(), Vec::new());
        for r in all.iter_mut().filter(|r| r.state == State::Approved) {
            let intact = r.plan.hash() == r.hash
                && (r.break_glass.is_some() || r.valid_approvals() >= r.required as usize);
            if intact {
                r.state = State::Running;
                run.push(r.clone());
            } else {
                r.state = State::Done;
                r.exit = Some(-1);
                voided.push(r.clone());
            }
        }
        if !run.is_empty() || !voided.is_empty() {
            self.save(&all)?;
        }
        Ok((run, voided))
    }

    /// Records how a run ended.
    pub fn finish(&self, id: &str, exit: i32, now: DateTime<Utc>) -> Result<()> {
        let _writing = writing();
        let mut all = self.load()?;
        if let Some(r) = all.iter_mut().find(|r| r.id == id) {
            r.state = State::Done;
            r.exit = Some(exit);
            r.finished = Some(now);
        }
        self.save(&all)
    }

    /// Whether `command` (this process's arguments from the verb on) is the
    /// plan of request `id`, which the daemon is running now.
    pub fn authorizes(&self, id: &str, args: &[String]) -> Result<bool> {
        let r = self
            .load()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| RequestError::Unknown(id.into()))?;
        Ok(r.state == State::Running && r.plan.hash() == r.hash && args.ends_with(&r.plan.command))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::access::Role;

    fn who(name: &str) -> Authenticated {
        Authenticated {
            name: name.into(),
            role: Role::Approver,
        }
    }

    fn plan() -> Plan {
        Plan {
            command: [
                "restore",
                "postgres",
                "latest",
                "--logical",
                "--db",
                "service=prod",
            ]
            .map(String::from)
            .to_vec(),
            source: Some("prod".into()),
        }
    }

    #[test]
    fn two_distinct_approvers_bound_to_the_plan_approve_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = RequestStore::new(dir.path());
        let t0 = Utc::now();
        let r = s
            .create(plan(), "rita", 2, chrono::Duration::hours(1), None, t0)
            .unwrap();
        assert!(matches!(
            s.approve(&r.id, &who("rita"), &r.hash, t0),
            Err(RequestError::SelfApproval)
        ));
        assert!(matches!(
            s.approve(&r.id, &who("ann"), "0000", t0),
            Err(RequestError::PlanChanged { .. })
        ));
        let one = s.approve(&r.id, &who("ann"), &r.hash, t0).unwrap();
        assert_eq!(one.state, State::Pending);
        assert!(matches!(
            s.approve(&r.id, &who("ann"), &r.hash, t0),
            Err(RequestError::AlreadyApproved(_))
        ));
        let two = s.approve(&r.id, &who("bob"), &r.hash, t0).unwrap();
        assert_eq!(two.state, State::Approved);
        let (run, voided) = s.take_approved().unwrap();
        assert_eq!(run.len(), 1);
        assert!(voided.is_empty());
        let args: Vec<String> = ["--config", "x"]
            .map(String::from)
            .into_iter()
            .chain(plan().command)
            .collect();
        assert!(s.authorizes(&r.id, &args).unwrap());
        assert!(!s.authorizes(&r.id, &plan().command[..3]).unwrap());
        assert!(s.take_approved().unwrap().0.is_empty(), "runs once");
        s.finish(&r.id, 0, t0).unwrap();
        assert!(!s.authorizes(&r.id, &args).unwrap());
    }

    #[test]
    fn an_expired_request_cannot_be_approved() {
        let dir = tempfile::tempdir().unwrap();
        let s = RequestStore::new(dir.path());
        let t0 = Utc::now();
        let r = s
            .create(plan(), "rita", 1, chrono::Duration::minutes(5), None, t0)
            .unwrap();
        let later = t0 + chrono::Duration::minutes(6);
        assert!(matches!(
            s.approve(&r.id, &who("ann"), &r.hash, later),
            Err(RequestError::Expired(_))
        ));
        assert_eq!(s.get(&r.id, later).unwrap().state, State::Expired);
    }

    #[test]
    fn a_plan_edited_after_approval_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = RequestStore::new(dir.path());
        let t0 = Utc::now();
        let r = s
            .create(plan(), "rita", 1, chrono::Duration::hours(1), None, t0)
            .unwrap();
        s.approve(&r.id, &who("ann"), &r.hash, t0).unwrap();
        // Someone with access to the state directory changes the target.
        let path = dir.path().join("requests.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("service=prod", "service=other")).unwrap();
        let (run, voided) = s.take_approved().unwrap();
        assert!(run.is_empty());
        assert_eq!(voided.len(), 1);
    }

    #[test]
    fn plans_are_shown_as_shell_words_without_passwords() {
        let p = Plan {
            command: [
                "restore",
                "postgres",
                "--db",
                "host=/tmp port=5 password=s3cret",
                "it's",
            ]
            .map(String::from)
            .to_vec(),
            source: None,
        };
        let shown = p.shown();
        assert!(
            shown.starts_with("restore postgres --db '(a connection string"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.ends_with(" 'it'\\''s'"), "{shown}");
    }

    #[test]
    fn only_restores_recoveries_and_forgets_can_be_requested() {
        let dir = tempfile::tempdir().unwrap();
        let s = RequestStore::new(dir.path());
        let p = Plan {
            command: vec!["prune".into()],
            source: None,
        };
        assert!(matches!(
            s.create(p, "rita", 1, chrono::Duration::hours(1), None, Utc::now()),
            Err(RequestError::BadPlan(_))
        ));
    }
}
