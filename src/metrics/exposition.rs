//! Which text format `/metrics` answers in. prometheus-client writes OpenMetrics 1.0; a scraper that asks for the
//! classic Prometheus text format (`Accept: text/plain`, e.g. `scrape_protocols: [PrometheusText0.0.4]`, `curl`
//! piped into `promtool check metrics`, older agents) gets it rewritten to version 0.0.4.
//!
//! The two formats differ only in the metadata lines for what this daemon exports: a counter family `x` is
//! `# TYPE x counter` with samples `x_total` in OpenMetrics, and `# TYPE x_total counter` in the classic format; an
//! info family `x` becomes the gauge `x_info`; `# UNIT` lines, exemplars and `# EOF` have no classic form.

/// `Content-Type` of the OpenMetrics answer.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `Content-Type` of the classic Prometheus text answer.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Classic => CLASSIC_CONTENT_TYPE,
        }
    }

    /// The format an `Accept` header prefers: the highest `q` among `application/openmetrics-text` and
    /// `text/plain` (a tie, `*/*`, no header or anything unparsable: OpenMetrics, as CONTRACT.md promises).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::OpenMetrics;
        };
        let mut openmetrics: Option<f32> = None;
        let mut classic: Option<f32> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .filter(|q| q.is_finite() && (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            let slot = match media.as_str() {
                "application/openmetrics-text" => &mut openmetrics,
                "text/plain" => &mut classic,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        match (openmetrics, classic) {
            (_, Some(c)) if c > 0.0 && openmetrics.is_none_or(|o| c > o) => Format::Classic,
            _ => Format::OpenMetrics,
        }
    }
}

/// Rewrites prometheus-client's OpenMetrics text into the classic Prometheus text format 0.0.4.
pub fn to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP line comes before its TYPE line, which decides the name both carry.
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (classic_name, classic_kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                "gaugehistogram" => (name.to_owned(), "histogram"),
                "stateset" => (name.to_owned(), "gauge"),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some((help_name, help)) = pending_help.take()
                && help_name == name
            {
                out.push_str(&format!("# HELP {classic_name} {}\n", escape_help(help)));
            }
            out.push_str(&format!("# TYPE {classic_name} {classic_kind}\n"));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        // A sample: drop an exemplar (` # {...} value`), which the classic format does not have.
        let sample = match line.find(" # {") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(sample);
        out.push('\n');
    }
    out
}

/// The classic format escapes `\` and newlines in HELP; OpenMetrics also escapes `"`, which must be undone.
fn escape_help(help: &str) -> String {
    help.replace("\\\"", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_format() {
        let prometheus_default = "application/openmetrics-text;version=1.0.0;q=0.5,\
            application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        let classic_only = "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, want) in [
            (None, Format::OpenMetrics),
            (Some("*/*"), Format::OpenMetrics),
            (Some(prometheus_default), Format::OpenMetrics),
            (Some(classic_only), Format::Classic),
            (Some("text/plain"), Format::Classic),
            (Some("TEXT/PLAIN; charset=utf-8"), Format::Classic),
            (Some("text/plain;q=0"), Format::OpenMetrics),
            (
                Some("application/openmetrics-text, text/plain"),
                Format::OpenMetrics,
            ),
            (
                Some("text/plain;q=0.9, application/openmetrics-text;q=0.8"),
                Format::Classic,
            ),
            (Some("text/plain;q=nonsense"), Format::Classic),
            (Some(";;,,q=="), Format::OpenMetrics),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn counters_and_info_are_renamed_and_openmetrics_only_lines_dropped() {
        let om = "# HELP a_changes Changes.\n# TYPE a_changes counter\na_changes_total{x=\"y\"} 0\n\
                  # HELP a_build Build.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n\
                  # HELP a_seconds Time.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\na_seconds 2.0\n\
                  # HELP h Hist.\n# TYPE h histogram\nh_sum 1.0\nh_count 1\nh_bucket{le=\"+Inf\"} 1 # {id=\"e\"} 1.0\n\
                  # EOF\n";
        assert_eq!(
            to_classic(om),
            "# HELP a_changes_total Changes.\n# TYPE a_changes_total counter\na_changes_total{x=\"y\"} 0\n\
             # HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n\
             # HELP a_seconds Time.\n# TYPE a_seconds gauge\na_seconds 2.0\n\
             # HELP h Hist.\n# TYPE h histogram\nh_sum 1.0\nh_count 1\nh_bucket{le=\"+Inf\"} 1\n"
        );
    }
}
