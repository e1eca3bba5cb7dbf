//! Lag over time as a small line chart: inline SVG drawn on the server, no script, scaled to
//! the width there is, with the numbers beside it for those who cannot see it.

use maud::{html, Markup};

use crate::feed::LagSample;

const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 60.0;

/// `samples` oldest first; `what` names the quantity ("entries behind").
pub fn lag_chart(samples: &[LagSample], what: &str) -> Markup {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return html! { p.hint { "No lag samples yet." } };
    };
    let max = samples.iter().map(|s| s.behind).max().unwrap_or(0);
    let span_us = (last.at_us - first.at_us).max(1) as f64;
    let minutes = ((last.at_us - first.at_us) as f64 / 60e6).ceil().max(1.0) as i64;
    // 2 px margins so a flat line at 0 or at the maximum stays visible.
    let y = |behind: i64| HEIGHT - 2.0 - behind as f64 / max.max(1) as f64 * (HEIGHT - 4.0);
    let points: Vec<String> = if samples.len() == 1 {
        // One sample: a level line across.
        vec![
            format!("0.0,{:.1}", y(last.behind)),
            format!("{WIDTH:.1},{:.1}", y(last.behind)),
        ]
    } else {
        samples
            .iter()
            .map(|s| {
                let x = (s.at_us - first.at_us) as f64 / span_us * WIDTH;
                format!("{x:.1},{:.1}", y(s.behind))
            })
            .collect()
    };
    let summary = format!(
        "{what}: {} now, at most {max} over the last {minutes} min",
        last.behind
    );
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } preserveAspectRatio="none" width="100%" height=(HEIGHT) role="img" aria-label=(summary) {
                polyline points=(points.join(" ")) fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke" {}
            }
            figcaption { strong { (last.behind) } " " (what) " now · at most " (max) " · last " (minutes) " min" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_point_per_sample_and_says_the_numbers() {
        let samples: Vec<LagSample> = [(0, 0), (1_000_000, 40), (2_000_000, 10)]
            .into_iter()
            .map(|(at_us, behind)| LagSample { at_us, behind })
            .collect();
        let html = lag_chart(&samples, "entries behind").into_string();
        assert!(
            html.contains(r#"points="0.0,58.0 150.0,2.0 300.0,44.0""#),
            "{html}"
        );
        assert!(html.contains("<strong>10</strong> entries behind now · at most 40"));
        assert!(
            html.contains(r#"aria-label="entries behind: 10 now, at most 40 over the last 1 min""#)
        );
    }

    #[test]
    fn no_samples_is_said_in_words() {
        assert!(lag_chart(&[], "x")
            .into_string()
            .contains("No lag samples yet"));
    }
}
