//! The outcome of `feedline check`: one finding per check, as a table or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// How a check came out. Only `fail` makes the exit status non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Safe to poll, but costly or off the spec's recommendations.
    Warn,
    /// A poller can lose or misread entries.
    Fail,
    /// Could not be run (what it needs is missing, or `--writes` was not given).
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// A check: a stable id (for `--json` consumers and tests), what it asks, and where the
/// spec says so.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub spec: &'static str,
}

impl Check {
    pub fn finding(self, status: Status, observed: impl Into<String>) -> Finding {
        Finding {
            id: self.id,
            title: self.title,
            spec: self.spec,
            status,
            observed: observed.into(),
        }
    }
    pub fn pass(self, observed: impl Into<String>) -> Finding {
        self.finding(Status::Pass, observed)
    }
    pub fn warn(self, observed: impl Into<String>) -> Finding {
        self.finding(Status::Warn, observed)
    }
    pub fn fail(self, observed: impl Into<String>) -> Finding {
        self.finding(Status::Fail, observed)
    }
    pub fn skip(self, observed: impl Into<String>) -> Finding {
        self.finding(Status::Skip, observed)
    }
}

/// What one check observed.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub title: &'static str,
    pub spec: &'static str,
    pub status: Status,
    pub observed: String,
}

/// Counts per status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

/// Everything `feedline check` found about one feed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    /// True when no check failed: the exit status is 0 exactly then.
    pub ok: bool,
    pub summary: Summary,
    pub checks: Vec<Finding>,
}

impl Report {
    pub fn new(url: String, checks: Vec<Finding>) -> Report {
        let mut summary = Summary::default();
        for c in &checks {
            *match c.status {
                Status::Pass => &mut summary.pass,
                Status::Warn => &mut summary.warn,
                Status::Fail => &mut summary.fail,
                Status::Skip => &mut summary.skip,
            } += 1;
        }
        Report {
            url,
            ok: summary.fail == 0,
            summary,
            checks,
        }
    }

    /// The ids of the checks with `status`.
    pub fn with_status(&self, status: Status) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.id)
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<&Finding> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// A table for people: result, check, spec section, and what was observed.
    pub fn table(&self) -> String {
        // Padding counts characters ("§" is one).
        let width = |header: &str, cell: fn(&Finding) -> &str| {
            self.checks
                .iter()
                .map(|c| cell(c).chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        };
        let id_width = width("CHECK", |c| c.id);
        let spec_width = width("SPEC", |c| c.spec);
        let mut out = format!("feedline check {}\n\n", self.url);
        let _ = writeln!(
            out,
            "{:<8}{:<id_width$}  {:<spec_width$}  OBSERVED",
            "RESULT", "CHECK", "SPEC"
        );
        for c in &self.checks {
            let _ = writeln!(
                out,
                "{:<8}{:<id_width$}  {:<spec_width$}  {}",
                c.status.as_str(),
                c.id,
                c.spec,
                c.observed
            );
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "\n{} checks: {} pass, {} warn, {} fail, {} skip",
            self.checks.len(),
            s.pass,
            s.warn,
            s.fail,
            s.skip
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Check = Check {
        id: "a",
        title: "A",
        spec: "RFC 1 §1",
    };

    #[test]
    fn a_report_is_ok_only_without_failures() {
        let ok = Report::new("u".into(), vec![A.pass("x"), A.warn("y"), A.skip("z")]);
        assert!(ok.ok);
        assert_eq!(ok.summary.warn, 1);
        let failed = Report::new("u".into(), vec![A.pass("x"), A.fail("y")]);
        assert!(!failed.ok);
        assert_eq!(failed.with_status(Status::Fail), vec!["a"]);
    }

    #[test]
    fn the_table_has_one_aligned_row_per_check_and_a_summary() {
        let report = Report::new("u".into(), vec![A.pass("fine"), A.fail("broken")]);
        let table = report.table();
        assert!(table.contains("pass    a      RFC 1 §1  fine"), "{table}");
        assert!(table.contains("fail    a      RFC 1 §1  broken"), "{table}");
        assert!(table.contains("2 checks: 1 pass, 0 warn, 1 fail, 0 skip"));
    }
}
