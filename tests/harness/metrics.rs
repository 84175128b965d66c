//! A process's `/metrics` (started with `KEYHOOK_METRICS_LISTEN=127.0.0.1:0`),
//! read as samples. In process the recorder is shared by every test of the
//! binary, so counts are read from real processes, each its own.

use std::collections::BTreeMap;

use super::Process;

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

#[derive(Debug)]
pub struct Metrics(Vec<Sample>);

impl Metrics {
    pub async fn read(server: &Process) -> Metrics {
        let url = format!("{}/metrics", server.metrics_url());
        let text = server.http.get(url).send().await.unwrap().text().await;
        Metrics(text.unwrap().lines().filter_map(sample).collect())
    }

    /// The sum of `name`'s samples carrying every label of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(.., v)| v)
            .sum()
    }

    /// `keyhook_aws_cleanups_total{kind,outcome}`.
    pub fn cleanups(&self, kind: &str, outcome: &str) -> f64 {
        let labels = [("kind", kind), ("outcome", outcome)];
        self.sum("keyhook_aws_cleanups_total", &labels)
    }
}

/// `name{k="v",…} value` or `name value`; comments and the rest are skipped.
fn sample(line: &str) -> Option<Sample> {
    if line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.trim().parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let labels = labels
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect();
    Some((name.to_string(), labels, value))
}
